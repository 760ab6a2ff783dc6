import Synchronization

/// Lets one task through at a time, the others waiting in arrival order. Unlike a lock it may
/// be held across suspension points and released from another task.
final class AsyncGate: Sendable {
  private struct State {
    var busy = false
    var waiters: [CheckedContinuation<Void, Never>] = []
  }

  private let state = Mutex(State())

  func acquire() async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      let enter = self.state.withLock { state in
        guard state.busy else {
          state.busy = true
          return true
        }
        state.waiters.append(continuation)
        return false
      }
      if enter { continuation.resume() }
    }
  }

  func release() {
    let next = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
      guard !state.waiters.isEmpty else {
        state.busy = false
        return nil
      }
      return state.waiters.removeFirst()
    }
    next?.resume()
  }
}

/// An action that runs at most once, whichever of several paths gets to it first.
final class OnceAction: Sendable {
  private let action: Mutex<(@Sendable () -> Void)?>

  init(_ action: @escaping @Sendable () -> Void) {
    self.action = Mutex(action)
  }

  func run() {
    let action = self.action.withLock { action in
      defer { action = nil }
      return action
    }
    action?()
  }
}
