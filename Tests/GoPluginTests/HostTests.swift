import Foundation
import GRPCCore
import GoPluginTesting
import KVInterface
import Logging
import Testing

@testable import GoPlugin

#if canImport(Glibc)
import Glibc
#endif

/// A configuration that launches the fixture plugin in `mode`.
func fixture(
  _ mode: String = "serve",
  _ arguments: String...,
  environment: [String: String] = [:],
  versions: [Int] = [1]
) throws -> PluginClientConfiguration {
  let command = try BuildProducts.command("fixture-plugin", arguments: [mode] + arguments, environment: environment)
  var sets: [Int: PluginSet] = [:]
  for version in versions { sets[version] = ["kv": KVPlugin()] }
  var configuration = PluginClientConfiguration(command: command, handshake: .kv, versionedPlugins: sets)
  configuration.standardInput = .none
  // The suites run at once on two cores, where a debug-built plugin asked to stop can take more
  // than go-plugin's 2 s to exit and would be killed: tests about timing set their own.
  configuration.gracefulStopTimeout = .seconds(20)
  return configuration
}

func isAlive(_ pid: Int32) -> Bool {
  // A reaped child is gone; an unreaped one (a zombie) would still answer kill(0).
  kill(pid, 0) == 0
}

/// Starts a client whose start is expected to fail, and returns the error and how it ended.
func failedStart(_ configuration: PluginClientConfiguration) async throws -> (PluginError, PluginExit) {
  let client = PluginClient(configuration: configuration)
  do {
    try await client.run()
  } catch {
    return (error, await client.exit)
  }
  Issue.record("the plugin started")
  throw CancellationError()
}

/// `count` bytes of `block`, over and over, built by copying: tests run unoptimised, where a
/// closure call per byte of many MiB holds one of Swift concurrency's few threads for seconds
/// and starves the plugins other tests are stopping.
func repeated(_ block: [UInt8], count: Int) -> [UInt8] {
  var bytes = block
  while bytes.count < count { bytes += bytes }
  return Array(bytes.prefix(count))
}

enum CapturedStream { case standardOutput, standardError }

/// Runs a program to its end outside any plugin machinery, in exactly `environment`, keeping
/// one of its output streams.
func runCapturing(
  _ path: String,
  arguments: [String] = [],
  environment: [String: String],
  capture: CapturedStream
) async throws -> (status: Int32, output: Data) {
  let run = try await ExternalProgram.run(
    path, arguments: arguments, environment: environment, inheritEnvironment: false)
  return (run.status, Data(capture == .standardOutput ? run.output : run.errorOutput))
}

@Suite("Swift host and Swift plugin", .timeLimit(.minutes(2)))
struct HostTests {
  @Test("the KV plugin works end to end and stops gracefully")
  func endToEnd() async throws {
    let command = try BuildProducts.command("kv-plugin")
    var configuration = PluginClientConfiguration(command: command, handshake: .kv, plugins: ["kv": KVPlugin()])
    configuration.standardInput = .none
    let client = PluginClient(configuration: configuration)
    var socket = ""
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await client.run() }
      let info = try await client.info
      socket = info.address
      #expect(info.protocol == .grpc)
      #expect(info.negotiatedVersion == 1)
      #expect(info.network == .unix)
      // The socket lives in a directory of its own that only this user can enter.
      var directory = stat()
      #expect(stat((socket as NSString).deletingLastPathComponent, &directory) == 0)
      #expect(directory.st_mode & 0o777 == 0o700)
      var file = stat()
      #expect(lstat(socket, &file) == 0)
      #expect(file.st_mode & S_IFMT == S_IFSOCK)
      #expect(file.st_mode & 0o777 == 0o600)

      let kv = try await client.dispense("kv", as: KVPlugin.self)
      try await kv.put("a", value: [1, 2, 3])
      #expect(try await kv.get("a") == [1, 2, 3])
      #expect(try await kv.get("missing") == [])
      let count = try await kv.upload([[1], [2, 2], [3, 3, 3]])
      #expect(count == UploadCount(bytes: 6, chunks: 3))
      try await client.ping()

