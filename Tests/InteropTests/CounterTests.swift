import CounterInterface
import Foundation
import GoPluginTesting
import Synchronization
import Testing

@testable import GoPlugin

/// Adds, counting the calls, so a test can see that the plugin really called back.
final class CountingHelper: AddHelper {
  private let count = Mutex(0)
  var calls: Int { self.count.withLock { $0 } }

  func sum(_ a: Int64, _ b: Int64) async throws -> Int64 {
    self.count.withLock { $0 += 1 }
    return a + b
  }
}

/// What go-counter-host prints (Tests/Interop/README.md).
struct GoCounterReport: Decodable {
  var value: Int64?
  var sums: Int?
  var graceful: Bool?
  var error: String?
}

@Suite("Bidirectional: a counter plugin calls back into its host", .timeLimit(.minutes(5)))
struct CounterTests {
  func counterConfiguration(_ command: PluginCommand, autoMTLS: Bool) -> PluginClientConfiguration {
    var configuration = PluginClientConfiguration(
      command: command, handshake: .counter, plugins: ["counter": CounterPlugin()])
    configuration.standardInput = .none
    if autoMTLS { configuration.tls = .autoMTLS }
    return configuration
  }

  func addUp(_ configuration: PluginClientConfiguration) async throws -> (value: Int64, sums: Int) {
    let helper = CountingHelper()
    let value = try await withPluginClient(configuration) { client in
      let counter = try await client.dispense("counter", as: CounterPlugin.self)
      for amount: Int64 in [1, 2, 39] {
        try await counter.put("hits", adding: amount, using: helper)
      }
      return try await counter.get("hits")
    }
    return (value, helper.calls)
  }

  @Test("Swift host and Swift plugin", arguments: [false, true])
  func swiftToSwift(autoMTLS: Bool) async throws {
    let result = try await self.addUp(
      self.counterConfiguration(try BuildProducts.command("counter-plugin"), autoMTLS: autoMTLS))
    #expect(result.value == 42)
    #expect(result.sums == 3)
  }

  // In plaintext only: a go-plugin 1.0.1 plugin dials back with its server TLS configuration,
  // which names no server and trusts no root, so under AutoMTLS it fails against any host,
  // a Go one included ("certificate is valid for localhost, not unused"); go-plugin fixed
  // this in 1.4.4 (issue #109), and Debian ships 1.0.1.
  @Test("the Swift host passes a callback to a Go plugin")
  func swiftHostGoPlugin() async throws {
    let result = try await self.addUp(
      self.counterConfiguration(PluginCommand(try await Peers.path("go-counter-plugin")), autoMTLS: false))
    #expect(result.value == 42)
    #expect(result.sums == 3)
  }

  @Test("a Go host passes a callback to the Swift plugin", arguments: [false, true])
  func goHostSwiftPlugin(autoMTLS: Bool) async throws {
    let result = try await Peers.run(
      try await Peers.path("go-counter-host"),
      ["-plugin", try BuildProducts.path("counter-plugin")] + (autoMTLS ? ["-automtls"] : [])
    )
    let report = try JSONDecoder().decode(GoCounterReport.self, from: Data(result.stdout.utf8))
    #expect(report.error == nil, "\(result.stderr)")
    #expect(report.value == 42)
    #expect(report.sums == 3)
    #expect(report.graceful == true)
  }

  @Test("the counter CLI runs the example")
  func cli() async throws {
    let result = try await Peers.run(try BuildProducts.path("counter"), [])
    #expect(result.status == 0, "\(result.stderr)")
    #expect(result.stdout.contains("put 39: the plugin asked this host to add (3 + 39 = 42)"))
    #expect(result.stdout.contains("hits = 42, with 3 sums done by the host"))
  }
}
