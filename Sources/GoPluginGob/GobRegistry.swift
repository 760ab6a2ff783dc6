// Names for interface values (Go's gob.Register) and self-marshalling values (GobEncoder).
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Swift types by the names their values carry in an `interface{}`, as Go's `gob.Register`.
///
/// The receiver of an interface value looks its concrete type up by name, so both sides must
/// agree on the name: register a Swift struct under the name the Go peer registered its struct
/// under (by default Go uses the package path and type name, such as "main.Args"). The basic
/// types are registered under Go's names from the start: "int", "int8", …, "uint64", "float32",
/// "float64", "bool", "string", "[]uint8", and slices of those ("[]int", "[]string", …).
public struct GobTypeRegistry: Sendable {
  private var namesByType: [ObjectIdentifier: String] = [:]
  private var typesByName: [String: any (Codable & Sendable).Type] = [:]

  /// A registry with only the basic types.
  public static let basics = GobTypeRegistry()

  public init() {
    register(Int.self, as: "int")
    register(Int8.self, as: "int8")
    register(Int16.self, as: "int16")
    register(Int32.self, as: "int32")
    register(Int64.self, as: "int64")
    register(UInt.self, as: "uint")
    register(UInt8.self, as: "uint8")
    register(UInt16.self, as: "uint16")
    register(UInt32.self, as: "uint32")
    register(UInt64.self, as: "uint64")
    register(Float.self, as: "float32")
    register(Double.self, as: "float64")
    register(Bool.self, as: "bool")
    register(String.self, as: "string")
    register([Int].self, as: "[]int")
    register([Int8].self, as: "[]int8")
    register([Int16].self, as: "[]int16")
    register([Int32].self, as: "[]int32")
    register([Int64].self, as: "[]int64")
    register([UInt].self, as: "[]uint")
    register([UInt16].self, as: "[]uint16")
    register([UInt32].self, as: "[]uint32")
    register([UInt64].self, as: "[]uint64")
    register([Float].self, as: "[]float32")
    register([Double].self, as: "[]float64")
    register([Bool].self, as: "[]bool")
    register([String].self, as: "[]string")
    register(Data.self, as: "[]uint8")
    // Last, so that "[]uint8" decodes as [UInt8] and Data still has a name.
    register([UInt8].self, as: "[]uint8")
  }

  /// Registers `type` under `name`: values of it sent as interfaces carry the name, and received
  /// interface values with the name decode as it. A later registration of a name replaces the
  /// earlier one for decoding; a type keeps the last name it was registered under.
  public mutating func register<T: Codable & Sendable>(_ type: T.Type, as name: String) {
    namesByType[ObjectIdentifier(type)] = name
    typesByName[name] = type
  }

  /// The name `type` is registered under.
  public func name(of type: Any.Type) -> String? {
    namesByType[ObjectIdentifier(type)]
  }

  /// The Swift type registered under `name`.
  public func type(named name: String) -> (any (Codable & Sendable).Type)? {
    typesByName[name]
  }

  /// Whether a value received under `name` can be decoded: registered here, or a basic type.
  public func contains(name: String) -> Bool {
    typesByName[name] != nil
  }
}

extension GobInterface {
  /// An interface holding a Swift value under the name its type is registered under.
  ///
  /// Throws ``GobError/Code/unregisteredType`` when the type has no name in `registry`: a Go peer
  /// could not decode it either.
  public init<T: Encodable>(_ value: T, registry: GobTypeRegistry = .basics) throws(GobError) {
    guard let name = registry.name(of: T.self) else {
      throw GobError(code: .unregisteredType, message: "type not registered for interface: \(T.self)")
    }
    self.init(try GobValueEncoding.value(of: value), typeName: name)
  }

  /// The concrete value as a Swift type (the type its name is registered under, or any type its
  /// value fits); nil for the nil interface.
  public func decode<T: Decodable>(_ type: T.Type) throws(GobError) -> T? {
    guard let value else { return nil }
    return try GobValueDecoding.decode(T.self, from: value)
  }

  /// The concrete value as the Swift type `registry` has under its name.
  ///
  /// Throws ``GobError/Code/unregisteredType`` for a name the registry does not know.
  public func decodeRegistered(in registry: GobTypeRegistry) throws(GobError) -> (any Codable & Sendable)? {
    guard let value else { return nil }
    guard let type = registry.type(named: typeName) else {
      throw GobError(code: .unregisteredType, message: "name not registered for interface: \(typeName)")
    }
    return try Self.open(type, value)
  }

  private static func open<T: Codable & Sendable>(_ type: T.Type, _ value: GobValue) throws(GobError) -> T {
    try GobValueDecoding.decode(T.self, from: value)
  }
}

/// A type that marshals itself into bytes, as Go's `GobEncoder`, `BinaryMarshaler` or
/// `TextMarshaler`: gob sends the bytes as they are, and the Go peer's type of the same kind
/// unmarshals them.
///
/// Conforming types get `Codable` for free; those encode and decode only through gob.
public protocol GobMarshaling: Codable {
  /// Which of Go's interfaces the Go peer's type implements (GobEncoder by default): Go only
  /// decodes the bytes into a type implementing the matching one.
  static var gobOpaqueKind: GobOpaqueKind { get }
  /// The type's name in the definition gob sends (informational for Go).
  static var gobTypeName: String { get }
  func gobMarshal() throws -> [UInt8]
  init(gobUnmarshaling bytes: [UInt8]) throws
}

extension GobMarshaling {
  public static var gobOpaqueKind: GobOpaqueKind { .gobEncoder }
  public static var gobTypeName: String { String(describing: Self.self) }

  public func encode(to encoder: any Encoder) throws {
    guard let encoder = encoder as? GobValueEncoder else {
      throw EncodingError.invalidValue(
        self,
        .init(codingPath: encoder.codingPath, debugDescription: "\(Self.self) marshals for gob only")
      )
    }
    encoder.storage.content = .single(
      .opaque(name: Self.gobTypeName, kind: Self.gobOpaqueKind, bytes: try gobMarshal()))
  }

  public init(from decoder: any Decoder) throws {
    guard let decoder = decoder as? GobValueDecoder else {
      throw DecodingError.typeMismatch(
        Self.self,
        .init(codingPath: decoder.codingPath, debugDescription: "\(Self.self) unmarshals from gob only")
      )
    }
    switch decoder.value {
    case .opaque(_, _, let bytes)?: try self.init(gobUnmarshaling: bytes)
    case .bytes(let bytes)?: try self.init(gobUnmarshaling: bytes)
    case nil: try self.init(gobUnmarshaling: [])
    case let value?: throw GobError.mismatch("expected marshalled bytes for \(Self.self), got \(value.type.goName)")
    }
  }
}
