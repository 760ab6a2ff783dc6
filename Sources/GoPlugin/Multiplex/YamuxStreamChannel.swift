import NIOCore
import Synchronization

/// A NIO channel over one yamux stream, so that a gRPC connection (TLS, HTTP/2, the gRPC
/// handler) runs on the stream itself, as it would on a socket.
///
/// It lives on its session's event loop and behaves like one of NIO's stream sockets:
/// - writes become yamux DATA as the peer's window allows; the channel stops being writable
///   while the stream holds a window's worth the peer has not taken, or the connection under
///   the session is not writable;
/// - reads follow `autoRead` and `read()`, and the stream's receive window is credited only
///   for bytes handed to the pipeline, so a pipeline that stops reading stops the peer;
/// - `close(mode: .output)` sends FIN after everything written; the peer's FIN is
///   `ChannelEvent.inputClosed` with `allowRemoteHalfClosure`, else the channel closes;
/// - a reset stream, or the end of the session, is an error and closes the channel.
///
/// `@unchecked Sendable`: everything mutable is touched only on the event loop, except the two
/// flags other threads may read, which are atomic.
final class YamuxStreamChannel: Channel, ChannelCore, YamuxStreamDelegate, @unchecked Sendable {
  /// Why a stream channel closed without either side closing it.
  enum StreamError: Error, Equatable, CustomStringConvertible {
    /// The peer abandoned the stream (RST), or the session under it ended.
    case reset

    var description: String {
      switch self {
      case .reset: "the yamux stream was reset"
      }
    }
  }

  private enum Lifecycle {
    case configuring
    case active
    case closed
  }

  let eventLoop: any EventLoop
  let parent: (any Channel)?
  let allocator: ByteBufferAllocator
  private let closePromise: EventLoopPromise<Void>
  private var _pipeline: ChannelPipeline!
  private let stream: YamuxStream
  private let activeFlag = Atomic<Bool>(false)
  private let writableFlag = Atomic<Bool>(true)

  private var lifecycle = Lifecycle.configuring
  private var autoRead = true
  private var allowRemoteHalfClosure = false
  /// A `read()` not yet answered with data.
  private var readPending = false
  /// What the stream delivered and the pipeline has not read yet; not credited to the window.
  private var inbound = CircularBuffer<ByteBuffer>()
  private var peerEnded = false
  private var inputClosed = false
  private var outputClosed = false
  /// Reset, or the session ended: nothing more can be sent or received.
  private var streamGone = false
  private var unflushed = CircularBuffer<(ByteBuffer, EventLoopPromise<Void>?)>()
  private var unflushedBytes = 0

  /// Takes over `stream`; call ``activate()`` once the pipeline is set up.
  init(stream: YamuxStream, parent: any Channel) {
    self.stream = stream
    self.parent = parent
    self.eventLoop = parent.eventLoop
    self.allocator = parent.allocator
    self.closePromise = parent.eventLoop.makePromise()
    self._pipeline = ChannelPipeline(channel: self)
    stream.delegate = self
  }

  /// The stream's ID in its session, for logs and tests.
  var streamID: UInt32 { self.stream.id }

  /// Registers and activates the channel, as a connected socket's is, and starts reading if
  /// `autoRead` is on.
  func activate() {
    self.eventLoop.preconditionInEventLoop()
    guard self.lifecycle == .configuring else { return }
    self.lifecycle = .active
    self.activeFlag.store(true, ordering: .relaxed)
    self.pipeline.syncOperations.fireChannelRegistered()
    self.pipeline.syncOperations.fireChannelActive()
    if self.autoRead, self.lifecycle == .active { self.pipeline.syncOperations.read() }
  }

  /// Gives the stream up before it was ever used: a pipeline that could not be set up.
  func abandon() {
    self.eventLoop.preconditionInEventLoop()
    self.stream.reset()
    self.streamGone = true
    self.closeCompletely(error: ChannelError.ioOnClosedChannel, promise: nil)
  }

  // MARK: - Channel

  var pipeline: ChannelPipeline { self._pipeline }
  var closeFuture: EventLoopFuture<Void> { self.closePromise.futureResult }
  var localAddress: SocketAddress? { self.parent?.localAddress }
  var remoteAddress: SocketAddress? { self.parent?.remoteAddress }
  var isWritable: Bool { self.writableFlag.load(ordering: .relaxed) }
  var isActive: Bool { self.activeFlag.load(ordering: .relaxed) }
  var _channelCore: any ChannelCore { self }

  func setOption<Option: ChannelOption>(_ option: Option, value: Option.Value) -> EventLoopFuture<Void> {
    if self.eventLoop.inEventLoop {
      return self.eventLoop.makeCompletedFuture { try self.setOption0(option, value: value) }
    }
    return self.eventLoop.submit { try self.setOption0(option, value: value) }
  }

