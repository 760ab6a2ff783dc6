// The public entry points: one stream direction each way, the error, and Go's interface{}.

/// A typed failure of the gob codec: bad input, a type that does not fit, a limit exceeded.
public struct GobError: Error, Sendable, Hashable, CustomStringConvertible {
  public struct Code: Sendable, Hashable, CustomStringConvertible {
    let name: String
    public var description: String { name }
    /// The bytes are not a valid gob stream (bad length, bad type id, truncated value…).
    public static let malformed = Code(name: "malformed")
    /// The value on the wire does not fit the Swift type asked for.
    public static let typeMismatch = Code(name: "typeMismatch")
    /// A message or a collection is larger than the decoder's limits allow.
    public static let limitExceeded = Code(name: "limitExceeded")
    /// The encoder cannot express this Swift value in gob.
    public static let unsupported = Code(name: "unsupported")
    /// An interface value names a type that is not registered.
    public static let unregisteredType = Code(name: "unregisteredType")
  }
  public var code: Code
  public var message: String
  public init(code: Code, message: String) {
    self.code = code
    self.message = message
  }
  public var description: String { "gob: \(message)" }
}

/// One direction of a gob stream, as Go's `gob.Encoder`: each type is defined once, before the
/// first value of it.
///
/// Keep one encoder per stream direction for the life of the stream: the receiver remembers the
/// type ids this encoder assigned, and a fresh encoder would define them again (Go's decoder
/// rejects a type id defined twice with a different type).
public struct GobStreamEncoder: Sendable {
  var types = GobTypeWriter()

  public init() {}

  /// Appends to `bytes` the messages for `value`: the definitions of types this stream has not
  /// sent yet, then the value.
  ///
  /// Nothing is appended when the value cannot be encoded; the stream stays usable.
  public mutating func encode<T: Encodable>(_ value: T, into bytes: inout [UInt8]) throws(GobError) {
    let gobValue: GobValue
    if let interface = value as? GobInterface {
      // Go sends a top-level interface{} as a singleton of the interface type.
      gobValue = .interface(interface)
    } else {
      gobValue = try GobValueEncoding.value(of: value)
    }
    var writer = types
    var output: [UInt8] = []
    try writer.message(for: gobValue, into: &output)
    types = writer
    bytes.append(contentsOf: output)
  }
}

/// The receiving side of a gob stream, as Go's `gob.Decoder`, fed bytes as they arrive.
public struct GobStreamDecoder: Sendable {
  var buffer: [UInt8] = []
  var start = 0
  var table = GobTypeTable()

  /// The largest message accepted, in bytes; larger announced lengths fail before anything is
  /// buffered for them. Go's limit (`tooBig`) is 8 GiB on 64-bit platforms.
  public var maxMessageSize: Int = 1 << 33

  /// How deeply values and types may nest (Go has no limit but its stack).
  public var maxDepth: Int {
    get { table.maxDepth }
    set { table.maxDepth = max(1, newValue) }
  }

  /// When set, an interface value whose type name is not registered here fails with
  /// ``GobError/Code/unregisteredType``, as in Go; when nil (the default), every interface value
  /// decodes, as a ``GobValue`` under its name.
  public var registry: GobTypeRegistry? {
    get { table.registry }
    set { table.registry = newValue }
  }

  public init() {}

  /// Buffers bytes as they arrive.
  public mutating func append(_ bytes: some Collection<UInt8>) {
    if start > 0, start >= buffer.count / 2 {
      buffer.removeSubrange(0..<start)
      start = 0
    }
    buffer.append(contentsOf: bytes)
  }

  /// The bytes buffered and not yet consumed.
  public var bufferedByteCount: Int { buffer.count - start }

  /// The next value, or nil when it has not completely arrived yet (the bytes stay buffered).
  /// Type definitions before it are consumed on the way.
  public mutating func decode<T: Decodable>(_ type: T.Type) throws(GobError) -> T? {
    guard let value = try nextValue() else { return nil }
    return try GobValueDecoding.decode(T.self, from: value)
  }

