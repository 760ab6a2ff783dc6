public import GoPluginNetRPC
import Logging
public import NIOCore
import Synchronization

/// Extra connections between a host and a net/rpc plugin, in either direction: go-plugin's
/// `MuxBroker` (spec §4), for callbacks into the host and for anything that deserves a stream
/// of its own.
///
/// Every connection is a stream of the plugin's one yamux session. One side picks an ID with
/// ``nextID()``, accepts on it (``acceptAndServe(_:_:)`` serves a ``NetRPCService`` there, as Go's
/// `AcceptAndServe` does) and tells the other side the ID in an ordinary call; the other side
/// dials it (``dialClient(_:)``). On the wire a dialled stream starts with the ID as four
/// little-endian bytes, and the acceptor's answer repeats them.
///
/// A stream that arrives for an ID nobody accepts within ``rendezvousTimeout`` is closed, and
/// an accept that sees no stream by then fails, as in Go.
public final class MuxBroker: Sendable {
  /// How long an accepted ID waits for its stream, and a stream for its accept.
  public static let rendezvousTimeout: Duration = .seconds(5)

  private struct State {
    /// Streams that arrived before anyone accepted their ID.
    var arrived: [UInt32: any Channel] = [:]
    /// Accepts waiting for their stream; nil is what a closing broker or an expired wait sets.
    var waiting: [UInt32: OneShot<(any Channel)?>] = [:]
    var closed = false
  }

  private let ids = Atomic<UInt32>(0)
  private let state = Mutex(State())
  private let multiplexer: Multiplexer
  private let logger: Logger
  /// Servers started with ``serveInBackground(_:_:)``, run by whoever owns the session.
  private let background: AsyncStream<BackgroundWork>
  private let backgroundContinuation: AsyncStream<BackgroundWork>.Continuation

  init(multiplexer: Multiplexer, logger: Logger) {
    self.multiplexer = multiplexer
    self.logger = logger
    (self.background, self.backgroundContinuation) = AsyncStream.makeStream()
  }

  /// A fresh ID for a connection this side accepts; IDs count from 1, per side.
  public func nextID() -> UInt32 {
    self.ids.add(1, ordering: .relaxed).newValue
  }

