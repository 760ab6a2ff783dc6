import GoPluginTesting
import KVInterface
import Synchronization
import Testing

@testable import GoPlugin

/// A supervisor's events, as they come.
final class SeenEvents: Sendable {
  let events = Mutex<[PluginSupervisor.Event]>([])
}

@Suite("Supervising a Go plugin", .timeLimit(.minutes(3)))
struct SupervisorInteropTests {
  @Test("a Go plugin that crashes is restarted; the call in flight names its exit and stderr")
  func goPluginCrashes() async throws {
    // The Go KV plugin exits with status 3 on every 3rd call.
    var client = PluginClientConfiguration(
      command: PluginCommand(try await Peers.path("go-kv-plugin"), environment: ["KV_CRASH_EVERY": "3"]),
      handshake: .kv,
      plugins: ["kv": KVPlugin()]
    )
    client.standardInput = .none
    var configuration = PluginSupervisor.Configuration(client: client)
    configuration.restart = .init(initialDelay: .milliseconds(10), jitter: 0, maximumRestarts: 10)
    configuration.healthCheck = nil
    // Calls made while the plugin restarts wait for it.
    configuration.waitForReady = .seconds(30)
    let supervisor = PluginSupervisor(configuration: configuration)
    let events = supervisor.events()
    let seen = SeenEvents()
    var outcomes: [String] = []
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask {
        for await event in events { seen.events.withLock { $0.append(event) } }
      }
      group.addTask { try await supervisor.run() }
      let kv = try await supervisor.dispense("kv", as: KVPlugin.self)
      for call in 1...7 {
        do {
          try await kv.put("k\(call)", value: [1])
          outcomes.append("ok")
        } catch let error as PluginError {
          outcomes.append("\(error.code)")
          #expect(error.message.contains("exited with status 3"))
        }
      }
      supervisor.beginGracefulShutdown()
      try await group.waitForAll()
    }
    // Every third call crashes its process; the calls after it go to the next one.
    #expect(outcomes == ["ok", "ok", "exitedDuringCall", "ok", "ok", "exitedDuringCall", "ok"])
    let all = seen.events.withLock { $0 }
    let crashes = all.compactMap { event -> [String]? in
      if case .exited(let exit, let standardError) = event, exit.reason == .exitedUnexpectedly { return standardError }
      return nil
    }
    #expect(crashes.count == 2)
    #expect(crashes.allSatisfy { $0.last?.contains("crashing at call 3") == true })
    #expect(all.filter { if case .ready = $0 { true } else { false } }.count == 3)
  }
}
