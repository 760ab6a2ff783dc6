import Foundation
import GRPCCore
import GoPlugin
import GreeterInterface
import KVInterface
import Logging
import NIOSSL

// A plugin whose behaviour the tests choose with its first argument. Each mode is one way a real
// plugin behaves or misbehaves; the host under test sees a real process either way.
#if canImport(Glibc)
import Glibc
#endif

let arguments = Array(CommandLine.arguments.dropFirst())
let environment = ProcessInfo.processInfo.environment

func say(_ text: String) {
  FileHandle.standardOutput.write(Data(text.utf8))
}

/// A KV store with keys that make the plugin misbehave on request.
final class FixtureKV: KV {
  let memory = MemoryKV()
  let version: Int
  let broker: GRPCBroker?

  init(version: Int, broker: GRPCBroker? = nil) {
    self.version = version
    self.broker = broker
  }

  /// Keys of the form "broker-…:<id>[:<text>]" exercise the broker.
  func brokered(_ key: String) async throws -> [UInt8]? {
    let parts = key.split(separator: ":", maxSplits: 2).map(String.init)
    guard let broker, parts.count >= 2, let id = UInt32(parts[1]) else { return nil }
    switch parts[0] {
    case "broker-get":
      // Calls the KV the host serves under id, and returns what it has under the given key.
      // Generous: on a loaded machine the host may take a while to serve; timeouts have their own key.
      return try await broker.withClient(for: id, timeout: .seconds(30)) {
        try await KVClient(grpcClient: $0).get(parts[2])
      }
    case "broker-serve":
      // Serves a KV holding "brokered" = text under id until the plugin stops.
      let store = MemoryKV()
      try await store.put("brokered", value: Array(parts[2].utf8))
      try await broker.acceptAndServe(id: id, services: [KVService(store: store)])
      return Array("stopped".utf8)
    case "broker-get-timeout":
      do {
        _ = try await broker.withClient(for: id, timeout: .milliseconds(300)) { _ in 0 }
        return Array("connected".utf8)
      } catch let error as PluginError {
        return Array("\(error.code)".utf8)
      }
    default:
      return nil
    }
  }

  func get(_ key: String) async throws -> [UInt8] {
    if key == "version" { return Array(String(self.version).utf8) }
    if key == "pid" { return Array(String(getpid()).utf8) }
    if key == "crash" { exit(3) }
    if let answer = try await self.brokered(key) { return answer }
    if key == "env" {
      // The whole environment, one NAME=value per line, sorted.
      return Array(environment.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: "\n").utf8)
    }
    if key.hasPrefix("env:") { return Array((environment[String(key.dropFirst(4))] ?? "<unset>").utf8) }
    if key.hasPrefix("pid-after:"), let milliseconds = Int(key.dropFirst(10)) {
      // A slow call that says which process answered it: for the pool tests.
      try await Task.sleep(for: .milliseconds(milliseconds))
      return Array(String(getpid()).utf8)
    }
    if key.hasPrefix("sleep:"), let milliseconds = Int(key.dropFirst(6)) {
      try await Task.sleep(for: .milliseconds(milliseconds))
      return Array("slept".utf8)
    }
    return try await self.memory.get(key)
  }

  func put(_ key: String, value: [UInt8]) async throws {
    if let flood = environment["FIXTURE_STDOUT_FLOOD"].flatMap(Int.init) {
      // More than any pipe holds: a plugin whose host never reads its stdio must not block.
      FileHandle.standardOutput.write(Data(repeating: UInt8(ascii: "x"), count: flood))
    }
    switch key {
    case "stdio":
      // Through Swift's print (C's buffered stdout) and straight to fd 2.
      print("stdout: \(String(decoding: value, as: UTF8.self))")
      FileHandle.standardError.write(Data("stderr: \(String(decoding: value, as: UTF8.self))\n".utf8))
      // A log line written while stderr is captured: it must still reach the host as a log.
      Logger(label: "fixture") { HCLogHandler(label: $0) }.info("stdio written")
    case "stdio-bytes":
      // Every byte value, repeated up to the length asked for, as raw writes to fd 1.
      let count = Int(String(decoding: value, as: UTF8.self)) ?? 0
      FileHandle.standardOutput.write(Data((0..<count).map { UInt8(truncatingIfNeeded: $0) }))
    default:
      break
    }
    try await self.memory.put(key, value: value)
  }
  func upload(_ chunks: [[UInt8]]) async throws -> UploadCount { try await self.memory.upload(chunks) }
}

