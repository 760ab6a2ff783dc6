import Logging
import Synchronization

extension PluginPool {
  /// One launch of the plugin in one place of the pool. What changes about it lives in the
  /// pool's state; the two signals only wake its task for what the state decided.
  final class Member: Sendable {
    enum Kind: Sendable, Hashable {
      /// Started by ``PluginPool/run()``; ``PluginPool/ready()`` waits for it.
      case initial
      /// Replaces the process `oldPID`, which crashed or turned unhealthy.
      case replacement(oldPID: Int32)
      /// A step of a rolling swap.
      case swap
    }

    let id: Int
    let slot: Int
    let kind: Kind
    let client: PluginClient
    /// How long to wait before launching: a replacement's restart delay.
    let delay: Duration
    /// Fulfilled when the pool wants the member gone: drained if it is ready, then stopped.
    let retire = OneShot<Void>()
    /// Fulfilled when a draining member has no call left in flight.
    let drained = OneShot<Void>()

    init(id: Int, slot: Int, kind: Kind, client: PluginClient, delay: Duration) {
      self.id = id
      self.slot = slot
      self.kind = kind
      self.client = client
      self.delay = delay
    }

    var path: String { self.client.configuration.command.executable }
  }

  /// A ready member a call was sent to; given back with ``Machine/release(_:)``.
  struct Lease: Sendable {
    let member: Int
    /// Which lease of the pool it is; `0` for a look that reserved nothing.
    let number: Int
    let route: PluginSupervisor.Route
  }

  /// The pool's state: every member's phase and outstanding calls, the per-place restart
  /// history, the swap in progress, the subscribers and the tasks waiting: one struct behind
  /// one lock. Every change happens in one method here and publishes its events under the
  /// lock, so that they come in the order of the changes; what must happen outside the lock
  /// (resuming a task, waking a member) is collected and done after it.
  ///
  /// Kept apart from the pool because the routing transport holds it for as long as a typed
  /// client lives; it must not keep the pool alive.
  final class Machine: Sendable {
    enum Phase {
      case scheduled
      case starting
      case ready(PluginSupervisor.Route)
      case draining(PluginSupervisor.Route)
      case stopping
    }

    enum Lifecycle {
      case idle
      case running
      /// Draining and stopping every member; `run()` ends once they are gone.
      case stopping
      case finished
    }

    enum Readiness {
      case pending
      case ready
      case failed(PluginError)
    }

    struct Entry {
      let member: Member
      var phase = Phase.scheduled
      var pid: Int32?
      var outstanding = 0
      /// When it was last given a call, to take turns among equally busy members.
      var lastLease = 0
      /// The leases whose calls broke as a dying plugin's do, while they wait to see whether it
      /// exited: no call goes to a member that may be dead.
      var suspects: Set<Int> = []
    }

    struct Place {
      /// What a replacement in this place runs: the last configuration swapped to here.
      var configuration: PluginClientConfiguration
      var restarts = PluginSupervisor.RestartHistory()
    }

    struct SwapStep {
      let slot: Int
      let member: Int
      let continuation: CheckedContinuation<PluginError?, Never>
      var newPID: Int32?
      var oldPID: Int32?
      /// The members the new one took the place of, until they have stopped.
      var awaiting: Set<Int> = []
    }

    /// An attempt to take a ready member for a call.
    enum Attempt: Sendable {
      case leased(Lease)
      /// The pool stopped, or the waiting task was cancelled.
      case closed
      /// Something changed; look again.
      case retry
    }

    struct State {
      var lifecycle = Lifecycle.idle
      /// Whether ``PluginPool/run()`` has been called.
      var ran = false
      var failure: PluginError?
      var readiness = Readiness.pending
      var initialPending = 0
      var entries: [Int: Entry] = [:]
      var places: [Place] = []
      var swap: SwapStep?
      var nextID = 0
      var leases = 0
      var subscribers = EventSubscribers<Event>()
      var leaseWaiters: [Int: CheckedContinuation<Attempt, Never>] = [:]
      var readyWaiters: [Int: CheckedContinuation<PluginError?, Never>] = [:]

