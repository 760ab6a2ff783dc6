// Type ids and the wireType messages that define types on a stream.

/// The type ids gob reserves for its own types.
enum GobTypeID {
  static let bool = 1
  static let int = 2
  static let uint = 3
  static let float = 4
  static let bytes = 5
  static let string = 6
  static let complex = 7
  static let interface = 8
  static let firstUser = 65

  static func builtin(_ type: GobType) -> Int? {
    switch type {
    case .bool: bool
    case .int: int
    case .uint: uint
    case .float: float
    case .bytes: bytes
    case .string: string
    case .complex: complex
    case .interface: interface
    default: nil
    }
  }
}

/// A type definition as received: component types are ids, resolved when a value needs them.
enum GobWireType: Sendable, Hashable {
  case array(name: String, element: Int, count: Int)
  case slice(name: String, element: Int)
  case structure(name: String, fields: [(name: String, id: Int)])
  case map(name: String, key: Int, value: Int)
  case opaque(name: String, kind: GobOpaqueKind)

  static func == (lhs: GobWireType, rhs: GobWireType) -> Bool {
    switch (lhs, rhs) {
    case (.array(let a, let b, let c), .array(let d, let e, let f)): a == d && b == e && c == f
    case (.slice(let a, let b), .slice(let c, let d)): a == c && b == d
    case (.structure(let a, let b), .structure(let c, let d)):
      a == c && b.map(\.name) == d.map(\.name) && b.map(\.id) == d.map(\.id)
    case (.map(let a, let b, let c), .map(let d, let e, let f)): a == d && b == e && c == f
    case (.opaque(let a, let b), .opaque(let c, let d)): a == c && b == d
    default: false
    }
  }

  func hash(into hasher: inout Hasher) {
    switch self {
    case .array(let name, let element, let count):
      hasher.combine(0)
      hasher.combine(name)
      hasher.combine(element)
      hasher.combine(count)
    case .slice(let name, let element):
      hasher.combine(1)
      hasher.combine(name)
      hasher.combine(element)
    case .structure(let name, let fields):
      hasher.combine(2)
      hasher.combine(name)
      for field in fields {
        hasher.combine(field.name)
        hasher.combine(field.id)
      }
    case .map(let name, let key, let value):
      hasher.combine(3)
      hasher.combine(name)
      hasher.combine(key)
      hasher.combine(value)
    case .opaque(let name, let kind):
      hasher.combine(4)
      hasher.combine(name)
      hasher.combine(kind)
    }
  }
}

/// Writes a struct field by field, as gob numbers them: each field as the delta from the last.
struct GobStructWriter {
  var last = -1

  mutating func field(_ index: Int, into bytes: inout [UInt8]) {
    GobWriter.uint(UInt64(index - last), into: &bytes)
    last = index
  }

  func end(into bytes: inout [UInt8]) {
    bytes.append(0)
  }
}

extension GobWireType {
  /// The wireType struct for this definition (Go's `wireType`, whose fields are pointers to
  /// arrayType, sliceType, structType, mapType, then three gobEncoderTypes).
  func encode(id: Int, into bytes: inout [UInt8]) {
    var wire = GobStructWriter()
    func common(_ name: String, _ writer: inout GobStructWriter) {
      writer.field(0, into: &bytes)
      var common = GobStructWriter()
      if !name.isEmpty {
        common.field(0, into: &bytes)
        GobWriter.string(name, into: &bytes)
      }
      common.field(1, into: &bytes)
      GobWriter.int(Int64(id), into: &bytes)
      common.end(into: &bytes)
    }
    switch self {
    case .array(let name, let element, let count):
      wire.field(0, into: &bytes)
      var array = GobStructWriter()
      common(name, &array)
      array.field(1, into: &bytes)
      GobWriter.int(Int64(element), into: &bytes)
      if count != 0 {
        array.field(2, into: &bytes)
        GobWriter.int(Int64(count), into: &bytes)
      }
      array.end(into: &bytes)
    case .slice(let name, let element):
      wire.field(1, into: &bytes)
      var slice = GobStructWriter()
      common(name, &slice)
      slice.field(1, into: &bytes)
      GobWriter.int(Int64(element), into: &bytes)
      slice.end(into: &bytes)
    case .structure(let name, let fields):
      wire.field(2, into: &bytes)
      var structure = GobStructWriter()
      common(name, &structure)
      if !fields.isEmpty {
        structure.field(1, into: &bytes)
        GobWriter.uint(UInt64(fields.count), into: &bytes)
        for field in fields {
          var writer = GobStructWriter()
          if !field.name.isEmpty {
            writer.field(0, into: &bytes)
            GobWriter.string(field.name, into: &bytes)
          }
          writer.field(1, into: &bytes)
          GobWriter.int(Int64(field.id), into: &bytes)
          writer.end(into: &bytes)
        }
      }
      structure.end(into: &bytes)
    case .map(let name, let key, let value):
      wire.field(3, into: &bytes)
      var map = GobStructWriter()
      common(name, &map)
      map.field(1, into: &bytes)
      GobWriter.int(Int64(key), into: &bytes)
      map.field(2, into: &bytes)
      GobWriter.int(Int64(value), into: &bytes)
      map.end(into: &bytes)
    case .opaque(let name, let kind):
      switch kind {
      case .gobEncoder: wire.field(4, into: &bytes)
      case .binaryMarshaler: wire.field(5, into: &bytes)
      case .textMarshaler: wire.field(6, into: &bytes)
      }
      var opaque = GobStructWriter()
      common(name, &opaque)
      opaque.end(into: &bytes)
    }
    wire.end(into: &bytes)
  }

