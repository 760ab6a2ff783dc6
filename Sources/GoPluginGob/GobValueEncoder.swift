// Codable values to GobValue: the Encoder side of the mapping.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Go's exported field name for a Swift coding key: the first letter upper-cased, unless it
/// already is (a CodingKey spelled the Go way is used as is).
func goFieldName(_ key: String) -> String {
  if let first = key.utf8.first, first < 0x80 {
    // ASCII, the usual case: no Unicode property lookup.
    guard first >= UInt8(ascii: "a"), first <= UInt8(ascii: "z") else { return key }
    var bytes = Array(key.utf8)
    bytes[0] -= 0x20
    return String(decoding: bytes, as: UTF8.self)
  }
  guard let first = key.unicodeScalars.first, first.properties.isLowercase else { return key }
  return first.properties.uppercaseMapping + String(key.unicodeScalars.dropFirst())
}

/// Collections that the encoder handles as a whole, to know their element type even when empty.
protocol GobSequenceEncodable {
  static var gobElementType: GobType { get }
  var gobElements: [any Encodable] { get }
}

extension Array: GobSequenceEncodable where Element: Encodable {
  static var gobElementType: GobType { gobStaticType(Element.self) }
  var gobElements: [any Encodable] { map { $0 } }
}

protocol GobMapEncodable {
  static var gobKeyType: GobType { get }
  static var gobValueType: GobType { get }
  var gobEntries: [(key: any Encodable, value: any Encodable)] { get }
}

extension Dictionary: GobMapEncodable where Key: Encodable, Value: Encodable {
  static var gobKeyType: GobType { gobStaticType(Key.self) }
  static var gobValueType: GobType { gobStaticType(Value.self) }
  var gobEntries: [(key: any Encodable, value: any Encodable)] { map { ($0.key, $0.value) } }
}

protocol GobOptionalType {
  static var gobWrappedType: Any.Type { get }
}

extension Optional: GobOptionalType {
  static var gobWrappedType: Any.Type { Wrapped.self }
}

/// The gob type of a Swift type, from the type alone: what an empty collection declares as its
/// element type. A struct is declared without fields (Go matches struct fields by name, so an
/// empty definition decodes into any struct).
func gobStaticType(_ type: Any.Type) -> GobType {
  switch type {
  case is Bool.Type: return .bool
  case is Int.Type, is Int8.Type, is Int16.Type, is Int32.Type, is Int64.Type: return .int
  case is UInt.Type, is UInt8.Type, is UInt16.Type, is UInt32.Type, is UInt64.Type: return .uint
  case is Float.Type, is Double.Type: return .float
  case is String.Type: return .string
  case is [UInt8].Type, is Data.Type: return .bytes
  case is GobInterface.Type: return .interface
  case is GobValue.Type: return .interface
  default: break
  }
  if let marshaling = type as? any GobMarshaling.Type {
    return .opaque(name: marshaling.gobTypeName, kind: marshaling.gobOpaqueKind)
  }
  if let sequence = type as? any GobSequenceEncodable.Type { return .slice(sequence.gobElementType) }
  if let map = type as? any GobMapEncodable.Type { return .map(map.gobKeyType, map.gobValueType) }
  if let optional = type as? any GobOptionalType.Type { return gobStaticType(optional.gobWrappedType) }
  if let raw = type as? any RawRepresentable.Type { return gobStaticType(raw.rawValueType) }
  return .structure(name: String(describing: type), fields: [])
}

extension RawRepresentable {
  static var rawValueType: Any.Type { RawValue.self }
}

/// Turns an Encodable value into a GobValue.
enum GobValueEncoding {
  static func value<T: Encodable>(of value: T, depth: Int = 0) throws(GobError) -> GobValue {
    guard depth < 100 else { throw GobError(code: .unsupported, message: "value nested deeper than 100 levels") }
    // By static type: an empty array casts to an array of any element type.
    if T.self == [UInt8].self, let bytes = value as? [UInt8] { return .bytes(bytes) }
    if T.self == Data.self, let data = value as? Data { return .bytes([UInt8](data)) }
    switch value {
    case let value as GobValue: return value
    case let value as GobInterface: return .interface(value)
    case let value as String: return .string(value)
    case let value as Bool: return .bool(value)
    case let value as Int: return .int(Int64(value))
    case let value as Int64: return .int(value)
    case let value as UInt64: return .uint(value)
    case let value as Double: return .float(value)
    case let value as any GobSequenceEncodable:
      var elements: [GobValue] = []
      elements.reserveCapacity(value.gobElements.count)
      for element in value.gobElements {
        elements.append(try Self.value(of: element, depth: depth + 1))
      }
      return .slice(elements, element: type(of: value).gobElementType)
    case let value as any GobMapEncodable:
      var entries: [GobMapEntry] = []
      for entry in value.gobEntries {
        entries.append(
          GobMapEntry(
            key: try Self.value(of: entry.key, depth: depth + 1),
            value: try Self.value(of: entry.value, depth: depth + 1)
          )
        )
      }
      return .map(entries, key: type(of: value).gobKeyType, value: type(of: value).gobValueType)
    default:
      break
    }
    // _typeName, not String(describing:), which goes through Mirror on every call.
    let typeName = _typeName(T.self, qualified: false)
    let encoder = GobValueEncoder(typeName: typeName, depth: depth)
    do {
      try value.encode(to: encoder)
    } catch let error as GobError {
      throw error
    } catch {
      throw GobError(code: .unsupported, message: "\(T.self): \(error)")
    }
    return try encoder.storage.result(typeName: typeName)
  }
}

