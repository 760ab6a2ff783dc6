import GRPCCore
import GoPluginProtos
import GoPluginTesting
import KVInterface
import SwiftProtobuf
import Testing

@testable import GoPlugin

@Suite("Health: the plugin's own serving status, checked by the host", .timeLimit(.minutes(2)))
struct HealthTests {
  /// Runs the draining fixture for the length of `body`.
  func withDrainingPlugin<Result: Sendable>(
    environment: [String: String] = [:],
    _ body: (PluginClient) async throws -> Result
  ) async throws -> Result {
    try await withPluginClient(try fixture("draining", environment: environment), body)
  }

  @Test("a plugin that sets itself NOT_SERVING fails the ping; set back to SERVING it passes again")
  func pingHonoursNotServing() async throws {
    try await withDrainingPlugin { client in
      let kv = try await client.dispense("kv", as: KVPlugin.self)
      try await client.ping()
      try await kv.put("not-serving", value: [])
      let error = await #expect(throws: PluginError.self) { try await client.ping() }
      #expect(error?.code == .unhealthy)
      try await kv.put("serving", value: [])
      try await client.ping()
    }
  }

  @Test("each service has its own status; registered services start SERVING, unknown ones are NOT_FOUND")
  func perServiceStatus() async throws {
    try await withDrainingPlugin { client in
      let kv = try await client.dispense("kv", as: KVPlugin.self)
      let health = Grpc_Health_V1_Health.Client(wrapping: try await client.grpcClient())
      func status(_ service: String) async throws -> Grpc_Health_V1_HealthCheckResponse.ServingStatus {
        try await health.check(.with { $0.service = service }).status
      }
      #expect(try await status("kvbench.KV") == .serving)
      #expect(try await status("") == .serving)
      try await kv.put("kv-not-serving", value: [])
      #expect(try await status("kvbench.KV") == .notServing)
      // The plugin as a whole is another entry.
      #expect(try await status("plugin") == .serving)
      let error = await #expect(throws: RPCError.self) { try await status("no.such.Service") }
      #expect(error?.code == .notFound)
    }
  }

  @Test("Watch sends the status, then each change")
  func watchFollowsChanges() async throws {
    try await withDrainingPlugin { client in
      let kv = try await client.dispense("kv", as: KVPlugin.self)
      let health = Grpc_Health_V1_Health.Client(wrapping: try await client.grpcClient())
      let seen = try await health.watch(.with { $0.service = "plugin" }) { response in
        var statuses: [Grpc_Health_V1_HealthCheckResponse.ServingStatus] = []
        for try await message in response.messages {
          statuses.append(message.status)
          // The first answer is in: now the plugin changes its mind.
          if statuses.count == 1 { try await kv.put("not-serving", value: []) }
          if statuses.count == 2 { break }
        }
        return statuses
      }
      #expect(seen == [.serving, .notServing])
    }
  }

  @Test("the periodic health check reports a plugin that turned NOT_SERVING by itself as unhealthy")
  func monitorReportsUnhealthy() async throws {
    try await withDrainingPlugin(environment: ["FIXTURE_NOT_SERVING_AFTER_MS": "300"]) { client in
      let check = PluginHealthCheck(interval: .milliseconds(50), timeout: .seconds(5), failureThreshold: 2)
      let error = await #expect(throws: PluginError.self) { try await client.monitorHealth(check) }
      #expect(error?.code == .unhealthy)
      #expect(error?.message.contains("notServing") == true)
      // The check reports; it does not stop the plugin.
      #expect(!client.hasExited)
    }
  }

  @Test("the periodic health check ends quietly when the plugin is stopped")
  func monitorEndsWithPlugin() async throws {
    var configuration = try fixture("draining")
    // What is under test is how the monitor takes the stop, not how fast a loaded machine lets
    // a debug-built plugin exit: a plugin killed at the default 2 s would read as a failure.
    configuration.gracefulStopTimeout = .seconds(20)
    let client = PluginClient(configuration: configuration)
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await client.run() }
      _ = try await client.info
      group.addTask {
        try await client.monitorHealth(
          PluginHealthCheck(interval: .milliseconds(20), timeout: .seconds(5), failureThreshold: 1))
      }
      await client.kill()
      // Throws if the monitor took the stop for sickness.
      try await group.waitForAll()
    }
    #expect(await client.exit.reason == .stopped)
  }
}
