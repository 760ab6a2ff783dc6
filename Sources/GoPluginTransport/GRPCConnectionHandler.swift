import GRPCCore
import GoPluginPlatform
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOSSL
import NIOTLS
import Synchronization

/// What a stream hands its reader: header blocks and whole messages. What a block means
/// (metadata, a status, an HTTP error) depends on the side and the order, so the transports
/// interpret it as it is read; here there is only HTTP/2.
enum WirePart: Sendable {
  case headers(HPACKHeaders, endStream: Bool)
  /// A message, and the window it gives back once its reader has taken it.
  case message(PluginBytes, credit: Int)

  var flowControlledSize: Int {
    switch self {
    case .headers: 0
    case .message(_, let credit): credit
    }
  }
}

/// The gRPC streams of one HTTP/2 connection, on the frames `NIOHTTP2Handler` passes up.
///
/// grpc-swift's own transport gives each stream a child channel, a pipeline of handlers and an
/// async bridge, and a plugin call crosses them all on each side. Here a stream is a small
/// object owned by this handler, and its reader and writer talk to it directly; a call's task
/// runs on the event loop (``taskExecutor``), so it writes without any hand-off and is resumed
/// where its frames arrive.
///
/// Its state belongs to the event loop; it is `Sendable` only so that transports can hold it and
/// hop to the loop to use it.
package final class GRPCConnectionHandler: ChannelInboundHandler, @unchecked Sendable {
  typealias InboundIn = HTTP2Frame
  typealias OutboundOut = HTTP2Frame

  enum Role {
    case client
    /// Called on the event loop with each stream a client opens, after its first header block
    /// is in the stream's inbox.
    case server(onStream: (GRPCStream, HPACKHeaders, _ peers: (remote: String, local: String)) -> Void)
  }

  let role: Role
  let eventLoop: any EventLoop
  let maxMessageSize: Int
  /// The stream window this side advertised, and the connection window it grows to.
  let streamWindow: Int
  let connectionWindow: Int

  private var context: ChannelHandlerContext?
  private var streams: [HTTP2StreamID: GRPCStream] = [:]
  private var nextStreamID = HTTP2StreamID(1)
  /// The highest stream ID the peer has opened, which a GOAWAY names as the last it will see.
  private var lastPeerStreamID = HTTP2StreamID.rootStream
  private var connectionCredit = 0
  private var needsFlush = false
  /// Streams holding back their latest DATA frame until the flush, in case END_STREAM follows.
  private var streamsHoldingData: [GRPCStream] = []
  private var flushScheduled = false
  private(set) var isClosed = false
  /// Set once the peer or this side has said no new streams; the connection ends with its last.
  private(set) var isGoingAway = false
  private var closeWhenIdle = false
  let closed: EventLoopPromise<Void>
  /// Runs a call's task on this connection's event loop, where its frames are read and written.
  package let taskExecutor: EventLoopTaskExecutor
  /// Succeeds with the peer's first SETTINGS, the point from which the connection carries calls;
  /// fails with why the connection ended if it ends first.
  let ready: EventLoopPromise<Void>
  /// Who is at the other end and where, for error texts: "the plugin at unix:/tmp/plugin1".
  let peer: String
  /// Why the connection ended, or will: the first error it met, or what did not arrive in time.
  /// Streams and dials fail with this, not with a bare "closed".
  private var failure: RPCError?
  private var receivedSettings = false
  private var expectsTLS = false
  private var finishedTLSHandshake = false

  init(
    role: Role,
    channel: any Channel,
    maxMessageSize: Int,
    streamWindow: Int,
    connectionWindow: Int,
    peer: String = "the peer",
    taskExecutor: EventLoopTaskExecutor? = nil
  ) {
    self.role = role
    self.eventLoop = channel.eventLoop
    self.maxMessageSize = maxMessageSize
    self.streamWindow = streamWindow
    self.connectionWindow = connectionWindow
    self.peer = peer
    self.closed = channel.eventLoop.makePromise()
    // Sharing the transport's executor lets a caller already on it make calls without any
    // executor switch at all.
    if let taskExecutor, taskExecutor.eventLoop === channel.eventLoop {
      self.taskExecutor = taskExecutor
    } else {
      self.taskExecutor = EventLoopTaskExecutor(channel.eventLoop)
    }
    self.ready = channel.eventLoop.makePromise()
  }

  /// The addresses a server context names, worked out once per connection rather than per call.
  private(set) lazy var peers: (remote: String, local: String) = (
    self.context?.channel.remoteAddress.map { "\($0)" } ?? "unknown",
    self.context?.channel.localAddress.map { "\($0)" } ?? "unknown"
  )

  /// For other threads deciding whether to dial again.
  private let closedOrGoingAway = Atomic(false)
  var isClosedOrGoingAway: Bool { self.closedOrGoingAway.load(ordering: .relaxed) }

  /// The HTTP/2 handler beneath a gRPC connection. Its denial-of-service limits are for
  /// strangers on a network; the peer here is the plugin or host at the other end of a local
  /// socket, and grpc-go servers reset (with NO_ERROR) every stream they answer before the
  /// request's end arrives, hundreds a second under load.
  static func http2Handler(mode: NIOHTTP2Handler.ParserMode) -> NIOHTTP2Handler {
    var connection = NIOHTTP2Handler.ConnectionConfiguration()
    connection.initialSettings = Self.settings
    connection.maximumSequentialEmptyDataFrames = 16
    connection.controlFrameRateLimit.maximumCount = Int.max
    var stream = NIOHTTP2Handler.StreamConfiguration()
    stream.streamResetFrameRateLimit.maximumCount = Int.max
    stream.streamErrorRateLimit.maximumCount = Int.max
    return NIOHTTP2Handler(mode: mode, connectionConfiguration: connection, streamConfiguration: stream)
  }

  /// What each side advertises: room for many concurrent calls, a large stream window, and
  /// frames big enough that a 64 KiB message is one of them.
  static let settings: HTTP2Settings = [
    HTTP2Setting(parameter: .maxConcurrentStreams, value: 4096),
    HTTP2Setting(parameter: .initialWindowSize, value: Transports.windowSize),
    HTTP2Setting(parameter: .maxFrameSize, value: 1 << 17),
    HTTP2Setting(parameter: .maxHeaderListSize, value: 1 << 16),
  ]

  func handlerAdded(context: ChannelHandlerContext) {
    self.context = context
    if context.channel.isActive { self.growConnectionWindow(context: context) }
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    self.context = nil
    self.connectionEnded(self.endReason(closedBy: "the connection closed"))
  }

  func channelActive(context: ChannelHandlerContext) {
    self.growConnectionWindow(context: context)
    context.fireChannelActive()
  }

  func channelInactive(context: ChannelHandlerContext) {
    self.connectionEnded(self.endReason(closedBy: "\(self.peer) closed the connection"))
    context.fireChannelInactive()
  }

  /// What a connection that closed without an error tells its calls: what had not happened yet
  /// matters most, because a peer that closes before its SETTINGS never served at all.
  private func endReason(closedBy what: String) -> RPCError {
    if let failure = self.failure { return failure }
    if self.expectsTLS && !self.finishedTLSHandshake {
      return RPCError(code: .unavailable, message: "\(what) before the TLS handshake finished")
    }
    if !self.receivedSettings {
      return RPCError(code: .unavailable, message: "\(what) before sending its HTTP/2 SETTINGS")
    }
    return RPCError(code: .unavailable, message: what)
  }

  /// Fails ``ready`` and closes the connection unless the peer's SETTINGS arrive within
  /// `timeout`: a peer that accepts and stays silent must not hold a caller forever.
  func awaitReady(within timeout: Duration, expectingTLS: Bool) -> EventLoopFuture<Void> {
    self.eventLoop.assumeIsolated().execute {
      self.expectsTLS = expectingTLS
      guard !self.receivedSettings, !self.isClosed else { return }
      let seconds = Self.describe(timeout)
      let timer = self.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(timeout)) {
        guard !self.receivedSettings, !self.isClosed else { return }
        let missing = self.expectsTLS && !self.finishedTLSHandshake ? "no TLS handshake" : "no HTTP/2 SETTINGS"
        self.failure = RPCError(code: .unavailable, message: "\(missing) from \(self.peer) within \(seconds)")
        self.closeNow()
        // A channel that is not closed yet still ends the dial now.
        self.connectionEnded(self.failure!)
      }
      self.ready.futureResult.whenComplete { _ in timer.cancel() }
    }
    return self.ready.futureResult
  }

  static func describe(_ duration: Duration) -> String {
    let (seconds, attoseconds) = duration.components
    if attoseconds == 0 { return "\(seconds) s" }
    return "\(seconds * 1000 + attoseconds / 1_000_000_000_000_000) ms"
  }

  private var grewConnectionWindow = false

  /// HTTP/2 starts every connection at 64 KiB whatever the settings say; one update lifts it.
  private func growConnectionWindow(context: ChannelHandlerContext) {
    guard !self.grewConnectionWindow, self.connectionWindow > 65_535 else { return }
    self.grewConnectionWindow = true
    let frame = HTTP2Frame(
      streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: self.connectionWindow - 65_535))
    context.write(self.wrapOutboundOut(frame), promise: nil)
    self.markNeedsFlush()
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    let frame = self.unwrapInboundIn(data)
    switch frame.payload {
    case .settings(.settings):
      if !self.receivedSettings {
        self.receivedSettings = true
        self.ready.succeed()
      }
    case .headers(let headers):
      self.received(headers: headers.headers, endStream: headers.endStream, on: frame.streamID)
    case .data(let payload):
      let padding = payload.paddingBytes.map { $0 + 1 } ?? 0
      guard case .byteBuffer(let buffer) = payload.data else { return }
      self.creditConnection(buffer.readableBytes + padding, context: context)
      guard let stream = self.streams[frame.streamID] else { return }
      if padding > 0 { stream.credit(padding) }
      stream.received(data: buffer, endStream: payload.endStream)
    case .rstStream(let code):
      guard let stream = self.streams.removeValue(forKey: frame.streamID) else { return }
      stream.wasReset(by: code)
      self.closeIfIdle()
    case .goAway(let lastStreamID, _, _):
      self.isGoingAway = true
      self.closedOrGoingAway.store(true, ordering: .relaxed)
      for (id, stream) in self.streams where id > lastStreamID {
        self.streams[id] = nil
        stream.connectionEnded(
          RPCError(code: .unavailable, message: "the server is going away and did not take this call"))
      }
      self.closeWhenIdle = true
      self.closeIfIdle()
    default:
      break
    }
  }

  func channelReadComplete(context: ChannelHandlerContext) {
    self.flushIfNeeded()
    context.fireChannelReadComplete()
  }

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    if case .handshakeCompleted? = event as? TLSUserEvent { self.finishedTLSHandshake = true }
    if let closed = event as? StreamClosedEvent, let stream = self.streams.removeValue(forKey: closed.streamID) {
      stream.closedByHTTP2(reason: closed.reason)
      self.closeIfIdle()
    }
    context.fireUserInboundEventTriggered(event)
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    if let streamError = error as? NIOHTTP2Errors.StreamError {
      if let stream = self.streams.removeValue(forKey: streamError.streamID) {
        stream.connectionEnded(RPCError(code: .internalError, message: "HTTP/2 stream error: \(streamError.baseError)"))
      }
      return
    }
    // Anything else is the connection's: NIOHTTP2Handler has already told the peer. The first
    // error is the reason every call on it fails with.
    if self.failure == nil { self.failure = self.describeFailure(error) }
    context.close(promise: nil)
  }

  /// Completes the promises of a handler that never made it into a pipeline, so that none is
  /// left pending.
  func abandon(because error: any Error) {
    self.ready.fail(error)
    self.closed.succeed()
  }

  /// Set by a TLS verification that refused the peer's certificate, so the failure says why
  /// rather than repeating BoringSSL's generic "certificate verify failed".
  func noteCertificateRefused(_ reason: String) {
    if self.failure == nil {
      self.failure = RPCError(code: .unavailable, message: "TLS handshake with \(self.peer) failed: \(reason)")
    }
  }

  private func describeFailure(_ error: any Error) -> RPCError {
    if error is NIOSSLError || error is BoringSSLError {
      // The peer's alert (unknown CA, bad certificate) or our verification error is in the text.
      return RPCError(code: .unavailable, message: "TLS handshake with \(self.peer) failed: \(error)")
    }
    if error is any NIOHTTP2Error && !self.receivedSettings {
      return RPCError(code: .unavailable, message: "\(self.peer) does not speak HTTP/2: \(error)")
    }
    if let error = error as? IOError, error.errnoCode == ECONNRESET || error.errnoCode == EPIPE {
      // An accepted connection closed with unread data in it ends with a reset, not an EOF.
      return self.endReason(closedBy: "\(self.peer) closed the connection")
    }
    return RPCError(code: .unavailable, message: "the connection to \(self.peer) failed: \(error)")
  }

  private func received(headers: HPACKHeaders, endStream: Bool, on id: HTTP2StreamID) {
    if let stream = self.streams[id] {
      stream.received(headers: headers, endStream: endStream)
      return
    }
    guard case .server(let onStream) = self.role, !self.isGoingAway else { return }
    self.lastPeerStreamID = max(self.lastPeerStreamID, id)
    let stream = GRPCStream(connection: self, id: id)
    self.streams[id] = stream
    stream.received(headers: headers, endStream: endStream)
    onStream(stream, headers, self.peers)
  }

  private func creditConnection(_ bytes: Int, context: ChannelHandlerContext) {
    self.connectionCredit += bytes
    if self.connectionCredit >= self.connectionWindow / 2 {
      let frame = HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: self.connectionCredit))
      self.connectionCredit = 0
      context.write(self.wrapOutboundOut(frame), promise: nil)
      self.markNeedsFlush()
    }
  }

  // MARK: Called by streams, on the event loop.

  /// A client stream, not yet on the wire: it gets its ID with its first header block.
  func makeClientStream() -> GRPCStream {
    GRPCStream(connection: self, id: nil)
  }

  func assignID(to stream: GRPCStream) throws(RPCError) -> HTTP2StreamID {
    guard !self.isClosed else { throw self.failure ?? RPCError(code: .unavailable, message: "the connection closed") }
    guard !self.isGoingAway else {
      throw RPCError(code: .unavailable, message: "the connection is going away and takes no new calls")
    }
    let id = self.nextStreamID
    self.nextStreamID = HTTP2StreamID(Int32(id) + 2)
    self.streams[id] = stream
    return id
  }

  func write(_ payload: HTTP2Frame.FramePayload, on id: HTTP2StreamID, promise: EventLoopPromise<Void>?) {
    guard let context = self.context, !self.isClosed else {
      promise?.fail(RPCError(code: .unavailable, message: "the connection closed"))
      return
    }
    context.write(self.wrapOutboundOut(HTTP2Frame(streamID: id, payload: payload)), promise: promise)
    self.markNeedsFlush()
  }

  func forget(_ id: HTTP2StreamID) {
    self.streams[id] = nil
    self.closeIfIdle()
  }

  /// Keeps `stream`'s newest DATA frame until this turn's flush: a request's end usually comes
  /// right after its message and then rides on it, as grpc-go and grpcio send it, instead of
  /// following in an empty frame the server may already have answered and reset.
  func holdData(for stream: GRPCStream) {
    self.streamsHoldingData.append(stream)
    self.markNeedsFlush()
  }

  /// Writes go out together: everything written in this turn of the event loop, one flush.
  func markNeedsFlush() {
    self.needsFlush = true
    guard !self.flushScheduled else { return }
    self.flushScheduled = true
    self.eventLoop.assumeIsolated().execute {
      self.flushScheduled = false
      self.flushIfNeeded()
    }
  }

  private func flushIfNeeded() {
    if !self.streamsHoldingData.isEmpty {
      let holding = self.streamsHoldingData
      self.streamsHoldingData.removeAll(keepingCapacity: true)
      for stream in holding { stream.releaseHeldData(endStream: false) }
    }
    guard self.needsFlush, let context = self.context else { return }
    self.needsFlush = false
    context.flush()
  }

  // MARK: Shutdown

  /// Stops taking new streams (a server sends GOAWAY), and closes once the last one ends.
  func drain() {
    guard !self.isClosed, let context = self.context else { return }
    if case .server = self.role, !self.isGoingAway {
      // Every stream the client has opened so far is one this side will answer; a smaller ID
      // would tell HTTP/2 to drop calls already running, such as the Shutdown that led here.
      let last = self.lastPeerStreamID
      let frame = HTTP2Frame(
        streamID: .rootStream, payload: .goAway(lastStreamID: last, errorCode: .noError, opaqueData: nil))
      context.write(self.wrapOutboundOut(frame), promise: nil)
      self.markNeedsFlush()
    }
    self.isGoingAway = true
    self.closedOrGoingAway.store(true, ordering: .relaxed)
    self.closeWhenIdle = true
    self.closeIfIdle()
  }

  /// Closes at once; the streams still open end with an error.
  func closeNow() {
    self.context?.close(promise: nil)
  }

  private var closing = false

  /// Closes once the last stream has ended and everything written has reached the socket: a
  /// channel that closes drops the writes it still queues, which under a slow reader is the
  /// end of a stream that is already over as far as HTTP/2 is concerned. A last GOAWAY (the
  /// same as any sent before) marks that point.
  private func closeIfIdle() {
    guard self.closeWhenIdle, self.streams.isEmpty, !self.isClosed, !self.closing, let context = self.context else {
      return
    }
    self.closing = true
    let last: HTTP2StreamID = if case .server = self.role { self.lastPeerStreamID } else { .rootStream }
    let written = context.eventLoop.makePromise(of: Void.self)
    let frame = HTTP2Frame(
      streamID: .rootStream, payload: .goAway(lastStreamID: last, errorCode: .noError, opaqueData: nil))
    context.write(self.wrapOutboundOut(frame), promise: written)
    self.needsFlush = true
    self.flushIfNeeded()
    written.futureResult.assumeIsolated().whenComplete { _ in
      self.context?.close(promise: nil)
    }
  }

  private func connectionEnded(_ error: RPCError) {
    guard !self.isClosed else { return }
    self.failure = self.failure ?? error
    self.ready.fail(error)
    self.isClosed = true
    self.closedOrGoingAway.store(true, ordering: .relaxed)
    let streams = self.streams
    self.streams = [:]
    for stream in streams.values { stream.connectionEnded(error) }
    self.closed.succeed()
  }
}