/// What one Encoder collected: a struct's fields, a sequence's elements, or a single value.
final class GobEncoderStorage {
  /// A field or element: a finished value, or a nested container still being filled.
  enum Slot {
    case value(GobValue)
    case nested(GobEncoderStorage, typeName: String)
    /// A nil optional: no value, but its type is part of the struct's, so that the struct is
    /// defined once whether the field is set or not.
    case absent(GobType)
  }
  enum Content {
    case empty
    case single(GobValue)
    case keyed([(name: String, slot: Slot)])
    case unkeyed([Slot])
  }
  var content = Content.empty

  func result(typeName: String) throws(GobError) -> GobValue {
    switch content {
    case .empty: return .structure(GobStruct(name: typeName, fields: []))
    case .single(let value): return value
    case .keyed(let fields):
      var result: [GobField] = []
      result.reserveCapacity(fields.count)
      var types: [GobFieldType]?
      for field in fields {
        if case .absent(let type) = field.slot {
          if types == nil { types = result.map { GobFieldType(name: $0.name, type: $0.value.effectiveType) } }
          types?.append(GobFieldType(name: field.name, type: type))
          continue
        }
        let value = try Self.resolve(field.slot)
        result.append(GobField(name: field.name, value: value))
        types?.append(GobFieldType(name: field.name, type: value.effectiveType))
      }
      return .structure(GobStruct(name: typeName, fields: result, fieldTypes: types))
    case .unkeyed(let slots):
      var values: [GobValue] = []
      values.reserveCapacity(slots.count)
      for slot in slots {
        if case .absent = slot { continue }
        values.append(try Self.resolve(slot))
      }
      return .slice(values, element: values.first?.type ?? .interface)
    }
  }

  private static func resolve(_ slot: Slot) throws(GobError) -> GobValue {
    switch slot {
    case .value(let value): value
    case .nested(let storage, let typeName): try storage.result(typeName: typeName)
    case .absent: .interface(.none)
    }
  }

  func appendField(_ name: String, _ slot: Slot) {
    if case .keyed(var fields) = content {
      content = .empty
      fields.append((name, slot))
      content = .keyed(fields)
    } else {
      content = .keyed([(name, slot)])
    }
  }

  func appendElement(_ slot: Slot) {
    if case .unkeyed(var values) = content {
      content = .empty
      values.append(slot)
      content = .unkeyed(values)
    } else {
      content = .unkeyed([slot])
    }
  }

  var elementCount: Int {
    if case .unkeyed(let values) = content { return values.count }
    return 0
  }
}

final class GobValueEncoder: Encoder {
  let typeName: String
  let depth: Int
  let storage = GobEncoderStorage()
  var codingPath: [any CodingKey] = []
  var userInfo: [CodingUserInfoKey: Any] = [:]

  init(typeName: String, depth: Int) {
    self.typeName = typeName
    self.depth = depth
  }

  func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
    if case .empty = storage.content { storage.content = .keyed([]) }
    return KeyedEncodingContainer(GobKeyedEncodingContainer<Key>(encoder: self))
  }

  func unkeyedContainer() -> any UnkeyedEncodingContainer {
    if case .empty = storage.content { storage.content = .unkeyed([]) }
    return GobUnkeyedEncodingContainer(encoder: self)
  }

  func singleValueContainer() -> any SingleValueEncodingContainer {
    GobSingleValueEncodingContainer(encoder: self)
  }

  func encoded<T: Encodable>(_ value: T) throws -> GobValue {
    try GobValueEncoding.value(of: value, depth: depth + 1)
  }
}

