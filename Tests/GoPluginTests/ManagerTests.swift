import Foundation
import GoPluginTesting
import KVInterface
import Synchronization
import Testing

@testable import GoPlugin

#if canImport(Glibc)
import Glibc
#endif

/// A scratch plugin directory, changed the way package managers change one: a new file is
/// written beside it under a dot name and renamed into place.
struct PluginDirectory {
  let path: String

  init() throws {
    self.path =
      FileManager.default.temporaryDirectory.appendingPathComponent(
        "goplugin-manager-\(UInt32.random(in: 0...UInt32.max))"
      ).path
    try FileManager.default.createDirectory(atPath: self.path, withIntermediateDirectories: true)
  }

  func file(_ name: String) -> String { self.path + "/" + name }

  /// Copies `source` in as `name`, with `appending` added to its end (a new digest that runs the
  /// same), or with its last byte flipped. Returns the time of the rename.
  @discardableResult
  func install(
    _ source: String, as name: String, appending: [UInt8] = [], flippingLastByte: Bool = false
  ) throws -> ContinuousClock.Instant {
    let temporary = self.file(".\(name).new")
    var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: source)))
    bytes += appending
    if flippingLastByte { bytes[bytes.count - 1] ^= 0xff }
    try Data(bytes).write(to: URL(fileURLWithPath: temporary))
    try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: temporary)
    guard rename(temporary, self.file(name)) == 0 else { throw POSIXError(.EIO) }
    return .now
  }

  /// A link named `name` to `target`, put in place by a rename.
  func link(_ target: String, as name: String) throws {
    let temporary = self.file(".\(name).link")
    try FileManager.default.createSymbolicLink(atPath: temporary, withDestinationPath: target)
    guard rename(temporary, self.file(name)) == 0 else { throw POSIXError(.EIO) }
  }

  /// A shell script that exits 1 at once: a plugin that does not start.
  func installBroken(as name: String) throws {
    let script = self.file(".\(name).script")
    try Data("#!/bin/sh\necho \"\(name): cannot start\" >&2\nexit 1\n".utf8).write(to: URL(fileURLWithPath: script))
    try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script)
    guard rename(script, self.file(name)) == 0 else { throw POSIXError(.EIO) }
  }

  func remove(_ name: String) throws {
    try FileManager.default.removeItem(atPath: self.file(name))
  }

  func delete() { try? FileManager.default.removeItem(atPath: self.path) }
}

/// Collects a manager's events until its sequence ends.
final class ManagerLog: Sendable {
  private let events = Mutex<[PluginManager.Event]>([])
  private let changes: AsyncStream<Void>
  private let changed: AsyncStream<Void>.Continuation

  init() {
    (self.changes, self.changed) = AsyncStream.makeStream(of: Void.self)
  }

  func record(_ stream: AsyncStream<PluginManager.Event>) async {
    for await event in stream {
      self.events.withLock { $0.append(event) }
      self.changed.yield()
    }
    self.changed.finish()
  }

  var all: [PluginManager.Event] { self.events.withLock { $0 } }

  /// Waits for the first event (after the first `skip` matching ones) that `match` maps to a
  /// value, and returns that value.
  func first<Value>(skipping skip: Int = 0, _ match: (PluginManager.Event) -> Value?) async -> Value? {
    func found() -> Value? {
      let values = self.all.compactMap(match)
      return values.count > skip ? values[skip] : nil
    }
    if let value = found() { return value }
    for await _ in self.changes {
      if let value = found() { return value }
    }
    return found()
  }

  func online(_ name: String, skipping skip: Int = 0) async -> Int32? {
    await self.first(skipping: skip) { event in
      if case .online(name, let pid, _) = event { return pid }
      return nil
    }
  }

  func offline(_ name: String) async -> PluginManager.OfflineReason? {
    await self.first { event in
      if case .offline(name, let reason) = event { return reason }
      return nil
    }
  }
}

