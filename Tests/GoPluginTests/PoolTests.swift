import Foundation
import GRPCCore
import GoPluginTesting
import KVInterface
import Logging
import ServiceLifecycle
import Synchronization
import Testing

@testable import GoPlugin

#if canImport(Glibc)
import Glibc
#endif

/// Collects a pool's events until its sequence ends.
final class PoolEventLog: Sendable {
  private let events = Mutex<[PluginPool.Event]>([])
  private let changes: AsyncStream<Void>
  private let changed: AsyncStream<Void>.Continuation

  init() {
    (self.changes, self.changed) = AsyncStream.makeStream(of: Void.self)
  }

  /// Reads `stream` to its end; run it in a task of its own.
  func record(_ stream: AsyncStream<PluginPool.Event>) async {
    for await event in stream {
      self.events.withLock { $0.append(event) }
      self.changed.yield()
    }
    self.changed.finish()
  }

  var all: [PluginPool.Event] { self.events.withLock { $0 } }

  /// Waits until the log holds an event for which `isWanted` is true `count` times.
  func waitFor(_ count: Int = 1, _ isWanted: (PluginPool.Event) -> Bool) async {
    if self.all.filter(isWanted).count >= count { return }
    for await _ in self.changes where self.all.filter(isWanted).count >= count { return }
  }

  /// The pids the ready events announced, in order.
  var readyPIDs: [Int32] {
    self.all.compactMap { event -> Int32? in
      if case .ready(_, let pid, _) = event { return pid }
      return nil
    }
  }
}

/// What callers under load saw: the pids that answered, and every failure.
final class LoadTally: Sendable {
  let answeredBy = Mutex<[Int32: Int]>([:])
  let failures = Mutex<[any Error]>([])
  let stop = Atomic(false)

  var answered: Int { self.answeredBy.withLock { $0.values.reduce(0, +) } }
  var failed: [any Error] { self.failures.withLock { $0 } }

  /// `callers` tasks calling `get("pid-after:…")` in a loop until `stop` is set.
  func load(_ kv: KVClient, callers: Int, millisecondsPerCall: Int = 20) async {
    await withTaskGroup(of: Void.self) { group in
      for _ in 0..<callers {
        group.addTask {
          while !self.stop.load(ordering: .relaxed) {
            do {
              let answer = try await kv.get("pid-after:\(millisecondsPerCall)")
              let pid = Int32(String(decoding: answer, as: UTF8.self)) ?? -1
              self.answeredBy.withLock { $0[pid, default: 0] += 1 }
            } catch {
              self.failures.withLock { $0.append(error) }
            }
          }
        }
      }
    }
  }

  /// Waits until `count` more calls have been answered (by one of `pids`, when given).
  func waitForAnswers(_ count: Int, by pids: Set<Int32>? = nil) async throws {
    func answered() -> Int {
      self.answeredBy.withLock { answers in
        answers.filter { pids?.contains($0.key) ?? true }.values.reduce(0, +)
      }
    }
    let target = answered() + count
    let deadline = ContinuousClock.now + .seconds(120)
    while answered() < target {
      guard ContinuousClock.now < deadline else {
        Issue.record("only \(answered()) of \(target) calls answered in time")
        throw CancellationError()
      }
      try await Task.sleep(for: .milliseconds(20))
    }
  }
}

/// A pool of `instances` of `client`, with quick replacements.
func pooled(
  _ client: PluginClientConfiguration,
  instances: Int,
  healthCheck: PluginHealthCheck? = PluginHealthCheck(interval: .seconds(5), timeout: .seconds(20))
) -> PluginPool.Configuration {
  var configuration = PluginPool.Configuration(client: client)
  configuration.instances = instances
  configuration.healthCheck = healthCheck
  configuration.restart = .init(initialDelay: .milliseconds(20), jitter: 0, maximumRestarts: 10)
  return configuration
}

/// A temporary directory, removed after `body`.
func withTemporaryDirectory<Result>(_ body: (String) async throws -> Result) async throws -> Result {
  let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pool-\(UUID().uuidString)").path
  try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
  defer { try? FileManager.default.removeItem(atPath: directory) }
  return try await body(directory)
}

