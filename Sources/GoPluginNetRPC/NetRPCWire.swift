import GoPluginGob
import NIOCore
import Synchronization

/// The header before each call's argument: Go's `rpc.Request`.
struct RequestHeader: Codable, Sendable {
  var serviceMethod: String
  var seq: UInt64

  enum CodingKeys: String, CodingKey {
    case serviceMethod = "ServiceMethod"
    case seq = "Seq"
  }
}

/// The header before each reply: Go's `rpc.Response`. `error` is empty for a success.
struct ResponseHeader: Codable, Sendable {
  var serviceMethod: String
  var seq: UInt64
  var error: String

  enum CodingKeys: String, CodingKey {
    case serviceMethod = "ServiceMethod"
    case seq = "Seq"
    case error = "Error"
  }
}

/// Go's `invalidRequest`: what a server sends in place of a reply when the call failed.
struct EmptyBody: Codable, Sendable {}

/// One direction of a connection: a header and its body are encoded and queued as one write,
/// under one lock, so that each type's definition reaches the peer before its first value even
/// when calls end in another order than they were encoded.
final class GobWriter: Sendable {
  private let channel: any Channel
  private let encoder = Mutex(GobStreamEncoder())

  init(channel: any Channel) {
    self.channel = channel
  }

  /// Encodes `header` and `body` and queues them on the channel. A value that cannot be encoded
  /// closes the connection, as Go's codec does: the stream may already hold type definitions
  /// the peer will never see.
  func send(_ header: some Encodable, _ body: some Encodable) throws(GobError) {
    try self.encoder.withLock { encoder throws(GobError) in
      var bytes: [UInt8] = []
      do throws(GobError) {
        try encoder.encode(header, into: &bytes)
        try encoder.encode(body, into: &bytes)
      } catch {
        self.channel.close(promise: nil)
        throw error
      }
      // Queued while the lock is held, so the channel sees writes in the order of encoding.
      self.channel.writeAndFlush(ByteBuffer(bytes: bytes), promise: nil)
    }
  }
}
