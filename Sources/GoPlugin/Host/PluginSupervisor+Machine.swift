import Synchronization

extension PluginSupervisor {
  /// A running plugin that calls can be routed to.
  struct Route: Sendable {
    let client: PluginClient
    let session: PluginClient.Session
  }

  /// The supervisor's state: one enum behind one lock, with the event subscribers and the
  /// callers waiting for the plugin to be ready. Every transition happens in ``transition(_:)``,
  /// which also publishes its event, so the events come in the order of the transitions.
  ///
  /// Kept apart from the supervisor because the routing transport holds it for as long as a
  /// typed client lives; it must not keep the supervisor alive.
  final class Machine: Sendable {
    enum Phase {
      /// Not run yet.
      case idle
      /// A plugin process is being launched.
      case starting
      /// The plugin takes calls.
      case running(Route)
      /// The plugin exited; a restart may follow.
      case down
      /// Stopped (`nil`) or given up on: for good.
      case finished(PluginError?)
    }

    enum Transition {
      case start
      case ready(Route)
      case unhealthy(PluginError)
      case exited(PluginExit, standardError: [String])
      case restart(after: Duration)
      case finish(PluginError?)
    }

    private struct State {
      var phase = Phase.idle
      var subscribers = EventSubscribers<Event>()
      var waiters: [Int: CheckedContinuation<Route?, Never>] = [:]
      var nextID = 0
      var restarts = RestartHistory()
    }

    private let state = Mutex(State())
    let pluginPath: String

    init(pluginPath: String) {
      self.pluginPath = pluginPath
    }

    /// Leaves `idle`; false if the machine has run (or is running) already.
    func claim() -> Bool {
      self.state.withLock { state in
        guard case .idle = state.phase else { return false }
        state.phase = .down
        return true
      }
    }

    /// Moves to the phase `transition` leads to and publishes its event. Nothing moves once
    /// finished.
    func transition(_ transition: Transition) {
      typealias Wake = (subscribers: [AsyncStream<Event>.Continuation], waiters: [CheckedContinuation<Route?, Never>])
      let (wake, route, finished): (Wake, Route?, Bool) = self.state.withLock { state in
        if case .finished = state.phase { return (([], []), nil, false) }
        // A stop has no event of its own: the plugin's exit, reason `stopped`, said it.
        let event: Event?
        switch transition {
        case .start:
          state.phase = .starting
          event = .starting
        case .ready(let route):
          state.phase = .running(route)
          event = .ready(pid: route.session.info.pid, version: route.session.info.negotiatedVersion)
        case .unhealthy(let error):
          state.phase = .down
          event = .unhealthy(error)
        case .exited(let exit, let standardError):
          state.phase = .down
          event = .exited(exit, standardError: standardError)
        case .restart(let delay):
          state.phase = .down
          event = .restarting(after: delay)
        case .finish(let error):
          state.phase = .finished(error)
          event = error.map { .failed($0) }
        }
        if let event { state.subscribers.publish(event) }
        switch state.phase {
        case .running(let route):
          defer { state.waiters = [:] }
          return (([], Array(state.waiters.values)), route, false)
        case .finished:
          defer { state.waiters = [:] }
          return ((state.subscribers.removeAll(), Array(state.waiters.values)), nil, true)
        default:
          return (([], []), nil, false)
        }
      }
      for waiter in wake.waiters { waiter.resume(returning: route) }
      if finished {
        for subscriber in wake.subscribers { subscriber.finish() }
      }
    }

    /// Records a restart now, and says how long to wait before it; `nil` when the policy's
    /// limit within its window has been reached.
    func scheduleRestart(_ policy: RestartPolicy) -> (delay: Duration?, restarts: Int) {
      self.state.withLock { $0.restarts.schedule(policy) }
    }

    /// Events from now on; the sequence ends after the last event.
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

    /// The plugin to send a call to, if one is running right now.
    var currentRoute: Route? {
      self.state.withLock { state in
        guard case .running(let route) = state.phase, !route.client.hasExited else { return nil }
        return route
      }
    }

    /// The running plugin, waiting for it up to `timeout` (forever when `nil`) while it is
    /// starting or down; `nil` if it did not become ready in time, the supervisor finished, or
    /// the task was cancelled.
    func route(waitingUpTo timeout: Duration?) async -> Route? {
      if let route = self.currentRoute { return route }
      guard let timeout else { return await self.waitForRoute() }
      guard timeout > .zero else { return nil }
      return await withTaskGroup(of: Route?.self) { group in
        group.addTask { await self.waitForRoute() }
        group.addTask {
          try? await Task.sleep(for: timeout)
          return nil
        }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first
      }
    }

    private func waitForRoute() async -> Route? {
      let id = self.state.withLock { state in
        defer { state.nextID += 1 }
        return state.nextID
      }
      return await withTaskCancellationHandler {
        await withCheckedContinuation { (continuation: CheckedContinuation<Route?, Never>) in
          let immediate: Route?? = self.state.withLock { state in
            if Task.isCancelled { return .some(nil) }
            switch state.phase {
            case .running(let route) where !route.client.hasExited: return .some(route)
            case .finished: return .some(nil)
            default:
              state.waiters[id] = continuation
              return .none
            }
          }
          if let immediate { continuation.resume(returning: immediate) }
        }
      } onCancel: {
        let waiter = self.state.withLock { $0.waiters.removeValue(forKey: id) }
        waiter?.resume(returning: nil)
      }
    }

    /// Why no call can be sent now, for a caller that was refused.
    func unavailable() -> PluginError {
      let message = self.state.withLock { state -> String in
        switch state.phase {
        case .idle: return "the plugin's supervisor has not been started"
        case .starting: return "the plugin is starting"
        case .running, .down: return "the plugin is down and being restarted"
        case .finished(nil): return "the plugin's supervisor has stopped"
        case .finished(let error?): return "the plugin's supervisor gave up on it: \(error.message)"
        }
      }
      return PluginError(code: .unavailable, message: message, pluginPath: self.pluginPath)
    }
  }
}