/// A manager of fixture plugins in `directory`, with quick health checks and restarts.
func managed(_ directory: PluginDirectory, watch: PluginManager.Watching = .automatic) -> PluginManager.Configuration {
  var configuration = PluginManager.Configuration(discovery: PluginDiscovery(directories: [directory.path])) {
    plugin in
    var client = PluginClientConfiguration(
      command: PluginCommand(plugin.path), handshake: .kv, plugins: ["kv": KVPlugin()])
    client.standardInput = .none
    client.gracefulStopTimeout = .seconds(20)
    return client
  }
  configuration.watch = watch
  configuration.healthCheck = PluginHealthCheck(interval: .milliseconds(500), timeout: .seconds(10))
  configuration.restart = .init(initialDelay: .milliseconds(20), jitter: 0, maximumRestarts: 20)
  configuration.drainTimeout = .seconds(20)
  return configuration
}

/// How many inotify descriptors this process has open.
func inotifyDescriptors() -> Int {
  let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
  return entries.filter { entry in
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + entry)) == "anon_inode:inotify"
  }.count
}

/// The processes whose executable is `path`.
func processes(running path: String) -> [Int32] {
  let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
  return entries.compactMap { entry -> Int32? in
    guard let pid = Int32(entry),
      let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(entry)/exe")
    else { return nil }
    return executable.hasPrefix(path) ? pid : nil
  }
}

/// Calls a plugin from several tasks until told to stop, counting what failed.
final class SteadyLoad: Sendable {
  let successes = Atomic(0)
  let failures = Mutex<[String]>([])
  private let stopped = Atomic(false)

  func stop() { self.stopped.store(true, ordering: .relaxed) }

  func run(_ kv: KVClient, callers: Int = 4) async {
    await withTaskGroup(of: Void.self) { group in
      for caller in 0..<callers {
        group.addTask {
          var call = 0
          while !self.stopped.load(ordering: .relaxed) {
            call += 1
            do {
              try await kv.put("\(caller)", value: [UInt8(truncatingIfNeeded: call)])
              self.successes.add(1, ordering: .relaxed)
            } catch {
              self.failures.withLock { $0.append("\(error)") }
            }
            try? await Task.sleep(for: .milliseconds(5))
          }
        }
      }
    }
  }

  /// Waits until `count` more calls have succeeded.
  func waitForSuccesses(_ count: Int) async {
    let target = self.successes.load(ordering: .relaxed) + count
    while self.successes.load(ordering: .relaxed) < target {
      try? await Task.sleep(for: .milliseconds(10))
    }
  }
}

@Suite("Plugin manager: a watched directory of plugins", .serialized, .timeLimit(.minutes(5)))
struct ManagerTests {
  let plugin: String

  init() throws {
    self.plugin = try BuildProducts.path("fixture-plugin")
  }

  @Test("a directory filled while the manager runs comes online; a removed file goes offline; stopping leaves nothing")
  func fillAndEmpty() async throws {
    let directory = try PluginDirectory()
    defer { directory.delete() }
    let inotifyBefore = inotifyDescriptors()
    let manager = PluginManager(configuration: managed(directory, watch: .inotify))
    let log = ManagerLog()
    let events = manager.events()
    var pids: [Int32] = []
    var watch: ProcessWatch?
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { await log.record(events) }
      group.addTask { try await manager.run() }
      try directory.link(self.plugin, as: "alpha")
      try directory.install(self.plugin, as: "beta")
      try #require(FileManager.default.createFile(atPath: directory.file("notes.txt"), contents: Data("x".utf8)))
      let alpha = try #require(await log.online("alpha"))
      let beta = try #require(await log.online("beta"))
      pids = [alpha, beta]
      watch = ProcessWatch(pids)
      let alphaWatch = ProcessWatch([alpha])
      #expect(alpha != beta)
      #expect(isAlive(alpha) && isAlive(beta))
      #expect(inotifyDescriptors() == inotifyBefore + 1, "the directory is watched with inotify")
      let kv = try await manager.dispense(plugin: "alpha", "kv", as: KVPlugin.self)
      #expect(String(decoding: try await kv.get("pid"), as: UTF8.self) == "\(alpha)")
      #expect(manager.plugins.keys.sorted() == ["alpha", "beta"], "the text file is not a plugin")
      guard case .online(alpha, _)? = manager.status("alpha")?.state else {
        Issue.record("alpha is \(String(describing: manager.status("alpha")))")
        return
      }

      try directory.remove("alpha")
      #expect(await log.offline("alpha") == .removed)
      #expect(await alphaWatch.running(after: .seconds(30)).isEmpty, "alpha's process is gone")
      #expect(manager.status("alpha")?.state == .offline(.removed))
      #expect(isAlive(beta), "beta serves on")
      await #expect(throws: PluginError.self) {
        _ = try await manager.dispense(plugin: "alpha", "kv", as: KVPlugin.self)
      }