      mutating func makeID() -> Int {
        defer { self.nextID += 1 }
        return self.nextID
      }

      func publish(_ event: Event) {
        self.subscribers.publish(event)
      }
    }

    /// What to do once the lock is released.
    private struct Effects {
      var actions: [@Sendable () -> Void] = []
      mutating func add(_ action: @escaping @Sendable () -> Void) { self.actions.append(action) }
      func run() { for action in self.actions { action() } }
    }

    private let state = Mutex(State())
    let pluginPath: String
    let logger: Logger
    let restartPolicy: PluginSupervisor.RestartPolicy
    /// The members to launch, for the run loop.
    let launches: AsyncStream<Member>
    private let launch: AsyncStream<Member>.Continuation

    init(configuration: Configuration, logger: Logger) {
      self.pluginPath = configuration.client.command.executable
      self.logger = logger
      self.restartPolicy = configuration.restart
      (self.launches, self.launch) = AsyncStream.makeStream(of: Member.self)
    }

    // MARK: - Lifecycle

    enum StartOutcome {
      case started
      /// Stopped before it was run: nothing to do.
      case stoppedBeforeStart
      case ranBefore
    }

    /// Leaves `idle` and schedules the initial members.
    func start(_ configuration: Configuration) -> StartOutcome {
      self.state.withLock { state in
        guard case .idle = state.lifecycle else { return state.ran ? .ranBefore : .stoppedBeforeStart }
        state.ran = true
        state.lifecycle = .running
        state.places = Array(repeating: Place(configuration: configuration.client), count: configuration.instances)
        state.initialPending = configuration.instances
        for slot in 0..<configuration.instances {
          self.add(slot: slot, kind: .initial, configuration: configuration.client, delay: .zero, to: &state)
        }
        return .started
      }
    }

    private func add(
      slot: Int, kind: Member.Kind, configuration: PluginClientConfiguration, delay: Duration, to state: inout State
    ) {
      let member = Member(
        id: state.makeID(), slot: slot, kind: kind,
        client: PluginClient(configuration: configuration, logger: self.logger),
        delay: delay)
      state.entries[member.id] = Entry(member: member)
      self.launch.yield(member)
    }

    /// Takes every member out: ready ones drain, the others stop. With a failure, the pool
    /// gave up, and ``PluginPool/run()`` will throw it.
    func stop(failure: PluginError? = nil) {
      var effects = Effects()
      self.state.withLock { state in
        self.stop(failure: failure, state: &state, effects: &effects)
      }
      effects.run()
    }

    private func stop(failure: PluginError?, state: inout State, effects: inout Effects) {
      switch state.lifecycle {
      case .idle:
        state.lifecycle = .stopping
      case .running:
        state.lifecycle = .stopping
      case .stopping, .finished:
        return
      }
      if let failure {
        state.failure = failure
        state.publish(.failed(failure))
      }
      let refusal =
        failure ?? PluginError(code: .unavailable, message: "the pool was stopped", pluginPath: self.pluginPath)
      if case .pending = state.readiness { state.readiness = .failed(refusal) }
      self.wakeReadyWaiters(&state, &effects)
      if let swap = state.swap {
        state.swap = nil
        let error = PluginError(
          code: .unavailable, message: "the pool stopped during the swap", pluginPath: self.pluginPath)
        let continuation = swap.continuation
        effects.add { continuation.resume(returning: error) }
      }
      for id in state.entries.keys { self.retire(id, &state, &effects) }
      self.wakeLeaseWaiters(&state, &effects)
      self.finishIfDone(&state, &effects)
    }

    private func finishIfDone(_ state: inout State, _ effects: inout Effects) {
      guard case .stopping = state.lifecycle, state.entries.isEmpty else { return }
      state.lifecycle = .finished
      let subscribers = state.subscribers.removeAll()
      let launch = self.launch
      effects.add {
        launch.finish()
        for subscriber in subscribers { subscriber.finish() }
      }
      self.wakeLeaseWaiters(&state, &effects)
    }

