// Gob bytes to GobValue, by the types the stream defined.

/// The types a stream has defined, and the limits the decoder holds input to.
struct GobTypeTable: Sendable {
  var types: [Int: GobWireType] = [:]
  var maxDepth = 64
  /// When set, interface values must name a type registered here, as Go requires.
  var registry: GobTypeRegistry?
  /// The GobType of each id a value used, with its size in nodes: built once per stream, and
  /// bounded, since a type made of the same struct twice at each of 40 levels is small on the
  /// wire but has 2^40 nodes spelled out.
  var resolved: [Int: (type: GobType, size: Int)] = [:]
  static let maxTypeSize = 1 << 16

  mutating func define(id: Int, type: GobWireType) throws(GobError) {
    guard id >= GobTypeID.firstUser else { throw .malformed("type id \(id) is reserved") }
    if let existing = types[id] {
      guard existing == type else { throw .malformed("type id \(id) defined twice") }
      return
    }
    guard types.count < 100_000 else { throw GobError(code: .limitExceeded, message: "too many types on the stream") }
    types[id] = type
  }

  /// The GobType of a type id, cached for the stream.
  mutating func gobType(_ id: Int) throws(GobError) -> GobType {
    if let known = resolved[id] { return known.type }
    var visiting: Set<Int> = []
    return try resolve(id, visiting: &visiting).type
  }

  /// A struct that recurs inside itself is cut at the recurrence (and that cut form is not cached).
  private mutating func resolve(_ id: Int, visiting: inout Set<Int>) throws(GobError) -> (type: GobType, size: Int) {
    switch id {
    case GobTypeID.bool: return (.bool, 1)
    case GobTypeID.int: return (.int, 1)
    case GobTypeID.uint: return (.uint, 1)
    case GobTypeID.float: return (.float, 1)
    case GobTypeID.bytes: return (.bytes, 1)
    case GobTypeID.string: return (.string, 1)
    case GobTypeID.complex: return (.complex, 1)
    case GobTypeID.interface: return (.interface, 1)
    default: break
    }
    if let known = resolved[id] { return known }
    guard let wire = types[id] else { throw .malformed("undefined type id \(id)") }
    guard visiting.count < maxDepth else { throw GobError(code: .limitExceeded, message: "types nested too deeply") }
    if visiting.contains(id) {
      if case .structure(let name, _) = wire { return (.structure(name: name, fields: []), 1) }
      throw .malformed("type id \(id) contains itself")
    }
    visiting.insert(id)
    defer { visiting.remove(id) }
    let result: (type: GobType, size: Int)
    switch wire {
    case .array(_, let element, let count):
      let element = try resolve(element, visiting: &visiting)
      result = (.array(element.type, count: count), element.size + 1)
    case .slice(_, let element):
      let element = try resolve(element, visiting: &visiting)
      result = (.slice(element.type), element.size + 1)
    case .map(_, let key, let value):
      let key = try resolve(key, visiting: &visiting)
      let value = try resolve(value, visiting: &visiting)
      result = (.map(key.type, value.type), key.size + value.size + 1)
    case .structure(let name, let fields):
      var types: [GobFieldType] = []
      var size = 1
      for field in fields {
        let resolved = try resolve(field.id, visiting: &visiting)
        size += resolved.size
        guard size <= Self.maxTypeSize else { break }
        types.append(GobFieldType(name: field.name, type: resolved.type))
      }
      result = (.structure(name: name, fields: types), size)
    case .opaque(let name, let kind): result = (.opaque(name: name, kind: kind), 1)
    }
    guard result.size <= Self.maxTypeSize else {
      throw GobError(code: .limitExceeded, message: "type \(id) is larger than \(Self.maxTypeSize) nodes")
    }
    if visiting.count == 1 || !containsCut(result.type) { resolved[id] = result }
    return result
  }

  /// Whether a resolved type holds a recursion cut (it is then only right from where it was cut).
  private func containsCut(_ type: GobType) -> Bool {
    // Conservative and cheap: only types without structs are cached from inside a recursion.
    switch type {
    case .structure: true
    case .slice(let element), .array(let element, _): containsCut(element)
    case .map(let key, let value): containsCut(key) || containsCut(value)
    default: false
    }
  }
}

/// Decodes one value's bytes into a GobValue. Interface values may define types on the way.
struct GobValueReader {
  var table: GobTypeTable
  var reader: GobReader

  /// A value as sent at the top of a message or inside an interface: a struct as itself, any
  /// other type as a singleton (a zero field delta, then the value).
  mutating func topLevel(_ id: Int, depth: Int) throws(GobError) -> GobValue {
    if case .structure = table.types[id] {
      return try value(id, depth: depth)
    }
    guard try reader.uint() == 0 else { throw .malformed("non-zero delta for a singleton") }
    return try value(id, depth: depth)
  }

