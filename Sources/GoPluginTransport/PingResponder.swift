import NIOCore
import NIOHTTP2

/// Answers the peer's HTTP/2 PINGs beneath the HTTP/2 handler, so that they never reach it.
///
/// grpc-go estimates bandwidth-delay product by sending a PING after almost every DATA frame
/// it receives. swift-nio-http2 counts every inbound PING against a limit of 200 control frames
/// per 30 s and closes the connection past it, so a Swift host on grpc-swift's transport lost its
/// connection to a Go plugin at about the 199th call. The library's transport also lifts that
/// limit, but a PING per call is still best answered before the HTTP/2 state machine sees it:
/// the reply is the one RFC 9113 §6.7 asks for (same payload, ACK flag), and nothing else the
/// peer sends is touched.
///
/// The handler sits between the socket (or TLS) and `NIOHTTP2Handler`. It only looks at frame
/// headers; frame bodies pass through as slices of the buffers they arrived in.
final class PingResponder: ChannelInboundHandler, RemovableChannelHandler {
  typealias InboundIn = ByteBuffer
  typealias InboundOut = ByteBuffer
  typealias OutboundOut = ByteBuffer

  private static let frameHeaderLength = 9
  private static let pingType: UInt8 = 0x6
  private static let ackFlag: UInt8 = 0x1
  private static let pingPayloadLength = 8

  /// Bytes of the client connection preface still to pass through (servers only).
  private var prefaceRemaining: Int
  /// Bytes of the current frame's payload still to pass through.
  private var payloadRemaining = 0
  /// A frame header, or a whole PING, that arrived split across reads.
  private var carry: ByteBuffer?

  /// How many PINGs this handler answered; for tests and diagnostics.
  private(set) var pingsAnswered = 0

  /// - Parameter isServer: servers first receive the 24-byte client preface, which is not a frame.
  init(isServer: Bool) {
    self.prefaceRemaining = isServer ? 24 : 0
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    var input = Self.unwrapInboundIn(data)
    if var carry = self.carry {
      carry.writeBuffer(&input)
      input = carry
      self.carry = nil
    }

    let end = input.writerIndex
    var cursor = input.readerIndex
    var runStart = cursor

    let preface = min(self.prefaceRemaining, end - cursor)
    cursor += preface
    self.prefaceRemaining -= preface
    let payload = min(self.payloadRemaining, end - cursor)
    cursor += payload
    self.payloadRemaining -= payload

    while cursor < end {
      guard end - cursor >= Self.frameHeaderLength else { break }
      let length =
        Int(input.getInteger(at: cursor, as: UInt8.self)!) << 16
        | Int(input.getInteger(at: cursor + 1, as: UInt16.self)!)
      let type = input.getInteger(at: cursor + 3, as: UInt8.self)!
      let flags = input.getInteger(at: cursor + 4, as: UInt8.self)!

      if type == Self.pingType, flags & Self.ackFlag == 0, length == Self.pingPayloadLength {
        let frameEnd = cursor + Self.frameHeaderLength + Self.pingPayloadLength
        guard frameEnd <= end else { break }
        self.forward(input, from: runStart, to: cursor, context: context)
        self.answerPing(payload: input.getSlice(at: cursor + Self.frameHeaderLength, length: 8)!, context: context)
        cursor = frameEnd
        runStart = cursor
      } else {
        cursor += Self.frameHeaderLength
        let available = min(length, end - cursor)
        cursor += available
        self.payloadRemaining = length - available
      }
    }

    self.forward(input, from: runStart, to: cursor, context: context)
    if cursor < end {
      // Copy, so that a large read buffer is not kept alive for a few header bytes.
      var carry = context.channel.allocator.buffer(capacity: end - cursor)
      carry.writeImmutableBuffer(input.getSlice(at: cursor, length: end - cursor)!)
      self.carry = carry
    }
  }

  private func forward(_ buffer: ByteBuffer, from start: Int, to end: Int, context: ChannelHandlerContext) {
    guard end > start else { return }
    context.fireChannelRead(Self.wrapInboundOut(buffer.getSlice(at: start, length: end - start)!))
  }

  private func answerPing(payload: ByteBuffer, context: ChannelHandlerContext) {
    var frame = context.channel.allocator.buffer(capacity: Self.frameHeaderLength + Self.pingPayloadLength)
    frame.writeInteger(UInt8(0))
    frame.writeInteger(UInt16(Self.pingPayloadLength))
    frame.writeInteger(Self.pingType)
    frame.writeInteger(Self.ackFlag)
    frame.writeInteger(UInt32(0))
    frame.writeImmutableBuffer(payload)
    self.pingsAnswered += 1
    context.writeAndFlush(Self.wrapOutboundOut(frame), promise: nil)
  }
}

extension PingResponder {
  /// Puts a responder in front of the HTTP/2 handler of a freshly configured gRPC channel.
  ///
  /// Called from the transport's connection callbacks, which run after the gRPC pipeline is in
  /// place: the responder goes right before the HTTP/2 handler, so it sees plaintext frames
  /// whether or not TLS sits beneath it.
  static func install(on channel: any Channel, isServer: Bool) -> EventLoopFuture<Void> {
    channel.eventLoop.makeCompletedFuture {
      let pipeline = channel.pipeline.syncOperations
      let http2 = try pipeline.handler(type: NIOHTTP2Handler.self)
      try pipeline.addHandler(PingResponder(isServer: isServer), position: .before(http2))
    }
  }
}
