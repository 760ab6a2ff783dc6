import Logging
import NIOCore

/// What a yamux stream tells the code that uses it. Every call arrives on the session's event
/// loop.
protocol YamuxStreamDelegate: AnyObject {
  /// Bytes from the peer. The receive window only reopens once the delegate reports them
  /// ``YamuxStream/consumed(_:)``, which is how a slow consumer slows the peer down.
  func stream(_ stream: YamuxStream, didReceive data: ByteBuffer)
  /// The peer will send nothing more; it may still read.
  func streamDidReceiveEnd(_ stream: YamuxStream)
  /// The stream is gone: reset by the peer, or the whole session ended.
  func streamDidTerminate(_ stream: YamuxStream)
  /// ``YamuxStream/isWritable`` changed.
  func streamWritabilityChanged(_ stream: YamuxStream)
}

/// One yamux stream. It belongs to its session's event loop and is only touched there.
final class YamuxStream {
  let id: UInt32
  /// Held until the stream ends, then let go, which breaks the cycle with a delegate that
  /// holds its stream.
  var delegate: (any YamuxStreamDelegate)?
  fileprivate unowned let session: YamuxSession

  /// Bytes the peer still lets this side send.
  fileprivate var sendWindow: UInt32
  /// Bytes this side still lets the peer send.
  fileprivate var receiveWindow: UInt32
  /// Delivered and consumed since the last window update; given back in bulk.
  fileprivate var consumedSinceUpdate: UInt32 = 0
  fileprivate var pending = CircularBuffer<ByteBuffer>()
  fileprivate var pendingBytes = 0
  fileprivate var finQueued = false
  fileprivate var finSent = false
  fileprivate var finReceived = false
  fileprivate var terminated = false
  fileprivate var wasWritable = true

  fileprivate init(id: UInt32, session: YamuxSession, receiveWindow: UInt32) {
    self.id = id
    self.session = session
    self.sendWindow = YamuxSession.initialWindow
    self.receiveWindow = receiveWindow
  }

  /// False once enough is queued that the caller should stop producing until told otherwise,
  /// or while the connection under the session is not taking more. A stream that ended is not.
  var isWritable: Bool {
    !self.terminated && self.pendingBytes < YamuxSession.pendingHighWater && self.session.isConnectionWritable
  }

  /// Queues bytes for the peer; they go out as the peer's window allows.
  func write(_ data: ByteBuffer) {
    self.write(CollectionOfOne(data))
  }

  /// Queues several buffers, which reach the connection in one flush: a stream channel's
  /// flush (an HTTP/2 HEADERS and DATA frame, say) is one write to the socket, not one each.
  func write(_ buffers: some Sequence<ByteBuffer>) {
    guard !self.terminated, !self.finQueued else { return }
    var queued = false
    for data in buffers where data.readableBytes > 0 {
      self.pending.append(data)
      self.pendingBytes += data.readableBytes
      queued = true
    }
    if queued { self.session.sendPending(self) }
  }

  /// Half-closes: the peer gets a FIN once everything queued has gone out.
  func close() {
    guard !self.terminated, !self.finQueued else { return }
    self.finQueued = true
    self.session.sendPending(self)
  }

  /// Abandons the stream in both directions.
  func reset() {
    guard !self.terminated else { return }
    self.session.resetStream(self)
  }

  /// Reports bytes handed on, reopening the peer's window.
  func consumed(_ count: Int) {
    guard !self.terminated, count > 0 else { return }
    self.consumedSinceUpdate += UInt32(count)
    self.session.maybeSendWindowUpdate(self)
  }
}

/// A yamux session on one connection (spec §5), byte-compatible with hashicorp/yamux: the
/// client opens odd stream IDs and the server even ones, each stream gets a 256 KiB receive
/// window that is reopened once half of it is consumed, pings are answered, and go-aways are
/// honoured.
///
/// It sits behind a ``YamuxFrameDecoder`` in the connection's pipeline and lives on its event
/// loop; ``YamuxSessionHandle`` is how other threads reach it.
final class YamuxSession: ChannelInboundHandler, RemovableChannelHandler {
  typealias InboundIn = YamuxFrame
  typealias OutboundOut = ByteBuffer

  enum Role: Sendable {
    case client
    case server
  }

