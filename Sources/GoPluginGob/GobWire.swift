// The primitive encodings of gob: unsigned and signed integers, floats, counted byte strings.

extension GobError {
  static func malformed(_ message: String) -> GobError { GobError(code: .malformed, message: message) }
  static func mismatch(_ message: String) -> GobError { GobError(code: .typeMismatch, message: message) }
  static let truncated = GobError(code: .malformed, message: "truncated value")
  /// Internal: the value goes on in a message that has not arrived yet.
  static let incomplete = GobError(code: .init(name: "incomplete"), message: "incomplete message")
}

/// Appends gob's primitive encodings to a byte array, in place.
struct GobWriter {
  static func uint(_ value: UInt64, into bytes: inout [UInt8]) {
    if value < 0x80 {
      bytes.append(UInt8(truncatingIfNeeded: value))
      return
    }
    let count = (64 - value.leadingZeroBitCount + 7) / 8
    bytes.append(UInt8(truncatingIfNeeded: 256 - count))
    var shift = (count - 1) * 8
    while shift >= 0 {
      bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
      shift -= 8
    }
  }

  static func int(_ value: Int64, into bytes: inout [UInt8]) {
    let bits = UInt64(bitPattern: value)
    uint(value < 0 ? (~bits << 1) | 1 : bits << 1, into: &bytes)
  }

  static func float(_ value: Double, into bytes: inout [UInt8]) {
    uint(value.bitPattern.byteSwapped, into: &bytes)
  }

  static func bytes(_ value: some Collection<UInt8>, into bytes: inout [UInt8]) {
    uint(UInt64(value.count), into: &bytes)
    bytes.append(contentsOf: value)
  }

  static func string(_ value: String, into bytes: inout [UInt8]) {
    var value = value
    value.withUTF8 { self.bytes($0, into: &bytes) }
  }
}

/// Reads gob's primitive encodings from a range of a byte array; every read checks the bytes left.
struct GobReader {
  let buffer: [UInt8]
  var position: Int
  var end: Int
  /// Where the stream's buffered bytes end: a value may go on into the next message there.
  let limit: Int
  var maxMessageSize = Int.max

  init(_ bytes: [UInt8], from position: Int, to end: Int) {
    self.buffer = bytes
    self.position = position
    self.end = end
    self.limit = bytes.count
  }

  /// Moves into the next message of the stream, as Go's decoder does where an interface value
  /// defines types: Go's encoder ends the message after them and puts the value in the next one.
  mutating func continueIntoNextMessage() throws(GobError) {
    guard position == end else { return }
    var header = GobReader(buffer, from: end, to: limit)
    let length: UInt64
    do {
      length = try header.uint()
    } catch {
      throw error == .truncated ? .incomplete : error
    }
    guard length <= UInt64(maxMessageSize) else {
      throw GobError(code: .limitExceeded, message: "message of \(length) bytes exceeds the limit of \(maxMessageSize)")
    }
    guard length > 0 else { throw .malformed("empty message") }
    guard UInt64(header.remaining) >= length else { throw .incomplete }
    position = header.position
    end = position + Int(length)
  }

  var remaining: Int { end - position }
  var isAtEnd: Bool { position >= end }

  mutating func uint() throws(GobError) -> UInt64 {
    guard position < end else { throw .truncated }
    let first = buffer[position]
    position += 1
    if first < 0x80 { return UInt64(first) }
    let count = Int(~first &+ 1)
    guard count <= 8 else { throw .malformed("invalid uint length \(count)") }
    guard end - position >= count else { throw .truncated }
    var value: UInt64 = 0
    for index in position..<(position + count) {
      value = value << 8 | UInt64(buffer[index])
    }
    position += count
    return value
  }

  mutating func int() throws(GobError) -> Int64 {
    let bits = try uint()
    return bits & 1 == 1 ? Int64(bitPattern: ~(bits >> 1)) : Int64(bitPattern: bits >> 1)
  }

  mutating func float() throws(GobError) -> Double {
    Double(bitPattern: try uint().byteSwapped)
  }

  /// A count or length, checked against the bytes left (each counted item takes at least
  /// `minimumSize` bytes), so that nothing is reserved for more than the input can hold.
  mutating func count(minimumSize: Int = 1) throws(GobError) -> Int {
    let value = try uint()
    guard value <= UInt64(remaining / max(minimumSize, 1)) else {
      throw .malformed("count \(value) exceeds the \(remaining) bytes left")
    }
    return Int(value)
  }

  mutating func bytes() throws(GobError) -> ArraySlice<UInt8> {
    let count = try count()
    defer { position += count }
    return buffer[position..<(position + count)]
  }

  mutating func string() throws(GobError) -> String {
    String(decoding: try bytes(), as: UTF8.self)
  }

  mutating func skip(_ count: Int) throws(GobError) {
    guard count >= 0, count <= remaining else { throw .truncated }
    position += count
  }
}
