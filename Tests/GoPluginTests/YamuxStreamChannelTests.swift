import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import GoPlugin

/// What a stream channel's pipeline sees.
private final class Recorder: ChannelInboundHandler {
  typealias InboundIn = ByteBuffer

  var received: [UInt8] = []
  var reads = 0
  var events: [String] = []
  var errors: [any Error] = []
  var writability: [Bool] = []

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    self.reads += 1
    self.received += self.unwrapInboundIn(data).readableBytesView
  }

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    switch event as? ChannelEvent {
    case .inputClosed?: self.events.append("inputClosed")
    case .outputClosed?: self.events.append("outputClosed")
    case nil: break
    }
  }

  func channelInactive(context: ChannelHandlerContext) {
    self.events.append("inactive")
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    self.errors.append(error)
  }

  func channelWritabilityChanged(context: ChannelHandlerContext) {
    self.writability.append(context.channel.isWritable)
  }
}

/// A client yamux session on an embedded channel with one stream open as a channel: bytes from
/// the peer go in by hand, frames to the peer come out decoded.
private final class Harness {
  let connection = EmbeddedChannel()
  let session = YamuxSession(
    role: .client, configuration: .init(keepAliveInterval: nil), logger: Logger(label: "yamux-channel-test"))
  let channel: YamuxStreamChannel
  let recorder = Recorder()

  init(autoRead: Bool = true, allowRemoteHalfClosure: Bool = false) throws {
    try self.connection.pipeline.syncOperations.addHandlers(
      ByteToMessageHandler(YamuxFrameDecoder(maxPayload: YamuxSession.initialWindow)),
      self.session
    )
    try self.connection.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
    self.channel = YamuxStreamChannel(stream: try self.session.openStream(), parent: self.connection)
    let options = try #require(self.channel.syncOptions)
    try options.setOption(.autoRead, value: autoRead)
    try options.setOption(.allowRemoteHalfClosure, value: allowRemoteHalfClosure)
    try self.channel.pipeline.syncOperations.addHandler(self.recorder)
    self.channel.activate()
    _ = try self.sentFrames()  // the SYN
  }

  func receive(_ frames: YamuxFrame...) throws {
    var bytes = ByteBuffer()
    for frame in frames {
      frame.writeHeader(into: &bytes)
      if var payload = frame.payload { bytes.writeBuffer(&payload) }
    }
    try self.connection.writeInbound(bytes)
    self.connection.pipeline.fireChannelReadComplete()
  }

  func sentFrames() throws -> [YamuxFrame] {
    var bytes = ByteBuffer()
    while var buffer = try self.connection.readOutbound(as: ByteBuffer.self) { bytes.writeBuffer(&buffer) }
    var decoder = YamuxFrameDecoder(maxPayload: .max)
    var frames: [YamuxFrame] = []
    while let frame = try decoder.decode(buffer: &bytes) { frames.append(frame) }
    return frames
  }

  /// Runs what the channel left for a later tick: its pipeline's teardown after a close.
  func runPending() {
    (self.connection.eventLoop as? EmbeddedEventLoop)?.run()
  }
}

private func bytes(_ count: Int, _ seed: Int = 0) -> ByteBuffer {
  ByteBuffer(bytes: (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed) })
}

@Suite("A channel over a yamux stream")
struct YamuxStreamChannelTests {
  @Test("writes leave within the peer's window; writability follows what waits for it")
  func windowLimitedWrites() throws {
    let harness = try Harness()
    let written = harness.channel.writeAndFlush(bytes(512 * 1024))
    try written.wait()
    let first = try harness.sentFrames()
    #expect(first.allSatisfy { $0.kind == .data && $0.streamID == 1 })
    #expect(first.reduce(0) { $0 + Int($1.length) } == 256 * 1024)
    #expect(!harness.channel.isWritable)
    #expect(harness.recorder.writability == [false])

    try harness.receive(.windowUpdate(1, delta: 256 * 1024))
    let rest = try harness.sentFrames()
    #expect(rest.reduce(0) { $0 + Int($1.length) } == 256 * 1024)
    #expect(harness.channel.isWritable)
    #expect(harness.recorder.writability == [false, true])
    let sent = (first + rest).flatMap { Array($0.payload!.readableBytesView) }
    #expect(sent == Array(bytes(512 * 1024).readableBytesView))
  }

  @Test("writes wait for a flush, and count against writability until then")
  func unflushedWrites() throws {
    let harness = try Harness()
    harness.channel.write(bytes(300 * 1024), promise: nil)
    #expect(try harness.sentFrames().isEmpty)
    #expect(!harness.channel.isWritable)
    harness.channel.flush()
    #expect(try harness.sentFrames().reduce(0) { $0 + Int($1.length) } == 256 * 1024)
  }

  @Test("with autoRead off, bytes wait for read() and the window is credited only once they are read")
  func readsCreditOnDelivery() throws {
    let harness = try Harness(autoRead: false)
    try harness.receive(.data(1, bytes(100 * 1024, 1)), .data(1, bytes(100 * 1024, 2)))
    #expect(harness.recorder.received.isEmpty)
    // 200 KiB held and unread: the window stays closed, so the peer cannot send more than 56 KiB.
    #expect(try harness.sentFrames().isEmpty)

    harness.channel.read()
    #expect(
      harness.recorder.received
        == Array(bytes(100 * 1024, 1).readableBytesView + bytes(100 * 1024, 2).readableBytesView))
    #expect(try harness.sentFrames() == [.windowUpdate(1, delta: 200 * 1024)])