  /// Reads past the next value without a Swift type for it (Go's `Decode(nil)`); false when it
  /// has not completely arrived yet.
  public mutating func skipValue() throws(GobError) -> Bool {
    try nextValue() != nil
  }

  /// The next value message as a GobValue, consuming the type definitions before it.
  mutating func nextValue() throws(GobError) -> GobValue? {
    while true {
      var header = GobReader(buffer, from: start, to: buffer.count)
      let length: UInt64
      do {
        length = try header.uint()
      } catch {
        if error == .truncated { return nil }
        throw error
      }
      guard length <= UInt64(maxMessageSize) else {
        throw GobError(
          code: .limitExceeded, message: "message of \(length) bytes exceeds the limit of \(maxMessageSize)")
      }
      guard length > 0 else { throw .malformed("empty message") }
      guard UInt64(header.remaining) >= length else { return nil }
      let end = header.position + Int(length)
      var reader = GobReader(buffer, from: header.position, to: end)
      reader.maxMessageSize = maxMessageSize
      let id = try reader.int()
      if id < 0 {
        start = end
        let definition = try GobWireType.decode(&reader)
        guard Int64(definition.id) == 0 &- id else {
          throw .malformed("type definition for \(0 &- id) names id \(definition.id)")
        }
        guard reader.isAtEnd else { throw .malformed("extra data after the definition of type \(definition.id)") }
        try table.define(id: definition.id, type: definition.type)
        continue
      }
      guard id < Int64(Int32.max) else {
        start = end
        throw .malformed("bad type id \(id)")
      }
      var values = GobValueReader(table: table, reader: reader)
      let value: GobValue
      do {
        value = try values.topLevel(Int(id), depth: 0)
      } catch {
        if error == .incomplete { return nil }
        start = values.reader.end
        throw error
      }
      start = values.reader.end
      table = values.table
      return value
    }
  }
}

/// Go's `interface{}`: nil, or a concrete value with the name its type is registered under.
///
/// The name travels with the value because the receiver looks the concrete type up by it (Go's
/// `gob.Register`): a Go peer only decodes names it registered, and the basic types are
/// registered under names such as "string", "int", "[]uint8".
public struct GobInterface: Codable, Sendable, Hashable {
  /// The nil interface.
  public static let none = GobInterface()

  /// The name the concrete type is registered under; empty for the nil interface.
  public let typeName: String
  private let storage: GobValue?

  public init() {
    typeName = ""
    storage = nil
  }

  /// An interface holding `value`, under the name Go registers its type as ("string", "[]uint8",
  /// "map[string]interface {}", or a registered struct's name).
  public init(_ value: GobValue) {
    self.init(value, typeName: value.type.goName)
  }

  /// An interface holding `value` under a name of your choosing: a Go peer decodes it as the
  /// type it registered under that name ("int64" rather than "int", a struct's "main.Args").
  public init(_ value: GobValue, typeName: String) {
    self.typeName = typeName
    storage = value
  }

  /// The concrete value, nil for the nil interface.
  public var value: GobValue? { storage }

  public init(from decoder: any Decoder) throws {
    guard let decoder = decoder as? GobValueDecoder else {
      throw DecodingError.typeMismatch(
        GobInterface.self,
        .init(codingPath: decoder.codingPath, debugDescription: "GobInterface decodes from gob only")
      )
    }
    self = try GobValueDecoding.decode(GobInterface.self, from: decoder.value, depth: decoder.depth)
  }

  public func encode(to encoder: any Encoder) throws {
    guard let encoder = encoder as? GobValueEncoder else {
      throw EncodingError.invalidValue(
        self,
        .init(codingPath: encoder.codingPath, debugDescription: "GobInterface encodes to gob only")
      )
    }
    encoder.storage.content = .single(.interface(self))
  }
}
