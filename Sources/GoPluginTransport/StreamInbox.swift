import GRPCCore
import NIOCore
import Synchronization

/// What one side of a gRPC stream has received and its reader has not yet taken: filled from the
/// connection's event loop, read by exactly one task.
///
/// It holds no more than HTTP/2 flow control lets in; `consumed` hands back each element's size
/// once it is taken, and the connection turns that into window updates for the peer.
final class StreamInbox<Element: Sendable>: Sendable {
  private struct State {
    var buffer = CircularBuffer<Element>(initialCapacity: 2)
    var end: (any Error)?
    var ended = false
    var waiter: UnsafeContinuation<Element?, any Error>?
  }

  private let state = Mutex(State())
  private let consumed: @Sendable (Element) -> Void

  init(consumed: @escaping @Sendable (Element) -> Void = { _ in }) {
    self.consumed = consumed
  }

  func yield(_ element: Element) {
    let waiter = self.state.withLock { state -> UnsafeContinuation<Element?, any Error>? in
      guard !state.ended else { return nil }
      if let waiter = state.waiter {
        state.waiter = nil
        return waiter
      }
      state.buffer.append(element)
      return nil
    }
    if let waiter {
      waiter.resume(returning: element)
      self.consumed(element)
    }
  }

  /// Ends the sequence once what is buffered has been read; with an error, the reader gets it
  /// after the buffered elements.
  func finish(throwing error: (any Error)? = nil) {
    let waiter = self.state.withLock { state -> UnsafeContinuation<Element?, any Error>? in
      guard !state.ended else { return nil }
      state.ended = true
      state.end = error
      defer { state.waiter = nil }
      return state.waiter
    }
    if let error {
      waiter?.resume(throwing: error)
    } else {
      waiter?.resume(returning: nil)
    }
  }

  /// Ends the sequence now, dropping what is buffered: the stream was reset.
  func fail(_ error: any Error) {
    let waiter = self.state.withLock { state -> UnsafeContinuation<Element?, any Error>? in
      state.buffer.removeAll()
      guard !state.ended else {
        if state.end == nil { state.end = error }
        return nil
      }
      state.ended = true
      state.end = error
      defer { state.waiter = nil }
      return state.waiter
    }
    waiter?.resume(throwing: error)
  }

  private static var cancelled: RPCError { RPCError(code: .cancelled, message: "the call's task was cancelled") }

  private enum Immediate {
    case element(Element)
    case end((any Error)?)
    case wait
  }

  private func takeImmediate(_ state: inout State) -> Immediate {
    if let element = state.buffer.popFirst() { return .element(element) }
    if state.ended {
      let end = state.end
      // One error per reader: after it, the sequence is simply over.
      state.end = nil
      return .end(end)
    }
    return .wait
  }

  func next() async throws -> Element? {
    switch self.state.withLock({ self.takeImmediate(&$0) }) {
    case .element(let element):
      self.consumed(element)
      return element
    case .end(let error):
      if let error { throw error }
      return nil
    case .wait:
      break
    }
    return try await withTaskCancellationHandler {
      try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Element?, any Error>) in
        let now = self.state.withLock { state -> Immediate in
          let immediate = self.takeImmediate(&state)
          if case .wait = immediate {
            if Task.isCancelled {
              state.ended = true
              state.buffer.removeAll()
              return .end(Self.cancelled)
            }
            state.waiter = continuation
          }
          return immediate
        }
        switch now {
        case .element(let element):
          continuation.resume(returning: element)
          self.consumed(element)
        case .end(let error?):
          continuation.resume(throwing: error)
        case .end(nil):
          continuation.resume(returning: nil)
        case .wait:
          break
        }
      }
    } onCancel: {
      self.fail(Self.cancelled)
    }
  }
}
