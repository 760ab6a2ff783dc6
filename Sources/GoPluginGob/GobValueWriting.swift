// GobValue to gob bytes: type ids, definitions, and values against their declared types.

extension GobType {
  /// The type that describes both `self` and `other`: structs take the union of their fields (a
  /// field left out of one value, as nil, is still part of the type other values send).
  func merged(with other: GobType) -> GobType {
    switch (self, other) {
    case (.structure(let name, let fields), .structure(_, let others)):
      if fields.isEmpty { return .structure(name: name, fields: others) }
      if others.isEmpty || fields == others { return self }
      var result = fields
      for field in others {
        if let index = result.firstIndex(where: { $0.name == field.name }) {
          result[index].type = result[index].type.merged(with: field.type)
        } else {
          result.append(field)
        }
      }
      return .structure(name: name, fields: result)
    case (.slice(let element), .slice(let other)): return .slice(element.merged(with: other))
    case (.array(let element, let count), .array(let other, _)):
      return .array(element.merged(with: other), count: count)
    case (.map(let key, let value), .map(let otherKey, let otherValue)):
      return .map(key.merged(with: otherKey), value.merged(with: otherValue))
    default: return self
    }
  }
}

extension GobValue {
  /// The type to define for this value: declared element types merged with what the elements
  /// hold, so that every element fits the one definition.
  var effectiveType: GobType {
    switch self {
    case .slice(let values, let element):
      return .slice(values.reduce(element) { $0.merged(with: $1.effectiveType) })
    case .array(let values, let element):
      return .array(values.reduce(element) { $0.merged(with: $1.effectiveType) }, count: values.count)
    case .map(let entries, let key, let value):
      var keyType = key
      var valueType = value
      for entry in entries {
        keyType = keyType.merged(with: entry.key.effectiveType)
        valueType = valueType.merged(with: entry.value.effectiveType)
      }
      return .map(keyType, valueType)
    case .structure(let value):
      var fields = value.fieldTypes ?? []
      for field in value.fields {
        let type = field.value.effectiveType
        if let index = fields.firstIndex(where: { $0.name == field.name }) {
          fields[index].type = fields[index].type.merged(with: type)
        } else {
          fields.append(GobFieldType(name: field.name, type: type))
        }
      }
      return .structure(name: value.name, fields: fields)
    default:
      return type
    }
  }
}

/// The sending half of a stream's state: which types have ids, and the writing of values.
struct GobTypeWriter: Sendable {
  var ids: [GobType: Int] = [:]
  var nextID = GobTypeID.firstUser

  /// The id of `type`, defining it (and the types it is made of) in `definitions` if the stream
  /// has not yet.
  mutating func id(of type: GobType, definitions: inout [UInt8]) -> Int {
    if let builtin = GobTypeID.builtin(type) { return builtin }
    if let id = ids[type] { return id }
    let id = nextID
    nextID += 1
    ids[type] = id
    let wire: GobWireType
    switch type {
    case .array(let element, let count):
      wire = .array(name: type.goName, element: self.id(of: element, definitions: &definitions), count: count)
    case .slice(let element):
      wire = .slice(name: type.goName, element: self.id(of: element, definitions: &definitions))
    case .map(let key, let value):
      let keyID = self.id(of: key, definitions: &definitions)
      wire = .map(name: type.goName, key: keyID, value: self.id(of: value, definitions: &definitions))
    case .structure(let name, let fields):
      var wireFields: [(name: String, id: Int)] = []
      wireFields.reserveCapacity(fields.count)
      for field in fields {
        wireFields.append((field.name, self.id(of: field.type, definitions: &definitions)))
      }
      wire = .structure(name: name, fields: wireFields)
    case .opaque(let name, let kind):
      wire = .opaque(name: name, kind: kind)
    default:
      preconditionFailure("builtin types have fixed ids")
    }
    var message: [UInt8] = []
    GobWriter.int(-Int64(id), into: &message)
    wire.encode(id: id, into: &message)
    GobWriter.uint(UInt64(message.count), into: &definitions)
    definitions.append(contentsOf: message)
    return id
  }

  /// Appends the messages for a top-level value: definitions first, then the value.
  mutating func message(for value: GobValue, into bytes: inout [UInt8]) throws(GobError) {
    let type = value.effectiveType
    var body: [UInt8] = []
    let id = self.id(of: type, definitions: &bytes)
    GobWriter.int(Int64(id), into: &body)
    try topLevel(value, as: type, into: &body, definitions: &bytes)
    GobWriter.uint(UInt64(body.count), into: &bytes)
    bytes.append(contentsOf: body)
  }

