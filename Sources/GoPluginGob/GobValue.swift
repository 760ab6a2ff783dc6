/// A gob type as it goes on the wire, without a Swift type behind it: what a ``GobValue`` carries so
/// that an empty slice or map can still be defined to the receiver, and what the decoder reports
/// for a received type.
///
/// A recursive Go type (a struct that holds a slice of itself) is cut where it recurs: the inner
/// occurrence is a ``structure(name:fields:)`` with no fields, which Go accepts (it matches struct
/// fields by name).
public indirect enum GobType: Sendable, Hashable {
  case bool
  case int
  case uint
  case float
  case complex
  case string
  case bytes
  case interface
  case array(GobType, count: Int)
  case slice(GobType)
  case map(GobType, GobType)
  case structure(name: String, fields: [GobFieldType])
  /// A value that marshals itself (Go's `GobEncoder`, `BinaryMarshaler` or `TextMarshaler`).
  case opaque(name: String, kind: GobOpaqueKind)

  /// The name Go gives this type, as `gob.Register` registers the basic types for interfaces.
  public var goName: String {
    switch self {
    case .bool: "bool"
    case .int: "int"
    case .uint: "uint"
    case .float: "float64"
    case .complex: "complex128"
    case .string: "string"
    case .bytes: "[]uint8"
    case .interface: "interface {}"
    case .array(let element, let count): "[\(count)]\(element.goName)"
    case .slice(let element): "[]\(element.goName)"
    case .map(let key, let value): "map[\(key.goName)]\(value.goName)"
    case .structure(let name, _): name
    case .opaque(let name, _): name
    }
  }
}

/// Which of Go's self-marshalling interfaces produced an opaque value: the receiver must
/// implement the same one.
public enum GobOpaqueKind: Sendable, Hashable {
  case gobEncoder
  case binaryMarshaler
  case textMarshaler
}

/// One field of a struct type: Go's exported field name and its type.
public struct GobFieldType: Sendable, Hashable {
  public var name: String
  public var type: GobType
  public init(name: String, type: GobType) {
    self.name = name
    self.type = type
  }
}

/// A struct value: its type name and the fields that were sent. Gob omits zero-valued fields, so a
/// field missing here is the zero value of its type.
public struct GobStruct: Sendable, Hashable {
  public var name: String
  public var fields: [GobField]
  /// The type of every field, including those the value leaves out; nil when only the sent fields
  /// are known. The encoder defines the struct with these fields when present.
  public var fieldTypes: [GobFieldType]?
  public init(name: String, fields: [GobField], fieldTypes: [GobFieldType]? = nil) {
    self.name = name
    self.fields = fields
    self.fieldTypes = fieldTypes
  }
  /// The value of the field named `name` (Go's exported name), nil when it was not sent.
  public subscript(name: String) -> GobValue? {
    fields.first { $0.name == name }?.value
  }
}

/// A named field of a ``GobStruct``.
public struct GobField: Sendable, Hashable {
  public var name: String
  public var value: GobValue
  public init(name: String, value: GobValue) {
    self.name = name
    self.value = value
  }
}

/// A gob value without a Swift type: whatever arrives, as it arrived.
///
/// Collections carry their element types because gob defines a type before its first value: an
/// empty slice still needs one to be sent back.
public indirect enum GobValue: Sendable, Hashable {
  case bool(Bool)
  case int(Int64)
  case uint(UInt64)
  case float(Double)
  case string(String)
  case bytes([UInt8])
  case complex(real: Double, imaginary: Double)
  /// A Go array (fixed length).
  case array([GobValue], element: GobType)
  case slice([GobValue], element: GobType)
  /// A Go map; keys are unique, the order of `entries` is the order they arrived in.
  case map([GobMapEntry], key: GobType, value: GobType)
  case structure(GobStruct)
  case interface(GobInterface)
  /// The bytes of a value that marshalled itself, under its type's name.
  case opaque(name: String, kind: GobOpaqueKind, bytes: [UInt8])

  /// The gob type of this value, as the encoder defines it.
  public var type: GobType {
    switch self {
    case .bool: .bool
    case .int: .int
    case .uint: .uint
    case .float: .float
    case .string: .string
    case .bytes: .bytes
    case .complex: .complex
    case .array(let values, let element): .array(element, count: values.count)
    case .slice(_, let element): .slice(element)
    case .map(_, let key, let value): .map(key, value)
    case .structure(let value):
      .structure(
        name: value.name,
        fields: value.fieldTypes ?? value.fields.map { GobFieldType(name: $0.name, type: $0.value.type) }
      )
    case .interface: .interface
    case .opaque(let name, let kind, _): .opaque(name: name, kind: kind)
    }
  }

  /// Whether gob leaves this value out of a struct (Go's zero values; Go's encoder always sends
  /// struct and array fields).
  var isOmittedAsField: Bool {
    switch self {
    case .bool(let value): !value
    case .int(let value): value == 0
    case .uint(let value): value == 0
    case .float(let value): value == 0
    case .complex(let real, let imaginary): real == 0 && imaginary == 0
    case .string(let value): value.isEmpty
    case .bytes(let value): value.isEmpty
    case .slice(let values, _): values.isEmpty
    case .map(let entries, _, _): entries.isEmpty
    case .interface(let value): value.value == nil
    case .array, .structure, .opaque: false
    }
  }
}

/// One key and value of a ``GobValue/map(_:key:value:)``.
public struct GobMapEntry: Sendable, Hashable {
  public var key: GobValue
  public var value: GobValue
  public init(key: GobValue, value: GobValue) {
    self.key = key
    self.value = value
  }
}

/// GobValue goes through gob's Codable mapping as itself, so that a Swift struct can hold a
/// field of any gob type; other encoders and decoders cannot express it.
extension GobValue: Codable {
  public init(from decoder: any Decoder) throws {
    guard let decoder = decoder as? GobValueDecoder, let value = decoder.value else {
      throw DecodingError.typeMismatch(
        GobValue.self,
        .init(codingPath: decoder.codingPath, debugDescription: "GobValue decodes from a gob value only")
      )
    }
    self = value
  }

  public func encode(to encoder: any Encoder) throws {
    guard let encoder = encoder as? GobValueEncoder else {
      throw EncodingError.invalidValue(
        self,
        .init(codingPath: encoder.codingPath, debugDescription: "GobValue encodes to gob only")
      )
    }
    encoder.storage.content = .single(self)
  }
}