      await client.kill()
      try await group.waitForAll()
    }
    let exit = await client.exit
    #expect(exit == PluginExit(status: .exited(0), reason: .stopped))
    #expect(!FileManager.default.fileExists(atPath: socket))
    #expect(!FileManager.default.fileExists(atPath: (socket as NSString).deletingLastPathComponent))
  }

  @Test("the scoped form stops the plugin when the body returns, and when it throws")
  func scoped() async throws {
    struct Oops: Error {}
    var pid: Int32 = 0
    let value = try await withPluginClient(try fixture()) { client in
      pid = try await client.info.pid
      #expect(isAlive(pid))
      return try await client.dispense("kv", as: KVPlugin.self).get("pid")
    }
    #expect(String(decoding: value, as: UTF8.self) == String(pid))
    #expect(!isAlive(pid))

    await #expect(throws: Oops.self) {
      try await withPluginClient(try fixture()) { client in
        pid = try await client.info.pid
        throw Oops()
      }
    }
    #expect(!isAlive(pid))
  }

  @Test("kill is idempotent and safe from many tasks at once")
  func concurrentKill() async throws {
    var configuration = try fixture()
    // This test is about concurrent kills, not timing: a loaded machine must not turn the stop
    // into a SIGKILL.
    configuration.gracefulStopTimeout = .seconds(20)
    let client = PluginClient(configuration: configuration)
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await client.run() }
      let pid = try await client.info.pid
      for _ in 0..<8 { group.addTask { await client.kill() } }
      try await group.waitForAll()
      await client.kill()
      #expect(!isAlive(pid))
    }
    #expect(await client.exit == PluginExit(status: .exited(0), reason: .stopped))
    await #expect(throws: PluginError.self) { try await client.dispense("kv", as: KVPlugin.self) }
  }

  @Test("kill before run: nothing starts, and the exit says so")
  func killBeforeRun() async throws {
    let client = PluginClient(configuration: try fixture())
    await client.kill()
    #expect(await client.exit == PluginExit(status: nil, reason: .notStarted))
    await #expect { try await client.run() } throws: { ($0 as? PluginError)?.code == .notRunning }
  }

  @Test("a finished client is freed, with its connection")
  func clientIsFreed() async throws {
    weak var weakClient: PluginClient?
    do {
      let client = PluginClient(configuration: try fixture())
      weakClient = client
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await client.run() }
        try await client.dispense("kv", as: KVPlugin.self).put("k", value: [1])
        await client.kill()
      }
    }
    #expect(weakClient == nil)
  }

  @Test("a socket group: directory 0770 and socket 0660, both owned by the group")
  func socketGroup() async throws {
    let group = try #require(getgrnam("nogroup"), "Debian's nogroup").pointee.gr_gid
    var configuration = try fixture()
    configuration.unixSocketGroup = "nogroup"
    try await withPluginClient(configuration) { client in
      let socket = try await client.info.address
      var file = stat()
      #expect(lstat(socket, &file) == 0)
      #expect(file.st_mode & 0o777 == 0o660)
      #expect(file.st_gid == group)
      var directory = stat()
      #expect(stat((socket as NSString).deletingLastPathComponent, &directory) == 0)
      #expect(directory.st_mode & 0o777 == 0o770)
      #expect(directory.st_gid == group)
      try await client.dispense("kv", as: KVPlugin.self).put("k", value: [1])
    }
  }

  @Test("a plugin that ignores Shutdown is killed after the grace period")
  func ignoresShutdown() async throws {
    var configuration = try fixture("ignore-shutdown")
    configuration.gracefulStopTimeout = .milliseconds(300)
    let client = PluginClient(configuration: configuration)
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await client.run() }
      _ = try await client.info
      await client.kill()
    }
    #expect(await client.exit == PluginExit(status: .signalled(SIGKILL), reason: .killed))
  }

  @Test("a plugin killed in the middle of a call fails the call, not the host")
  func killedMidCall() async throws {
    let client = PluginClient(configuration: try fixture())
    var socket = ""
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await client.run() }
      let info = try await client.info
      socket = info.address
      let kv = try await client.dispense("kv", as: KVPlugin.self)
      async let slow: Result<[UInt8], any Error> = {
        do { return .success(try await kv.get("sleep:10000")) } catch { return .failure(error) }
      }()
      // Whether the slow call has reached the plugin yet or not, it must fail once the plugin
      // is gone, and so must every later call.
      _ = try await kv.get("x")
      #expect(kill(info.pid, SIGKILL) == 0)
      let outcome = await slow
      #expect(throws: RPCError.self) { try outcome.get() }
      #expect(await client.exit == PluginExit(status: .signalled(SIGKILL), reason: .exitedUnexpectedly))
      await #expect(throws: (any Error).self) { try await kv.get("x") }
      await client.kill()
    }
    #expect(!FileManager.default.fileExists(atPath: socket))
  }

  @Test("a plugin that crashes inside a call is reported as exited")
  func crashMidCall() async throws {
    let client = PluginClient(configuration: try fixture())
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await client.run() }
      let kv = try await client.dispense("kv", as: KVPlugin.self)
      await #expect(throws: RPCError.self) { try await kv.get("crash") }
      #expect(await client.exit == PluginExit(status: .exited(3), reason: .exitedUnexpectedly))
    }
  }

  @Test("versions: the highest common one wins")
  func versionNegotiation() async throws {
    var configuration = try fixture(environment: ["FIXTURE_VERSIONS": "1,2,3"], versions: [2, 3, 4])
    configuration.command.environment["FIXTURE_VERSIONS"] = "1,2,3"
    try await withPluginClient(configuration) { client in
      #expect(try await client.info.negotiatedVersion == 3)
      let kv = try await client.dispense("kv", as: KVPlugin.self)
      #expect(String(decoding: try await kv.get("version"), as: UTF8.self) == "3")
    }
  }

  @Test("versions: no common version is an app version mismatch")
  func versionMismatch() async throws {
    let (error, exit) = try await failedStart(try fixture(environment: ["FIXTURE_VERSIONS": "2,3"], versions: [1]))
    #expect(error.code == .incompatibleAppVersion)
    #expect(error.message == "incompatible API version with plugin. Plugin version: 2, Client versions: [1]")
    #expect(exit.reason == .killed)
  }

  @Test("a plugin listening on TCP works")
  func tcp() async throws {
    try await withPluginClient(try fixture("serve-tcp")) { client in
      let info = try await client.info
      #expect(info.network == .tcp)
      #expect(info.address.hasPrefix("127.0.0.1:"))
      let port = Int(info.address.split(separator: ":").last!)!
      #expect((10000...25000).contains(port))
      let kv = try await client.dispense("kv", as: KVPlugin.self)
      try await kv.put("k", value: [9])
      #expect(try await kv.get("k") == [9])
    }
  }

  @Test("handshakes ending in CRLF, or with five fields, are accepted", arguments: ["serve-crlf", "serve-five-fields"])
  func otherHandshakeForms(_ mode: String) async throws {
    try await withPluginClient(try fixture(mode)) { client in
      #expect(try await client.info.network == .unix)
      let kv = try await client.dispense("kv", as: KVPlugin.self)
      try await kv.put("form", value: Array(mode.utf8))
      #expect(try await kv.get("form") == Array(mode.utf8))
    }
  }

  @Test("dispense is typed: unknown names and other types are errors")
  func dispenseErrors() async throws {
    struct OtherPlugin: GRPCPlugin {
      func services(context: PluginServiceContext) throws -> [any RegistrableRPCService] { [] }
      func client(connection: PluginConnection) -> Int { 0 }
    }
    try await withPluginClient(try fixture()) { client in
      await #expect {
        try await client.dispense("nope", as: KVPlugin.self)
      } throws: {
        ($0 as? PluginError)?.code == .unknownPlugin && ($0 as? PluginError)?.message == "unknown plugin type: nope"
      }
      await #expect {
        try await client.dispense("kv", as: OtherPlugin.self)
      } throws: { ($0 as? PluginError)?.code == .pluginTypeMismatch }
    }
  }

  @Test("the plugin sees go-plugin's variables and none of the host's PLUGIN_ ones")
  func environment() async throws {
    setenv("PLUGIN_LEAKED_FROM_HOST", "1", 1)
    setenv("GOPLUGIN_TEST_INHERITED", "yes", 1)
    defer {
      unsetenv("PLUGIN_LEAKED_FROM_HOST")
      unsetenv("GOPLUGIN_TEST_INHERITED")
    }
    func read(_ names: [String], inherit: Bool) async throws -> [String: String] {
      var configuration = try fixture(environment: ["OWN": "mine"])
      configuration.inheritedEnvironment = inherit ? .all : .none
      return try await withPluginClient(configuration) { client in
        let kv = try await client.dispense("kv", as: KVPlugin.self)
        var values: [String: String] = [:]
        for name in names { values[name] = String(decoding: try await kv.get("env:\(name)"), as: UTF8.self) }
        return values
      }
    }
    let names = [
      "BASIC_PLUGIN", "PLUGIN_PROTOCOL_VERSIONS", "PLUGIN_MIN_PORT", "PLUGIN_MAX_PORT", "PLUGIN_LEAKED_FROM_HOST",
      "GOPLUGIN_TEST_INHERITED", "OWN", "PLUGIN_MULTIPLEX_GRPC", "PLUGIN_CLIENT_CERT",
    ]
    let inherited = try await read(names, inherit: true)
    #expect(
      inherited == [
        "BASIC_PLUGIN": "hello", "PLUGIN_PROTOCOL_VERSIONS": "1", "PLUGIN_MIN_PORT": "10000",
        "PLUGIN_MAX_PORT": "25000",
        "PLUGIN_LEAKED_FROM_HOST": "<unset>", "GOPLUGIN_TEST_INHERITED": "yes", "OWN": "mine",
        "PLUGIN_MULTIPLEX_GRPC": "<unset>", "PLUGIN_CLIENT_CERT": "<unset>",
      ])
    let clean = try await read(["GOPLUGIN_TEST_INHERITED", "OWN", "BASIC_PLUGIN", "PATH"], inherit: false)
    #expect(clean == ["GOPLUGIN_TEST_INHERITED": "<unset>", "OWN": "mine", "BASIC_PLUGIN": "hello", "PATH": "<unset>"])

    // Without inheritance the plugin gets exactly go-plugin's variables and the command's own.
    var none = try fixture(environment: ["OWN": "mine"])
    none.inheritedEnvironment = .none
    let everything = try await withPluginClient(none) { client in
      let info = try await client.info
      let text = String(decoding: try await client.dispense("kv", as: KVPlugin.self).get("env"), as: UTF8.self)
      return (text.split(separator: "\n").map(String.init), (info.address as NSString).deletingLastPathComponent)
    }
    #expect(
      everything.0 == [
        "BASIC_PLUGIN=hello", "OWN=mine", "PLUGIN_MAX_PORT=25000", "PLUGIN_MIN_PORT=10000",
        "PLUGIN_PROTOCOL_VERSIONS=1", "PLUGIN_UNIX_SOCKET_DIR=\(everything.1)", "TMPDIR=\(everything.1)",
      ])

    var allowList = try fixture(environment: ["OWN": "mine"])
    allowList.inheritedEnvironment = .only(["GOPLUGIN_TEST_INHERITED", "PLUGIN_LEAKED_FROM_HOST"])
    let allowed = try await withPluginClient(allowList) { client in
      let kv = try await client.dispense("kv", as: KVPlugin.self)
      var values: [String: String] = [:]
      for name in ["GOPLUGIN_TEST_INHERITED", "PLUGIN_LEAKED_FROM_HOST", "PATH", "OWN"] {
        values[name] = String(decoding: try await kv.get("env:\(name)"), as: UTF8.self)
      }
      return values
    }
    // Even when allowed by name, the host's own PLUGIN_ variables stay with the host.
    #expect(
      allowed == [
        "GOPLUGIN_TEST_INHERITED": "yes", "PLUGIN_LEAKED_FROM_HOST": "<unset>", "PATH": "<unset>", "OWN": "mine",
      ])
  }

  @Test("the plugin's stderr lines become log records at their levels, with plugin and pid")
  func logs() async throws {
    let capture = LogCapture()
    var pid: Int32 = 0
    try await withPluginClient(try fixture("log"), logger: capture.logger) { client in
      pid = try await client.info.pid
      // The lines were written before the handshake; a round trip later they have been read.
      _ = try await client.dispense("kv", as: KVPlugin.self).get("x")
    }
    let records = capture.records
    let json = try #require(records.first { $0.message == "json warning" })
    #expect(json.level == .warning)
    #expect(json.metadata["answer"] == "42")
    #expect(json.metadata["@module"] == "fixture")
    #expect(json.metadata["pid"] == String(pid))
    #expect(json.metadata["plugin"] == "fixture-plugin")
    #expect(records.contains { $0.message == "[ERROR] prefixed error" && $0.level == .error })
    #expect(records.contains { $0.message == "just text" && $0.level == .debug })
    // The plugin's own hclog line from the library, at debug, with its fields.
    #expect(
      records.contains { $0.message == "plugin address" && $0.level == .debug && $0.metadata["network"] == "unix" })
  }
}

