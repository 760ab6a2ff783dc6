import NIOCore
import NIOEmbedded
import Testing

@testable import GoPluginTransport

@Suite("Ping responder")
struct PingResponderTests {
  static func frame(type: UInt8, flags: UInt8 = 0, stream: UInt32 = 0, payload: [UInt8]) -> [UInt8] {
    let length = payload.count
    return [UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff), type, flags]
      + withUnsafeBytes(of: stream.bigEndian, Array.init) + payload
  }

  static let settings = frame(type: 0x4, payload: [0, 3, 0, 0, 0, 100])
  static let data = frame(type: 0x0, flags: 0x1, stream: 1, payload: Array(repeating: 7, count: 300))
  static let ping = frame(type: 0x6, payload: [1, 2, 3, 4, 5, 6, 7, 8])
  static let pingAck = frame(type: 0x6, flags: 0x1, payload: [9, 9, 9, 9, 9, 9, 9, 9])

  /// Feeds `input` in pieces of `pieceSize` and returns what reached the next handler and what
  /// was written back to the peer.
  static func run(
    _ input: [UInt8], pieceSize: Int, isServer: Bool = false
  ) throws -> (forwarded: [UInt8], written: [UInt8]) {
    let channel = EmbeddedChannel(handler: PingResponder(isServer: isServer))
    var start = 0
    while start < input.count {
      let end = min(start + pieceSize, input.count)
      try channel.writeInbound(ByteBuffer(bytes: input[start..<end]))
      start = end
    }
    var forwarded: [UInt8] = []
    while let buffer = try channel.readInbound(as: ByteBuffer.self) { forwarded += buffer.readableBytesView }
    var written: [UInt8] = []
    while let buffer = try channel.readOutbound(as: ByteBuffer.self) { written += buffer.readableBytesView }
    _ = try channel.finish()
    return (forwarded, written)
  }

  @Test("answers PINGs and passes every other frame through unchanged", arguments: [1, 2, 5, 9, 17, 64, 4096])
  func answersPings(pieceSize: Int) throws {
    let stream = Self.settings + Self.ping + Self.data + Self.pingAck + Self.ping + Self.data
    let (forwarded, written) = try Self.run(stream, pieceSize: pieceSize)
    #expect(forwarded == Self.settings + Self.data + Self.pingAck + Self.data)
    let ack = Self.frame(type: 0x6, flags: 0x1, payload: [1, 2, 3, 4, 5, 6, 7, 8])
    #expect(written == ack + ack)
  }

  @Test("a server lets the client preface through first", arguments: [1, 7, 100])
  func serverPreface(pieceSize: Int) throws {
    let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    let (forwarded, written) = try Self.run(
      preface + Self.settings + Self.ping + Self.data, pieceSize: pieceSize, isServer: true)
    #expect(forwarded == preface + Self.settings + Self.data)
    #expect(written.count == 17)
  }

  @Test("a thousand PINGs never reach HTTP/2")
  func manyPings() throws {
    let input = (0..<1000).flatMap { _ in Self.ping + Self.data }
    let (forwarded, written) = try Self.run(input, pieceSize: 1500)
    #expect(forwarded.count == 1000 * Self.data.count)
    #expect(written.count == 1000 * 17)
  }
}
