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

  /// Encodes `header` and `body` and queues them on the channel; if either cannot be encoded,
  /// nothing is written and the stream's record of defined types stays as it was, so the
  /// connection stays usable.
  ///
  /// The bytes always go through the event loop's queue, even from the loop itself: a write made
  /// directly on the loop would overtake one queued from another thread a moment before, and a
  /// value could reach the peer before the definition of its type. Nothing runs in the pipeline
  /// while the lock is held.
  func send(_ header: some Encodable, _ body: some Encodable) throws(GobError) {
    try self.encoder.withLock { encoder throws(GobError) in
      let saved = encoder
      var bytes: [UInt8] = []
      do throws(GobError) {
        try encoder.encode(header, into: &bytes)
        try encoder.encode(body, into: &bytes)
      } catch {
        encoder = saved
        throw error
      }
      let channel = self.channel
      let buffer = channel.allocator.buffer(bytes: bytes)
      channel.eventLoop.execute { channel.writeAndFlush(buffer, promise: nil) }
    }
  }
}
