import GRPCCore
import GoPluginTesting
import KVInterface
import Logging
import ServiceLifecycle
import Synchronization
import Testing

@testable import GoPlugin

/// Collects a supervisor's events until its sequence ends.
final class EventLog: Sendable {
  private let events = Mutex<[PluginSupervisor.Event]>([])
  private let changes: AsyncStream<Void>
  private let changed: AsyncStream<Void>.Continuation

  init() {
    (self.changes, self.changed) = AsyncStream.makeStream(of: Void.self)
  }

  /// Reads `stream` to its end; run it in a task of its own.
  func record(_ stream: AsyncStream<PluginSupervisor.Event>) async {
    for await event in stream {
      self.events.withLock { $0.append(event) }
      self.changed.yield()
    }
    self.changed.finish()
  }

  var all: [PluginSupervisor.Event] { self.events.withLock { $0 } }

  /// Waits until the log holds an event for which `isWanted` is true `count` times.
  func waitFor(_ count: Int = 1, _ isWanted: (PluginSupervisor.Event) -> Bool) async {
    if self.all.filter(isWanted).count >= count { return }
    for await _ in self.changes where self.all.filter(isWanted).count >= count { return }
  }
}

extension PluginSupervisor.Event {
  var isReady: Bool {
    if case .ready = self { return true }
    return false
  }

  /// The event without what varies from run to run (pids, stderr, delays), for comparing
  /// sequences.
  var kind: String {
    switch self {
    case .starting: "starting"
    case .ready: "ready"
    case .unhealthy: "unhealthy"
    case .exited(let exit, _): "exited(\(exit.reason))"
    case .restarting: "restarting"
    case .failed: "failed"
    }
  }
}

/// What concurrent callers saw.
final class CallTally: Sendable {
  /// Calls answered once the fourth process had started.
  let successesOnFourth = Atomic(0)
  /// The most starts seen before a call succeeded: calls are answered after restarts.
  let startsBeforeSuccess = Atomic(0)
  let errors = Mutex<[PluginError.Code: Int]>([:])
}

func supervised(
  _ client: PluginClientConfiguration,
  restart: PluginSupervisor.RestartPolicy = .init(initialDelay: .milliseconds(20), jitter: 0, maximumRestarts: 20),
  healthCheck: PluginHealthCheck? = nil
) -> PluginSupervisor.Configuration {
  var configuration = PluginSupervisor.Configuration(client: client)
  configuration.restart = restart
  configuration.healthCheck = healthCheck
  return configuration
}

@Suite("Supervision: restarts, events, clients that survive restarts", .timeLimit(.minutes(3)))
struct SupervisorTests {
  @Test("a plugin that crashes under load is restarted; callers see typed errors only around the crashes")
  func crashUnderLoad() async throws {
    // Exits with status 3 on every 40th call.
    let supervisor = PluginSupervisor(configuration: supervised(try fixture("crash-every", "40")))
    let log = EventLog()
    let events = supervisor.events()
    let tally = CallTally()
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { await log.record(events) }
      group.addTask { try await supervisor.run() }
      let kv = try await supervisor.dispense("kv", as: KVPlugin.self)
      await withThrowingTaskGroup(of: Void.self) { callers in
        for caller in 0..<4 {
          callers.addTask {
            var call = 0
            // Three crashes, and calls answered after the last restart. The callers stop a few
            // calls into the fourth process, far from its 40th, so that no crash races the stop.
            while tally.successesOnFourth.load(ordering: .relaxed) < 10 {
              call += 1
              do {
                try await kv.put("\(caller)-\(call)", value: [UInt8(truncatingIfNeeded: call)])
                let starts = log.all.filter(\.isReady).count
                tally.startsBeforeSuccess.max(starts, ordering: .relaxed)
                if starts >= 4 { tally.successesOnFourth.add(1, ordering: .relaxed) }
              } catch let error as PluginError {
                tally.errors.withLock { $0[error.code, default: 0] += 1 }
                if error.code == .unavailable {
                  // Down: wait for the next process rather than spin.
                  _ = try await supervisor.dispense("kv", as: KVPlugin.self)
                } else if error.code != .exitedDuringCall {
                  Issue.record("unexpected plugin error: \(error)")
                }
              } catch {
                Issue.record("an untyped failure: \(error)")
              }
            }
          }
        }
      }
      supervisor.beginGracefulShutdown()
      try await group.waitForAll()
    }