@Suite("Plugins that fail to start", .timeLimit(.minutes(2)))
struct StartFailureTests {
  @Test("junk before the handshake is a malformed handshake")
  func junk() async throws {
    let (error, exit) = try await failedStart(try fixture("junk"))
    #expect(error.code == .malformedHandshake)
    #expect(error.message.hasPrefix("Unrecognized remote plugin message: starting up...\nThis usually means"))
    #expect(error.description.contains("fixture-plugin"))
    #expect(error.pid != nil)
    #expect(exit.reason == .killed)
    #expect(!isAlive(error.pid!))
  }

  @Test(
    "handshake lines the host must refuse",
    arguments: [
      ("2|1|unix|/tmp/none|grpc|", PluginError.Code.incompatibleCoreVersion),
      ("1|7|unix|/tmp/none|grpc|", .incompatibleAppVersion),
      ("1|1|unix|/tmp/none|netrpc|", .unsupportedProtocol),
      ("1|1|pipe|/tmp/none|grpc|", .unknownAddressType),
    ])
  func refused(_ line: String, _ code: PluginError.Code) async throws {
    let (error, exit) = try await failedStart(try fixture("print", line))
    #expect(error.code == code)
    #expect(exit == PluginExit(status: .signalled(SIGKILL), reason: .killed))
  }