  mutating func topLevel(
    _ value: GobValue,
    as type: GobType,
    into body: inout [UInt8],
    definitions: inout [UInt8]
  ) throws(GobError) {
    if case .structure = type {
      try write(value, as: type, into: &body, definitions: &definitions)
    } else {
      body.append(0)
      try write(value, as: type, into: &body, definitions: &definitions)
    }
  }

  mutating func write(
    _ value: GobValue,
    as type: GobType,
    into body: inout [UInt8],
    definitions: inout [UInt8]
  ) throws(GobError) {
    switch (value, type) {
    case (.bool(let value), .bool): GobWriter.uint(value ? 1 : 0, into: &body)
    case (.int(let value), .int): GobWriter.int(value, into: &body)
    case (.uint(let value), .uint): GobWriter.uint(value, into: &body)
    case (.float(let value), .float): GobWriter.float(value, into: &body)
    case (.complex(let real, let imaginary), .complex):
      GobWriter.float(real, into: &body)
      GobWriter.float(imaginary, into: &body)
    case (.string(let value), .string): GobWriter.string(value, into: &body)
    case (.bytes(let value), .bytes): GobWriter.bytes(value, into: &body)
    case (.slice(let values, _), .slice(let element)), (.array(let values, _), .array(let element, _)):
      GobWriter.uint(UInt64(values.count), into: &body)
      for value in values {
        try write(value, as: element, into: &body, definitions: &definitions)
      }
    case (.map(let entries, _, _), .map(let key, let element)):
      GobWriter.uint(UInt64(entries.count), into: &body)
      for entry in entries {
        try write(entry.key, as: key, into: &body, definitions: &definitions)
        try write(entry.value, as: element, into: &body, definitions: &definitions)
      }
    case (.structure(let value), .structure(_, let fields)):
      try writeStruct(value, fields: fields, into: &body, definitions: &definitions)
    case (.interface(let value), .interface):
      try writeInterface(value, into: &body, definitions: &definitions)
    case (.opaque(_, _, let bytes), .opaque):
      GobWriter.bytes(bytes, into: &body)
    default:
      if case .interface(let value) = value, let concrete = value.value {
        // A typed Swift property holding an interface value sends the concrete value.
        try write(concrete, as: type, into: &body, definitions: &definitions)
        return
      }
      throw .mismatch("cannot send \(value.type.goName) as \(type.goName)")
    }
  }

  private mutating func writeStruct(
    _ value: GobStruct,
    fields: [GobFieldType],
    into body: inout [UInt8],
    definitions: inout [UInt8]
  ) throws(GobError) {
    var present: [(index: Int, value: GobValue)] = []
    present.reserveCapacity(value.fields.count)
    var next = 0
    var ordered = true
    for field in value.fields where !field.value.isOmittedAsField {
      // Fields usually come in the order of the type: search from the last one found.
      var index = next
      while index < fields.count, fields[index].name != field.name { index += 1 }
      if index == fields.count {
        guard let found = fields.firstIndex(where: { $0.name == field.name }) else {
          throw .mismatch("field \(field.name) is not in \(value.name)")
        }
        index = found
        ordered = false
      }
      present.append((index, field.value))
      next = index + 1
    }
    if !ordered { present.sort { $0.index < $1.index } }
    var writer = GobStructWriter()
    for (index, value) in present {
      guard index > writer.last else { throw .mismatch("field \(fields[index].name) given twice") }
      writer.field(index, into: &body)
      try write(value, as: fields[index].type, into: &body, definitions: &definitions)
    }
    writer.end(into: &body)
  }

  private mutating func writeInterface(
    _ value: GobInterface,
    into body: inout [UInt8],
    definitions: inout [UInt8]
  ) throws(GobError) {
    guard let concrete = value.value else {
      body.append(0)
      return
    }
    GobWriter.string(value.typeName, into: &body)
    let type = concrete.effectiveType
    GobWriter.int(Int64(id(of: type, definitions: &definitions)), into: &body)
    var inner: [UInt8] = []
    try topLevel(concrete, as: type, into: &inner, definitions: &definitions)
    GobWriter.uint(UInt64(inner.count), into: &body)
    body.append(contentsOf: inner)
  }
}
