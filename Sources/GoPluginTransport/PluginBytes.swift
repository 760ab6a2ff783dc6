public import GRPCCore
import NIOCore

/// The bytes of one serialized gRPC message, as the plugin transports carry them.
///
/// A message read off a connection is a slice of the buffer it arrived in, so decoding reads it
/// where it lies instead of from a copy.
public struct PluginBytes: GRPCContiguousBytes, Sendable, Hashable {
  /// The compression flag and the 32-bit length that precede every message.
  static let prefixLength = 5

  var buffer: ByteBuffer

  init(buffer: ByteBuffer) {
    self.buffer = buffer
  }

  /// Creates `count` copies of `repeating`: the serializers' way to get a buffer to fill.
  public init(repeating: UInt8, count: Int) {
    var buffer = ByteBufferAllocator().buffer(capacity: count)
    buffer.writeRepeatingByte(repeating, count: count)
    self.buffer = buffer
  }

  /// Creates bytes holding the elements of `sequence`.
  public init(_ sequence: some Sequence<UInt8>) {
    var buffer = ByteBufferAllocator().buffer(capacity: sequence.underestimatedCount)
    buffer.writeBytes(sequence)
    self.buffer = buffer
  }

  /// The number of bytes in the message.
  public var count: Int { self.buffer.readableBytes }

  /// Calls `body` with the message's bytes.
  public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    try self.buffer.withUnsafeReadableBytes(body)
  }

  /// Calls `body` with the message's bytes, to change them in place.
  public mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
    try self.buffer.withUnsafeMutableReadableBytes(body)
  }

  /// The message behind its gRPC prefix: not compressed, then the 32-bit big-endian length.
  /// One copy, which a shared buffer would cost anyway the moment a prefix is written into it.
  func framed(allocator: ByteBufferAllocator) -> ByteBuffer {
    var framed = allocator.buffer(capacity: Self.prefixLength + self.buffer.readableBytes)
    framed.writeInteger(UInt8(0))
    framed.writeInteger(UInt32(self.buffer.readableBytes))
    framed.writeImmutableBuffer(self.buffer)
    return framed
  }
}
