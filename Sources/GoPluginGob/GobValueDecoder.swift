// GobValue to Decodable values: the Decoder side of the mapping.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Dictionaries decode from a gob map as a whole, whatever their key type.
protocol GobMapDecodable {
  init(gobEntries: [GobMapEntry], depth: Int) throws(GobError)
}

extension Dictionary: GobMapDecodable where Key: Decodable, Value: Decodable {
  init(gobEntries: [GobMapEntry], depth: Int) throws(GobError) {
    self.init(minimumCapacity: gobEntries.count)
    for entry in gobEntries {
      let key = try GobValueDecoding.decode(Key.self, from: entry.key, depth: depth + 1)
      self[key] = try GobValueDecoding.decode(Value.self, from: entry.value, depth: depth + 1)
    }
  }
}

/// Turns a GobValue (nil: the zero value, for a field gob left out) into a Decodable value.
enum GobValueDecoding {
  static func decode<T: Decodable>(_ type: T.Type, from value: GobValue?, depth: Int = 0) throws(GobError) -> T {
    guard depth < 100 else { throw GobError(code: .limitExceeded, message: "value nested too deeply") }
    if T.self == GobValue.self, let value { return value as! T }
    if T.self == GobInterface.self {
      switch value {
      case .interface(let interface): return interface as! T
      case nil: return GobInterface.none as! T
      case let value?: return GobInterface(value) as! T
      }
    }
    var value = value
    if case .interface(let interface) = value, T.self != GobValue.self {
      // A Swift type asked for where Go sent an interface: the concrete value, if it fits.
      value = interface.value
    }
    switch value {
    case .bytes(let bytes)?:
      if T.self == [UInt8].self { return bytes as! T }
      if T.self == Data.self { return Data(bytes) as! T }
    case .map(let entries, _, _)?:
      if let map = T.self as? any GobMapDecodable.Type { return try map.init(gobEntries: entries, depth: depth) as! T }
    case nil:
      if T.self == [UInt8].self { return [UInt8]() as! T }
      if T.self == Data.self { return Data() as! T }
      if let map = T.self as? any GobMapDecodable.Type { return try map.init(gobEntries: [], depth: depth) as! T }
    default: break
    }
    do {
      return try T(from: GobValueDecoder(value: value, depth: depth))
    } catch let error as GobError {
      throw error
    } catch {
      throw .mismatch("\(T.self): \(error)")
    }
  }
}

final class GobValueDecoder: Decoder {
  let value: GobValue?
  let depth: Int
  var codingPath: [any CodingKey] = []
  var userInfo: [CodingUserInfoKey: Any] = [:]

  init(value: GobValue?, depth: Int) {
    self.value = value
    self.depth = depth
  }

  func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
    switch value {
    case .structure(let value)?:
      return KeyedDecodingContainer(GobKeyedDecodingContainer<Key>(fields: value.fields, depth: depth))
    case nil: return KeyedDecodingContainer(GobKeyedDecodingContainer<Key>(fields: [], depth: depth))
    case .map(let entries, _, _)?:
      // A Swift type with string keys, decoding a Go map[string]T.
      var fields: [GobField] = []
      for entry in entries {
        guard case .string(let key) = entry.key else { throw GobError.mismatch("map key is not a string") }
        fields.append(GobField(name: key, value: entry.value))
      }
      return KeyedDecodingContainer(GobKeyedDecodingContainer<Key>(fields: fields, depth: depth, exactNames: true))
    case let value?: throw GobError.mismatch("expected a struct, got \(value.type.goName)")
    }
  }

  func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
    switch value {
    case .slice(let values, _)?, .array(let values, _)?:
      return GobUnkeyedDecodingContainer(values: values, depth: depth)
    case .bytes(let bytes)?: return GobUnkeyedDecodingContainer(values: bytes.map { .uint(UInt64($0)) }, depth: depth)
    case nil: return GobUnkeyedDecodingContainer(values: [], depth: depth)
    case let value?: throw GobError.mismatch("expected a slice, got \(value.type.goName)")
    }
  }

  func singleValueContainer() throws -> any SingleValueDecodingContainer {
    GobSingleValueDecodingContainer(value: value, depth: depth)
  }
}