    /// Asks a member to go: a ready one drains first; the others stop at once.
    private func retire(_ id: Int, _ state: inout State, _ effects: inout Effects) {
      guard var entry = state.entries[id] else { return }
      switch entry.phase {
      case .scheduled, .starting:
        entry.phase = .stopping
      case .ready(let route):
        entry.phase = .draining(route)
        if entry.outstanding == 0 {
          let member = entry.member
          effects.add { member.drained.fulfil(()) }
        }
      case .draining, .stopping:
        return
      }
      state.entries[id] = entry
      let member = entry.member
      effects.add { member.retire.fulfil(()) }
    }

    var failure: PluginError? { self.state.withLock { $0.failure } }

    // MARK: - A member's life

    /// The member's launch is due; false if it was taken out meanwhile (it is not launched).
    func launching(_ member: Member) -> Bool {
      self.state.withLock { state in
        guard case .scheduled? = state.entries[member.id]?.phase else { return false }
        state.entries[member.id]?.phase = .starting
        return true
      }
    }

    /// The member started and passed its first health check: calls may go to it. False if it
    /// was taken out meanwhile.
    func ready(_ member: Member, route: PluginSupervisor.Route) -> Bool {
      var effects = Effects()
      let ready: Bool = self.state.withLock { state in
        guard var entry = state.entries[member.id], case .starting = entry.phase else { return false }
        let pid = route.session.info.pid
        entry.phase = .ready(route)
        entry.pid = pid
        state.entries[member.id] = entry
        state.publish(.ready(instance: member.slot, pid: pid, version: route.session.info.negotiatedVersion))
        switch member.kind {
        case .initial:
          state.initialPending -= 1
          if state.initialPending == 0, case .pending = state.readiness {
            state.readiness = .ready
            self.wakeReadyWaiters(&state, &effects)
          }
        case .replacement(let oldPID):
          state.publish(.replaced(instance: member.slot, oldPID: oldPID, newPID: pid))
        case .swap:
          if var swap = state.swap, swap.member == member.id {
            state.places[member.slot].configuration = member.client.configuration
            swap.newPID = pid
            for (id, other) in state.entries where other.member.slot == member.slot && id != member.id {
              if case .ready = other.phase, swap.oldPID == nil { swap.oldPID = other.pid }
              swap.awaiting.insert(id)
              self.retire(id, &state, &effects)
            }
            state.swap = swap
            self.finishSwapStepIfDone(&state, &effects)
          }
        }
        self.wakeLeaseWaiters(&state, &effects)
        return true
      }
      effects.run()
      return ready
    }

    /// The health check found a ready member unhealthy: it takes no more calls, drains (a
    /// plugin that says it cannot serve may still finish what it has), and is stopped, while
    /// its replacement starts.
    func unhealthy(_ member: Member, _ error: PluginError) {
      var effects = Effects()
      self.state.withLock { state in
        guard let entry = state.entries[member.id], case .ready = entry.phase, let pid = entry.pid else { return }
        state.publish(.unhealthy(instance: member.slot, pid: pid, error))
        self.retire(member.id, &state, &effects)
        if case .running = state.lifecycle { self.replace(slot: member.slot, oldPID: pid, &state, &effects) }
      }
      effects.run()
    }

    /// Whether the member is draining: it waits for its calls before it stops.
    func isDraining(_ member: Member) -> Bool {
      self.state.withLock { state in
        guard case .draining? = state.entries[member.id]?.phase else { return false }
        return true
      }
    }

    /// A drained member is being stopped.
    func stopping(_ member: Member) {
      self.state.withLock { state in
        guard state.entries[member.id] != nil else { return }
        state.entries[member.id]?.phase = .stopping
      }
    }