/// The KV plugin, with a store that can reach the broker.
struct FixturePlugin: GRPCPlugin {
  let version: Int

  func services(context: PluginServiceContext) throws -> [any RegistrableRPCService] {
    [KVService(store: FixtureKV(version: self.version, broker: context.broker))]
  }

  func client(connection: PluginConnection) -> KVClient {
    KVClient(grpcClient: connection.grpcClient)
  }
}

/// Serves KV at each version in FIXTURE_VERSIONS (default: 1).
func serve(listener: PluginServeConfiguration.Listener = .unixSocket()) async {
  let versions = (environment["FIXTURE_VERSIONS"] ?? "1").split(separator: ",").compactMap { Int($0) }
  var sets: [Int: PluginSet] = [:]
  for version in versions {
    sets[version] = ["kv": FixturePlugin(version: version)]
  }
  var configuration = PluginServeConfiguration(handshake: .kv, versionedPlugins: sets)
  configuration.listener = listener
  // The stdio tests send MiBs right before the stop; with every suite running at once on two
  // cores, the default 1.5 s of grace can end before a debug build has sent them.
  configuration.shutdownGracePeriod = .seconds(10)
  await PluginServer.serve(configuration)
}

switch arguments.first ?? "serve" {
case "serve":
  await serve()
case "serve-tcp":
  await serve(listener: .tcp)
case "serve-negotiated":
  // go-plugin's examples/negotiated, under the greeter handshake: version 2 is the net/rpc
  // example set, version 3 a gRPC KV, so the negotiated version decides the protocol.
  var configuration = PluginServeConfiguration(
    handshake: .greeter,
    versionedPlugins: [2: .greeterExample(serving: true), 3: ["kv": KVPlugin(serving: FixtureKV(version: 3))]])
  configuration.info = .init(
    version: "3.1.4", description: "go-plugin's examples/negotiated: net/rpc at version 2, gRPC at 3.",
    metadata: ["fixture": "negotiated"])
  await PluginServer.serve(configuration)
case "serve-tls":
  // Serves with the TLS files in FIXTURE_TLS_DIR: server.pem, server.key, and client.pem, the
  // only client certificate it accepts.
  let directory = environment["FIXTURE_TLS_DIR"] ?? "."
  var tls = TLSConfiguration.makeServerConfiguration(
    certificateChain: try NIOSSLCertificate.fromPEMFile(directory + "/server.pem").map { .certificate($0) },
    privateKey: .privateKey(try NIOSSLPrivateKey(file: directory + "/server.key", format: .pem))
  )
  tls.trustRoots = .file(directory + "/client.pem")
  tls.certificateVerification = .noHostnameVerification
  var configuration = PluginServeConfiguration(
    handshake: .kv, plugins: ["kv": KVPlugin(serving: FixtureKV(version: 1))])
  configuration.tls = tls
  await PluginServer.serve(configuration)
case "serve-crlf", "serve-five-fields":
  // Serves for real, but prints the handshake as other real plugins do: with a Windows line
  // ending, or in the five-field form of go-plugin's docs and its Python example.
  let crlf = arguments.first == "serve-crlf"
  let configuration = PluginServeConfiguration(
    handshake: .kv, plugins: ["kv": KVPlugin(serving: FixtureKV(version: 1))])
  try await PluginServer.run(configuration) { line in
    let text =
      crlf
      ? line.encoded + "\r\n"
      : line.encoded.split(separator: "|", omittingEmptySubsequences: false).prefix(5).joined(separator: "|") + "\n"
    say(text)
  }
case "serve-announcing":
  // Serves KV over TLS with the certificate and key in FIXTURE_TLS_DIR (server.pem, server.key),
  // trusting the host's PLUGIN_CLIENT_CERT, and announces announced.der in the handshake as an
  // AutoMTLS plugin would: the same certificate as served, or another one.
  let directory = environment["FIXTURE_TLS_DIR"] ?? "."
  var tls = TLSConfiguration.makeServerConfiguration(
    certificateChain: try NIOSSLCertificate.fromPEMFile(directory + "/server.pem").map { .certificate($0) },
    privateKey: .privateKey(try NIOSSLPrivateKey(file: directory + "/server.key", format: .pem))
  )
  let hostCertificate = Array((environment["PLUGIN_CLIENT_CERT"] ?? "").utf8)
  tls.trustRoots = .certificates([try NIOSSLCertificate(bytes: hostCertificate, format: .pem)])
  tls.certificateVerification = .noHostnameVerification
  let announced = Array(try Data(contentsOf: URL(fileURLWithPath: directory + "/announced.der")))
  var configuration = PluginServeConfiguration(
    handshake: .kv,
    plugins: ["kv": KVPlugin(serving: FixtureKV(version: 1))]
  )
  configuration.tls = tls
  try await PluginServer.run(configuration) { line in
    var line = line
    line.serverCertificate = announced
    say(line.encoded + "\n")
  }
case "misbehave":
  // A valid handshake line for a listener that then misbehaves: "close" accepts and closes at
  // once, "garbage" answers bytes that are no protocol, "http1" answers as an HTTP/1.1 server,
  // "silent" accepts and says nothing. Over "unix" (the default) or "tcp".
  misbehave(how: arguments.dropFirst().first ?? "close", network: arguments.dropFirst(2).first ?? "unix")
case "ignore-shutdown":
  // Serves, and after the host's Shutdown keeps the process alive: the host must kill it.
  await serve()
  while true { pause() }
case "print":
  // Prints the given line as the handshake, then waits to be killed. `\0` in it becomes a NUL
  // byte, which no argument can carry.
  say(arguments.dropFirst().joined(separator: " ").replacingOccurrences(of: "\\0", with: "\0") + "\n")
  while true { pause() }
case "long-stderr":
  // One stderr line of the given number of bytes, without a newline, then serve.
  let count = Int(arguments.dropFirst().first ?? "") ?? 1 << 20
  let block = Data(repeating: UInt8(ascii: "x"), count: 64 * 1024)
  for start in stride(from: 0, to: count, by: block.count) {
    FileHandle.standardError.write(block.prefix(count - start))
  }
  await serve()
case "junk":
  say("starting up...\n1|1|unix|/tmp/nothing|grpc|\n")
  while true { pause() }
case "exit":
  exit(Int32(arguments.dropFirst().first ?? "0") ?? 0)
case "hang":
  while true { pause() }
case "log":
  // One stderr line of each form a host has to classify, then serve.
  FileHandle.standardError.write(
    Data(
      """
      {"@level":"warn","@message":"json warning","@timestamp":"2026-11-21T10:00:00.123456Z","@module":"fixture","answer":42,"pid":"1","plugin":"someone-else"}
      [ERROR] prefixed error
      just text

      """.utf8))
  await serve()
case "crash-every":
  // Crashes (exit status 3) on every N-th KV call; see Supervision.swift.
  await serveCrashing(every: Int(arguments.dropFirst().first ?? "") ?? 10)
case "draining":
  // Sets itself NOT_SERVING on request or after a delay; see Supervision.swift.
  await serveDraining()
case "service-group":
  // Serves as one service of a ServiceGroup; see Supervision.swift.
  await serveInServiceGroup()
case "measure-restarts":
  // Host mode: measure-restarts ROUNDS PLUGIN-PATH [PLUGIN-ARGS...]; see Supervision.swift.
  await measureRestarts(
    rounds: Int(arguments.dropFirst().first ?? "") ?? 20,
    path: arguments.dropFirst(2).first ?? CommandLine.arguments[0], arguments: Array(arguments.dropFirst(3)))
case "grandchild":
  // Starts a child of its own (see Grandchild.swift), then serves: its host must not leave
  // that child behind when the plugin stops or crashes.
  startGrandchild(pidFile: arguments.dropFirst().first ?? "grandchild.pid")
  await serve()
case "host-cycles":
  // Host mode: launches this same executable as a plugin through every kind of ending, and
  // reports what is left afterwards, so a test can assert that nothing leaks.
  await hostCycles(count: Int(arguments.dropFirst().first ?? "5") ?? 5)
default:
  FileHandle.standardError.write(Data("unknown fixture mode \(arguments)\n".utf8))
  exit(2)
}

