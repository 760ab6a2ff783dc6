import GoPluginSpawn
import Synchronization

extension FileIdentity {
  /// The identity of the file at `path` (links followed), or `nil` when there is none now.
  init?(path: String) {
    var identity = goplugin_file_identity()
    guard goplugin_file_identity_of(path, &identity) == 0 else { return nil }
    self.init(
      device: identity.device, inode: identity.inode, size: identity.size,
      modifiedSeconds: identity.modified_seconds, modifiedNanoseconds: identity.modified_nanoseconds)
  }
}

extension PluginManager {
  /// What the run loop asks of a plugin's worker; only the latest request counts.
  enum Command: Sendable {
    case run(DiscoveredPlugin)
    case stop(OfflineReason)
  }

  /// A plugin's pool while it runs.
  struct Running: Sendable {
    let pool: PluginPool
    /// The SHA-256 of the file the pool runs.
    var digest: PluginChecksum
    /// Set when the pool's `run()` has returned: its processes are gone.
    let ended: OneShot<PluginError?>
  }

  /// The manager's state: every plugin's entry, the event subscribers and the run loop's
  /// phase, behind one lock. Every change of a plugin's state happens here, and publishes its
  /// event under the same lock, so the events come in the order of the changes.
  final class Registry: Sendable {
    enum Phase {
      case idle, running, finished
    }

    /// What was last asked of a worker, so that a rescan that finds nothing new asks nothing.
    enum Wanted: Hashable {
      case run(path: String, identity: FileIdentity)
      case stop(OfflineReason)
    }

    struct Entry {
      var path: String
      var state: PluginState
      /// Whether a file of this name was there at the last scan.
      var present = false
      var wanted: Wanted?
      let commands: AsyncStream<Command>.Continuation
      var running: Running?
    }

    private struct State {
      var phase = Phase.idle
      var stopRequested = false
      var entries: [String: Entry] = [:]
      var disabled: Set<String> = []
      var subscribers = EventSubscribers<Event>()
      var rescan: AsyncStream<Void>.Continuation?
    }

    private let state = Mutex(State())

    /// Leaves `idle` with the continuation that asks the run loop for a rescan; false if the
    /// manager runs (or ran) already. A stop asked for before is honoured at once.
    func claim(rescan: AsyncStream<Void>.Continuation) -> Bool {
      let claimed: Bool = self.state.withLock { state in
        guard case .idle = state.phase else { return false }
        state.phase = .running
        state.rescan = rescan
        return true
      }
      if claimed && self.isStopping { rescan.finish() }
      return claimed
    }

    var isStopping: Bool {
      self.state.withLock { state in
        if case .finished = state.phase { return true }
        return state.stopRequested
      }
    }

    func requestRescan() {
      _ = self.state.withLock { $0.rescan }?.yield()
    }

    /// Stops the run loop after the rescan in progress, if any.
    func stop() {
      let rescan: AsyncStream<Void>.Continuation? = self.state.withLock { state in
        state.stopRequested = true
        return state.rescan
      }
      rescan?.finish()
    }

    /// Takes in a scan: new names get an entry (and the caller starts a worker for each), and
    /// every worker whose plugin's file appeared, changed, went or was disabled or enabled is
    /// told what is wanted of it now.
    func reconcile(
      _ plugins: [(plugin: DiscoveredPlugin, identity: FileIdentity)]
    ) -> [(
      String, AsyncStream<Command>
    )] {
      self.state.withLock { state in
        guard case .running = state.phase, !state.stopRequested else { return [] }
        var newWorkers: [(String, AsyncStream<Command>)] = []
        var seen: Set<String> = []
        for (plugin, identity) in plugins where seen.insert(plugin.name).inserted {
          let disabled = state.disabled.contains(plugin.name)
          if state.entries[plugin.name] == nil {
            let (commands, continuation) = AsyncStream.makeStream(
              of: Command.self, bufferingPolicy: .bufferingNewest(1))
            state.entries[plugin.name] = Entry(
              path: plugin.path, state: disabled ? .disabled : .starting, commands: continuation)
            newWorkers.append((plugin.name, commands))
          }
          state.entries[plugin.name]!.present = true
          state.entries[plugin.name]!.path = plugin.path
          if disabled {
            Self.ask(&state.entries[plugin.name]!, .stop(.disabled), .stop(.disabled))
          } else {
            Self.ask(&state.entries[plugin.name]!, .run(path: plugin.path, identity: identity), .run(plugin))
          }
        }
        for name in state.entries.keys where !seen.contains(name) && state.entries[name]!.present {
          state.entries[name]!.present = false
          let reason: OfflineReason = state.disabled.contains(name) ? .disabled : .removed
          Self.ask(&state.entries[name]!, .stop(reason), .stop(reason))
        }
        return newWorkers
      }
    }

