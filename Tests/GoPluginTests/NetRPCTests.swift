import Foundation
import GoPluginTesting
import GreeterInterface
import KVInterface
import Logging
import Synchronization
import Testing

@testable import GoPlugin

/// Collects what a sink receives.
final class CollectedOutput: Sendable {
  private let bytes = Mutex<[UInt8]>([])
  var text: String { String(decoding: self.bytes.withLock { $0 }, as: UTF8.self) }
  var output: PluginOutput { .handler { chunk in self.bytes.withLock { $0 += chunk } } }
}

/// The Swift net/rpc example plugin, as a host of the example's set launches it.
func greeterConfiguration(
  _ name: String = "greeter-plugin", arguments: [String] = []
) throws
  -> PluginClientConfiguration
{
  var configuration = PluginClientConfiguration(
    command: try BuildProducts.command(name, arguments: arguments), handshake: .greeter,
    plugins: .greeterExample(serving: false))
  configuration.allowedProtocols = [.netRPC]
  configuration.standardInput = .none
  // Stops are graceful here; on a loaded machine a debug build may need more than 2 s.
  configuration.gracefulStopTimeout = .seconds(20)
  return configuration
}

@Suite("net/rpc plugins, Swift host and Swift plugin", .timeLimit(.minutes(2)))
struct NetRPCPluginTests {
  @Test("greeter, kv and callback work over net/rpc, with and without AutoMTLS", arguments: [false, true])
  func wholeContract(autoMTLS: Bool) async throws {
    var configuration = try greeterConfiguration()
    if autoMTLS { configuration.tls = .autoMTLS }
    let (stdout, stderr) = (CollectedOutput(), CollectedOutput())
    configuration.syncStdout = stdout.output
    configuration.syncStderr = stderr.output
    let exit = try await withPluginClient(configuration) { client in
      let info = try await client.info
      #expect(info.protocol == .netRPC)
      #expect((info.serverCertificate != nil) == autoMTLS)

      let greeter = try await client.dispense("greeter", as: GreeterPlugin.self)
      #expect(try await greeter.greet() == "Hello!")

      let kv = try await client.dispense("kv", as: KeyValuePlugin.self)
      try await kv.put("hello", Array("world".utf8))
      #expect(try await kv.get("hello") == Array("world".utf8))
      // The plugin's error text arrives exactly, as a Go client would see it.
      await #expect(throws: NetRPCError(code: .server, message: "key not found: nope")) {
        try await kv.get("nope")
      }

      let callback = try await client.dispense("callback", as: CallbackPlugin.self)
      #expect(try await callback.relay("hello") == "relayed: HELLO")
      #expect(try await callback.offer(prefix: "echo: ", echo: "hi") == "echo: hi")
      #expect(try await callback.print("ping"))
      try await client.ping()
      await client.kill()
      return await client.exit
    }
    #expect(exit.reason == .stopped, "\(exit)")
    #expect(exit.status == .exited(0), "\(exit)")
    // Stopping waits for the last bytes of the stdio streams.
    #expect(stdout.text == "stdout: ping\n")
    #expect(stderr.text == "stderr: ping\n")
  }

  @Test("many calls at once on one client are each matched to their own reply")
  func concurrentCalls() async throws {
    try await withPluginClient(try greeterConfiguration()) { client in
      let kv = try await client.dispense("kv", as: KeyValuePlugin.self)
      try await withThrowingTaskGroup(of: Void.self) { group in
        for index in 0..<64 {
          group.addTask {
            let value = Array("value \(index)".utf8)
            try await kv.put("key \(index)", value)
            #expect(try await kv.get("key \(index)") == value)
          }
        }
        try await group.waitForAll()
      }
    }
  }

  @Test("dispensing a name the plugin does not have fails with go-plugin's text")
  func unknownPlugin() async throws {
    var configuration = try greeterConfiguration()
    // The host knows a plugin the plugin does not: the plugin's own refusal comes back.
    configuration.versionedPlugins[1]?.plugins["missing"] = GreeterPlugin()
    try await withPluginClient(configuration) { client in
      do {
        _ = try await client.dispense("missing", as: GreeterPlugin.self)
        Issue.record("dispensed a plugin the plugin does not have")
      } catch let error as PluginError {
        #expect(error.code == .unknownPlugin)
        #expect(error.message.contains("unknown plugin type: missing"), "\(error.message)")
      }
      // The session is still good.
      #expect(try await client.dispense("greeter", as: GreeterPlugin.self).greet() == "Hello!")
    }
  }

  @Test("a host that allows only gRPC refuses a net/rpc plugin with go-plugin's error, and leaves nothing")
  func refusedByDefault() async throws {
    var configuration = try greeterConfiguration()
    configuration.allowedProtocols = [.grpc]
    await #expect {
      try await withPluginClient(configuration) { client in _ = try await client.info }
    } throws: { error in
      guard let error = error as? PluginError else { return false }
      return error.code == .unsupportedProtocol && error.message.contains("unsupported plugin protocol \"netrpc\"")
    }
  }

  @Test("versioned sets may mix protocols: the plugin serves the one of the version it negotiated")
  func negotiatedProtocol() async throws {
    let command = try BuildProducts.command("fixture-plugin", arguments: ["serve-negotiated"])
    // Version 3 is gRPC.
    var both = PluginClientConfiguration(
      command: command, handshake: .greeter,
      versionedPlugins: [2: .greeterExample(serving: false), 3: ["kv": KVPlugin()]])
    both.allowedProtocols = [.grpc, .netRPC]
    try await withPluginClient(both) { client in
      let info = try await client.info
      #expect(info.negotiatedVersion == 3)
      #expect(info.protocol == .grpc)
      let kv = try await client.dispense("kv", as: KVPlugin.self)
      try await kv.put("k", value: Array("v".utf8))
      #expect(try await kv.get("k") == Array("v".utf8))
    }
    // Offered only version 2, the same plugin serves net/rpc.
    var two = PluginClientConfiguration(
      command: command, handshake: .greeter, versionedPlugins: [2: .greeterExample(serving: false)])
    two.allowedProtocols = [.grpc, .netRPC]
    try await withPluginClient(two) { client in
      let info = try await client.info
      #expect(info.negotiatedVersion == 2)
      #expect(info.protocol == .netRPC)
      #expect(try await client.dispense("greeter", as: GreeterPlugin.self).greet() == "Hello!")
      // A gRPC plugin type is refused on a net/rpc session, by name and type.
      await #expect(throws: PluginError.self) { _ = try await client.broker }
    }
  }

  @Test("the greeter example's demo runs end to end")
  func greeterDemo() async throws {
    let run = try await ExternalProgram.run(try BuildProducts.path("greeter"), arguments: ["demo"])
    #expect(run.status == 0, "\(run.errorText)")
    let lines = run.outputText.split(separator: "\n").map(String.init)
    #expect(lines.contains("greeting: Hello!"), "\(lines)")
    #expect(lines.contains("put: hello = world"), "\(lines)")
    #expect(lines.contains("get: hello = world"), "\(lines)")
    #expect(lines.last?.hasPrefix("stopped: ") == true, "\(lines)")
  }
}