    // Nothing more is delivered until the next read().
    try harness.receive(.data(1, bytes(10, 3)))
    #expect(harness.recorder.received.count == 200 * 1024)
    harness.channel.read()
    #expect(harness.recorder.received.count == 200 * 1024 + 10)
  }

  @Test("with autoRead on, bytes are delivered as they arrive and the window reopens")
  func autoReadDelivers() throws {
    let harness = try Harness()
    try harness.receive(.data(1, bytes(150 * 1024)))
    #expect(harness.recorder.received.count == 150 * 1024)
    #expect(try harness.sentFrames() == [.windowUpdate(1, delta: 150 * 1024)])
    // Turned off, the read already asked for is answered, and then nothing until it is on again.
    try #require(harness.channel.syncOptions).setOption(.autoRead, value: false)
    try harness.receive(.data(1, bytes(5)))
    #expect(harness.recorder.received.count == 150 * 1024 + 5)
    try harness.receive(.data(1, bytes(7)))
    #expect(harness.recorder.received.count == 150 * 1024 + 5)
    try #require(harness.channel.syncOptions).setOption(.autoRead, value: true)
    #expect(harness.recorder.received.count == 150 * 1024 + 12)
  }

  @Test("closing the output sends FIN after the data; the peer's FIN is inputClosed, and both close the channel")
  func halfClosure() throws {
    let harness = try Harness(allowRemoteHalfClosure: true)
    harness.channel.writeAndFlush(ByteBuffer(string: "bye"), promise: nil)
    try harness.channel.close(mode: .output).wait()
    #expect(try harness.sentFrames() == [.data(1, ByteBuffer(string: "bye")), .windowUpdate(1, delta: 0, flags: .fin)])
    #expect(harness.recorder.events == ["outputClosed"])
    #expect(harness.channel.isActive)
    #expect(throws: ChannelError.outputClosed) { try harness.channel.writeAndFlush(ByteBuffer(string: "x")).wait() }

    try harness.receive(.data(1, ByteBuffer(string: "ok"), flags: [.ack, .fin]))
    #expect(harness.recorder.received == Array("ok".utf8))
    #expect(harness.recorder.events == ["outputClosed", "inputClosed", "inactive"])
    #expect(!harness.channel.isActive)
    harness.runPending()
    try harness.channel.closeFuture.wait()
    #expect(harness.session.openStreamCount == 0)
  }

  @Test("without half-closure the peer's FIN closes the channel after the last bytes, and FIN goes back")
  func peerFinCloses() throws {
    let harness = try Harness()
    try harness.receive(.data(1, ByteBuffer(string: "last"), flags: .fin))
    #expect(harness.recorder.received == Array("last".utf8))
    #expect(harness.recorder.events == ["inactive"])
    #expect(harness.recorder.errors.isEmpty)
    #expect(try harness.sentFrames() == [.windowUpdate(1, delta: 0, flags: .fin)])
    harness.runPending()
    try harness.channel.closeFuture.wait()
    #expect(harness.session.openStreamCount == 0)
  }

  @Test("a reset closes the channel with an error and fails what is written after it")
  func resetCloses() throws {
    let harness = try Harness()
    harness.channel.write(ByteBuffer(string: "unflushed"), promise: nil)
    try harness.receive(.windowUpdate(1, delta: 0, flags: .rst))
    #expect(harness.recorder.errors.count == 1)
    #expect(harness.recorder.errors.first as? YamuxStreamChannel.StreamError == .reset)
    #expect(harness.recorder.events == ["inactive"])
    #expect(!harness.channel.isActive)
    #expect(throws: ChannelError.ioOnClosedChannel) {
      try harness.channel.writeAndFlush(ByteBuffer(string: "x")).wait()
    }
    harness.runPending()
    try harness.channel.closeFuture.wait()
    #expect(try harness.sentFrames().isEmpty)
  }

  @Test("the end of the session closes its stream channels with an error")
  func sessionEndCloses() throws {
    let harness = try Harness()
    try harness.connection.close().wait()
    #expect(harness.recorder.errors.first as? YamuxStreamChannel.StreamError == .reset)
    #expect(!harness.channel.isActive)
    harness.runPending()
    try harness.channel.closeFuture.wait()
  }

  @Test("a full close sends FIN, and what the peer still sends is credited and dropped")
  func fullClose() throws {
    let harness = try Harness()
    try harness.channel.close().wait()
    #expect(try harness.sentFrames() == [.windowUpdate(1, delta: 0, flags: .fin)])
    try harness.receive(.data(1, bytes(200 * 1024)))
    #expect(harness.recorder.received.isEmpty)
    #expect(try harness.sentFrames() == [.windowUpdate(1, delta: 200 * 1024)])
    try harness.receive(.windowUpdate(1, delta: 0, flags: .fin))
    #expect(harness.session.openStreamCount == 0)
  }
}
