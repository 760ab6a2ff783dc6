import NIOCore

/// One yamux frame (spec §5): a 12-byte big-endian header, and for data frames the payload.
///
/// The header's last field means something different per type — payload length, window delta,
/// ping ID or go-away code — so it is kept as the raw `length` and read through the accessors.
struct YamuxFrame: Equatable, Sendable {
  enum Kind: UInt8, Sendable {
    case data = 0
    case windowUpdate = 1
    case ping = 2
    case goAway = 3
  }

  struct Flags: OptionSet, Hashable, Sendable {
    var rawValue: UInt16
    /// Opens a stream, or asks for a ping reply.
    static let syn = Flags(rawValue: 1)
    /// Accepts a stream, or is a ping reply.
    static let ack = Flags(rawValue: 2)
    /// The sender will send no more on this stream.
    static let fin = Flags(rawValue: 4)
    /// The stream is abandoned in both directions.
    static let rst = Flags(rawValue: 8)
  }

  /// Why a session ends; carried in a go-away frame's length field.
  enum GoAwayCode: UInt32, Sendable {
    case normal = 0
    case protocolError = 1
    case internalError = 2
  }

  static let headerSize = 12
  static let protocolVersion: UInt8 = 0

  var kind: Kind
  var flags: Flags
  var streamID: UInt32
  var length: UInt32
  var payload: ByteBuffer?

  static func data(_ streamID: UInt32, _ payload: ByteBuffer, flags: Flags = []) -> YamuxFrame {
    YamuxFrame(kind: .data, flags: flags, streamID: streamID, length: UInt32(payload.readableBytes), payload: payload)
  }

  static func windowUpdate(_ streamID: UInt32, delta: UInt32, flags: Flags = []) -> YamuxFrame {
    YamuxFrame(kind: .windowUpdate, flags: flags, streamID: streamID, length: delta, payload: nil)
  }

  static func ping(_ id: UInt32, flags: Flags) -> YamuxFrame {
    YamuxFrame(kind: .ping, flags: flags, streamID: 0, length: id, payload: nil)
  }

  static func goAway(_ code: GoAwayCode) -> YamuxFrame {
    YamuxFrame(kind: .goAway, flags: [], streamID: 0, length: code.rawValue, payload: nil)
  }

  func writeHeader(into buffer: inout ByteBuffer) {
    buffer.writeInteger(Self.protocolVersion)
    buffer.writeInteger(self.kind.rawValue)
    buffer.writeInteger(self.flags.rawValue)
    buffer.writeInteger(self.streamID)
    buffer.writeInteger(self.length)
  }
}

/// A session-ending violation of the yamux protocol by the peer.
struct YamuxProtocolError: Error, Equatable, CustomStringConvertible {
  var description: String
}

/// Splits the byte stream into frames. Payloads longer than any window this side grants are
/// rejected before they are buffered, so a peer cannot make the session hold arbitrary amounts.
struct YamuxFrameDecoder: NIOSingleStepByteToMessageDecoder {
  typealias InboundOut = YamuxFrame

  let maxPayload: UInt32
  private static let allocator = ByteBufferAllocator()

  mutating func decode(buffer: inout ByteBuffer) throws -> YamuxFrame? {
    guard buffer.readableBytes >= YamuxFrame.headerSize,
      let version = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
      let type = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt8.self),
      let flags = buffer.getInteger(at: buffer.readerIndex + 2, as: UInt16.self),
      let streamID = buffer.getInteger(at: buffer.readerIndex + 4, as: UInt32.self),
      let length = buffer.getInteger(at: buffer.readerIndex + 8, as: UInt32.self)
    else { return nil }
    guard version == YamuxFrame.protocolVersion else {
      throw YamuxProtocolError(description: "invalid protocol version \(version)")
    }
    guard let kind = YamuxFrame.Kind(rawValue: type) else {
      throw YamuxProtocolError(description: "invalid message type \(type)")
    }
    var frame = YamuxFrame(kind: kind, flags: YamuxFrame.Flags(rawValue: flags), streamID: streamID, length: length)
    if kind == .data {
      guard length <= self.maxPayload else {
        throw YamuxProtocolError(description: "recv window exceeded: a \(length)-byte data frame")
      }
      guard buffer.readableBytes >= YamuxFrame.headerSize + Int(length) else { return nil }
      buffer.moveReaderIndex(forwardBy: YamuxFrame.headerSize)
      // A copy, not a slice: a slice still waiting in a socket's write queue would pin the
      // decoder's buffer, and every read after it would copy that whole buffer again.
      var payload = Self.allocator.buffer(capacity: Int(length))
      payload.writeImmutableBuffer(buffer.readSlice(length: Int(length))!)
      frame.payload = payload
    } else {
      buffer.moveReaderIndex(forwardBy: YamuxFrame.headerSize)
    }
    return frame
  }

  mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> YamuxFrame? {
    try self.decode(buffer: &buffer)
  }
}