    private static func ask(_ entry: inout Entry, _ wanted: Wanted, _ command: Command) {
      guard entry.wanted != wanted else { return }
      entry.wanted = wanted
      entry.commands.yield(command)
    }

    /// Ends every worker's commands: each takes its plugin offline and ends.
    func finishWorkers() {
      let continuations = self.state.withLock { state in
        state.stopRequested = true
        return state.entries.values.map(\.commands)
      }
      for continuation in continuations { continuation.finish() }
    }

    /// Marks `name` disabled (`true`) or enabled, and asks for a rescan; enabling also retries
    /// a plugin that failed or was refused.
    func setDisabled(_ name: String, _ disabled: Bool) {
      let rescan: AsyncStream<Void>.Continuation? = self.state.withLock { state in
        if disabled {
          state.disabled.insert(name)
        } else {
          state.disabled.remove(name)
          state.entries[name]?.wanted = nil
        }
        return state.rescan
      }
      rescan?.yield()
    }

    // MARK: - State changes, each with its event

    /// Changes `name`'s state and publishes `event`, when `change` says so (it returns the
    /// event, or nil for none); `nil` when there is no such entry.
    @discardableResult
    private func change<Result>(
      _ name: String, _ change: (inout Entry) -> (event: Event?, result: Result)
    ) -> Result? {
      self.state.withLock { state -> Result? in
        guard state.entries[name] != nil else { return nil }
        let (event, result) = change(&state.entries[name]!)
        if let event { state.subscribers.publish(event) }
        return result
      }
    }

    func running(_ name: String) -> Running? {
      self.state.withLock { $0.entries[name]?.running }
    }

    func starting(_ name: String, _ running: Running) {
      self.change(name) { entry in
        entry.running = running
        entry.state = .starting
        return (nil, ())
      }
    }

    func online(_ name: String, pool: PluginPool, pid: Int32) {
      self.change(name) { entry in
        guard let running = entry.running, running.pool === pool, case .starting = entry.state else { return (nil, ()) }
        entry.state = .online(pid: pid, digest: running.digest)
        return (.online(name: name, pid: pid, digest: running.digest), ())
      }
    }

    /// The pool did not come up; it has stopped.
    func failedToStart(_ name: String, pool: PluginPool, error: PluginError) {
      self.change(name) { entry in
        if entry.running?.pool === pool { entry.running = nil }
        entry.state = .offline(.failed(error))
        return (.offline(name: name, reason: .failed(error)), ())
      }
    }

    /// A file that was not started: refused, or not readable. A running plugin keeps its
    /// state (its old file serves on) and only the event says it.
    func notStarted(_ name: String, error: PluginError) {
      self.change(name) { entry in
        if entry.running != nil, entry.state.isServing {
          let pid = Self.pid(of: entry.state)
          if error.code == .untrustedPlugin { return (.refused(name: name, error: error), ()) }
          return (.upgradeFailed(name: name, pid: pid, error: error), ())
        }
        if error.code == .untrustedPlugin {
          entry.state = .refused(error)
          return (.refused(name: name, error: error), ())
        }
        entry.state = .offline(.failed(error))
        return (.offline(name: name, reason: .failed(error)), ())
      }
    }

    func swapping(_ name: String, to digest: PluginChecksum) {
      self.change(name) { entry in
        guard let running = entry.running else { return (nil, ()) }
        entry.state = .swapping(pid: Self.pid(of: entry.state), from: running.digest, to: digest)
        return (nil, ())
      }
    }

    /// The swap is done: every instance runs the new file. `pids` pairs each replaced process
    /// with the one that took over.
    func swapped(_ name: String, pool: PluginPool, digest: PluginChecksum, pid: Int32, pids: [(Int32, Int32)]) {
      self.state.withLock { state in
        guard var entry = state.entries[name], entry.running?.pool === pool else { return }
        entry.running?.digest = digest
        entry.state = .online(pid: pid, digest: digest)
        state.entries[name] = entry
        for (oldPID, newPID) in pids {
          state.subscribers.publish(.swapped(name: name, oldPID: oldPID, newPID: newPID))
        }
      }
    }