  @Test("a plugin that exits at once")
  func exitsAtOnce() async throws {
    let (error, exit) = try await failedStart(try fixture("exit", "4"))
    #expect(error.code == .exitedBeforeHandshake)
    #expect(error.message.contains("Failed to read any lines from plugin's stdout"))
    #expect(exit.status == .exited(4))
  }

  @Test("a plugin that never answers hits the start timeout and is killed")
  func neverAnswers() async throws {
    var configuration = try fixture("hang")
    configuration.startTimeout = .milliseconds(300)
    let (error, exit) = try await failedStart(configuration)
    #expect(error.code == .startTimeout)
    #expect(error.message == "timeout while waiting for plugin to start")
    #expect(exit == PluginExit(status: .signalled(SIGKILL), reason: .killed))
  }

  @Test("an executable that does not exist is a launch failure")
  func missing() async throws {
    let configuration = PluginClientConfiguration(
      command: PluginCommand("/nonexistent/plugin"), handshake: .kv, plugins: ["kv": KVPlugin()])
    let (error, _) = try await failedStart(configuration)
    #expect(error.code == .launchFailed)
    #expect(error.pluginPath == "/nonexistent/plugin")
  }

  @Test("a plugin run by hand explains itself and exits 1")
  func launchedByHand() async throws {
    let (status, output) = try await runCapturing(
      try BuildProducts.path("kv-plugin"), environment: [:], capture: .standardError)
    #expect(status == 1)
    #expect(String(decoding: output, as: UTF8.self) == PluginServer.launchedByHandMessage)
  }
}

