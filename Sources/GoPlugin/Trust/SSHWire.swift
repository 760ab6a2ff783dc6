/// OpenSSH's wire encoding (RFC 4251 §5): big-endian `uint32`, length-prefixed `string`, `mpint`.
///
/// Every read checks the length against what is left, so a truncated or hostile blob ends in a
/// thrown reason, never a trap.
struct SSHWireReader {
  /// Why a blob could not be read; the caller adds what the blob was.
  struct Malformed: Error {
    var reason: String
  }

  private let bytes: [UInt8]
  private var offset: Int

  init(_ bytes: [UInt8]) {
    self.bytes = bytes
    self.offset = 0
  }

  var isAtEnd: Bool { self.offset == self.bytes.count }

  mutating func raw(_ count: Int, _ what: String) throws(Malformed) -> [UInt8] {
    guard count >= 0, self.bytes.count - self.offset >= count else {
      throw Malformed(reason: "truncated \(what)")
    }
    defer { self.offset += count }
    return Array(self.bytes[self.offset..<self.offset + count])
  }

  mutating func uint32(_ what: String) throws(Malformed) -> UInt32 {
    try self.raw(4, what).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
  }

  mutating func string(_ what: String) throws(Malformed) -> [UInt8] {
    let length = try self.uint32(what)
    return try self.raw(Int(length), what)
  }

  mutating func text(_ what: String) throws(Malformed) -> String {
    String(decoding: try self.string(what), as: UTF8.self)
  }

  /// A non-negative `mpint` as its magnitude, without the sign byte OpenSSH puts in front of a
  /// value whose top bit is set.
  mutating func unsignedMPInt(_ what: String) throws(Malformed) -> [UInt8] {
    let value = try self.string(what)
    if let first = value.first, first & 0x80 != 0 { throw Malformed(reason: "negative \(what)") }
    return Array(value.drop { $0 == 0 })
  }
}

/// Builds the same encoding: the signed data of an SSHSIG signature, and key blobs.
struct SSHWireWriter {
  private(set) var bytes: [UInt8] = []

  mutating func raw(_ value: some Sequence<UInt8>) {
    self.bytes.append(contentsOf: value)
  }

  mutating func uint32(_ value: UInt32) {
    self.bytes.append(contentsOf: [
      UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff),
    ])
  }

  mutating func string(_ value: some Collection<UInt8>) {
    self.uint32(UInt32(value.count))
    self.bytes.append(contentsOf: value)
  }

  mutating func string(_ value: String) {
    self.string(Array(value.utf8))
  }
}

/// Base64 as OpenSSH writes it (the standard alphabet, with padding), without Foundation.
enum SSHBase64 {
  private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
  private static let values: [UInt8] = {
    var table = [UInt8](repeating: 0xff, count: 256)
    for (index, character) in alphabet.enumerated() { table[Int(character)] = UInt8(index) }
    return table
  }()

  /// The bytes `text` encodes, or `nil` when it is not base64; whitespace is skipped.
  static func decode(_ text: some Sequence<UInt8>) -> [UInt8]? {
    var output: [UInt8] = []
    var accumulator: UInt32 = 0
    var bits = 0
    var padding = 0
    var count = 0
    for character in text {
      switch character {
      case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"):
        continue
      case UInt8(ascii: "="):
        padding += 1
        count += 1
        continue
      default:
        break
      }
      let value = Self.values[Int(character)]
      guard value != 0xff, padding == 0 else { return nil }
      count += 1
      accumulator = accumulator << 6 | UInt32(value)
      bits += 6
      if bits >= 8 {
        bits -= 8
        output.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
      }
    }
    guard padding <= 2, count % 4 == 0 || padding == 0 else { return nil }
    return output
  }

  /// `bytes` in base64; without the trailing `=`s when `padded` is false, as fingerprints are.
  static func encode(_ bytes: [UInt8], padded: Bool = true) -> String {
    var output: [UInt8] = []
    var index = 0
    while index < bytes.count {
      let chunk = bytes[index..<min(index + 3, bytes.count)]
      let value = chunk.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << UInt32(16 - 8 * $1.offset) }
      for position in 0..<(chunk.count + 1) {
        output.append(Self.alphabet[Int(value >> UInt32(18 - 6 * position) & 0x3f)])
      }
      if padded { output.append(contentsOf: repeatElement(UInt8(ascii: "="), count: 3 - chunk.count)) }
      index += 3
    }
    return String(decoding: output, as: UTF8.self)
  }
}