  struct Configuration: Sendable {
    /// The receive window per stream. hashicorp/yamux's default, and its minimum.
    var maxStreamWindow: UInt32 = YamuxSession.initialWindow
    /// How often to ping the peer; `nil` for never.
    var keepAliveInterval: TimeAmount? = .seconds(30)
    /// How long a ping may go unanswered before the session is given up.
    var keepAliveTimeout: TimeAmount = .seconds(10)
  }

  enum SessionError: Error, CustomStringConvertible {
    case closed
    case goAwayReceived
    case keepAliveTimeout

    var description: String {
      switch self {
      case .closed: "yamux session closed"
      case .goAwayReceived: "the peer is not accepting new yamux streams (go-away)"
      case .keepAliveTimeout: "yamux keepalive timeout"
      }
    }
  }

  /// Every stream starts with this window; a larger one is granted by the first window update.
  static let initialWindow: UInt32 = 256 * 1024
  /// A frame never carries more than this, so that one busy stream cannot hold up the others.
  static let maxFramePayload = 64 * 1024
  static let pendingHighWater = 256 * 1024
  /// Payloads smaller than this are copied next to their header rather than written separately.
  private static let copyThreshold = 4096

  let role: Role
  let configuration: Configuration
  private let logger: Logger
  /// Called for each stream the peer opens, already accepted; the callee sets its delegate.
  var onInboundStream: ((YamuxStream) -> Void)?

  private var context: ChannelHandlerContext?
  private var streams: [UInt32: YamuxStream] = [:]
  private var nextStreamID: UInt32
  private var nextPingID: UInt32 = 0
  private var pings: [UInt32: EventLoopPromise<Void>] = [:]
  private var keepAlive: RepeatedTask?
  private var inRead = false
  private var needsFlush = false
  private(set) var isClosed = false
  private(set) var remoteGoAway = false
  private(set) var localGoAway = false

  init(role: Role, configuration: Configuration = Configuration(), logger: Logger) {
    self.role = role
    self.configuration = configuration
    self.logger = logger
    self.nextStreamID = role == .client ? 1 : 2
  }

  var openStreamCount: Int { self.streams.count }

  // MARK: - Channel events

  func handlerAdded(context: ChannelHandlerContext) {
    self.context = context
    if context.channel.isActive { self.startKeepAlive(context) }
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    self.tearDown()
    self.context = nil
  }

  func channelActive(context: ChannelHandlerContext) {
    self.startKeepAlive(context)
    context.fireChannelActive()
  }

  func channelInactive(context: ChannelHandlerContext) {
    self.tearDown()
    context.fireChannelInactive()
  }

  /// Every stream's writability follows the connection's, so that a peer slow to read holds
  /// back the producers rather than the session's outbound buffer growing.
  func channelWritabilityChanged(context: ChannelHandlerContext) {
    for stream in Array(self.streams.values) { self.noteWritability(stream) }
    context.fireChannelWritabilityChanged()
  }