    let all = log.all
    let readies = all.compactMap { event -> Int32? in
      if case .ready(let pid, _) = event { return pid }
      return nil
    }
    #expect(readies.count >= 4)
    #expect(Set(readies).count == readies.count, "each start is a new process")
    // Every crash: noticed with its status and last stderr line, then a restart.
    let kinds = all.map(\.kind)
    #expect(Array(kinds.prefix(2)) == ["starting", "ready"])
    for (index, kind) in kinds.enumerated() where kind == "exited(exitedUnexpectedly)" {
      #expect(Array(kinds[index...].prefix(4)) == ["exited(exitedUnexpectedly)", "restarting", "starting", "ready"])
      if case .exited(let exit, let standardError) = all[index] {
        #expect(exit.status == .exited(3))
        #expect(standardError.last?.contains("crashing at call") == true)
      }
    }
    #expect(kinds.last == "exited(stopped)")
    // The calls that made the plugin crash were in flight at the crash: each says so.
    // Calls were answered by the process of the last restart.
    #expect(tally.startsBeforeSuccess.load(ordering: .relaxed) >= 4)
    let counted = tally.errors.withLock { $0 }
    #expect(counted[.exitedDuringCall, default: 0] >= 3)
    #expect(Set(counted.keys).isSubset(of: [.exitedDuringCall, .unavailable]))
  }

  @Test("a plugin that turns NOT_SERVING is reported unhealthy and restarted")
  func unhealthyIsRestarted() async throws {
    let check = PluginHealthCheck(interval: .milliseconds(50), timeout: .seconds(5), failureThreshold: 2)
    let supervisor = PluginSupervisor(configuration: supervised(try fixture("draining"), healthCheck: check))
    let log = EventLog()
    let events = supervisor.events()
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { await log.record(events) }
      group.addTask { try await supervisor.run() }
      let kv = try await supervisor.dispense("kv", as: KVPlugin.self)
      let firstPID = try await kv.get("pid")
      try await kv.put("not-serving", value: [])
      await log.waitFor(2, \.isReady)
      // The client dispensed before the restart talks to the new process.
      #expect(try await kv.get("pid") != firstPID)
      supervisor.beginGracefulShutdown()
      try await group.waitForAll()
    }
    let kinds = log.all.map(\.kind)
    #expect(
      Array(kinds.prefix(7)) == [
        "starting", "ready", "unhealthy", "exited(stopped)", "restarting", "starting", "ready",
      ])
    if case .unhealthy(let error) = log.all[2] {
      #expect(error.code == .unhealthy)
    } else {
      Issue.record("no unhealthy event: \(kinds)")
    }
  }

  @Test("a plugin that always exits at once is given up on after the restart limit, with growing delays")
  func givesUp() async throws {
    let restart = PluginSupervisor.RestartPolicy(
      initialDelay: .milliseconds(10), maximumDelay: .milliseconds(25), jitter: 0, maximumRestarts: 3)
    let supervisor = PluginSupervisor(configuration: supervised(try fixture("exit", "1"), restart: restart))
    let log = EventLog()
    let events = supervisor.events()
    let error = await withTaskGroup(of: Void.self) { group in
      group.addTask { await log.record(events) }
      return await #expect(throws: PluginError.self) { try await supervisor.run() }
    }
    #expect(error?.code == .restartLimitReached)
    let all = log.all
    let delays = all.compactMap { event -> Duration? in
      if case .restarting(let delay) = event { return delay }
      return nil
    }
    #expect(delays == [.milliseconds(10), .milliseconds(20), .milliseconds(25)])
    #expect(all.filter { $0 == .starting }.count == 4)
    #expect(all.last.map { if case .failed = $0 { true } else { false } } == true)
    for case .exited(let exit, _) in all {
      #expect(exit.status == .exited(1))
    }
    // Given up, the supervisor refuses calls with a typed error naming the plugin.
    let refused = await #expect(throws: PluginError.self) {
      _ = try await supervisor.dispense("kv", as: KVPlugin.self)
    }
    #expect(refused?.code == .unavailable)
    #expect(refused?.pluginPath?.hasSuffix("fixture-plugin") == true)
  }

  @Test("calls while the plugin is down fail fast, or wait for it when asked to")
  func callsWhileDown() async throws {
    // Crashes on every 2nd call; restarts after a pause long enough to call into the gap.
    let restart = PluginSupervisor.RestartPolicy(initialDelay: .seconds(1), jitter: 0, maximumRestarts: 5)
    var configuration = supervised(try fixture("crash-every", "2"), restart: restart)
    for waitForReady in [nil, Duration.seconds(30)] {
      configuration.waitForReady = waitForReady
      let supervisor = PluginSupervisor(configuration: configuration)
      let log = EventLog()
      let events = supervisor.events()
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await log.record(events) }
        group.addTask { try await supervisor.run() }
        let kv = try await supervisor.dispense("kv", as: KVPlugin.self)
        try await kv.put("a", value: [1])
        let crashed = await #expect(throws: PluginError.self) { try await kv.put("b", value: [2]) }
        #expect(crashed?.code == .exitedDuringCall)
        #expect(crashed?.message.contains("exited with status 3") == true)
        await log.waitFor { if case .restarting = $0 { true } else { false } }
        if waitForReady == nil {
          let refused = await #expect(throws: PluginError.self) { try await kv.put("c", value: [3]) }
          #expect(refused?.code == .unavailable)
        } else {
          // Waits out the restart and is answered by the new process.
          try await kv.put("c", value: [3])
          #expect(log.all.filter(\.isReady).count == 2)
        }
        supervisor.beginGracefulShutdown()
        try await group.waitForAll()
      }
    }
  }

  @Test("a client, a supervisor and plugin servers in a ServiceGroup stop gracefully together")
  func serviceGroup() async throws {
    let client = PluginClient(configuration: try fixture())
    // A plugin process that runs its server as one service of its own ServiceGroup.
    let groupedPlugin = PluginClient(configuration: try fixture("service-group"))
    let supervisor = PluginSupervisor(configuration: supervised(try fixture()))
    let log = EventLog()
    let events = supervisor.events()
    // And a plugin server in this process, beside the hosts.
    let listening = OneShot<HandshakeLine>()
    let handshake = HandshakeConfiguration.kv
    let server = PluginServerService(
      PluginServeConfiguration(handshake: handshake, plugins: ["kv": KVPlugin(serving: MemoryKV())]),
      environment: [handshake.magicCookieKey: handshake.magicCookieValue, "PLUGIN_PROTOCOL_VERSIONS": "1"],
      onListening: { listening.fulfil($0) }
    )
    let group = ServiceGroup(
      configuration: ServiceGroupConfiguration(
        services: [
          .init(service: client), .init(service: groupedPlugin), .init(service: supervisor), .init(service: server),
        ],
        logger: Logger(label: "test")
      )
    )
    try await withThrowingTaskGroup(of: Void.self) { tasks in
      tasks.addTask { await log.record(events) }
      tasks.addTask { try await group.run() }
      try await client.dispense("kv", as: KVPlugin.self).put("k", value: [1])
      try await groupedPlugin.dispense("kv", as: KVPlugin.self).put("k", value: [1])
      try await supervisor.dispense("kv", as: KVPlugin.self).put("k", value: [1])
      _ = await listening.wait()
      await group.triggerGracefulShutdown()
      try await tasks.waitForAll()
    }
    #expect(await client.exit.reason == .stopped)
    #expect(await groupedPlugin.exit == PluginExit(status: .exited(0), reason: .stopped))
    // The plugin's other service was shut down gracefully too, before the process exited.
    #expect(groupedPlugin.lastStandardErrorLines.contains("companion service stopped gracefully"))
    #expect(log.all.map(\.kind) == ["starting", "ready", "exited(stopped)"])
  }
}