func openDescriptors() -> [String] {
  let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
  return names.sorted().map { name in
    let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(name)")) ?? "?"
    return "\(name) -> \(target)"
  }
}

func childProcesses() -> [String] {
  let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
  return tasks.flatMap { task in
    ((try? String(contentsOfFile: "/proc/self/task/\(task)/children", encoding: .utf8)) ?? "")
      .split(separator: " ").map(String.init)
  }
}

func hostCycles(count: Int) async {
  func configuration(_ mode: String...) -> PluginClientConfiguration {
    var configuration = PluginClientConfiguration(
      command: .besideThisProgram("fixture-plugin", arguments: mode), handshake: .kv, plugins: ["kv": KVPlugin()])
    configuration.standardInput = .none
    configuration.startTimeout = .milliseconds(500)
    configuration.gracefulStopTimeout = .milliseconds(500)
    return configuration
  }
  func cycle() async {
    // A clean run and stop.
    _ = try? await withPluginClient(configuration("serve")) { client in
      try await client.dispense("kv", as: KVPlugin.self).put("k", value: [1])
    }
    // A plugin that crashes mid-call.
    _ = try? await withPluginClient(configuration("serve")) { client in
      _ = try? await client.dispense("kv", as: KVPlugin.self).get("crash")
      _ = await client.exit
    }
    // A plugin that must be killed, and three that fail to start in different ways.
    _ = try? await withPluginClient(configuration("ignore-shutdown")) { _ in }
    _ = try? await withPluginClient(configuration("junk")) { _ in }
    _ = try? await withPluginClient(configuration("exit", "1")) { _ in }
    _ = try? await withPluginClient(configuration("hang")) { _ in }
    // Multiplexed: a brokered call back into the host, stdio forwarded, and a crash.
    var multiplexed = configuration("serve")
    multiplexed.multiplexBroker = true
    multiplexed.syncStdout = .handler { _ in }
    _ = try? await withPluginClient(multiplexed) { client in
      let kv = try await client.dispense("kv", as: KVPlugin.self)
      let broker = try await client.broker
      let id = broker.nextID()
      try await kv.put("stdio", value: Array("hello".utf8))
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await broker.acceptAndServe(id: id, services: [KVService(store: MemoryKV())]) }
        _ = try await kv.get("broker-get:\(id):missing")
        group.cancelAll()
      }
    }
    _ = try? await withPluginClient(multiplexed) { client in
      _ = try? await client.dispense("kv", as: KVPlugin.self).get("crash")
      _ = await client.exit
    }
  }
  // The first cycle creates what lives for the whole process (event loops, monitors).
  await cycle()
  let before = openDescriptors()
  for _ in 0..<count { await cycle() }
  let report: [String: [String]] = ["before": before, "after": openDescriptors(), "children": childProcesses()]
  FileHandle.standardOutput.write(try! JSONEncoder().encode(report))
}