  mutating func value(_ id: Int, depth: Int) throws(GobError) -> GobValue {
    guard depth < table.maxDepth else { throw GobError(code: .limitExceeded, message: "value nested too deeply") }
    switch id {
    case GobTypeID.bool:
      switch try reader.uint() {
      case 0: return .bool(false)
      case 1: return .bool(true)
      case let other: throw .malformed("invalid bool \(other)")
      }
    case GobTypeID.int: return .int(try reader.int())
    case GobTypeID.uint: return .uint(try reader.uint())
    case GobTypeID.float: return .float(try reader.float())
    case GobTypeID.bytes: return .bytes(Array(try reader.bytes()))
    case GobTypeID.string: return .string(try reader.string())
    case GobTypeID.complex: return .complex(real: try reader.float(), imaginary: try reader.float())
    case GobTypeID.interface: return .interface(try interface(depth: depth))
    default: break
    }
    guard let wire = table.types[id] else { throw .malformed("undefined type id \(id)") }
    switch wire {
    case .array(_, let element, let count):
      let sent = try reader.count()
      guard sent == count else { throw .malformed("array of \(count) sent with \(sent) elements") }
      return .array(try elements(element, count: sent, depth: depth), element: try table.gobType(element))
    case .slice(_, let element):
      let count = try reader.count()
      return .slice(try elements(element, count: count, depth: depth), element: try table.gobType(element))
    case .map(_, let key, let value):
      let count = try reader.count(minimumSize: 2)
      var entries: [GobMapEntry] = []
      entries.reserveCapacity(count)
      for _ in 0..<count {
        let entryKey = try self.value(key, depth: depth + 1)
        let entryValue = try self.value(value, depth: depth + 1)
        entries.append(GobMapEntry(key: entryKey, value: entryValue))
      }
      return .map(entries, key: try table.gobType(key), value: try table.gobType(value))
    case .structure(let name, let fieldTypes):
      var fields: [GobField] = []
      var index = -1
      while true {
        let delta = try reader.uint()
        if delta == 0 { break }
        guard delta <= UInt64(fieldTypes.count), index + Int(delta) < fieldTypes.count else {
          throw .malformed("field delta \(delta) after field \(index) out of range in \(name)")
        }
        index += Int(delta)
        let field = fieldTypes[index]
        fields.append(GobField(name: field.name, value: try value(field.id, depth: depth + 1)))
      }
      var types: [GobFieldType] = []
      types.reserveCapacity(fieldTypes.count)
      for field in fieldTypes {
        types.append(GobFieldType(name: field.name, type: try table.gobType(field.id)))
      }
      return .structure(GobStruct(name: name, fields: fields, fieldTypes: types))
    case .opaque(let name, let kind):
      return .opaque(name: name, kind: kind, bytes: Array(try reader.bytes()))
    }
  }

  private mutating func elements(_ element: Int, count: Int, depth: Int) throws(GobError) -> [GobValue] {
    var values: [GobValue] = []
    values.reserveCapacity(count)
    for _ in 0..<count {
      values.append(try value(element, depth: depth + 1))
    }
    return values
  }

  /// An interface: the concrete type's registered name (empty for nil), type definitions the
  /// value needs, its type id, its byte count, then the value as at the top of a message.
  mutating func interface(depth: Int) throws(GobError) -> GobInterface {
    let name = try reader.string()
    if name.isEmpty { return .none }
    guard name.utf8.count <= 1024 else { throw .malformed("interface type name too long") }
    if let registry = table.registry, !registry.contains(name: name) {
      throw GobError(code: .unregisteredType, message: "name not registered for interface: \"\(name)\"")
    }
    var id: Int
    while true {
      try reader.continueIntoNextMessage()
      let next = try reader.int()
      if next >= 0 {
        guard next < Int64(Int32.max) else { throw .malformed("bad type id \(next)") }
        id = Int(next)
        break
      }
      let definition = try GobWireType.decode(&reader)
      guard Int64(definition.id) == 0 &- next else { throw .malformed("type definition id mismatch") }
      try table.define(id: definition.id, type: definition.type)
      if !reader.isAtEnd { _ = try reader.uint() }
    }
    // The value's byte count: Go's decoder ignores it too (a nested interface that defines types
    // splits the value, and the count then covers only the first part).
    _ = try reader.uint()
    let value = try topLevel(id, depth: depth + 1)
    return GobInterface(value, typeName: name)
  }
}