/// A configuration of the fixture plugin copied to `directory` under another name, serving
/// with POOL_GENERATION set to `generation`: a new binary, as an upgrade would bring.
func copiedFixture(in directory: String, generation: Int) throws -> PluginClientConfiguration {
  let copy = "\(directory)/fixture-plugin-v\(generation)"
  try FileManager.default.copyItem(atPath: try BuildProducts.path("fixture-plugin"), toPath: copy)
  var configuration = try fixture()
  configuration.command = PluginCommand(copy, arguments: ["serve"], environment: ["POOL_GENERATION": "\(generation)"])
  return configuration
}

func milliseconds(_ duration: Duration) -> Double {
  Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
}

@Suite("Pools: least-outstanding routing, replacement, rolling swaps, draining", .timeLimit(.minutes(4)))
struct PoolTests {
  @Test("concurrent calls spread over every instance, each to the least busy one")
  func spreadsCalls() async throws {
    let pool = PluginPool(configuration: pooled(try fixture(), instances: 3))
    let log = PoolEventLog()
    let events = pool.events()
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { await log.record(events) }
      group.addTask { try await pool.run() }
      try await pool.ready()
      let statuses = pool.instances
      #expect(statuses.map(\.instance) == [0, 1, 2])
      #expect(statuses.allSatisfy { $0.state == .ready && $0.outstandingCalls == 0 })
      let pids = Set(statuses.compactMap(\.pid))
      #expect(pids.count == 3)
      #expect(Set(log.readyPIDs) == pids)

      let kv = try await pool.dispense("kv", as: KVPlugin.self)
      for _ in 0..<3 {
        // Six slow calls at once: the least-outstanding choice puts two on each instance.
        let answers = try await withThrowingTaskGroup(of: Int32.self) { calls in
          for _ in 0..<6 {
            calls.addTask { Int32(String(decoding: try await kv.get("pid-after:300"), as: UTF8.self)) ?? -1 }
          }
          var answers: [Int32: Int] = [:]
          for try await pid in calls { answers[pid, default: 0] += 1 }
          return answers
        }
        #expect(Set(answers.keys) == pids, "every instance took calls: \(answers)")
      }
      #expect(pool.instances.allSatisfy { $0.outstandingCalls == 0 })
      pool.beginGracefulShutdown()
      try await group.waitForAll()
    }
  }

  @Test("a pool of 4 under load survives an instance being killed: only its calls in flight fail")
  func survivesAKill() async throws {
    let pool = PluginPool(configuration: pooled(try fixture(), instances: 4))
    let log = PoolEventLog()
    let events = pool.events()
    let tally = LoadTally()
    let callers = 8
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { await log.record(events) }
      group.addTask { try await pool.run() }
      try await pool.ready()
      let kv = try await pool.dispense("kv", as: KVPlugin.self)
      group.addTask { await tally.load(kv, callers: callers) }
      try await tally.waitForAnswers(40)

      let victim = try #require(pool.instances.first { $0.instance == 2 })
      let victimPID = try #require(victim.pid)
      let inFlight = victim.outstandingCalls
      #expect(kill(victimPID, SIGKILL) == 0)
      await log.waitFor { if case .replaced(2, victimPID, _) = $0 { true } else { false } }
      let newPID = try #require(pool.instances.first { $0.instance == 2 && $0.state == .ready }?.pid)
      // The replacement takes calls, and so do the others.
      try await tally.waitForAnswers(10, by: [newPID])
      try await tally.waitForAnswers(40)
      tally.stop.store(true, ordering: .relaxed)

      let failed = tally.failed
      print("pool of 4, \(callers) callers: \(tally.answered) calls answered, \(failed.count) failed at the kill")
      print("  (\(inFlight) in flight on the killed instance just before the kill)")
      // Each caller has one call in flight: at most that many were on the killed instance.
      #expect(failed.count <= callers)
      for error in failed {
        let pluginError = error as? PluginError
        #expect(pluginError?.code == .exitedDuringCall, "\(error)")
        #expect(pluginError?.pid == victimPID, "only calls on the killed instance fail: \(error)")
      }
      let statuses = pool.instances
      #expect(statuses.count == 4 && statuses.allSatisfy { $0.state == .ready })
      #expect(!statuses.contains { $0.pid == victimPID })
      #expect(
        log.all.contains {
          if case .exited(2, victimPID, let exit) = $0 { exit.status == .signalled(SIGKILL) } else { false }
        })
      pool.beginGracefulShutdown()
      try await group.waitForAll()
    }
    for pid in Set(log.readyPIDs) { #expect(!isAlive(pid)) }
  }

  @Test("an instance that turns unhealthy is drained, stopped and replaced while the other serves")
  func replacesUnhealthy() async throws {
    let check = PluginHealthCheck(interval: .milliseconds(100), timeout: .seconds(20), failureThreshold: 2)
    let pool = PluginPool(configuration: pooled(try fixture("draining"), instances: 2, healthCheck: check))
    let log = PoolEventLog()
    let events = pool.events()
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { await log.record(events) }
      group.addTask { try await pool.run() }
      try await pool.ready()
      let pids = Set(pool.instances.compactMap(\.pid))
      let kv = try await pool.dispense("kv", as: KVPlugin.self)
      // One of the two turns NOT_SERVING.
      try await kv.put("not-serving", value: [])
      await log.waitFor { if case .replaced = $0 { true } else { false } }
      let sick = log.all.compactMap { event -> Int32? in
        if case .unhealthy(_, let pid, let error) = event, error.code == .unhealthy { return pid }
        return nil
      }
      #expect(sick.count == 1 && pids.contains(sick[0]))
      let sickPID = try #require(sick.first)
      await log.waitFor { if case .stopped(_, sickPID, _) = $0 { true } else { false } }
      #expect(!isAlive(sickPID))
      // The healthy one and the replacement answer; the sick one is gone.
      var answered: Set<Int32> = []
      for _ in 0..<10 { answered.insert(Int32(String(decoding: try await kv.get("pid"), as: UTF8.self)) ?? -1) }
      let statuses = pool.instances
      #expect(statuses.count == 2 && statuses.allSatisfy { $0.state == .ready })
      #expect(answered == Set(statuses.compactMap(\.pid)))
      #expect(!answered.contains(sickPID))
      pool.beginGracefulShutdown()
      try await group.waitForAll()
    }
  }

  @Test("a rolling swap to another binary under load fails no call, and every instance runs the new one")
  func rollingSwap() async throws {
    try await withTemporaryDirectory { directory in
      let upgraded = try copiedFixture(in: directory, generation: 2)
      for instances in [1, 3] {
        let pool = PluginPool(configuration: pooled(try fixture(), instances: instances))
        let log = PoolEventLog()
        let events = pool.events()
        let tally = LoadTally()
        try await withThrowingTaskGroup(of: Void.self) { group in
          group.addTask { await log.record(events) }
          group.addTask { try await pool.run() }
          try await pool.ready()
          let before = Set(pool.instances.compactMap(\.pid))
          let kv = try await pool.dispense("kv", as: KVPlugin.self)
          #expect(String(decoding: try await kv.get("env:POOL_GENERATION"), as: UTF8.self) == "<unset>")
          group.addTask { await tally.load(kv, callers: 6, millisecondsPerCall: 10) }
          try await tally.waitForAnswers(30)

          let started = ContinuousClock.now
          try await pool.swap(to: upgraded)
          let took = ContinuousClock.now - started
          try await tally.waitForAnswers(30)
          tally.stop.store(true, ordering: .relaxed)

          let statuses = pool.instances
          let after = Set(statuses.compactMap(\.pid))
          #expect(statuses.count == instances && statuses.allSatisfy { $0.state == .ready })
          #expect(statuses.allSatisfy { $0.path == upgraded.command.executable })
          #expect(after.count == instances && after.isDisjoint(with: before), "every instance's pid changed")
          #expect(String(decoding: try await kv.get("env:POOL_GENERATION"), as: UTF8.self) == "2")
          let swapped = log.all.compactMap { event -> (Int, Int32, Int32)? in
            if case .swapped(let instance, let old, let new) = event { return (instance, old, new) }
            return nil
          }
          #expect(swapped.map(\.0) == Array(0..<instances))
          #expect(Set(swapped.map(\.1)) == before && Set(swapped.map(\.2)) == after)
          // The old processes were stopped gracefully, not killed, once drained.
          let stopped = log.all.compactMap { event -> (Int32, PluginExit)? in
            if case .stopped(_, let pid, let exit) = event { return (pid, exit) }
            return nil
          }
          #expect(Set(stopped.map(\.0)) == before)
          #expect(stopped.allSatisfy { $0.1.reason == .stopped })
          print(
            "rolling swap of \(instances) instance(s) under load (6 callers): \(milliseconds(took)) ms, "
              + "\(tally.answered) calls answered, \(tally.failed.count) failed")
          #expect(tally.failed.isEmpty, "no call failed: \(tally.failed)")
          pool.beginGracefulShutdown()
          try await group.waitForAll()
          for pid in before.union(after) { #expect(!isAlive(pid)) }
        }
      }
    }
  }

  @Test("a swap to a binary that cannot start throws naming it; the old instances keep serving")
  func failedSwap() async throws {
    try await withTemporaryDirectory { directory in
      let script = "\(directory)/broken-plugin"
      try "#!/bin/sh\necho 'not a plugin' >&2\nexit 1\n".write(toFile: script, atomically: true, encoding: .utf8)
      #expect(chmod(script, 0o755) == 0)
      var broken = try fixture()
      broken.command = PluginCommand(script)

      let pool = PluginPool(configuration: pooled(try fixture(), instances: 2))
      let log = PoolEventLog()
      let events = pool.events()
      let tally = LoadTally()
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await log.record(events) }
        group.addTask { try await pool.run() }
        try await pool.ready()
        func described(_ statuses: [PluginPool.InstanceStatus]) -> [String] {
          statuses.map { "\($0.instance) \($0.pid ?? 0) \($0.state) \($0.path)" }
        }
        let before = pool.instances
        let kv = try await pool.dispense("kv", as: KVPlugin.self)
        group.addTask { await tally.load(kv, callers: 4, millisecondsPerCall: 10) }
        try await tally.waitForAnswers(20)

        let error = await #expect(throws: PluginError.self) { try await pool.swap(to: broken) }
        #expect(error?.pluginPath == script)
        #expect(error?.message.contains("instance 0") == true, "\(String(describing: error))")
        #expect(error?.code == .exitedBeforeHandshake, "\(String(describing: error))")
        try await tally.waitForAnswers(20, by: Set(before.compactMap(\.pid)))
        tally.stop.store(true, ordering: .relaxed)

        #expect(described(pool.instances) == described(before), "the old instances serve on, untouched")
        #expect(log.all.contains { if case .swapFailed = $0 { true } else { false } })
        #expect(tally.failed.isEmpty, "no call failed: \(tally.failed)")
        pool.beginGracefulShutdown()
        try await group.waitForAll()
      }
    }
  }

  @Test("a swap to a binary that starts but answers NOT_SERVING never gets a call and fails the swap")
  func unhealthySwap() async throws {
    let pool = PluginPool(configuration: pooled(try fixture(), instances: 1))
    let tally = LoadTally()
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await pool.run() }
      try await pool.ready()
      let before = Set(pool.instances.compactMap(\.pid))
      let kv = try await pool.dispense("kv", as: KVPlugin.self)
      group.addTask { await tally.load(kv, callers: 3, millisecondsPerCall: 10) }
      try await tally.waitForAnswers(10)
      // Sets itself NOT_SERVING as it starts.
      let sick = try fixture("draining", environment: ["FIXTURE_NOT_SERVING_AFTER_MS": "0"])
      let error = await #expect(throws: PluginError.self) { try await pool.swap(to: sick) }
      #expect(error?.code == .unhealthy, "\(String(describing: error))")
      try await tally.waitForAnswers(10)
      tally.stop.store(true, ordering: .relaxed)
      #expect(tally.answeredBy.withLock { Set($0.keys) } == before, "only the old instance answered")
      #expect(tally.failed.isEmpty, "no call failed: \(tally.failed)")
      #expect(Set(pool.instances.compactMap(\.pid)) == before)
      pool.beginGracefulShutdown()
      try await group.waitForAll()
    }
  }

  @Test("a graceful shutdown lets the calls in flight finish, refuses new ones, and leaves no process")
  func gracefulShutdownDrains() async throws {
    let pool = PluginPool(configuration: pooled(try fixture(), instances: 2))
    let log = PoolEventLog()
    let events = pool.events()
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { await log.record(events) }
      group.addTask { try await pool.run() }
      try await pool.ready()
      let pids = Set(pool.instances.compactMap(\.pid))
      let kv = try await pool.dispense("kv", as: KVPlugin.self)
      let slow = try await withThrowingTaskGroup(of: Int32.self) { calls in
        for _ in 0..<4 {
          calls.addTask { Int32(String(decoding: try await kv.get("pid-after:2000"), as: UTF8.self)) ?? -1 }
        }
        let deadline = ContinuousClock.now + .seconds(60)
        while pool.instances.map(\.outstandingCalls).reduce(0, +) < 4, ContinuousClock.now < deadline {
          try await Task.sleep(for: .milliseconds(10))
        }
        pool.beginGracefulShutdown()
        #expect(pool.instances.allSatisfy { $0.state == .draining })
        let refused = await #expect(throws: PluginError.self) { try await kv.put("late", value: [1]) }
        #expect(refused?.code == .unavailable)
        var answers: [Int32] = []
        for try await pid in calls { answers.append(pid) }
        return answers
      }
      #expect(slow.count == 4 && Set(slow) == pids, "the calls in flight finished on their instances")
      try await group.waitForAll()
      let stopped = log.all.compactMap { event -> (Int32, PluginExit.Reason)? in
        if case .stopped(_, let pid, let exit) = event { return (pid, exit.reason) }
        return nil
      }
      #expect(Set(stopped.map(\.0)) == pids)
      #expect(stopped.allSatisfy { $0.1 == .stopped })
      for pid in pids { #expect(!isAlive(pid)) }
    }
  }

  @Test("a pool whose plugin cannot start: ready() and run() throw the start failure, naming the file")
  func failedStart() async throws {
    try await withTemporaryDirectory { directory in
      let script = "\(directory)/not-a-plugin"
      try "#!/bin/sh\nexit 1\n".write(toFile: script, atomically: true, encoding: .utf8)
      #expect(chmod(script, 0o755) == 0)
      var broken = try fixture()
      broken.command = PluginCommand(script)
      let pool = PluginPool(configuration: pooled(broken, instances: 2))
      let log = PoolEventLog()
      let events = pool.events()
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await log.record(events) }
        group.addTask {
          let error = await #expect(throws: PluginError.self) { try await pool.run() }
          #expect(error?.pluginPath == script)
        }
        let error = await #expect(throws: PluginError.self) { try await pool.ready() }
        #expect(error?.pluginPath == script)
        #expect(error?.code == .exitedBeforeHandshake)
        try await group.waitForAll()
      }
      #expect(log.all.contains { if case .failed = $0 { true } else { false } })
      let refused = await #expect(throws: PluginError.self) { _ = try await pool.dispense("kv", as: KVPlugin.self) }
      #expect(refused?.code == .unavailable)
    }
  }
  @Test("a pool in a ServiceGroup stops its instances gracefully with the group; cancelling run() kills them")
  func serviceAndCancellation() async throws {
    let pool = PluginPool(configuration: pooled(try fixture(), instances: 2))
    let log = PoolEventLog()
    let events = pool.events()
    let group = ServiceGroup(
      configuration: ServiceGroupConfiguration(services: [.init(service: pool)], logger: Logger(label: "test")))
    let pids = try await withThrowingTaskGroup(of: Void.self) { tasks in
      tasks.addTask { await log.record(events) }
      tasks.addTask { try await group.run() }
      try await pool.ready()
      let pids = Set(pool.instances.compactMap(\.pid))
      await group.triggerGracefulShutdown()
      try await tasks.waitForAll()
      return pids
    }
    let stopped = log.all.compactMap { event -> (Int32, PluginExit.Reason)? in
      if case .stopped(_, let pid, let exit) = event { return (pid, exit.reason) }
      return nil
    }
    #expect(Set(stopped.map(\.0)) == pids && stopped.allSatisfy { $0.1 == .stopped })
    for pid in pids { #expect(!isAlive(pid)) }

    let cancelled = PluginPool(configuration: pooled(try fixture(), instances: 2))
    let killed = try await withThrowingTaskGroup(of: Void.self) { tasks in
      tasks.addTask { try await cancelled.run() }
      try await cancelled.ready()
      let pids = Set(cancelled.instances.compactMap(\.pid))
      tasks.cancelAll()
      // run() returns once every instance has been killed and reaped.
      try await tasks.waitForAll()
      return pids
    }
    #expect(killed.count == 2)
    for pid in killed { #expect(!isAlive(pid)) }
  }

  @Test("a pool of a net/rpc plugin fails its start with unsupportedProtocol")
  func refusesNetRPC() async throws {
    let pool = PluginPool(configuration: pooled(try greeterConfiguration(), instances: 1))
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask {
        let error = await #expect(throws: PluginError.self) { try await pool.run() }
        #expect(error?.code == .unsupportedProtocol)
      }
      let error = await #expect(throws: PluginError.self) { try await pool.ready() }
      #expect(error?.code == .unsupportedProtocol)
      #expect(error?.message.contains("net/rpc") == true)
      #expect(error?.pluginPath?.hasSuffix("greeter-plugin") == true)
      try await group.waitForAll()
    }
  }
  @Test("an instance that keeps crashing makes the pool give up after its restart limit")
  func givesUp() async throws {
    // Crashes on every KV call; health checks are not KV calls, so each start succeeds.
    var configuration = pooled(try fixture("crash-every", "1"), instances: 1)
    configuration.restart = .init(initialDelay: .milliseconds(10), jitter: 0, maximumRestarts: 2)
    configuration.waitForReady = .seconds(60)
    let pool = PluginPool(configuration: configuration)
    let log = PoolEventLog()
    let events = pool.events()
    let codes = Mutex<[PluginError.Code]>([])
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { await log.record(events) }
      group.addTask {
        let error = await #expect(throws: PluginError.self) { try await pool.run() }
        #expect(error?.code == .restartLimitReached)
      }
      let kv = try await pool.dispense("kv", as: KVPlugin.self)
      while true {
        do {
          try await kv.put("k", value: [1])
          Issue.record("a call succeeded on a plugin that crashes on every call")
        } catch let error as PluginError {
          codes.withLock { $0.append(error.code) }
          if error.code == .unavailable { break }
        } catch let error as RuntimeError where error.code == .clientIsStopped {
          // Once run() has returned, the pool's gRPC client is shut down too, and grpc-swift
          // refuses the call itself: refused all the same, only by the layer above.
          codes.withLock { $0.append(.unavailable) }
          break
        }
      }
      try await group.waitForAll()
    }
    // Three processes, each crashed by its call; then the pool refuses calls.
    #expect(codes.withLock { $0 } == [.exitedDuringCall, .exitedDuringCall, .exitedDuringCall, .unavailable])
    #expect(log.readyPIDs.count == 3)
    #expect(log.all.filter { if case .replaced = $0 { true } else { false } }.count == 2)
    #expect(log.all.contains { if case .failed(let error) = $0 { error.code == .restartLimitReached } else { false } })
    for pid in log.readyPIDs { #expect(!isAlive(pid)) }
  }
}