  /// Waits for the peer to dial `id` and answers it: the stream, ready for the bytes that follow
  /// the ID. Reads on it are held (`autoRead` off) until its new owner turns them on, so that
  /// nothing arrives before a handler is there to take it; ``NetRPCServer`` and ``NetRPCClient``
  /// do that.
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/brokerTimeout`` ("timeout waiting for
  ///   accept") if no stream comes within ``rendezvousTimeout``, ``PluginError/Code/notRunning``
  ///   if the session has ended.
  public func accept(_ id: UInt32) async throws(PluginError) -> any Channel {
    enum Next {
      case ready(any Channel)
      case wait(OneShot<(any Channel)?>)
      case closed
      case taken
    }
    let next: Next = self.state.withLock { state in
      if state.closed { return .closed }
      if let channel = state.arrived.removeValue(forKey: id) { return .ready(channel) }
      // One accept per ID: a second would answer the same stream twice.
      if state.waiting[id] != nil { return .taken }
      let waiter = OneShot<(any Channel)?>()
      state.waiting[id] = waiter
      return .wait(waiter)
    }
    let channel: any Channel
    switch next {
    case .closed:
      throw PluginError(code: .notRunning, message: "the plugin's connection is closed")
    case .taken:
      throw PluginError(code: .invalidConfiguration, message: "id \(id) is already being accepted")
    case .ready(let ready):
      channel = ready
    case .wait(let waiter):
      _ = await waiter.wait(timeout: Self.rendezvousTimeout)
      // Whoever sets the waiter first decides: the stream that arrived, or this expiry (which
      // makes a stream arriving later be closed, not left open and unanswered).
      let expired = waiter.fulfil(nil)
      self.state.withLock { state in
        if state.waiting[id] === waiter { state.waiting[id] = nil }
      }
      guard !expired, let arrived = waiter.current ?? nil else {
        if Task.isCancelled {
          throw PluginError(code: .notRunning, message: "cancelled while waiting for accept")
        }
        if self.state.withLock({ $0.closed }) {
          throw PluginError(code: .notRunning, message: "the plugin's connection is closed")
        }
        throw PluginError(code: .brokerTimeout, message: "timeout waiting for accept")
      }
      channel = arrived
    }
    var ack = channel.allocator.buffer(capacity: 4)
    ack.writeInteger(id, endianness: .little)
    do {
      try await channel.writeAndFlush(ack)
    } catch {
      channel.close(promise: nil)
      throw PluginError(
        code: .connectionFailed, message: "could not answer the dial for id \(id): \(error)", cause: error)
    }
    return channel
  }

  /// Opens a stream to the peer's `id` and waits for the peer to accept it. Reads are held as
  /// for ``accept(_:)``.
  ///
  /// - Throws: ``PluginError``: ``PluginError/Code/connectionFailed`` with "bad ack: <got>
  ///   (expected <id>)" for a wrong answer, or if the session ended or the peer closed the
  ///   stream; ``PluginError/Code/brokerTimeout`` if no answer comes in twice
  ///   ``rendezvousTimeout`` (the peer's accept gives up after one).
  public func dial(_ id: UInt32) async throws(PluginError) -> any Channel {
    let answer = OneShot<UInt32?>()
    let channel: any Channel
    do {
      channel = try await self.multiplexer.openStream { channel in
        try channel.syncOptions?.setOption(ChannelOptions.autoRead, value: false)
        try channel.pipeline.syncOperations.addHandler(
          StreamPreamble { id in
            answer.fulfil(id)
          } onEnd: {
            answer.fulfil(nil)
          })
      }.get()
    } catch let error as PluginError {
      throw error
    } catch {
      throw PluginError(
        code: .connectionFailed, message: "could not open a stream for id \(id): \(error)", cause: error)
    }
    var preamble = channel.allocator.buffer(capacity: 4)
    preamble.writeInteger(id, endianness: .little)
    channel.writeAndFlush(preamble, promise: nil)
    guard let got = await answer.wait(timeout: Self.rendezvousTimeout * 2) else {
      channel.close(promise: nil)
      throw PluginError(code: .brokerTimeout, message: "timeout waiting for the ack of id \(id)")
    }
    guard let got else {
      throw PluginError(code: .connectionFailed, message: "the stream for id \(id) closed before its ack")
    }
    guard got == id else {
      channel.close(promise: nil)
      throw PluginError(code: .connectionFailed, message: "bad ack: \(got) (expected \(id))")
    }
    return channel
  }

  /// Accepts `id` and serves `service` on it under net/rpc's service name `Plugin`, as Go's
  /// `AcceptAndServe` does, until the stream closes or the task is cancelled.
  public func acceptAndServe(_ id: UInt32, _ service: NetRPCService) async throws {
    let channel = try await self.accept(id)
    var plugin = service
    plugin.name = "Plugin"
    try await NetRPCServer(services: [plugin]).serve(channel)
  }

  /// Accepts `id` and serves `service` on it as ``acceptAndServe(_:_:)`` does, but in the
  /// background, as Go's `go broker.AcceptAndServe(id, v)`: for a method that hands out an ID
  /// and answers at once. The server runs in the task that owns the plugin's session (the
  /// host's ``PluginClient/run()``, the plugin's ``PluginServer/serve(_:)``) and ends when the
  /// stream closes, or with the session; a failed accept is logged.
  public func serveInBackground(_ id: UInt32, _ service: NetRPCService) {
    self.backgroundContinuation.yield(
      BackgroundWork { [self] in
        do {
          try await self.acceptAndServe(id, service)
        } catch {
          self.logger.error("brokered server failed", metadata: ["id": "\(id)", "error": "\(error)"])
        }
      })
  }

  /// Runs what ``serveInBackground(_:_:)`` started until the broker closes, then cancels it.
  func runBackgroundWork() async {
    await withDiscardingTaskGroup { group in
      for await work in self.background {
        group.addTask { await work.run() }
      }
      group.cancelAll()
    }
  }

  /// Dials `id` and returns a net/rpc client on the stream; closing the client closes it.
  public func dialClient(_ id: UInt32) async throws -> NetRPCClient {
    let channel = try await self.dial(id)
    do {
      return try await NetRPCClient.start(on: channel)
    } catch {
      channel.close(promise: nil)
      throw error
    }
  }

  /// Dials `id`, runs `body` with a net/rpc client on the stream, and closes it.
  public func withClient<Result: Sendable>(
    _ id: UInt32,
    _ body: (NetRPCClient) async throws -> Result
  ) async throws -> Result {
    let client = try await self.dialClient(id)
    defer { client.close() }
    return try await body(client)
  }

  // MARK: - Streams the peer opens

  /// Sets up a stream the peer opened, on the session's event loop: reads held, its ID read
  /// first.
  func takeInbound(_ channel: any Channel) throws {
    try channel.syncOptions?.setOption(ChannelOptions.autoRead, value: false)
    try channel.pipeline.syncOperations.addHandler(
      StreamPreamble { [self] id in
        self.received(channel, for: id)
      } onEnd: {
      })
  }

  private func received(_ channel: any Channel, for id: UInt32) {
    enum Outcome {
      case deliver(OneShot<(any Channel)?>)
      case keep
      case refuse
    }
    let outcome: Outcome = self.state.withLock { state in
      if state.closed { return .refuse }
      if let waiter = state.waiting.removeValue(forKey: id) { return .deliver(waiter) }
      // Go buffers one stream per ID and drops another.
      guard state.arrived[id] == nil else { return .refuse }
      state.arrived[id] = channel
      return .keep
    }
    switch outcome {
    case .deliver(let waiter):
      if !waiter.fulfil(channel) { channel.close(promise: nil) }
    case .refuse:
      channel.close(promise: nil)
    case .keep:
      channel.eventLoop.scheduleTask(in: TimeAmount(Self.rendezvousTimeout)) { [self] in
        let expired = self.state.withLock { state in
          guard let kept = state.arrived[id], kept === channel else { return false }
          state.arrived[id] = nil
          return true
        }
        if expired {
          self.logger.debug("closing a brokered stream nobody accepted", metadata: ["id": "\(id)"])
          channel.close(promise: nil)
        }
      }
    }
  }

  /// Ends every rendezvous: waiting accepts fail, streams not yet accepted are closed.
  func close() {
    self.backgroundContinuation.finish()
    let (arrived, waiting) = self.state.withLock { state in
      state.closed = true
      defer {
        state.arrived = [:]
        state.waiting = [:]
      }
      return (Array(state.arrived.values), Array(state.waiting.values))
    }
    for channel in arrived { channel.close(promise: nil) }
    for waiter in waiting { waiter.fulfil(nil) }
  }
}

/// Reads the four little-endian bytes a brokered stream starts with (the ID on the accepting
/// side, its echo on the dialling side), then passes everything on. Bytes that came with the ID
/// are held until the stream's new owner asks to read.
final class StreamPreamble: ChannelDuplexHandler, RemovableChannelHandler {
  typealias InboundIn = ByteBuffer
  typealias InboundOut = ByteBuffer
  typealias OutboundIn = ByteBuffer
  typealias OutboundOut = ByteBuffer