  func getOption<Option: ChannelOption>(_ option: Option) -> EventLoopFuture<Option.Value> {
    if self.eventLoop.inEventLoop {
      return self.eventLoop.makeCompletedFuture { try self.getOption0(option) }
    }
    return self.eventLoop.submit { try self.getOption0(option) }
  }

  var syncOptions: (any NIOSynchronousChannelOptions)? { SynchronousOptions(channel: self) }

  private struct SynchronousOptions: NIOSynchronousChannelOptions {
    let channel: YamuxStreamChannel

    func setOption<Option: ChannelOption>(_ option: Option, value: Option.Value) throws {
      self.channel.eventLoop.preconditionInEventLoop()
      try self.channel.setOption0(option, value: value)
    }

    func getOption<Option: ChannelOption>(_ option: Option) throws -> Option.Value {
      self.channel.eventLoop.preconditionInEventLoop()
      return try self.channel.getOption0(option)
    }
  }

  private func setOption0<Option: ChannelOption>(_ option: Option, value: Option.Value) throws {
    switch option {
    case is ChannelOptions.Types.AutoReadOption:
      guard let on = value as? Bool else { throw ChannelError.operationUnsupported }
      let wasOn = self.autoRead
      self.autoRead = on
      if on, !wasOn, self.lifecycle == .active { self.pipeline.syncOperations.read() }
    case is ChannelOptions.Types.AllowRemoteHalfClosureOption:
      guard let on = value as? Bool else { throw ChannelError.operationUnsupported }
      self.allowRemoteHalfClosure = on
    default:
      throw ChannelError.operationUnsupported
    }
  }

  private func getOption0<Option: ChannelOption>(_ option: Option) throws -> Option.Value {
    let value: Any
    switch option {
    case is ChannelOptions.Types.AutoReadOption: value = self.autoRead
    case is ChannelOptions.Types.AllowRemoteHalfClosureOption: value = self.allowRemoteHalfClosure
    default: throw ChannelError.operationUnsupported
    }
    guard let typed = value as? Option.Value else { throw ChannelError.operationUnsupported }
    return typed
  }

  // MARK: - ChannelCore

  func localAddress0() throws -> SocketAddress {
    guard let address = self.parent?.localAddress else { throw ChannelError.operationUnsupported }
    return address
  }

  func remoteAddress0() throws -> SocketAddress {
    guard let address = self.parent?.remoteAddress else { throw ChannelError.operationUnsupported }
    return address
  }

  func register0(promise: EventLoopPromise<Void>?) {
    promise?.succeed()
  }

  func registerAlreadyConfigured0(promise: EventLoopPromise<Void>?) {
    promise?.succeed()
  }

  func bind0(to: SocketAddress, promise: EventLoopPromise<Void>?) {
    promise?.fail(ChannelError.operationUnsupported)
  }

  func connect0(to: SocketAddress, promise: EventLoopPromise<Void>?) {
    promise?.fail(ChannelError.operationUnsupported)
  }

  func write0(_ data: NIOAny, promise: EventLoopPromise<Void>?) {
    guard self.lifecycle == .active, !self.streamGone else {
      promise?.fail(ChannelError.ioOnClosedChannel)
      return
    }
    guard !self.outputClosed else {
      promise?.fail(ChannelError.outputClosed)
      return
    }
    guard let buffer = self.tryUnwrapData(data, as: ByteBuffer.self) else {
      promise?.fail(ChannelError.operationUnsupported)
      return
    }
    self.unflushed.append((buffer, promise))
    self.unflushedBytes += buffer.readableBytes
    self.updateWritability()
  }

  func flush0() {
    guard self.lifecycle == .active, !self.streamGone, !self.outputClosed, !self.unflushed.isEmpty else { return }
    // Queued in the stream, which sends it as the peer's window opens, all of it in one write
    // to the connection; writability, not the promises, is what holds a producer back. What a
    // promise's callback writes meanwhile waits for the next flush.
    let count = self.unflushed.count
    self.stream.write(self.unflushed.lazy.map(\.0))
    for _ in 0..<count {
      guard let (buffer, promise) = self.unflushed.popFirst() else { break }
      self.unflushedBytes -= buffer.readableBytes
      promise?.succeed()
    }
    self.updateWritability()
  }

  func read0() {
    guard self.lifecycle == .active else { return }
    self.readPending = true
    self.deliverReads()
  }