struct GobKeyedEncodingContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
  let encoder: GobValueEncoder
  var codingPath: [any CodingKey] { encoder.codingPath }

  mutating func encodeNil(forKey key: Key) throws {}

  mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
    encoder.storage.appendField(goFieldName(key.stringValue), .value(try encoder.encoded(value)))
  }

  mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws {
    guard let value else {
      encoder.storage.appendField(goFieldName(key.stringValue), .absent(gobStaticType(T.self)))
      return
    }
    try encode(value, forKey: key)
  }
  mutating func encodeIfPresent(_ value: Bool?, forKey key: Key) throws { try present(value, key) }
  mutating func encodeIfPresent(_ value: String?, forKey key: Key) throws { try present(value, key) }
  mutating func encodeIfPresent(_ value: Double?, forKey key: Key) throws { try present(value, key) }
  mutating func encodeIfPresent(_ value: Float?, forKey key: Key) throws { try present(value, key) }
  mutating func encodeIfPresent(_ value: Int?, forKey key: Key) throws { try present(value, key) }
  mutating func encodeIfPresent(_ value: Int8?, forKey key: Key) throws { try present(value, key) }
  mutating func encodeIfPresent(_ value: Int16?, forKey key: Key) throws { try present(value, key) }
  mutating func encodeIfPresent(_ value: Int32?, forKey key: Key) throws { try present(value, key) }
  mutating func encodeIfPresent(_ value: Int64?, forKey key: Key) throws { try present(value, key) }
  mutating func encodeIfPresent(_ value: UInt?, forKey key: Key) throws { try present(value, key) }
  mutating func encodeIfPresent(_ value: UInt8?, forKey key: Key) throws { try present(value, key) }
  mutating func encodeIfPresent(_ value: UInt16?, forKey key: Key) throws { try present(value, key) }
  mutating func encodeIfPresent(_ value: UInt32?, forKey key: Key) throws { try present(value, key) }
  mutating func encodeIfPresent(_ value: UInt64?, forKey key: Key) throws { try present(value, key) }

  private mutating func present<T: Encodable>(_ value: T?, _ key: Key) throws {
    try encodeIfPresent(value, forKey: key)
  }

  /// A nested encoder whose value becomes the field `key` once encoding ends.
  private func nested(_ key: String) -> GobValueEncoder {
    let nested = GobValueEncoder(typeName: key, depth: encoder.depth + 1)
    encoder.storage.appendField(goFieldName(key), .nested(nested.storage, typeName: key))
    return nested
  }

  mutating func nestedContainer<NestedKey: CodingKey>(
    keyedBy keyType: NestedKey.Type,
    forKey key: Key
  ) -> KeyedEncodingContainer<NestedKey> {
    nested(key.stringValue).container(keyedBy: NestedKey.self)
  }

  mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
    nested(key.stringValue).unkeyedContainer()
  }

  mutating func superEncoder() -> any Encoder { nested("super") }
  mutating func superEncoder(forKey key: Key) -> any Encoder { nested(key.stringValue) }
}

struct GobUnkeyedEncodingContainer: UnkeyedEncodingContainer {
  let encoder: GobValueEncoder
  var codingPath: [any CodingKey] { encoder.codingPath }
  var count: Int { encoder.storage.elementCount }

  mutating func encodeNil() throws {
    encoder.storage.appendElement(.value(.interface(.none)))
  }

  mutating func encode<T: Encodable>(_ value: T) throws {
    encoder.storage.appendElement(.value(try encoder.encoded(value)))
  }

  private func nested() -> GobValueEncoder {
    let nested = GobValueEncoder(typeName: "", depth: encoder.depth + 1)
    encoder.storage.appendElement(.nested(nested.storage, typeName: ""))
    return nested
  }

  mutating func nestedContainer<NestedKey: CodingKey>(
    keyedBy keyType: NestedKey.Type
  )
    -> KeyedEncodingContainer<NestedKey>
  { nested().container(keyedBy: NestedKey.self) }
  mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer { nested().unkeyedContainer() }
  mutating func superEncoder() -> any Encoder { nested() }
}

struct GobSingleValueEncodingContainer: SingleValueEncodingContainer {
  let encoder: GobValueEncoder
  var codingPath: [any CodingKey] { encoder.codingPath }

  mutating func encodeNil() throws {
    encoder.storage.content = .single(.interface(.none))
  }
  mutating func encode(_ value: Bool) throws { encoder.storage.content = .single(.bool(value)) }
  mutating func encode(_ value: String) throws { encoder.storage.content = .single(.string(value)) }
  mutating func encode(_ value: Double) throws { encoder.storage.content = .single(.float(value)) }
  mutating func encode(_ value: Float) throws { encoder.storage.content = .single(.float(Double(value))) }
  mutating func encode(_ value: Int) throws { encoder.storage.content = .single(.int(Int64(value))) }
  mutating func encode(_ value: Int8) throws { encoder.storage.content = .single(.int(Int64(value))) }
  mutating func encode(_ value: Int16) throws { encoder.storage.content = .single(.int(Int64(value))) }
  mutating func encode(_ value: Int32) throws { encoder.storage.content = .single(.int(Int64(value))) }
  mutating func encode(_ value: Int64) throws { encoder.storage.content = .single(.int(value)) }
  mutating func encode(_ value: UInt) throws { encoder.storage.content = .single(.uint(UInt64(value))) }
  mutating func encode(_ value: UInt8) throws { encoder.storage.content = .single(.uint(UInt64(value))) }
  mutating func encode(_ value: UInt16) throws { encoder.storage.content = .single(.uint(UInt64(value))) }
  mutating func encode(_ value: UInt32) throws { encoder.storage.content = .single(.uint(UInt64(value))) }
  mutating func encode(_ value: UInt64) throws { encoder.storage.content = .single(.uint(value)) }
  mutating func encode<T: Encodable>(_ value: T) throws {
    encoder.storage.content = .single(try encoder.encoded(value))
  }
}