      manager.beginGracefulShutdown()
      try await group.waitForAll()
    }
    // The draining came before the offline, and stopping took beta offline.
    let kinds = log.all.filter { $0.name == "alpha" }.map { "\($0)".split(separator: "(").first.map(String.init) ?? "" }
    #expect(kinds == ["alpha: online", "alpha: draining", "alpha: offline"])
    #expect(log.all.last == .offline(name: "beta", reason: .stopped))
    #expect(await watch?.running(after: .seconds(30)).isEmpty == true, "no plugin process is left: \(pids)")
    #expect(inotifyDescriptors() == inotifyBefore, "the watcher's descriptor is closed")
  }

  @Test("a plugin replaced under continuous load is swapped with zero failed calls; calls then reach the new file")
  func swapUnderLoad() async throws {
    let directory = try PluginDirectory()
    defer { directory.delete() }
    let manager = PluginManager(configuration: managed(directory))
    let log = ManagerLog()
    let events = manager.events()
    let load = SteadyLoad()
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { await log.record(events) }
      group.addTask { try await manager.run() }
      try directory.install(self.plugin, as: "alpha")
      let oldPID = try #require(await log.online("alpha"))
      let oldWatch = ProcessWatch([oldPID])
      guard case .online(_, let oldDigest)? = manager.status("alpha")?.state else {
        Issue.record("alpha is not online")
        return
      }
      let kv = try await manager.dispense(plugin: "alpha", "kv", as: KVPlugin.self)
      group.addTask { await load.run(kv) }
      await load.waitForSuccesses(50)

      let landed = try directory.install(self.plugin, as: "alpha", appending: Array("version 2".utf8))
      let swap = try #require(
        await log.first { event -> (Int32, Int32)? in
          if case .swapped("alpha", let old, let new) = event { return (old, new) }
          return nil
        })
      let took = ContinuousClock.now - landed
      print("manager hot swap: \(took) from the rename to the old instance stopped")
      #expect(swap.0 == oldPID && swap.1 != oldPID)
      #expect(await oldWatch.running(after: .seconds(30)).isEmpty, "the old process is gone")
      await load.waitForSuccesses(50)
      #expect(
        String(decoding: try await kv.get("pid"), as: UTF8.self) == "\(swap.1)", "the same client reaches the new file")
      guard case .online(swap.1, let newDigest)? = manager.status("alpha")?.state else {
        Issue.record("alpha is \(String(describing: manager.status("alpha")))")
        return
      }
      #expect(newDigest != oldDigest)
      #expect(newDigest == (try PluginChecksum(ofFile: directory.file("alpha"))))
      load.stop()
      manager.beginGracefulShutdown()
      try await group.waitForAll()
    }
    let failures = load.failures.withLock { $0 }
    #expect(failures.isEmpty, "failed calls during the swap: \(failures.prefix(5))")
    print("manager hot swap: \(load.successes.load(ordering: .relaxed)) calls, \(failures.count) failed")
  }

  @Test("a plugin of two instances is swapped one instance at a time under load, with zero failed calls")
  func swapPool() async throws {
    let directory = try PluginDirectory()
    defer { directory.delete() }
    var configuration = managed(directory)
    configuration.instances = 2
    let manager = PluginManager(configuration: configuration)
    let log = ManagerLog()
    let events = manager.events()
    let load = SteadyLoad()
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { await log.record(events) }
      group.addTask { try await manager.run() }
      try directory.install(self.plugin, as: "alpha")
      _ = try #require(await log.online("alpha"))
      let pool = try #require(manager.registry.running("alpha")?.pool)
      let oldPIDs = Set(pool.instances.compactMap(\.pid))
      #expect(oldPIDs.count == 2)
      let oldWatch = ProcessWatch(Array(oldPIDs))
      let kv = try await manager.dispense(plugin: "alpha", "kv", as: KVPlugin.self)
      group.addTask { await load.run(kv) }
      await load.waitForSuccesses(50)

      try directory.install(self.plugin, as: "alpha", appending: Array("version 2".utf8))
      let swaps = try #require(
        await log.first(skipping: 1) { event -> [(Int32, Int32)]? in
          guard case .swapped("alpha", _, _) = event else { return nil }
          return log.all.compactMap { event in
            if case .swapped("alpha", let old, let new) = event { return (old, new) }
            return nil
          }
        })
      #expect(Set(swaps.map(\.0)) == oldPIDs, "each old instance was swapped out")
      #expect(Set(swaps.map(\.1)).isDisjoint(with: oldPIDs) && Set(swaps.map(\.1)).count == 2)
      #expect(await oldWatch.running(after: .seconds(30)).isEmpty, "the old processes are gone")
      await load.waitForSuccesses(50)
      let answered = String(decoding: try await kv.get("pid"), as: UTF8.self)
      #expect(swaps.map { "\($0.1)" }.contains(answered), "calls reach the new file")
      load.stop()
      manager.beginGracefulShutdown()
      try await group.waitForAll()
    }
    let failures = load.failures.withLock { $0 }
    #expect(failures.isEmpty, "failed calls during the swap: \(failures.prefix(5))")
  }

  @Test(
    "a broken new version is reported with its reason while the old one keeps serving; a broken new plugin stays offline"
  )
  func brokenUpgrade() async throws {
    let directory = try PluginDirectory()
    defer { directory.delete() }
    let manager = PluginManager(configuration: managed(directory))
    let log = ManagerLog()
    let events = manager.events()
    let load = SteadyLoad()
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { await log.record(events) }
      group.addTask { try await manager.run() }
      try directory.install(self.plugin, as: "alpha")
      let pid = try #require(await log.online("alpha"))
      let kv = try await manager.dispense(plugin: "alpha", "kv", as: KVPlugin.self)
      group.addTask { await load.run(kv) }
      await load.waitForSuccesses(30)

      try directory.installBroken(as: "alpha")
      let failure = try #require(
        await log.first { event -> (Int32, PluginError)? in
          if case .upgradeFailed("alpha", let pid, let error) = event { return (pid, error) }
          return nil
        })
      #expect(failure.0 == pid)
      #expect(failure.1.description.contains(directory.file("alpha")), "\(failure.1)")
      await load.waitForSuccesses(30)
      #expect(String(decoding: try await kv.get("pid"), as: UTF8.self) == "\(pid)", "the old process serves on")
      #expect(manager.status("alpha")?.state.isServing == true)

      try directory.installBroken(as: "gamma")
      guard case .failed(let error)? = await log.offline("gamma") else {
        Issue.record("gamma did not go offline with a failure: \(log.all)")
        return
      }
      #expect(error.description.contains(directory.file("gamma")), "\(error)")
      #expect(manager.status("gamma")?.state == .offline(.failed(error)))
      load.stop()
      manager.beginGracefulShutdown()
      try await group.waitForAll()
    }
    let failures = load.failures.withLock { $0 }
    #expect(failures.isEmpty, "failed calls: \(failures.prefix(5))")
  }

  @Test("a binary with one byte changed is refused by the lock file and never started")
  func refusedByLock() async throws {
    let directory = try PluginDirectory()
    defer { directory.delete() }
    let lockPath = directory.path + "-plugins.lock"
    defer { try? FileManager.default.removeItem(atPath: lockPath) }
    let lock = try PluginLockFile(path: lockPath, policy: .refuse)
    let digest = try PluginChecksum(ofFile: self.plugin)
    try lock.record("alpha", digest: digest)
    try lock.record("beta", digest: digest)
    var configuration = managed(directory)
    configuration.trust = PluginTrust(lockFile: lock)
    let manager = PluginManager(configuration: configuration)
    let log = ManagerLog()
    let events = manager.events()
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { await log.record(events) }
      group.addTask { try await manager.run() }
      try directory.install(self.plugin, as: "alpha", flippingLastByte: true)
      try directory.link(self.plugin, as: "beta")
      let refusal = try #require(
        await log.first { event -> PluginError? in
          if case .refused("alpha", let error) = event { return error }
          return nil
        })
      #expect(refusal.code == .untrustedPlugin)
      let found = try PluginChecksum(ofFile: directory.file("alpha"))
      #expect(refusal.message.contains(directory.file("alpha")), "\(refusal)")
      #expect(refusal.message.contains("\(digest)") && refusal.message.contains("\(found)"), "\(refusal)")
      #expect(manager.status("alpha")?.state == .refused(refusal))
      // The lock lets the good one through.
      _ = try #require(await log.online("beta"))
      #expect(processes(running: directory.file("alpha")).isEmpty, "the refused file never ran")
      #expect(!log.all.contains { if case .online("alpha", _, _) = $0 { true } else { false } })
      manager.beginGracefulShutdown()
      try await group.waitForAll()
    }
  }

  @Test(
    "an unchanged file is not read again on a rescan; a touched one is checked again, and the running one serves on")
  func identityDecidesRechecks() async throws {
    let directory = try PluginDirectory()
    defer { directory.delete() }
    let lockPath = directory.path + "-plugins.lock"
    defer { try? FileManager.default.removeItem(atPath: lockPath) }
    let lock = try PluginLockFile(path: lockPath, policy: .refuse)
    try lock.record("alpha", digest: try PluginChecksum(ofFile: self.plugin))
    var configuration = managed(directory)
    configuration.trust = PluginTrust(lockFile: lock)
    let manager = PluginManager(configuration: configuration)
    let log = ManagerLog()
    let events = manager.events()
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { await log.record(events) }
      group.addTask { try await manager.run() }
      try directory.install(self.plugin, as: "alpha")
      let pid = try #require(await log.online("alpha"))
      // From now on a check of alpha's file would refuse it: none happens while it is unchanged.
      try lock.remove("alpha")
      for _ in 0..<5 { manager.rescan() }
      try #require(FileManager.default.createFile(atPath: directory.file("other.txt"), contents: Data()))
      try await Task.sleep(for: .milliseconds(500))
      #expect(!log.all.contains { if case .refused = $0 { true } else { false } }, "\(log.all)")
      // A new modification time is a new identity: the file is checked again, and refused.
      try FileManager.default.setAttributes(
        [.modificationDate: Date(timeIntervalSinceNow: 60)], ofItemAtPath: directory.file("alpha"))
      let refusal = try #require(
        await log.first { event -> PluginError? in
          if case .refused("alpha", let error) = event { return error }
          return nil
        })
      #expect(refusal.code == .untrustedPlugin)
      #expect(manager.status("alpha")?.state == .online(pid: pid, digest: try PluginChecksum(ofFile: self.plugin)))
      manager.beginGracefulShutdown()
      try await group.waitForAll()
    }
  }

  @Test("disable drains and stops a plugin, enable brings it back; polling sees the directory")
  func disableAndEnable() async throws {
    let directory = try PluginDirectory()
    defer { directory.delete() }
    let inotifyBefore = inotifyDescriptors()
    let manager = PluginManager(configuration: managed(directory, watch: .polling(.milliseconds(100))))
    let log = ManagerLog()
    let events = manager.events()
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { await log.record(events) }
      group.addTask { try await manager.run() }
      try directory.link(self.plugin, as: "alpha")
      let first = try #require(await log.online("alpha"))
      let firstWatch = ProcessWatch([first])
      #expect(inotifyDescriptors() == inotifyBefore, "polling opens no inotify descriptor")

      manager.disable("alpha")
      #expect(await log.offline("alpha") == .disabled)
      #expect(await firstWatch.running(after: .seconds(30)).isEmpty)
      #expect(manager.status("alpha")?.state == .disabled)
      // A file change while disabled starts nothing.
      try directory.install(self.plugin, as: "alpha")
      manager.rescan()
      try await Task.sleep(for: .milliseconds(300))
      #expect(manager.status("alpha")?.state == .disabled)

      manager.enable("alpha")
      let second = try #require(await log.online("alpha", skipping: 1))
      let secondWatch = ProcessWatch([second])
      #expect(second != first)
      let kv = try await manager.dispense(plugin: "alpha", "kv", as: KVPlugin.self)
      #expect(String(decoding: try await kv.get("pid"), as: UTF8.self) == "\(second)")

      // Removed while polling: offline.
      try directory.remove("alpha")
      #expect(await log.first { if case .offline("alpha", .removed) = $0 { true } else { nil } } == true)
      #expect(await secondWatch.running(after: .seconds(30)).isEmpty)
      manager.beginGracefulShutdown()
      try await group.waitForAll()
    }
  }

  @Test(
    "a plugin that crashes is restarted by its pool: a restarted event, and the state and calls follow the new process")
  func crashIsRestarted() async throws {
    let directory = try PluginDirectory()
    defer { directory.delete() }
    let manager = PluginManager(configuration: managed(directory))
    let log = ManagerLog()
    let events = manager.events()
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { await log.record(events) }
      group.addTask { try await manager.run() }
      try directory.link(self.plugin, as: "alpha")
      let first = try #require(await log.online("alpha"))
      let kv = try await manager.dispense(plugin: "alpha", "kv", as: KVPlugin.self)
      // The fixture exits with status 3 on this key: the call in flight fails, as it must.
      await #expect(throws: (any Error).self) { _ = try await kv.get("crash") }
      let second = try #require(
        await log.first { event -> Int32? in
          if case .restarted("alpha", let pid) = event { return pid }
          return nil
        })
      #expect(second != first)
      #expect(manager.status("alpha")?.state.isServing == true)
      if case .online(let pid, _)? = manager.status("alpha")?.state {
        #expect(pid == second)
      }
      #expect(String(decoding: try await kv.get("pid"), as: UTF8.self) == "\(second)")
      manager.beginGracefulShutdown()
      try await group.waitForAll()
    }
  }

  @Test("a watched directory that is deleted and made again is watched again")
  func directoryRecreated() async throws {
    let directory = try PluginDirectory()
    defer { directory.delete() }
    let manager = PluginManager(configuration: managed(directory, watch: .inotify))
    let log = ManagerLog()
    let events = manager.events()
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { await log.record(events) }
      group.addTask { try await manager.run() }
      try directory.link(self.plugin, as: "alpha")
      let first = try #require(await log.online("alpha"))
      directory.delete()
      #expect(await log.offline("alpha") == .removed)
      try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
      try directory.link(self.plugin, as: "alpha")
      let second = try #require(await log.online("alpha", skipping: 1))
      #expect(second != first)
      manager.beginGracefulShutdown()
      try await group.waitForAll()
    }
  }

  @Test("cancelling the manager kills its plugins at once and leaves no process or descriptor")
  func cancellation() async throws {
    let directory = try PluginDirectory()
    defer { directory.delete() }
    let inotifyBefore = inotifyDescriptors()
    let manager = PluginManager(configuration: managed(directory, watch: .inotify))
    let log = ManagerLog()
    let events = manager.events()
    try directory.link(self.plugin, as: "alpha")
    let watch = try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { await log.record(events) }
      group.addTask { try await manager.run() }
      let watch = ProcessWatch([try #require(await log.online("alpha"))])
      group.cancelAll()
      try? await group.waitForAll()
      return watch
    }
    #expect(await watch.running(after: .seconds(30)).isEmpty)
    #expect(inotifyDescriptors() == inotifyBefore)
  }
}