  fileprivate var isConnectionWritable: Bool { self.context?.channel.isWritable ?? true }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    self.inRead = true
    let frame = self.unwrapInboundIn(data)
    do {
      try self.handle(frame)
    } catch {
      self.fail(error)
    }
  }

  func channelReadComplete(context: ChannelHandlerContext) {
    self.inRead = false
    self.flushIfNeeded()
    context.fireChannelReadComplete()
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    self.fail(error)
  }

  // MARK: - API (event loop only)

  /// Opens a stream: the SYN goes out at once, and data may follow before the peer's ACK.
  func openStream() throws(SessionError) -> YamuxStream {
    guard !self.isClosed, self.context != nil else { throw .closed }
    guard !self.remoteGoAway else { throw .goAwayReceived }
    let id = self.nextStreamID
    self.nextStreamID &+= 2
    let stream = YamuxStream(id: id, session: self, receiveWindow: self.configuration.maxStreamWindow)
    self.streams[id] = stream
    self.send(.windowUpdate(id, delta: self.configuration.maxStreamWindow - Self.initialWindow, flags: .syn))
    self.flushIfNeeded()
    return stream
  }

  /// Sends a ping; the future succeeds when the peer answers.
  func ping() throws(SessionError) -> EventLoopFuture<Void> {
    guard let context, !self.isClosed else { throw .closed }
    self.nextPingID &+= 1
    let id = self.nextPingID
    let promise = context.eventLoop.makePromise(of: Void.self)
    self.pings[id] = promise
    self.send(.ping(id, flags: .syn))
    self.flushIfNeeded()
    return promise.futureResult
  }

  /// Tells the peer to open no more streams; those open carry on.
  func goAway(_ code: YamuxFrame.GoAwayCode = .normal) {
    guard !self.isClosed else { return }
    self.localGoAway = true
    self.send(.goAway(code))
    self.flushIfNeeded()
  }

  func close() {
    self.context?.close(promise: nil)
  }

  // MARK: - Frames in

  private func handle(_ frame: YamuxFrame) throws {
    switch frame.kind {
    case .ping:
      if frame.flags.contains(.syn) {
        self.send(.ping(frame.length, flags: .ack))
      } else if frame.flags.contains(.ack) {
        self.pings.removeValue(forKey: frame.length)?.succeed()
      }
    case .goAway:
      self.remoteGoAway = true
      switch YamuxFrame.GoAwayCode(rawValue: frame.length) {
      case .normal?:
        self.logger.debug("yamux peer sent go-away")
      case .protocolError?, .internalError?, nil:
        self.logger.error("yamux peer ended the session", metadata: ["code": "\(frame.length)"])
        self.close()
      }
    case .data, .windowUpdate:
      try self.handleStreamFrame(frame)
    }
  }

  private func handleStreamFrame(_ frame: YamuxFrame) throws {
    if frame.flags.contains(.syn) {
      guard self.streams[frame.streamID] == nil else {
        throw YamuxProtocolError(description: "duplicate stream declared: \(frame.streamID)")
      }
      guard !self.localGoAway, let onInboundStream = self.onInboundStream else {
        self.send(.windowUpdate(frame.streamID, delta: 0, flags: .rst))
        return
      }
      let stream = YamuxStream(id: frame.streamID, session: self, receiveWindow: self.configuration.maxStreamWindow)
      self.streams[frame.streamID] = stream
      // Accepted at once: hashicorp/yamux closes the whole session over a stream left
      // unacknowledged for 75 s.
      self.send(
        .windowUpdate(frame.streamID, delta: self.configuration.maxStreamWindow - Self.initialWindow, flags: .ack))
      onInboundStream(stream)
    }
    guard let stream = self.streams[frame.streamID] else {
      // A frame for a stream already gone: hashicorp/yamux drops these too.
      return
    }
    switch frame.kind {
    case .windowUpdate:
      stream.sendWindow &+= frame.length
      self.sendPending(stream)
    case .data:
      guard frame.length <= stream.receiveWindow else {
        throw YamuxProtocolError(description: "recv window exceeded on stream \(stream.id)")
      }
      stream.receiveWindow -= frame.length
      if let payload = frame.payload, payload.readableBytes > 0, !frame.flags.contains(.rst) {
        stream.delegate?.stream(stream, didReceive: payload)
      }
    case .ping, .goAway:
      break
    }
    if frame.flags.contains(.rst) {
      self.remove(stream)
      stream.delegate?.streamDidTerminate(stream)
      stream.delegate = nil
    } else if frame.flags.contains(.fin), !stream.finReceived {
      stream.finReceived = true
      stream.delegate?.streamDidReceiveEnd(stream)
      if stream.finSent {
        self.remove(stream)
        stream.delegate = nil
      }
    }
  }

  // MARK: - Frames out

  fileprivate func sendPending(_ stream: YamuxStream) {
    guard !stream.terminated, !self.isClosed else { return }
    while stream.sendWindow > 0, var first = stream.pending.first {
      let size = min(Int(stream.sendWindow), first.readableBytes, Self.maxFramePayload)
      let slice = first.readSlice(length: size)!
      if first.readableBytes == 0 {
        stream.pending.removeFirst()
      } else {
        stream.pending[stream.pending.startIndex] = first
      }
      stream.pendingBytes -= size
      stream.sendWindow -= UInt32(size)
      self.send(.data(stream.id, slice))
    }
    if stream.finQueued, !stream.finSent, stream.pending.isEmpty {
      stream.finSent = true
      self.send(.windowUpdate(stream.id, delta: 0, flags: .fin))
    }
    self.flushIfNeeded()
    self.noteWritability(stream)
    if stream.finSent, stream.finReceived {
      self.remove(stream)
      stream.delegate = nil
    }
  }

  private func noteWritability(_ stream: YamuxStream) {
    guard !stream.terminated, stream.isWritable != stream.wasWritable else { return }
    stream.wasWritable = stream.isWritable
    stream.delegate?.streamWritabilityChanged(stream)
  }

  fileprivate func maybeSendWindowUpdate(_ stream: YamuxStream) {
    // hashicorp/yamux's rule: give the window back once half of it is owed.
    guard stream.consumedSinceUpdate >= self.configuration.maxStreamWindow / 2, !self.isClosed else { return }
    let delta = stream.consumedSinceUpdate
    stream.consumedSinceUpdate = 0
    stream.receiveWindow += delta
    self.send(.windowUpdate(stream.id, delta: delta))
    self.flushIfNeeded()
  }

  fileprivate func resetStream(_ stream: YamuxStream) {
    self.remove(stream)
    stream.delegate = nil
    self.send(.windowUpdate(stream.id, delta: 0, flags: .rst))
    self.flushIfNeeded()
  }

  private func remove(_ stream: YamuxStream) {
    stream.terminated = true
    stream.pending.removeAll()
    stream.pendingBytes = 0
    self.streams[stream.id] = nil
  }

  private func send(_ frame: YamuxFrame) {
    guard let context, !self.isClosed else { return }
    let payloadSize = frame.payload?.readableBytes ?? 0
    var header = context.channel.allocator.buffer(
      capacity: YamuxFrame.headerSize + (payloadSize < Self.copyThreshold ? payloadSize : 0)
    )
    frame.writeHeader(into: &header)
    if var payload = frame.payload, payloadSize > 0 {
      if payloadSize < Self.copyThreshold {
        header.writeBuffer(&payload)
        context.write(self.wrapOutboundOut(header), promise: nil)
      } else {
        context.write(self.wrapOutboundOut(header), promise: nil)
        context.write(self.wrapOutboundOut(payload), promise: nil)
      }
    } else {
      context.write(self.wrapOutboundOut(header), promise: nil)
    }
    self.needsFlush = true
  }

  /// Inside a read burst the flush waits for its end; otherwise frames go out at once.
  private func flushIfNeeded() {
    guard self.needsFlush, !self.inRead, let context else { return }
    self.needsFlush = false
    context.flush()
  }

  // MARK: - Keep-alive and teardown

  private func startKeepAlive(_ context: ChannelHandlerContext) {
    guard self.keepAlive == nil, let interval = self.configuration.keepAliveInterval else { return }
    let timeout = self.configuration.keepAliveTimeout
    let eventLoop = context.eventLoop
    let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
    self.keepAlive = eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
      guard let answered = try? loopBound.value.ping() else { return }
      let timer = eventLoop.scheduleTask(in: timeout) {
        loopBound.value.logger.error("yamux keepalive failed: no answer to a ping", metadata: ["timeout": "\(timeout)"])
        loopBound.value.fail(SessionError.keepAliveTimeout)
      }
      answered.whenComplete { _ in timer.cancel() }
    }
  }

  private func fail(_ error: any Error) {
    guard !self.isClosed else { return }
    if error is YamuxProtocolError {
      self.logger.error("yamux protocol error", metadata: ["error": "\(error)"])
      self.send(.goAway(.protocolError))
      self.needsFlush = false
      self.context?.flush()
    } else {
      self.logger.debug("yamux session failed", metadata: ["error": "\(error)"])
    }
    self.close()
    self.tearDown()
  }

  private func tearDown() {
    guard !self.isClosed else { return }
    self.isClosed = true
    self.keepAlive?.cancel()
    self.keepAlive = nil
    let pings = self.pings
    self.pings = [:]
    for promise in pings.values { promise.fail(SessionError.closed) }
    let streams = self.streams.values
    self.streams = [:]
    for stream in streams {
      stream.terminated = true
      stream.delegate?.streamDidTerminate(stream)
      stream.delegate = nil
    }
  }
}