  private enum Phase {
    /// Reading the four bytes.
    case collecting(ByteBuffer?)
    /// Identified; what comes next is held until the stream's new owner first reads.
    case holding(ByteBuffer?)
    /// The owner reads: everything passes.
    case passing
    /// The stream ended before its four bytes.
    case ended
  }

  private var phase = Phase.collecting(nil)
  private let onPreamble: (UInt32) -> Void
  private let onEnd: () -> Void

  init(_ onPreamble: @escaping (UInt32) -> Void, onEnd: @escaping () -> Void) {
    self.onPreamble = onPreamble
    self.onEnd = onEnd
  }

  /// Whether the four bytes have arrived; read on the channel's event loop only.
  var identified: Bool {
    switch self.phase {
    case .holding, .passing: true
    case .collecting, .ended: false
    }
  }

  func channelActive(context: ChannelHandlerContext) {
    context.fireChannelActive()
    if case .collecting = self.phase { context.read() }
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    var bytes = Self.unwrapInboundIn(data)
    switch self.phase {
    case .passing:
      context.fireChannelRead(data)
    case .ended:
      break
    case .holding(var held):
      if held == nil { held = bytes } else { held!.writeBuffer(&bytes) }
      self.phase = .holding(held)
    case .collecting(var collected):
      if collected == nil { collected = bytes } else { collected!.writeBuffer(&bytes) }
      guard var all = collected, all.readableBytes >= 4,
        let id = all.readInteger(endianness: .little, as: UInt32.self)
      else {
        self.phase = .collecting(collected)
        context.read()
        return
      }
      self.phase = .holding(all.readableBytes > 0 ? all : nil)
      self.onPreamble(id)
    }
  }

  func read(context: ChannelHandlerContext) {
    if case .holding(let held) = self.phase {
      self.phase = .passing
      if let held {
        context.fireChannelRead(Self.wrapInboundOut(held))
        context.fireChannelReadComplete()
      }
    }
    context.read()
  }

  func channelInactive(context: ChannelHandlerContext) {
    if case .collecting = self.phase {
      self.phase = .ended
      self.onEnd()
    }
    context.fireChannelInactive()
  }
}

/// Work started by a call that outlives its answer: a brokered server.
struct BackgroundWork: Sendable {
  let run: @Sendable () async -> Void
}
