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

/// The Go and Python peers, built by Tests/Interop/build.sh the first time a test asks for one.
enum Peers {
  static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

  /// Tests that ask at the same time may each run build.sh; it takes a lock, and all but the
  /// first find the peers up to date.
  private actor Build {
    private var result: Result<String, any Error>?

    func directory() async throws -> String {
      if let result { return try result.get() }
      let result: Result<String, any Error>
      do {
        let output =
          ProcessInfo.processInfo.environment["GOPLUGIN_INTEROP_DIR"]
          ?? Peers.repository.appendingPathComponent(".build/interop").path
        let build = try await Peers.run(
          Peers.repository.appendingPathComponent("Tests/Interop/build.sh").path, [output])
        guard build.status == 0 else {
          throw PluginError(code: .invalidConfiguration, message: "Tests/Interop/build.sh failed: \(build.stderr)")
        }
        result = .success(output)
      } catch {
        result = .failure(error)
      }
      self.result = result
      return try result.get()
    }
  }

  private static let build = Build()

  static func path(_ name: String) async throws -> String {
    try URL(fileURLWithPath: await build.directory()).appendingPathComponent(name).path
  }

  /// Runs a peer or an example to its end, without holding one of the few threads Swift
  /// concurrency has while it runs.
  static func run(
    _ executable: String,
    _ arguments: [String],
    environment: [String: String] = [:]
  ) async throws -> (status: Int32, stdout: String, stderr: String) {
    let run = try await ExternalProgram.run(executable, arguments: arguments, environment: environment)
    return (run.status, run.outputText, run.errorText)
  }
}

/// `count` bytes of `block`, over and over, built by copying: tests run unoptimised, where a
/// closure call per byte of many MiB holds one of Swift concurrency's few threads for seconds
/// and starves the plugins other tests are stopping.
func repeated(_ block: [UInt8], count: Int) -> [UInt8] {
  var bytes = block
  while bytes.count < count { bytes += bytes }
  return Array(bytes.prefix(count))
}

/// What go-kv-host prints (Tests/Interop/README.md).
struct GoHostReport: Decodable {
  var `protocol`: String?
  var negotiatedVersion: Int?
  var get: String?
  var uploadBytes: Int?
  var uploadChunks: Int?
  var calls: Int?
  var callFailures: Int?
  var callsPerSecond: Double?
  var ping: Bool?
  var graceful: Bool?
  var exitedWithError: Bool?
  var error: String?
}

@Suite("Interop with go-plugin 1.0.1 and grpcio", .timeLimit(.minutes(10)))
struct InteropTests {
  func kvConfiguration(_ command: PluginCommand) -> PluginClientConfiguration {
    var configuration = PluginClientConfiguration(command: command, handshake: .kv, plugins: ["kv": KVPlugin()])
    configuration.standardInput = .none
    return configuration
  }

  @Test("a Go host loads the Swift kv-plugin, calls it, and stops it gracefully")
  func goHostSwiftPlugin() async throws {
    let result = try await Peers.run(
      try await Peers.path("go-kv-host"), ["-plugin", try BuildProducts.path("kv-plugin"), "-calls", "5000"])
    let report = try JSONDecoder().decode(GoHostReport.self, from: Data(result.stdout.utf8))
    #expect(report.error == nil, "\(result.stderr)")
    #expect(result.status == 0)
    #expect(report.protocol == "grpc")
    #expect(report.negotiatedVersion == 1)
    #expect(report.get == "hello from go")
    #expect(report.uploadBytes == 6000)
    #expect(report.uploadChunks == 3)
    #expect(report.calls == 5000)
    #expect(report.callFailures == 0)
    #expect(report.ping == true)
    // go-plugin would have logged "plugin failed to exit gracefully" and sent SIGKILL.
    #expect(report.graceful == true)
    #expect(report.exitedWithError == false)
    // The Go host logs the Swift plugin's hclog lines as its own, at their level.
    #expect(result.stderr.contains("plugin address"))
  }

