// API CONTRACT STUB (integrator): signatures the net/rpc layer codes against. The gob helper
// replaces every body and may add to this API, but keeps these signatures.

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
public struct GobStreamEncoder: Sendable {
  public init() {}

  /// Appends to `bytes` the messages for `value`: the definitions of types this stream has not
  /// sent yet, then the value.
  public mutating func encode<T: Encodable>(_ value: T, into bytes: inout [UInt8]) throws(GobError) {
    fatalError("unimplemented")
  }
}

/// The receiving side of a gob stream, as Go's `gob.Decoder`, fed bytes as they arrive.
public struct GobStreamDecoder: Sendable {
  public init() {}

  /// Buffers bytes as they arrive.
  public mutating func append(_ bytes: some Collection<UInt8>) {
    fatalError("unimplemented")
  }

  /// The next value, or nil when it has not completely arrived yet (the bytes stay buffered).
  /// Type definitions before it are consumed on the way.
  public mutating func decode<T: Decodable>(_ type: T.Type) throws(GobError) -> T? {
    fatalError("unimplemented")
  }

  /// Reads past the next value without a Swift type for it (Go's `Decode(nil)`); false when it
  /// has not completely arrived yet.
  public mutating func skipValue() throws(GobError) -> Bool {
    fatalError("unimplemented")
  }
}

/// Go's `interface{}`: nil, or a concrete value with the name its type is registered under.
public struct GobInterface: Codable, Sendable, Hashable {
  /// The nil interface.
  public static let none = GobInterface()
  public init() {}
  /// An interface holding `value`, under the name Go registers its type as ("string", "[]uint8",
  /// "map[string]interface {}", or a registered struct's name).
  public init(_ value: GobValue) { fatalError("unimplemented") }
  /// The concrete value, nil for the nil interface.
  public var value: GobValue? { fatalError("unimplemented") }
  // The helper adds: init(_ value: GobValue), typed init/accessors for registered types, etc.
}

/// A gob value without a Swift type: whatever arrives, as it arrived.
public indirect enum GobValue: Sendable, Hashable {
  case bool(Bool)
  case int(Int64)
  case uint(UInt64)
  case float(Double)
  case string(String)
  case bytes([UInt8])
  // The helper completes this (complex, slices/arrays, maps, structs, interfaces, opaque…).
}
