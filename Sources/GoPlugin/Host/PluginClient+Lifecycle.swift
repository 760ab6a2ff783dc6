import Synchronization

extension PluginClient {
  /// Where a client is in its one life. Every change goes through ``transition(_:)``, which
  /// also wakes the tasks waiting for what it reached, so that no two signals can disagree.
  ///
  /// ```
  ///          run()                  started
  ///   idle ──────────▶ starting ──────────────▶ running(Session)
  ///    │               ↻ stop, detach           ↻ stop, detach (recorded in the phase)
  ///    │                  │                        │
  ///    │                  │ launch or start        │ exit recorded: stopped, exited
  ///    │                  │ failed                 │ by itself, or let go of
  ///    │                  ▼                        │
  ///    │               exited(exit, start) ◀───────┘
  ///    │                  │
  ///    │ kill()           │ run() returns
  ///    │                  ▼
  ///    └─────────────▶ finished(exit, start)
  /// ```
  ///
  /// A stop asked for wins over a detach: a client asked for both stops its plugin.
  enum Phase: Sendable {
    /// Made, not run yet.
    case idle
    /// ``run()`` is launching the plugin (or reattaching to it) and connecting.
    case starting(Request?)
    /// The plugin started and takes calls.
    case running(Session, Request?)
    /// The plugin's process ended, or the client let go of it; ``run()`` is closing what it
    /// opened. How the start went is `nil` only while a failed start is being reported.
    case exited(PluginExit, start: Result<Session, PluginError>?)
    /// ``run()`` has returned, or the client was stopped before it ran.
    case finished(PluginExit, start: Result<Session, PluginError>)
  }

  /// What the host asked of a starting or running plugin.
  enum Request: Sendable {
    /// Stop it (``kill()``, a graceful shutdown of the service group).
    case stop
    /// Let go of it, leaving it running (``detach()``).
    case detach
  }

  enum Transition {
    /// ``run()`` begins; applies only to an idle client.
    case run
    /// Records a stop request; an idle client is finished at once, as never started.
    case stop
    /// Records a detach request; applies while ``run()`` runs.
    case detach
    /// The launched process, kept for what it last wrote to stderr.
    case launched(PluginProcess)
    /// The plugin started and takes calls.
    case started(Session)
    /// How the plugin ended; the first exit recorded is the one kept.
    case exited(PluginExit)
    /// The start failed; the exit, if none was recorded, is a failed launch.
    case startFailed(PluginError)
    /// ``run()`` returns.
    case finish
  }

  /// What a task can wait for.
  enum Milestone: Equatable, Sendable {
    /// The plugin started or failed to.
    case startOutcome
    /// A stop was asked for (or there is nothing left to stop).
    case stopRequested
    /// A stop or a detach was asked for (or there is nothing left to stop or let go of).
    case stopOrDetachRequested
    /// The plugin's process ended or was let go of.
    case exited
    /// ``run()`` has returned.
    case finished
  }

  struct LifecycleState {
    var phase = Phase.idle
    /// The launched process; still there once it has exited, for its last stderr lines.
    var process: PluginProcess?
    var waiters: [Int: Waiter] = [:]
    var nextWaiter = 0
  }

  struct Waiter: Sendable {
    let milestone: Milestone
    let continuation: CheckedContinuation<Phase?, Never>
  }

  var phase: Phase { self.state.withLock { $0.phase } }

  /// The one place the client's state changes. Returns whether the transition applied: for
  /// ``Transition/detach``, whether ``run()`` is running and there may be something to let go of;
  /// for ``Transition/exited(_:)``, whether this was the exit recorded.
  @discardableResult
  func transition(_ transition: Transition) -> Bool {
    let (applied, phase, woken) = self.state.withLock { state -> (Bool, Phase, [Waiter]) in
      let applied = Self.apply(transition, to: &state, notStarted: self.stoppedBeforeStart)
      guard applied else { return (false, state.phase, []) }
      let phase = state.phase
      let reached = state.waiters.filter { phase.hasReached($0.value.milestone) }
      for id in reached.keys { state.waiters[id] = nil }
      return (true, phase, Array(reached.values))
    }
    for waiter in woken { waiter.continuation.resume(returning: phase) }
    return applied
  }