    /// The member's task ends: its process has exited (`exit`), or was never launched (`nil`).
    /// `startFailure` says why a member that never became ready failed.
    func ended(_ member: Member, exit: PluginExit?, startFailure: PluginError?, cancelled: Bool) {
      var effects = Effects()
      self.state.withLock { state in
        guard let entry = state.entries.removeValue(forKey: member.id) else { return }
        let replace: Int32?
        switch entry.phase {
        case .scheduled:
          replace = nil
        case .starting:
          let error = self.startError(member, startFailure, exit: exit)
          if !cancelled { state.publish(.startFailed(instance: member.slot, error)) }
          replace = nil
          self.startFailed(member, error, cancelled: cancelled, &state, &effects)
        case .ready where cancelled:
          if let pid = entry.pid, let exit { state.publish(.stopped(instance: member.slot, pid: pid, exit)) }
          replace = nil
        case .ready:
          if let pid = entry.pid, let exit { state.publish(.exited(instance: member.slot, pid: pid, exit)) }
          replace = entry.pid
        case .draining, .stopping:
          // Taken out by the pool; an unhealthy one's replacement is on its way already.
          if let pid = entry.pid, let exit { state.publish(.stopped(instance: member.slot, pid: pid, exit)) }
          replace = nil
        }
        if var swap = state.swap, swap.awaiting.remove(member.id) != nil {
          state.swap = swap
          self.finishSwapStepIfDone(&state, &effects)
        }
        if let oldPID = replace, !cancelled, case .running = state.lifecycle {
          self.replace(slot: member.slot, oldPID: oldPID, &state, &effects)
        }
        if cancelled { self.stop(failure: nil, state: &state, effects: &effects) }
        self.finishIfDone(&state, &effects)
      }
      effects.run()
    }

    private func startError(_ member: Member, _ failure: PluginError?, exit: PluginExit?) -> PluginError {
      if let failure { return failure }
      let ended = exit.map { " (\($0))" } ?? ""
      return PluginError(
        code: .notRunning, message: "the plugin ended before it was ready\(ended)", pluginPath: member.path)
    }

    private func startFailed(
      _ member: Member, _ error: PluginError, cancelled: Bool, _ state: inout State, _ effects: inout Effects
    ) {
      switch member.kind {
      case .initial:
        guard !cancelled else { return }
        let failure = PluginError(
          code: error.code, message: "instance \(member.slot) failed to start: \(error.message)",
          pluginPath: error.pluginPath ?? member.path, pid: error.pid, cause: error)
        self.stop(failure: failure, state: &state, effects: &effects)
      case .replacement(let oldPID):
        guard !cancelled, case .running = state.lifecycle else { return }
        self.replace(slot: member.slot, oldPID: oldPID, &state, &effects)
      case .swap:
        guard let swap = state.swap, swap.member == member.id else { return }
        state.swap = nil
        let failure = PluginError(
          code: error.code,
          message: "the swap stopped at instance \(member.slot): its new process failed to start: \(error.message)",
          pluginPath: error.pluginPath ?? member.path, pid: error.pid, cause: error)
        state.publish(.swapFailed(failure))
        let continuation = swap.continuation
        effects.add { continuation.resume(returning: failure) }
      }
    }

    /// Schedules a replacement in `slot` after the restart policy's delay, or gives up.
    private func replace(slot: Int, oldPID: Int32, _ state: inout State, _ effects: inout Effects) {
      let (delay, restarts) = state.places[slot].restarts.schedule(self.restartPolicy)
      guard let delay else {
        let error = PluginError(
          code: .restartLimitReached,
          message: "instance \(slot) was replaced \(restarts) times within \(self.restartPolicy.window); giving up",
          pluginPath: state.places[slot].configuration.command.executable)
        self.stop(failure: error, state: &state, effects: &effects)
        return
      }
      self.add(
        slot: slot, kind: .replacement(oldPID: oldPID), configuration: state.places[slot].configuration, delay: delay,
        to: &state)
    }

    private func finishSwapStepIfDone(_ state: inout State, _ effects: inout Effects) {
      guard let swap = state.swap, let newPID = swap.newPID, swap.awaiting.isEmpty else { return }
      state.swap = nil
      state.publish(.swapped(instance: swap.slot, oldPID: swap.oldPID ?? 0, newPID: newPID))
      let continuation = swap.continuation
      effects.add { continuation.resume(returning: nil) }
    }

    // MARK: - Swapping