/// Listens, prints a handshake line naming the listener, and answers every connection `how`.
func misbehave(how: String, network: String) -> Never {
  let descriptor: Int32
  let address: String
  if network == "tcp" {
    descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var bound = sockaddr_in()
    bound.sin_family = sa_family_t(AF_INET)
    bound.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &bound) { pointer in
      pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
        bind(descriptor, address, length) == 0 && getsockname(descriptor, address, &length) == 0
      }
    }
    guard ok else { exit(4) }
    address = "127.0.0.1:\(UInt16(bigEndian: bound.sin_port))"
  } else {
    let directory = environment["PLUGIN_UNIX_SOCKET_DIR"] ?? NSTemporaryDirectory()
    address = directory + "/misbehave-\(getpid()).sock"
    descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var bound = sockaddr_un()
    bound.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &bound.sun_path) { path in
      for (index, byte) in address.utf8.prefix(path.count - 1).enumerated() { path[index] = byte }
    }
    let ok = withUnsafePointer(to: &bound) { pointer in
      pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
      }
    }
    guard ok else { exit(4) }
  }
  guard listen(descriptor, 16) == 0 else { exit(4) }
  say("1|1|\(network)|\(address)|grpc|\n")
  let answer: String? =
    switch how {
    case "garbage": "\u{0}\u{0}\u{5}\u{9}\u{0}not a protocol anyone speaks\r\n"
    case "http1": "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nBad Request"
    default: nil
    }
  var open: [Int32] = []
  while true {
    let connection = accept(descriptor, nil, nil)
    guard connection >= 0 else { continue }
    if let answer {
      _ = answer.utf8CString.withUnsafeBufferPointer { write(connection, $0.baseAddress, $0.count - 1) }
    }
    // Closing is the point of "close"; the others keep the connection, so that what the host
    // reports is what it read, not the end of the connection.
    if how == "close" { close(connection) } else { open.append(connection) }
  }
}