struct GobKeyedDecodingContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
  let fields: [GobField]
  let depth: Int
  var exactNames = false
  var codingPath: [any CodingKey] { [] }
  var allKeys: [Key] { fields.compactMap { Key(stringValue: $0.name) } }

  private func field(_ key: Key) -> GobValue? {
    let name = exactNames ? key.stringValue : goFieldName(key.stringValue)
    return fields.first { $0.name == name }?.value
  }

  func contains(_ key: Key) -> Bool { field(key) != nil }

  func decodeNil(forKey key: Key) throws -> Bool {
    switch field(key) {
    case nil, .interface(GobInterface.none)?: true
    default: false
    }
  }

  func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
    try GobValueDecoding.decode(T.self, from: field(key), depth: depth + 1)
  }

  func nestedContainer<NestedKey: CodingKey>(
    keyedBy type: NestedKey.Type, forKey key: Key
  ) throws
    -> KeyedDecodingContainer<NestedKey>
  {
    try GobValueDecoder(value: field(key), depth: depth + 1).container(keyedBy: NestedKey.self)
  }

  func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
    try GobValueDecoder(value: field(key), depth: depth + 1).unkeyedContainer()
  }

  func superDecoder() throws -> any Decoder { GobValueDecoder(value: nil, depth: depth + 1) }
  func superDecoder(forKey key: Key) throws -> any Decoder { GobValueDecoder(value: field(key), depth: depth + 1) }
}

struct GobUnkeyedDecodingContainer: UnkeyedDecodingContainer {
  let values: [GobValue]
  let depth: Int
  var currentIndex = 0
  var codingPath: [any CodingKey] { [] }
  var count: Int? { values.count }
  var isAtEnd: Bool { currentIndex >= values.count }

  init(values: [GobValue], depth: Int) {
    self.values = values
    self.depth = depth
  }

  private mutating func next() throws(GobError) -> GobValue {
    guard currentIndex < values.count else { throw GobError.mismatch("read past the end of a slice") }
    defer { currentIndex += 1 }
    return values[currentIndex]
  }

  mutating func decodeNil() throws -> Bool {
    guard currentIndex < values.count else { return true }
    if case .interface(GobInterface.none) = values[currentIndex] {
      currentIndex += 1
      return true
    }
    return false
  }

  mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
    try GobValueDecoding.decode(T.self, from: try next(), depth: depth + 1)
  }

  mutating func nestedContainer<NestedKey: CodingKey>(
    keyedBy type: NestedKey.Type
  ) throws
    -> KeyedDecodingContainer<NestedKey>
  {
    try GobValueDecoder(value: try next(), depth: depth + 1).container(keyedBy: NestedKey.self)
  }

  mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
    try GobValueDecoder(value: try next(), depth: depth + 1).unkeyedContainer()
  }

  mutating func superDecoder() throws -> any Decoder { GobValueDecoder(value: try next(), depth: depth + 1) }
}

struct GobSingleValueDecodingContainer: SingleValueDecodingContainer {
  let value: GobValue?
  let depth: Int
  var codingPath: [any CodingKey] { [] }

  func decodeNil() -> Bool {
    switch value {
    case nil, .interface(GobInterface.none)?: true
    default: false
    }
  }

  func decode(_ type: Bool.Type) throws -> Bool {
    switch value {
    case nil: return false
    case .bool(let value)?: return value
    case let value?: throw GobError.mismatch("expected bool, got \(value.type.goName)")
    }
  }

  func decode(_ type: String.Type) throws -> String {
    switch value {
    case nil: return ""
    case .string(let value)?: return value
    case let value?: throw GobError.mismatch("expected string, got \(value.type.goName)")
    }
  }

  func decode(_ type: Double.Type) throws -> Double {
    switch value {
    case nil: return 0
    case .float(let value)?: return value
    case let value?: throw GobError.mismatch("expected float, got \(value.type.goName)")
    }
  }

  func decode(_ type: Float.Type) throws -> Float { Float(try decode(Double.self)) }

  private func integer<T: FixedWidthInteger>(_ type: T.Type) throws(GobError) -> T {
    switch value {
    case nil: return 0
    case .int(let value)?:
      guard let result = T(exactly: value) else { throw .mismatch("\(value) overflows \(T.self)") }
      return result
    case .uint(let value)?:
      guard let result = T(exactly: value) else { throw .mismatch("\(value) overflows \(T.self)") }
      return result
    case let value?: throw .mismatch("expected an integer, got \(value.type.goName)")
    }
  }

  func decode(_ type: Int.Type) throws -> Int { try integer(Int.self) }
  func decode(_ type: Int8.Type) throws -> Int8 { try integer(Int8.self) }
  func decode(_ type: Int16.Type) throws -> Int16 { try integer(Int16.self) }
  func decode(_ type: Int32.Type) throws -> Int32 { try integer(Int32.self) }
  func decode(_ type: Int64.Type) throws -> Int64 { try integer(Int64.self) }
  func decode(_ type: UInt.Type) throws -> UInt { try integer(UInt.self) }
  func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(UInt8.self) }
  func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(UInt16.self) }
  func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(UInt32.self) }
  func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(UInt64.self) }

  func decode<T: Decodable>(_ type: T.Type) throws -> T {
    try GobValueDecoding.decode(T.self, from: value, depth: depth + 1)
  }
}