    /// Launches a new member with `configuration` in `slot` and waits until it has taken the
    /// place of the old one (drained and stopped), or failed; `nil` when done.
    func swapStep(slot: Int, configuration: PluginClientConfiguration) async -> PluginError? {
      await withCheckedContinuation { (continuation: CheckedContinuation<PluginError?, Never>) in
        let refusal: PluginError? = self.state.withLock { state in
          guard case .running = state.lifecycle else { return self.unavailable(state) }
          guard state.swap == nil else {
            return PluginError(
              code: .invalidConfiguration, message: "another swap is in progress", pluginPath: self.pluginPath)
          }
          let id = state.nextID
          state.swap = SwapStep(slot: slot, member: id, continuation: continuation)
          self.add(slot: slot, kind: .swap, configuration: configuration, delay: .zero, to: &state)
          return nil
        }
        if let refusal { continuation.resume(returning: refusal) }
      }
    }

    // MARK: - Calls

    /// A ready member for a call, waiting for one up to `timeout` (forever when `nil`) while
    /// none is; `nil` if none became ready in time, the pool stopped, or the task was
    /// cancelled. With `reserve`, the call counts as outstanding on it until released.
    func lease(waitingUpTo timeout: Duration?, reserve: Bool = true) async -> Lease? {
      let deadline = timeout.map { ContinuousClock.now + $0 }
      while true {
        if let deadline, deadline <= .now {
          return self.state.withLock { state in
            if case .leased(let lease) = self.take(reserve: reserve, &state) { return lease }
            return nil
          }
        }
        let attempt: Attempt
        if let deadline {
          attempt = await withTaskGroup(of: Attempt?.self) { group -> Attempt in
            group.addTask { await self.attempt(reserve: reserve) }
            group.addTask {
              try? await Task.sleep(until: deadline, clock: .continuous)
              return nil
            }
            var outcome: Attempt?
            while let next = await group.next() {
              group.cancelAll()
              // A lease taken as the time ran out is still a lease: it must not be lost.
              if case .leased(let lease)? = next { return .leased(lease) }
              if let next, outcome == nil { outcome = next }
            }
            // The time ran out (the cancelled attempt says closed), or something changed.
            return outcome ?? .closed
          }
        } else {
          attempt = await self.attempt(reserve: reserve)
        }
        switch attempt {
        case .leased(let lease): return lease
        case .closed: return nil
        case .retry: if Task.isCancelled { return nil }
        }
      }
    }

    private func attempt(reserve: Bool) async -> Attempt {
      let id = self.state.withLock { $0.makeID() }
      return await withTaskCancellationHandler {
        await withCheckedContinuation { (continuation: CheckedContinuation<Attempt, Never>) in
          let now: Attempt? = self.state.withLock { state in
            if Task.isCancelled { return .closed }
            if let attempt = self.take(reserve: reserve, &state) { return attempt }
            state.leaseWaiters[id] = continuation
            return nil
          }
          if let now { continuation.resume(returning: now) }
        }
      } onCancel: {
        let waiter = self.state.withLock { $0.leaseWaiters.removeValue(forKey: id) }
        waiter?.resume(returning: .closed)
      }
    }

    /// The ready member with the fewest calls in flight (the longest unused among equals);
    /// `nil` if none is ready yet, `.closed` if none will be.
    private func take(reserve: Bool, _ state: inout State) -> Attempt? {
      switch state.lifecycle {
      case .stopping, .finished: return .closed
      case .idle, .running: break
      }
      var best: (id: Int, outstanding: Int, lastLease: Int, route: PluginSupervisor.Route)?
      for (id, entry) in state.entries {
        guard case .ready(let route) = entry.phase, !route.client.hasExited, entry.suspects.isEmpty else { continue }
        if let current = best, (current.outstanding, current.lastLease) <= (entry.outstanding, entry.lastLease) {
          continue
        }
        best = (id, entry.outstanding, entry.lastLease, route)
      }
      guard let best else { return nil }
      guard reserve else { return .leased(Lease(member: best.id, number: 0, route: best.route)) }
      state.leases += 1
      state.entries[best.id]?.outstanding += 1
      state.entries[best.id]?.lastLease = state.leases
      return .leased(Lease(member: best.id, number: state.leases, route: best.route))
    }

    /// The call on `lease` broke as it would if its member died: no call goes to the member
    /// until the lease is released (by then, its exit is known if it died).
    func suspect(_ lease: Lease) {
      self.state.withLock { state in
        _ = state.entries[lease.member]?.suspects.insert(lease.number)
      }
    }

