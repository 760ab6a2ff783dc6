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
  ///
  /// The buffer starts with room for the message's gRPC prefix, written now that the length is
  /// known, so that sending the message later costs no copy of it.
  public init(repeating: UInt8, count: Int) {
    var buffer = ByteBufferAllocator().buffer(capacity: Self.prefixLength + count)
    buffer.writeInteger(UInt8(0))
    buffer.writeInteger(UInt32(truncatingIfNeeded: count))
    buffer.moveReaderIndex(forwardBy: Self.prefixLength)
    buffer.writeRepeatingByte(repeating, count: count)
    self.buffer = buffer
  }

  /// Creates bytes holding the elements of `sequence`.
  public init(_ sequence: some Sequence<UInt8>) {
    var buffer = ByteBufferAllocator().buffer(capacity: Self.prefixLength + sequence.underestimatedCount)
    buffer.writeInteger(UInt8(0))
    buffer.writeInteger(UInt32(0))
    let written = buffer.writeBytes(sequence)
    // The length is known only now; the buffer is this initializer's alone, so no copy is made.
    buffer.setInteger(UInt32(truncatingIfNeeded: written), at: buffer.readerIndex + 1)
    buffer.moveReaderIndex(forwardBy: Self.prefixLength)
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
  ///
  /// Bytes made by a serializer already carry the prefix in front of them, and are sent as they
  /// are. Others (a slice of a received buffer, bytes whose length no longer fits a 32-bit
  /// prefix) are copied once behind a new one.
  func framed(allocator: ByteBufferAllocator) -> ByteBuffer {
    if let framed = self.withPrefixInPlace() { return framed }
    var framed = allocator.buffer(capacity: Self.prefixLength + self.buffer.readableBytes)
    framed.writeInteger(UInt8(0))
    framed.writeInteger(UInt32(self.buffer.readableBytes))
    framed.writeImmutableBuffer(self.buffer)
    return framed
  }

  /// The buffer with its reader moved back over a prefix that is already there and right for
  /// this message; moving an index copies nothing.
  private func withPrefixInPlace() -> ByteBuffer? {
    let length = self.buffer.readableBytes
    let start = self.buffer.readerIndex - Self.prefixLength
    guard start >= 0, length <= Int(UInt32.max) else { return nil }
    var framed = self.buffer
    framed.moveReaderIndex(to: start)
    guard framed.getInteger(at: start, as: UInt8.self) == 0,
      framed.getInteger(at: start + 1, as: UInt32.self) == UInt32(length)
    else { return nil }
    return framed
  }
}