  private static func apply(
    _ transition: Transition,
    to state: inout LifecycleState,
    notStarted: @autoclosure () -> PluginError
  ) -> Bool {
    switch (transition, state.phase) {
    case (.run, .idle):
      state.phase = .starting(nil)
    case (.stop, .idle):
      state.phase = .finished(PluginExit(status: nil, reason: .notStarted), start: .failure(notStarted()))
    case (.stop, .starting):
      state.phase = .starting(.stop)
    case (.stop, .running(let session, _)):
      state.phase = .running(session, .stop)
    case (.detach, .starting(nil)):
      state.phase = .starting(.detach)
    case (.detach, .running(let session, nil)):
      state.phase = .running(session, .detach)
    case (.detach, .starting), (.detach, .running), (.detach, .exited):
      // Already asked to stop (which wins) or to let go, or already gone: nothing changes,
      // but the run is still there to wait for.
      return true
    case (.launched(let process), _):
      state.process = process
    case (.started(let session), .starting(let request)):
      state.phase = .running(session, request)
    case (.exited(let exit), .starting):
      state.phase = .exited(exit, start: nil)
    case (.exited(let exit), .running(let session, _)):
      state.phase = .exited(exit, start: .success(session))
    case (.startFailed(let error), .starting):
      state.phase = .exited(PluginExit(status: nil, reason: .launchFailed), start: .failure(error))
    case (.startFailed(let error), .exited(let exit, nil)):
      state.phase = .exited(exit, start: .failure(error))
    case (.startFailed, .running(let session, _)):
      // A start reported twice keeps its first outcome.
      state.phase = .exited(PluginExit(status: nil, reason: .launchFailed), start: .success(session))
    case (.finish, .exited(let exit, let start)):
      state.phase = .finished(exit, start: start ?? .failure(notStarted()))
    case (.finish, .starting):
      // Every way out of run() records an exit first; this only keeps waiters from hanging.
      state.phase = .finished(PluginExit(status: nil, reason: .launchFailed), start: .failure(notStarted()))
    case (.finish, .running(let session, _)):
      state.phase = .finished(PluginExit(status: nil, reason: .killed), start: .success(session))
    default:
      return false
    }
    return true
  }

  private var stoppedBeforeStart: PluginError {
    self.error(.notRunning, "the plugin was stopped before it was started")
  }

  /// Waits until `milestone` is reached and returns the phase that reached it; `nil` only if
  /// the waiting task was cancelled first.
  func wait(until milestone: Milestone) async -> Phase? {
    let id = self.state.withLock { state in
      defer { state.nextWaiter += 1 }
      return state.nextWaiter
    }
    return await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<Phase?, Never>) in
        let immediate: Phase?? = self.state.withLock { state in
          if state.phase.hasReached(milestone) { return .some(state.phase) }
          if Task.isCancelled { return .some(nil) }
          state.waiters[id] = Waiter(milestone: milestone, continuation: continuation)
          return .none
        }
        if let immediate { continuation.resume(returning: immediate) }
      }
    } onCancel: {
      let waiter = self.state.withLock { $0.waiters.removeValue(forKey: id) }
      waiter?.continuation.resume(returning: nil)
    }
  }

  /// Waits until `milestone` is reached even if the waiting task is cancelled: for teardown,
  /// which must see the end of what it stops before it returns.
  func waitIgnoringCancellation(until milestone: Milestone) async -> Phase {
    await withCheckedContinuation { (continuation: CheckedContinuation<Phase?, Never>) in
      let immediate: Phase? = self.state.withLock { state in
        if state.phase.hasReached(milestone) { return state.phase }
        defer { state.nextWaiter += 1 }
        state.waiters[state.nextWaiter] = Waiter(milestone: milestone, continuation: continuation)
        return nil
      }
      if let immediate { continuation.resume(returning: immediate) }
    }!
  }

  /// The plugin's exit, waiting for it for at most `timeout`; `nil` if it did not come in time.
  func exit(within timeout: Duration) async -> PluginExit? {
    if let exit = self.phase.exit { return exit }
    return await withTaskGroup(of: PluginExit?.self) { group in
      group.addTask { await self.wait(until: .exited)?.exit }
      group.addTask {
        try? await Task.sleep(for: timeout)
        return nil
      }
      let first = await group.next() ?? nil
      group.cancelAll()
      return first
    }
  }
}

extension PluginClient.Phase {
  /// How the plugin ended, once it has.
  var exit: PluginExit? {
    switch self {
    case .idle, .starting, .running: nil
    case .exited(let exit, _), .finished(let exit, _): exit
    }
  }

  /// How the start went, once it is known.
  var start: Result<PluginClient.Session, PluginError>? {
    switch self {
    case .idle, .starting: nil
    case .running(let session, _): .success(session)
    case .exited(_, let start): start
    case .finished(_, let start): start
    }
  }

  /// Whether a stop was asked for, or there is nothing left to stop.
  var stopRequested: Bool { self.hasReached(.stopRequested) }

  /// Whether the host asked to let go of the plugin and not to stop it.
  var detachRequested: Bool {
    switch self {
    case .starting(.detach?), .running(_, .detach?): true
    default: false
    }
  }

  func hasReached(_ milestone: PluginClient.Milestone) -> Bool {
    switch self {
    case .idle:
      return false
    case .starting(let request):
      return milestone.isMet(by: request)
    case .running(_, let request):
      return milestone == .startOutcome || milestone.isMet(by: request)
    case .exited:
      return milestone == .startOutcome ? self.start != nil : milestone != .finished
    case .finished:
      return true
    }
  }
}

extension PluginClient.Milestone {
  fileprivate func isMet(by request: PluginClient.Request?) -> Bool {
    switch (self, request) {
    case (.stopRequested, .stop?), (.stopOrDetachRequested, _?): true
    default: false
    }
  }
}