  @Test("the Swift host makes 100,000 calls to a Go plugin on one connection")
  func swiftHostGoPlugin() async throws {
    let client = PluginClient(configuration: self.kvConfiguration(PluginCommand(try await Peers.path("go-kv-plugin"))))
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await client.run() }
      let info = try await client.info
      #expect(info.protocol == .grpc && info.network == .unix)
      let kv = try await client.dispense("kv", as: KVPlugin.self)
      let value = Array("from swift".utf8)
      try await kv.put("greeting", value: value)
      #expect(
        try await kv.upload([[UInt8](repeating: 1, count: 1000), [UInt8](repeating: 2, count: 5000)])
          == UploadCount(bytes: 6000, chunks: 2))

      // grpc-go pings after almost every request; without the ping responder swift-nio-http2
      // closed this connection at about the 199th call.
      var wrong = 0
      for _ in 0..<100_000 where try await kv.get("greeting") != value {
        wrong += 1
      }
      #expect(wrong == 0)
      #expect(client.connectionsOpened == 1)
      try await client.ping()
      await client.kill()
    }
    // A Go plugin answers Shutdown with UNAVAILABLE and exits 0: a graceful stop.
    #expect(await client.exit == PluginExit(status: .exited(0), reason: .stopped))
  }

  @Test("a timed direct call tells a Go plugin its deadline in grpc-timeout, as grpc-go reads it")
  func timedCallToGoPlugin() async throws {
    var configuration = PluginClientConfiguration(
      command: PluginCommand(try await Peers.path("go-kv-plugin")),
      handshake: .kv,
      plugins: ["kv": GRPCServicePlugin(connection: { Kvbench_KV.PluginClient(caller: $0.caller) })]
    )
    configuration.standardInput = .none
    let client = PluginClient(configuration: configuration)
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await client.run() }
      let kv = try await client.dispense("kv", as: GRPCServicePlugin<Kvbench_KV.PluginClient>.self)
      var probe = Kvbench_GetRequest()
      probe.key = "\0deadline"
      let untimed = try await kv.get(probe)
      #expect(String(decoding: untimed.value, as: UTF8.self) == "none")
      var options = CallOptions.defaults
      options.timeout = .seconds(30)
      let timed = try await kv.get(probe, options: options)
      let left = try #require(Int(String(decoding: timed.value, as: UTF8.self)))
      // Less than 30 s by the time the call took to arrive, never more.
      #expect((25_000...30_000).contains(left), "\(left) ms left")
      await client.kill()
    }
  }

  @Test("8 Swift callers share one connection to a Go plugin for 8,000 calls")
  func concurrentCallsToGoPlugin() async throws {
    let client = PluginClient(configuration: self.kvConfiguration(PluginCommand(try await Peers.path("go-kv-plugin"))))
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await client.run() }
      let kv = try await client.dispense("kv", as: KVPlugin.self)
      try await kv.put("shared", value: Array("value".utf8))
      // Concurrent calls are where grpc-go answers before a request's end arrives and resets
      // the stream with NO_ERROR: the answer must stand, and the resets must not end the
      // connection as swift-nio-http2's limit of 200 per 30 s would.
      let wrong = try await withThrowingTaskGroup(of: Int.self) { callers in
        for _ in 0..<8 {
          callers.addTask {
            var wrong = 0
            for _ in 0..<1_000 where try await kv.get("shared") != Array("value".utf8) { wrong += 1 }
            return wrong
          }
        }
        return try await callers.reduce(0, +)
      }
      #expect(wrong == 0)
      #expect(client.connectionsOpened == 1)
      await client.kill()
    }
    #expect(await client.exit.reason == .stopped)
  }

  @Test("a Go host with AutoMTLS loads the Swift plugin")
  func goHostAutoMTLS() async throws {
    let result = try await Peers.run(
      try await Peers.path("go-kv-host"),
      ["-plugin", try BuildProducts.path("kv-plugin"), "-calls", "500", "-automtls"])
    let report = try JSONDecoder().decode(GoHostReport.self, from: Data(result.stdout.utf8))
    #expect(report.error == nil, "\(result.stderr)")
    #expect(report.get == "hello from go")
    #expect(report.uploadBytes == 6000)
    #expect(report.callFailures == 0)
    #expect(report.graceful == true)
  }

  @Test("the Swift host with AutoMTLS loads a Go plugin")
  func swiftHostAutoMTLSGoPlugin() async throws {
    var configuration = self.kvConfiguration(PluginCommand(try await Peers.path("go-kv-plugin")))
    configuration.tls = .autoMTLS
    let client = PluginClient(configuration: configuration)
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await client.run() }
      // The Go plugin answered with its P-521 certificate, which the TLS connection verified.
      #expect(try await client.info.serverCertificate != nil)
      let kv = try await client.dispense("kv", as: KVPlugin.self)
      try await kv.put("tls", value: [1, 2, 3])
      for _ in 0..<1000 { #expect(try await kv.get("tls") == [1, 2, 3]) }
      #expect(client.connectionsOpened == 1)
      await client.kill()
    }
    #expect(await client.exit == PluginExit(status: .exited(0), reason: .stopped))
  }

  @Test("a Go plugin's hclog lines become records at their level, with their fields")
  func goPluginLogs() async throws {
    let capture = LogCapture()
    var pid: Int32 = 0
    try await withPluginClient(
      self.kvConfiguration(PluginCommand(try await Peers.path("go-kv-plugin"))), logger: capture.logger
    ) { client in
      pid = try await client.info.pid
      // Its lines were written before the handshake; a call later they have been read.
      _ = try await client.dispense("kv", as: KVPlugin.self).get("x")
    }
    let starting = try #require(capture.records.first { $0.message == "kv plugin starting" })
    #expect(starting.level == .info)
    #expect(starting.metadata["@module"] == "go-kv-plugin")
    #expect(starting.metadata["pid"] == String(pid))
    #expect(starting.metadata["plugin"] == "go-kv-plugin")
    // go-plugin's own line from Serve, at debug, with its fields.
    let address = try #require(capture.records.first { $0.message == "plugin address" })
    #expect(address.level == .debug)
    #expect(address.metadata["network"] == "unix")
  }

  @Test("the Swift host loads a Python grpcio plugin over TCP")
  func swiftHostPythonPlugin() async throws {
    let client = PluginClient(
      configuration: self.kvConfiguration(PluginCommand(try await Peers.path("python-kv-plugin"))))
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await client.run() }
      let info = try await client.info
      #expect(info.network == .tcp)
      let kv = try await client.dispense("kv", as: KVPlugin.self)
      try await kv.put("py", value: [4, 5, 6])
      #expect(try await kv.get("py") == [4, 5, 6])
      #expect(try await kv.upload([[1, 2], [3]]) == UploadCount(bytes: 3, chunks: 2))
      for index in 0..<500 {
        try await kv.put("k\(index)", value: [UInt8(index % 256)])
      }
      #expect(try await kv.get("k300") == [44])
      try await client.ping()
      await client.kill()
    }
    #expect(await client.exit == PluginExit(status: .exited(0), reason: .stopped))
  }

  @Test("the Swift host loads a grpcio plugin whose AutoMTLS certificate is a self-signed P-384 leaf, no CA")
  func swiftHostPythonLeafCertificate() async throws {
    var configuration = self.kvConfiguration(PluginCommand(try await Peers.path("python-kv-plugin")))
    configuration.tls = .autoMTLS
    try await withPluginClient(configuration) { client in
      // pyvider-rpcplugin's kind of certificate: accepted because it is the one announced.
      #expect(try await client.info.serverCertificate?.isEmpty == false)
      let kv = try await client.dispense("kv", as: KVPlugin.self)
      try await kv.put("leaf", value: [3, 8, 4])
      #expect(try await kv.get("leaf") == [3, 8, 4])
      for index in 0..<100 {
        try await kv.put("k\(index)", value: [UInt8(index)])
      }
      #expect(try await kv.get("k42") == [42])
      try await client.ping()
    }
  }

  @Test("a grpcio plugin serving another certificate than it announced is refused with a TLS error")
  func swiftHostPythonWrongCertificate() async throws {
    var configuration = self.kvConfiguration(
      PluginCommand(try await Peers.path("python-kv-plugin"), environment: ["KV_PLUGIN_ANNOUNCE_OTHER": "1"])
    )
    configuration.tls = .autoMTLS
    configuration.startTimeout = .seconds(20)
    let client = PluginClient(configuration: configuration)
    await #expect {
      try await client.run()
    } throws: { error in
      guard let error = error as? PluginError else { return false }
      return error.code == .connectionFailed && error.message.contains("TLS handshake with the plugin at 127.0.0.1:")
        && error.message.contains("presented a certificate other than the one it announced")
    }
    #expect(await client.exit.reason == .killed)
  }

  @Test("the kv CLI drives the Go plugin with --plugin")
  func cliWithGoPlugin() async throws {
    let kv = try BuildProducts.path("kv")
    let plugin = try await Peers.path("go-kv-plugin")
    let demo = try await Peers.run(kv, ["--plugin", plugin, "demo"])
    #expect(demo.status == 0, "\(demo.stderr)")
    #expect(demo.stdout.contains("greeting = \"hello from swift-go-plugin\""))
    #expect(demo.stdout.contains("plugin counted 4 chunks, 163840 bytes"))
    #expect(demo.stdout.contains("exited with status 0 (stopped)"))
  }
}