    /// The swap failed; the old file serves on at `pid`.
    func swapFailed(_ name: String, pool: PluginPool, pid: Int32, error: PluginError) {
      self.change(name) { entry in
        guard let running = entry.running, running.pool === pool else { return (nil, ()) }
        entry.state = .online(pid: pid, digest: running.digest)
        return (.upgradeFailed(name: name, pid: pid, error: error), ())
      }
    }

    /// Marks the plugin draining and returns its pool, if it runs; otherwise records `reason`.
    func beginDrain(_ name: String, reason: OfflineReason) -> Running? {
      self.change(name) { entry -> (event: Event?, result: Running?) in
        guard let running = entry.running else {
          let wasUp: Bool
          switch entry.state {
          case .offline, .disabled, .refused: wasUp = false
          default: wasUp = true
          }
          // The manager stopping leaves a refused or disabled plugin as it was.
          if wasUp || reason != .stopped { entry.state = reason == .disabled ? .disabled : .offline(reason) }
          return (wasUp ? .offline(name: name, reason: reason) : nil, nil)
        }
        entry.state = .draining
        return (.draining(name: name, reason: reason), running)
      } ?? nil
    }

    /// The drained pool has stopped.
    func drained(_ name: String, pool: PluginPool, reason: OfflineReason) {
      self.change(name) { entry in
        if entry.running?.pool === pool { entry.running = nil }
        entry.state = reason == .disabled ? .disabled : .offline(reason)
        return (.offline(name: name, reason: reason), ())
      }
    }

    /// The pool's `run()` returned. Unless the manager stopped it (draining) or its start is
    /// being reported, the pool gave up: the plugin is offline.
    func poolEnded(_ name: String, pool: PluginPool, error: PluginError?) {
      self.change(name) { entry in
        guard entry.running?.pool === pool, entry.state.isServing else { return (nil, ()) }
        entry.running = nil
        let failure =
          error
          ?? PluginError(code: .notRunning, message: "plugin \(name)'s pool stopped", pluginPath: entry.path)
        entry.state = .offline(.failed(failure))
        return (.offline(name: name, reason: .failed(failure)), ())
      }
    }

    /// An instance of the pool was replaced by the process `pid`; the state names the first
    /// instance's process, which may be the new one.
    func restarted(_ name: String, pool: PluginPool, pid: Int32, firstPID: Int32) {
      self.change(name) { entry in
        guard entry.running?.pool === pool else { return (nil, ()) }
        if case .online(_, let digest) = entry.state, firstPID != 0 {
          entry.state = .online(pid: firstPID, digest: digest)
        }
        return (.restarted(name: name, pid: pid), ())
      }
    }

    /// Publishes an event of the pool's (an instance restarted, unhealthy) while it is the
    /// plugin's current pool.
    func publish(_ event: Event, from pool: PluginPool) {
      self.change(event.name) { entry in
        guard entry.running?.pool === pool else { return (nil, ()) }
        return (event, ())
      }
    }

    private static func pid(of state: PluginState) -> Int32 {
      switch state {
      case .online(let pid, _), .swapping(let pid, _, _): pid
      default: 0
      }
    }

    // MARK: - Snapshots and subscribers

    var statuses: [String: PluginStatus] {
      self.state.withLock { state in
        var statuses: [String: PluginStatus] = [:]
        for (name, entry) in state.entries {
          statuses[name] = PluginStatus(name: name, path: entry.path, state: entry.state)
        }
        return statuses
      }
    }

    func status(_ name: String) -> PluginStatus? {
      self.state.withLock { state in
        state.entries[name].map { PluginStatus(name: name, path: $0.path, state: $0.state) }
      }
    }

    func unavailable(_ name: String) -> PluginError {
      let description = self.state.withLock { state -> String in
        guard let entry = state.entries[name] else { return "not found in the plugin directories" }
        return "\(entry.state)"
      }
      return PluginError(code: .unavailable, message: "plugin \(name) is not online: \(description)")
    }

    func subscribe() -> AsyncStream<Event> {
      EventSubscribers.subscribe { continuation in
        self.state.withLock { state in
          if case .finished = state.phase { return nil }
          return state.subscribers.add(continuation)
        }
      } unregister: { [weak self] id in
        self?.state.withLock { $0.subscribers.remove(id) }
      }
    }

    /// The manager has stopped: the event sequences end.
    func finish() {
      let subscribers = self.state.withLock { state in
        state.phase = .finished
        return state.subscribers.removeAll()
      }
      for subscriber in subscribers { subscriber.finish() }
    }
  }
}