  func close0(error: any Error, mode: CloseMode, promise: EventLoopPromise<Void>?) {
    guard self.lifecycle != .closed else {
      promise?.fail(ChannelError.alreadyClosed)
      return
    }
    switch mode {
    case .all:
      self.closeCompletely(error: error, promise: promise)
    case .output:
      guard !self.outputClosed else {
        promise?.fail(ChannelError.outputClosed)
        return
      }
      self.outputClosed = true
      self.failUnflushed(ChannelError.outputClosed)
      self.stream.close()
      promise?.succeed()
      self.pipeline.syncOperations.fireUserInboundEventTriggered(ChannelEvent.outputClosed)
      if self.inputClosed, self.lifecycle != .closed {
        self.closeCompletely(error: ChannelError.eof, promise: nil)
      }
    case .input:
      // yamux has no way to tell the peer to stop sending short of a reset.
      promise?.fail(ChannelError.operationUnsupported)
    }
  }

  func triggerUserOutboundEvent0(_ event: Any, promise: EventLoopPromise<Void>?) {
    promise?.fail(ChannelError.operationUnsupported)
  }

  func channelRead0(_ data: NIOAny) {
    // Reached the end of the pipeline unread: nothing to do, as with a socket.
  }

  func errorCaught0(error: any Error) {}

  // MARK: - YamuxStreamDelegate

  func stream(_ stream: YamuxStream, didReceive data: ByteBuffer) {
    guard self.lifecycle != .closed else {
      // Nobody will read it; credit it so the peer is not left waiting on the window.
      stream.consumed(data.readableBytes)
      return
    }
    self.inbound.append(data)
    self.deliverReads()
  }

  func streamDidReceiveEnd(_ stream: YamuxStream) {
    self.peerEnded = true
    self.deliverReads()
  }

  func streamDidTerminate(_ stream: YamuxStream) {
    self.streamGone = true
    guard self.lifecycle != .closed else { return }
    self.inbound.removeAll()
    self.pipeline.syncOperations.fireErrorCaught(StreamError.reset)
    if self.lifecycle != .closed {
      self.closeCompletely(error: StreamError.reset, promise: nil)
    }
  }

  func streamWritabilityChanged(_ stream: YamuxStream) {
    self.updateWritability()
  }

  // MARK: -

  /// Answers a pending `read()` with everything buffered, and with the peer's end once all of
  /// it has been read, as a socket reports EOF after the last bytes.
  private func deliverReads() {
    guard self.lifecycle == .active, self.readPending else { return }
    let endDue = self.peerEnded && !self.inputClosed
    guard !self.inbound.isEmpty || endDue else { return }
    self.readPending = false
    var delivered = false
    while self.lifecycle == .active, let data = self.inbound.popFirst() {
      delivered = true
      self.pipeline.syncOperations.fireChannelRead(NIOAny(data))
      self.stream.consumed(data.readableBytes)
    }
    if delivered, self.lifecycle == .active { self.pipeline.syncOperations.fireChannelReadComplete() }
    if self.peerEnded, !self.inputClosed, self.inbound.isEmpty, self.lifecycle == .active {
      self.inputClosed = true
      if self.allowRemoteHalfClosure {
        self.pipeline.syncOperations.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        if self.outputClosed, self.lifecycle == .active {
          self.closeCompletely(error: ChannelError.eof, promise: nil)
        }
      } else {
        self.closeCompletely(error: ChannelError.eof, promise: nil)
      }
      return
    }
    if self.autoRead, self.lifecycle == .active { self.pipeline.syncOperations.read() }
  }

  private func updateWritability() {
    let writable =
      !self.streamGone && self.stream.isWritable && self.unflushedBytes < YamuxSession.pendingHighWater
    let old = self.writableFlag.exchange(writable, ordering: .relaxed)
    if old != writable, self.lifecycle == .active { self.pipeline.syncOperations.fireChannelWritabilityChanged() }
  }

  private func failUnflushed(_ error: any Error) {
    while let (_, promise) = self.unflushed.popFirst() { promise?.fail(error) }
    self.unflushedBytes = 0
  }

  /// Ends the channel: whatever was flushed still reaches the peer, followed by FIN; what the
  /// peer sends from now on is credited and dropped.
  private func closeCompletely(error: any Error, promise: EventLoopPromise<Void>?) {
    let wasActive = self.lifecycle == .active
    self.lifecycle = .closed
    self.activeFlag.store(false, ordering: .relaxed)
    self.writableFlag.store(false, ordering: .relaxed)
    self.failUnflushed(error)
    if !self.streamGone {
      self.stream.close()
      let unread = self.inbound.reduce(0) { $0 + $1.readableBytes }
      self.stream.consumed(unread)
    }
    self.inbound.removeAll()
    promise?.succeed()
    if wasActive { self.pipeline.syncOperations.fireChannelInactive() }
    // As NIO's own channels do: unregistered and the pipeline torn down on a later tick, once
    // the handlers have seen the channel go inactive.
    self.eventLoop.assumeIsolated().execute {
      if wasActive { self.pipeline.syncOperations.fireChannelUnregistered() }
      self.removeHandlers(pipeline: self.pipeline)
      self.closePromise.succeed()
    }
  }
}
