import NIOCore

/// Joins one yamux stream to one local socket connection, byte for byte, in both directions.
///
/// grpc-swift's transports only speak to sockets, so every gRPC connection that rides a yamux
/// stream is a local unix-socket connection with a bridge at this end. Both sides of the bridge
/// live on the session's event loop, and each side's back-pressure reaches the other: the
/// stream's receive window only reopens once the socket has taken the bytes, and the socket
/// stops being read while the stream has more queued than the peer's window lets out.
final class YamuxBridge: ChannelInboundHandler, YamuxStreamDelegate {
  typealias InboundIn = ByteBuffer
  typealias OutboundOut = ByteBuffer

  // The stream holds the bridge as its delegate until it ends; the bridge holds the stream.
  private let stream: YamuxStream
  private var context: ChannelHandlerContext?
  /// What the stream delivered before the socket was ready.
  private var early = CircularBuffer<ByteBuffer>()
  private var peerEnded = false
  private var finished = false

  init(stream: YamuxStream) {
    self.stream = stream
    stream.delegate = self
  }

  // MARK: - Socket side

  func handlerAdded(context: ChannelHandlerContext) {
    self.context = context
    if context.channel.isActive { self.deliverEarly() }
  }

  func channelActive(context: ChannelHandlerContext) {
    self.deliverEarly()
    context.fireChannelActive()
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    self.stream.write(self.unwrapInboundIn(data))
    if !self.stream.isWritable {
      self.setAutoRead(false)
    }
  }

  func channelInactive(context: ChannelHandlerContext) {
    // The local end went away: the peer reads to the end of what was sent, then sees FIN.
    self.finished = true
    self.stream.close()
    context.fireChannelInactive()
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    self.stream.reset()
    context.close(promise: nil)
  }

  // MARK: - Stream side

  func stream(_ stream: YamuxStream, didReceive data: ByteBuffer) {
    guard let context, context.channel.isActive else {
      self.early.append(data)
      return
    }
    self.forward(data, context: context)
  }

  func streamDidReceiveEnd(_ stream: YamuxStream) {
    self.peerEnded = true
    if let context, context.channel.isActive, self.early.isEmpty {
      self.shutDownOutput(context)
    }
  }

  func streamDidTerminate(_ stream: YamuxStream) {
    self.finished = true
    self.context?.close(promise: nil)
  }

  func streamWritabilityChanged(_ stream: YamuxStream) {
    if stream.isWritable { self.setAutoRead(true) }
  }

  // MARK: -

  private func forward(_ data: ByteBuffer, context: ChannelHandlerContext) {
    let count = data.readableBytes
    let stream = self.stream
    context.writeAndFlush(self.wrapOutboundOut(data)).assumeIsolated().whenSuccess {
      stream.consumed(count)
    }
  }

  private func deliverEarly() {
    guard let context else { return }
    while let data = self.early.popFirst() {
      self.forward(data, context: context)
    }
    if self.peerEnded { self.shutDownOutput(context) }
  }

  /// Passes the peer's FIN on as a half-close, so that the local end reads everything first.
  private func shutDownOutput(_ context: ChannelHandlerContext) {
    context.close(mode: .output).assumeIsolated().whenFailure { _ in
      context.close(promise: nil)
    }
  }

  private func setAutoRead(_ on: Bool) {
    guard let context, !self.finished else { return }
    try? context.channel.syncOptions?.setOption(.autoRead, value: on)
    if on { context.read() }
  }
}