@Suite("Nothing left behind", .timeLimit(.minutes(2)))
struct LeakTests {
  @Test("after stops, kills, crashes and failed starts: no process, descriptor or socket remains")
  func nothingLeaks() async throws {
    // The cycles run in a process of their own, where no other test opens descriptors.
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent(
      "goplugin-leak-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }

    let (status, data) = try await runCapturing(
      try BuildProducts.path("fixture-plugin"),
      arguments: ["host-cycles", "3"],
      environment: ProcessInfo.processInfo.environment.merging(["TMPDIR": scratch.path]) { _, new in new },
      capture: .standardOutput
    )
    #expect(status == 0)

    let report = try JSONDecoder().decode([String: [String]].self, from: data)
    #expect(report["after"] == report["before"])
    #expect(report["children"] == [])
    // Socket directories, sockets: everything the plugins and the host made in TMPDIR is gone.
    #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path) == [])
  }
}

@Suite("Checksum verification", .timeLimit(.minutes(2)))
struct ChecksumTests {
  /// A plugin script that leaves a marker when it runs, then becomes the fixture plugin.
  func makeScript(in directory: URL, marker: URL) throws -> String {
    let script = directory.appendingPathComponent("plugin.sh")
    let text =
      "#!/bin/sh\n# a comment to tamper with\ntouch '\(marker.path)'\nexec '\(try BuildProducts.path("fixture-plugin"))' serve\n"
    try Data(text.utf8).write(to: script)
    chmod(script.path, 0o755)
    return script.path
  }

