import Foundation
import GoPlugin
import GoPluginTesting
import GreeterInterface
import KVInterface
import Synchronization
import Testing

/// What go-netrpc-host prints (Tests/Interop/README.md).
struct GoNetRPCHostReport: Decodable {
  var `protocol`: String
  var negotiatedVersion: Int
  var greeting: String
  var get: String
  var missingKeyError: String
  var relay: String
  var offer: String
  var stdout: String
  var stderr: String
  var ping: Bool
  var graceful: Bool
  var calls: Int
  var callsPerSecond: Double
  var error: String
}

/// Collects what a sink receives.
private final class Collected: Sendable {
  private let bytes = Mutex<[UInt8]>([])
  var text: String { String(decoding: self.bytes.withLock { $0 }, as: UTF8.self) }
  var output: PluginOutput { .handler { chunk in self.bytes.withLock { $0 += chunk } } }
}

@Suite("net/rpc interop with go-plugin 1.0.1", .timeLimit(.minutes(5)))
struct NetRPCInteropTests {
  @Test(
    "a Go net/rpc host loads the Swift greeter-plugin: greeter, kv, both broker directions, stdio, Quit",
    arguments: [false, true])
  func goHostSwiftPlugin(autoMTLS: Bool) async throws {
    let result = try await Peers.run(
      try await Peers.path("go-netrpc-host"),
      ["-plugin", try BuildProducts.path("greeter-plugin"), "-calls", "2000"] + (autoMTLS ? ["-automtls"] : []))
    let report = try JSONDecoder().decode(GoNetRPCHostReport.self, from: Data(result.stdout.utf8))
    #expect(report.error == "", "\(result.stderr)")
    #expect(result.status == 0)
    #expect(report.protocol == "netrpc")
    #expect(report.negotiatedVersion == 1)
    #expect(report.greeting == "Hello!")
    #expect(report.get == "world")
    #expect(report.missingKeyError == "key not found: nope")
    // The plugin dialled the Go host's MuxBroker ID; the Go host dialled the plugin's.
    #expect(report.relay == "relayed: HELLO")
    #expect(report.offer == "echo: hi")
    #expect(report.stdout == "stdout: ping")
    #expect(report.stderr == "stderr: ping")
    #expect(report.ping)
    #expect(report.calls == 2000)
    // go-plugin logs "plugin failed to exit gracefully" when Quit's reply is lost.
    #expect(report.graceful)
  }

  @Test(
    "the Swift host loads a Go net/rpc plugin: the same contract, its stdio, and Go's error texts",
    arguments: [false, true])
  func swiftHostGoPlugin(autoMTLS: Bool) async throws {
    var configuration = PluginClientConfiguration(
      command: PluginCommand(try await Peers.path("go-netrpc-plugin")), handshake: .greeter,
      plugins: .greeterExample(serving: false))
    configuration.allowedProtocols = [.netRPC]
    configuration.standardInput = .none
    configuration.gracefulStopTimeout = .seconds(20)
    if autoMTLS { configuration.tls = .autoMTLS }
    let (stdout, stderr) = (Collected(), Collected())
    configuration.syncStdout = stdout.output
    configuration.syncStderr = stderr.output
    let exit = try await withPluginClient(configuration) { client in
      #expect(try await client.info.protocol == .netRPC)
      #expect(try await client.dispense("greeter", as: GreeterPlugin.self).greet() == "Hello!")
      let kv = try await client.dispense("kv", as: KeyValuePlugin.self)
      try await kv.put("hello", Array("world".utf8))
      #expect(try await kv.get("hello") == Array("world".utf8))
      await #expect(throws: NetRPCError(code: .server, message: "key not found: nope")) { try await kv.get("nope") }
      let callback = try await client.dispense("callback", as: CallbackPlugin.self)
      #expect(try await callback.relay("hello") == "relayed: HELLO")
      #expect(try await callback.offer(prefix: "echo: ", echo: "hi") == "echo: hi")
      #expect(try await callback.print("ping"))
      try await client.ping()
      await client.kill()
      return await client.exit
    }
    #expect(exit.reason == .stopped, "\(exit)")
    // A Go net/rpc plugin's stdout and stderr reach the Swift host's sinks over their streams.
    #expect(stdout.text == "stdout: ping\n")
    #expect(stderr.text == "stderr: ping\n")
  }

  @Test("greeter demo runs against the Go net/rpc plugin")
  func greeterDemoGoPlugin() async throws {
    let run = try await ExternalProgram.run(
      try BuildProducts.path("greeter"), arguments: ["--plugin", try await Peers.path("go-netrpc-plugin"), "demo"])
    #expect(run.status == 0, "\(run.errorText)")
    let lines = run.outputText.split(separator: "\n").map(String.init)
    #expect(lines.contains("greeting: Hello!"), "\(lines)")
    #expect(lines.contains("get: hello = world"), "\(lines)")
  }

  @Test("go-plugin's negotiated example: a Go plugin serves version 2 over net/rpc and 3 over gRPC")
  func negotiatedGoPlugin() async throws {
    let command = PluginCommand(
      try await Peers.path("go-netrpc-plugin"), environment: ["NETRPC_PLUGIN_NEGOTIATED": "1"])
    var both = PluginClientConfiguration(
      command: command, handshake: .greeter,
      versionedPlugins: [2: .greeterExample(serving: false), 3: ["kv": KVPlugin()]])
    both.allowedProtocols = [.grpc, .netRPC]
    both.standardInput = .none
    try await withPluginClient(both) { client in
      let info = try await client.info
      #expect(info.negotiatedVersion == 3 && info.protocol == .grpc)
      let kv = try await client.dispense("kv", as: KVPlugin.self)
      try await kv.put("k", value: Array("v".utf8))
      #expect(try await kv.get("k") == Array("v".utf8))
    }
    var two = both
    two.versionedPlugins = [2: .greeterExample(serving: false)]
    try await withPluginClient(two) { client in
      let info = try await client.info
      #expect(info.negotiatedVersion == 2 && info.protocol == .netRPC)
      #expect(try await client.dispense("greeter", as: GreeterPlugin.self).greet() == "Hello!")
    }
  }

  @Test(
    "a Go host negotiates with a Swift plugin whose versions speak different protocols",
    arguments: [("2,3", "grpc", 3), ("2", "netrpc", 2)])
  func negotiatedSwiftPlugin(versions: String, expectedProtocol: String, expectedVersion: Int) async throws {
    let plugin = try BuildProducts.path("fixture-plugin") + " serve-negotiated"
    let result = try await Peers.run(
      try await Peers.path("go-netrpc-host"), ["-plugin", plugin, "-versions", versions])
    let report = try JSONDecoder().decode(GoNetRPCHostReport.self, from: Data(result.stdout.utf8))
    #expect(report.error == "", "\(result.stderr)")
    #expect(report.protocol == expectedProtocol)
    #expect(report.negotiatedVersion == expectedVersion)
    #expect(report.graceful)
  }
}