  /// Reads a wireType struct; ids it names are checked when a value uses them.
  static func decode(_ reader: inout GobReader) throws(GobError) -> (id: Int, type: GobWireType) {
    var result: (id: Int, type: GobWireType)?
    var field = -1
    while true {
      let delta = try reader.uint()
      if delta == 0 { break }
      guard delta <= 7, field + Int(delta) <= 6 else { throw .malformed("bad field in type definition") }
      field += Int(delta)
      guard result == nil else { throw .malformed("type definition defines two types") }
      switch field {
      case 0:
        var name = ""
        var id = 0
        var element = 0
        var count: Int64 = 0
        try readStruct(&reader) { (index, reader) throws(GobError) in
          switch index {
          case 0: (name, id) = try readCommon(&reader)
          case 1: element = try readID(&reader)
          case 2: count = try reader.int()
          default: throw .malformed("bad field in array type")
          }
        }
        guard count >= 0, count <= Int64(Int32.max) else { throw .malformed("bad array length \(count)") }
        result = (id, .array(name: name, element: element, count: Int(count)))
      case 1:
        var name = ""
        var id = 0
        var element = 0
        try readStruct(&reader) { (index, reader) throws(GobError) in
          switch index {
          case 0: (name, id) = try readCommon(&reader)
          case 1: element = try readID(&reader)
          default: throw .malformed("bad field in slice type")
          }
        }
        result = (id, .slice(name: name, element: element))
      case 2:
        var name = ""
        var id = 0
        var fields: [(name: String, id: Int)] = []
        try readStruct(&reader) { (index, reader) throws(GobError) in
          switch index {
          case 0: (name, id) = try readCommon(&reader)
          case 1:
            let count = try reader.count()
            fields.reserveCapacity(count)
            for _ in 0..<count {
              var fieldName = ""
              var fieldID = 0
              try readStruct(&reader) { (index, reader) throws(GobError) in
                switch index {
                case 0: fieldName = try reader.string()
                case 1: fieldID = try readID(&reader)
                default: throw .malformed("bad field in field type")
                }
              }
              fields.append((fieldName, fieldID))
            }
          default: throw .malformed("bad field in struct type")
          }
        }
        result = (id, .structure(name: name, fields: fields))
      case 3:
        var name = ""
        var id = 0
        var key = 0
        var value = 0
        try readStruct(&reader) { (index, reader) throws(GobError) in
          switch index {
          case 0: (name, id) = try readCommon(&reader)
          case 1: key = try readID(&reader)
          case 2: value = try readID(&reader)
          default: throw .malformed("bad field in map type")
          }
        }
        result = (id, .map(name: name, key: key, value: value))
      default:
        var name = ""
        var id = 0
        try readStruct(&reader) { (index, reader) throws(GobError) in
          guard index == 0 else { throw .malformed("bad field in GobEncoder type") }
          (name, id) = try readCommon(&reader)
        }
        let kind: GobOpaqueKind = field == 4 ? .gobEncoder : field == 5 ? .binaryMarshaler : .textMarshaler
        result = (id, .opaque(name: name, kind: kind))
      }
    }
    guard let result else { throw .malformed("empty type definition") }
    return result
  }

  private static func readID(_ reader: inout GobReader) throws(GobError) -> Int {
    let id = try reader.int()
    guard id > 0, id < Int64(Int32.max) else { throw .malformed("bad type id \(id)") }
    return Int(id)
  }

  private static func readCommon(_ reader: inout GobReader) throws(GobError) -> (String, Int) {
    var name = ""
    var id = 0
    try readStruct(&reader) { (index, reader) throws(GobError) in
      switch index {
      case 0: name = try reader.string()
      case 1: id = try readID(&reader)
      default: throw .malformed("bad field in common type")
      }
    }
    return (name, id)
  }

  /// Calls `field` with each field number of a struct until its end marker.
  static func readStruct(
    _ reader: inout GobReader,
    _ field: (Int, inout GobReader) throws(GobError) -> Void
  ) throws(GobError) {
    var index = -1
    while true {
      let delta = try reader.uint()
      if delta == 0 { return }
      guard delta < 1 << 20 else { throw .malformed("bad field delta \(delta)") }
      index += Int(delta)
      try field(index, &reader)
    }
  }
}