  func scratch() throws -> URL {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
      "goplugin-checksum-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory
  }

  @Test("the right digest runs the plugin", arguments: PluginChecksum.Algorithm.allCases)
  func matching(_ algorithm: PluginChecksum.Algorithm) async throws {
    let directory = try scratch()
    defer { try? FileManager.default.removeItem(at: directory) }
    let marker = directory.appendingPathComponent("ran")
    let script = try makeScript(in: directory, marker: marker)
    let descriptor = open(script, O_RDONLY)
    let digest = try PluginChecksum.digest(of: descriptor, algorithm: algorithm)
    close(descriptor)

    var configuration = PluginClientConfiguration(
      command: PluginCommand(script), handshake: .kv, plugins: ["kv": KVPlugin()])
    configuration.standardInput = .none
    configuration.checksum = digest
    try await withPluginClient(configuration) { client in
      try await client.dispense("kv", as: KVPlugin.self).put("k", value: [1])
    }
    #expect(FileManager.default.fileExists(atPath: marker.path))
  }

  @Test("a binary with one byte changed is refused before it runs")
  func tampered() async throws {
    let directory = try scratch()
    defer { try? FileManager.default.removeItem(at: directory) }
    let marker = directory.appendingPathComponent("ran")
    let script = try makeScript(in: directory, marker: marker)
    let original = try PluginChecksum(.sha256, hex: await sha256Hex(of: script))

    var bytes = try Data(contentsOf: URL(fileURLWithPath: script))
    let index = try #require(bytes.firstIndex(of: UInt8(ascii: "c")))
    bytes[index] = UInt8(ascii: "C")
    try bytes.write(to: URL(fileURLWithPath: script))

    var configuration = PluginClientConfiguration(
      command: PluginCommand(script), handshake: .kv, plugins: ["kv": KVPlugin()])
    configuration.checksum = original
    let (error, exit) = try await failedStart(configuration)
    #expect(error.code == .checksumMismatch)
    #expect(error.message.contains("expected \(original)"))
    let actual = try await sha256Hex(of: script)
    #expect(error.message.contains("got sha256:\(actual)"))
    #expect(exit.status == nil)
    #expect(!FileManager.default.fileExists(atPath: marker.path))
  }

  @Test("hex digests are read as sha256sum prints them")
  func hex() throws {
    let hex = "00ff10" + String(repeating: "ab", count: 29)
    let checksum = try PluginChecksum(.sha256, hex: hex.uppercased())
    #expect(checksum.digest.prefix(3) == [0, 255, 16])
    #expect(checksum.description == "sha256:" + hex)
    // Wrong characters, signs, odd or wrong lengths for the algorithm.
    for bad in ["0g" + hex.dropFirst(2), "+f" + hex.dropFirst(2), String(hex.dropLast()), "00ff10"] {
      #expect(throws: PluginError.self) { try PluginChecksum(.sha256, hex: bad) }
    }
    #expect(throws: PluginError.self) { try PluginChecksum(.sha512, hex: hex) }
  }

  /// The digest as `sha256sum` computes it, so the test does not only check itself.
  func sha256Hex(of path: String) async throws -> String {
    let (status, output) = try await runCapturing(
      "/usr/bin/sha256sum", arguments: [path], environment: [:], capture: .standardOutput)
    #expect(status == 0)
    return String(String(decoding: output, as: UTF8.self).prefix(64))
  }
}
