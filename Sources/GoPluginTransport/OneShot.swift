import Synchronization

/// A value that is set once and awaited by any number of tasks: the start result, the exit of a
/// process, a shutdown request. Waiters that are cancelled stop waiting; the value stays.
package final class OneShot<Value: Sendable>: Sendable {
  private struct State {
    var value: Value?
    var waiters: [Int: CheckedContinuation<Value?, Never>] = [:]
    var nextWaiter = 0
  }

  private let state = Mutex(State())

  package init() {}

  /// Sets the value and wakes every waiter; later calls are ignored. Returns whether this call
  /// set it.
  @discardableResult
  package func fulfil(_ value: Value) -> Bool {
    let waiters: [CheckedContinuation<Value?, Never>]? = self.state.withLock { state in
      guard state.value == nil else { return nil }
      state.value = value
      defer { state.waiters = [:] }
      return Array(state.waiters.values)
    }
    guard let waiters else { return false }
    for waiter in waiters { waiter.resume(returning: value) }
    return true
  }

  package var current: Value? { self.state.withLock { $0.value } }

  /// Waits for the value; `nil` only if the waiting task was cancelled first.
  package func wait() async -> Value? {
    let id = self.state.withLock { state -> Int in
      defer { state.nextWaiter += 1 }
      return state.nextWaiter
    }
    return await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<Value?, Never>) in
        let immediate: Value?? = self.state.withLock { state in
          if let value = state.value { return .some(value) }
          if Task.isCancelled { return .some(nil) }
          state.waiters[id] = continuation
          return .none
        }
        if let immediate { continuation.resume(returning: immediate) }
      }
    } onCancel: {
      let waiter = self.state.withLock { $0.waiters.removeValue(forKey: id) }
      waiter?.resume(returning: nil)
    }
  }

  /// Waits for the value even if the waiting task is cancelled: for teardown, which must see
  /// the end of what it stops (a process reaped, a run finished) before it returns.
  package func valueIgnoringCancellation() async -> Value {
    await withCheckedContinuation { (continuation: CheckedContinuation<Value?, Never>) in
      let immediate: Value? = self.state.withLock { state in
        if let value = state.value { return value }
        defer { state.nextWaiter += 1 }
        state.waiters[state.nextWaiter] = continuation
        return nil
      }
      if let immediate { continuation.resume(returning: immediate) }
    }!
  }

  /// Waits for the value for at most `timeout`; `nil` if it did not come in time.
  package func wait(timeout: Duration) async -> Value? {
    if let value = self.current { return value }
    return await withTaskGroup(of: Value?.self) { group in
      group.addTask { await self.wait() }
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