    /// The call on `lease` ended; a draining member whose last call this was may stop.
    func release(_ lease: Lease) {
      var effects = Effects()
      let drained: Member? = self.state.withLock { state in
        guard var entry = state.entries[lease.member] else { return nil }
        entry.outstanding -= 1
        if entry.suspects.remove(lease.number) != nil, entry.suspects.isEmpty {
          // Cleared, or dead and about to be removed: the waiting calls look again.
          self.wakeLeaseWaiters(&state, &effects)
        }
        state.entries[lease.member] = entry
        guard entry.outstanding == 0, case .draining = entry.phase else { return nil }
        return entry.member
      }
      effects.run()
      drained?.drained.fulfil(())
    }

    private func wakeLeaseWaiters(_ state: inout State, _ effects: inout Effects) {
      let waiters = Array(state.leaseWaiters.values)
      state.leaseWaiters = [:]
      guard !waiters.isEmpty else { return }
      effects.add { for waiter in waiters { waiter.resume(returning: .retry) } }
    }

    // MARK: - Readiness, events, status

    /// Waits until every initial member is ready; `nil` then, or why they did not all become so.
    func waitUntilReady() async -> PluginError? {
      let id = self.state.withLock { $0.makeID() }
      return await withTaskCancellationHandler {
        await withCheckedContinuation { (continuation: CheckedContinuation<PluginError?, Never>) in
          let now: PluginError?? = self.state.withLock { state in
            if Task.isCancelled {
              return .some(PluginError(code: .unavailable, message: "cancelled", pluginPath: self.pluginPath))
            }
            switch state.readiness {
            case .ready: return .some(nil)
            case .failed(let error): return .some(error)
            case .pending:
              state.readyWaiters[id] = continuation
              return .none
            }
          }
          if let now { continuation.resume(returning: now) }
        }
      } onCancel: {
        let waiter = self.state.withLock { $0.readyWaiters.removeValue(forKey: id) }
        waiter?.resume(returning: PluginError(code: .unavailable, message: "cancelled", pluginPath: self.pluginPath))
      }
    }

    private func wakeReadyWaiters(_ state: inout State, _ effects: inout Effects) {
      let outcome: PluginError?
      switch state.readiness {
      case .pending: return
      case .ready: outcome = nil
      case .failed(let error): outcome = error
      }
      let waiters = Array(state.readyWaiters.values)
      state.readyWaiters = [:]
      effects.add { for waiter in waiters { waiter.resume(returning: outcome) } }
    }

    /// Events from now on; the sequence ends once the pool has stopped.
    func subscribe() -> AsyncStream<Event> {
      EventSubscribers.subscribe { continuation in
        self.state.withLock { state in
          if case .finished = state.lifecycle { return nil }
          return state.subscribers.add(continuation)
        }
      } unregister: { [weak self] id in
        self?.state.withLock { $0.subscribers.remove(id) }
      }
    }

    var instances: [InstanceStatus] {
      self.state.withLock { state in
        state.entries.values.sorted { ($0.member.slot, $0.member.id) < ($1.member.slot, $1.member.id) }.map { entry in
          let phase: InstanceStatus.State =
            switch entry.phase {
            case .scheduled: .scheduled
            case .starting: .starting
            case .ready: .ready
            case .draining: .draining
            case .stopping: .stopping
            }
          return InstanceStatus(
            instance: entry.member.slot, pid: entry.pid, state: phase, outstandingCalls: entry.outstanding,
            path: entry.member.path)
        }
      }
    }

    /// Why no call can be sent now, for a caller that was refused.
    func unavailable() -> PluginError {
      self.state.withLock { self.unavailable($0) }
    }

    private func unavailable(_ state: State) -> PluginError {
      let message: String
      switch state.lifecycle {
      case .idle: message = "the pool has not been started"
      case .running: message = "no instance of the pool is ready"
      case .stopping, .finished:
        message = state.failure.map { "the pool gave up: \($0.message)" } ?? "the pool has stopped"
      }
      return PluginError(code: .unavailable, message: message, pluginPath: self.pluginPath)
    }
  }
}
