/// The subscribers to a sequence of events, kept inside the state an owner guards with its one
/// lock: an event published under that lock reaches every subscriber in the order the state
/// changed, and a subscriber added under it sees every event from then on.
struct EventSubscribers<Event: Sendable>: Sendable {
  private var continuations: [Int: AsyncStream<Event>.Continuation] = [:]
  private var nextID = 0

  /// Sends `event` to every subscriber.
  func publish(_ event: Event) {
    for continuation in self.continuations.values { continuation.yield(event) }
  }

  /// Forgets every subscriber and returns them, to be finished once the lock is released.
  mutating func removeAll() -> [AsyncStream<Event>.Continuation] {
    defer { self.continuations = [:] }
    return Array(self.continuations.values)
  }

  /// Adds a subscriber and returns the id that ``remove(_:)`` takes.
  mutating func add(_ continuation: AsyncStream<Event>.Continuation) -> Int {
    defer { self.nextID += 1 }
    self.continuations[self.nextID] = continuation
    return self.nextID
  }

  mutating func remove(_ id: Int) {
    self.continuations.removeValue(forKey: id)
  }

  /// A new sequence of events. `register` runs under the owner's lock: it adds the sequence's
  /// continuation (with ``add(_:)``) and returns its id, or `nil` when no event will come any
  /// more, which ends the sequence at once. `unregister` removes it, under the lock, when its
  /// subscriber stops listening.
  static func subscribe(
    register: (AsyncStream<Event>.Continuation) -> Int?,
    unregister: @escaping @Sendable (Int) -> Void
  ) -> AsyncStream<Event> {
    let (stream, continuation) = AsyncStream.makeStream(of: Event.self)
    guard let id = register(continuation) else {
      continuation.finish()
      return stream
    }
    continuation.onTermination = { _ in unregister(id) }
    return stream
  }
}
