// Gob bytes to GobValue, by the types the stream defined.

/// The types a stream has defined, and the limits the decoder holds input to.
struct GobTypeTable: Sendable {
  var types: [Int: GobWireType] = [:]
  var maxDepth = 100

  mutating func define(id: Int, type: GobWireType) throws(GobError) {
    guard id >= GobTypeID.firstUser else { throw .malformed("type id \(id) is reserved") }
    if let existing = types[id] {
      guard existing == type else { throw .malformed("type id \(id) defined twice") }
      return
    }
    guard types.count < 100_000 else { throw GobError(code: .limitExceeded, message: "too many types on the stream") }
    types[id] = type
  }

  /// The GobType of a type id; a struct that recurs inside itself is cut at the recurrence.
  func gobType(_ id: Int, visiting: Set<Int> = []) throws(GobError) -> GobType {
    switch id {
    case GobTypeID.bool: return .bool
    case GobTypeID.int: return .int
    case GobTypeID.uint: return .uint
    case GobTypeID.float: return .float
    case GobTypeID.bytes: return .bytes
    case GobTypeID.string: return .string
    case GobTypeID.complex: return .complex
    case GobTypeID.interface: return .interface
    default: break
    }
    guard let wire = types[id] else { throw .malformed("undefined type id \(id)") }
    guard visiting.count < maxDepth else { throw GobError(code: .limitExceeded, message: "types nested too deeply") }
    if visiting.contains(id) {
      if case .structure(let name, _) = wire { return .structure(name: name, fields: []) }
      throw .malformed("type id \(id) contains itself")
    }
    var visiting = visiting
    visiting.insert(id)
    switch wire {
    case .array(_, let element, let count): return .array(try gobType(element, visiting: visiting), count: count)
    case .slice(_, let element): return .slice(try gobType(element, visiting: visiting))
    case .map(_, let key, let value):
      return .map(try gobType(key, visiting: visiting), try gobType(value, visiting: visiting))
    case .structure(let name, let fields):
      var types: [GobFieldType] = []
      for field in fields {
        types.append(GobFieldType(name: field.name, type: try gobType(field.id, visiting: visiting)))
      }
      return .structure(name: name, fields: types)
    case .opaque(let name, let kind): return .opaque(name: name, kind: kind)
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
          throw .malformed("field \(index + Int(truncatingIfNeeded: delta)) out of range in \(name)")
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
      guard definition.id == Int(truncatingIfNeeded: -next) else { throw .malformed("type definition id mismatch") }
      try table.define(id: definition.id, type: definition.type)
      if !reader.isAtEnd { _ = try reader.uint() }
    }
    let count = try reader.count(minimumSize: 1)
    let end = reader.position + count
    let value = try topLevel(id, depth: depth + 1)
    guard reader.position == end else { throw .malformed("interface value of \(name) is not \(count) bytes") }
    return GobInterface(value, typeName: name)
  }
}
