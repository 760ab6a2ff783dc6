import GoPluginGob
import Testing

struct Args: Codable, Equatable, Sendable {
  var a: Int
  var b: Int
}

/// A value that marshals itself, like Go's time.Time.
struct Stamp: GobMarshaling, Equatable {
  var seconds: UInt32
  func gobMarshal() throws -> [UInt8] { withUnsafeBytes(of: seconds.bigEndian) { Array($0) } }
  init(seconds: UInt32) { self.seconds = seconds }
  init(gobUnmarshaling bytes: [UInt8]) throws {
    guard bytes.count == 4 else { throw GobError(code: .typeMismatch, message: "stamp of \(bytes.count) bytes") }
    seconds = bytes.reduce(0) { $0 << 8 | UInt32($1) }
  }
}

struct Logged: Codable, Equatable {
  enum Level: Int, Codable {
    case debug = 1
    case info = 2
  }
  var at: Stamp
  var level: Level
  var stamps: [Stamp]
}

/// A newer sender's struct with a field the receiver does not know.
struct ArgsV2: Codable {
  var a: Int
  var extra: [String: [Int]]
  var b: Int
}

@Test func registeredStructsTravelInInterfaces() throws {
  var registry = GobTypeRegistry()
  registry.register(Args.self, as: "main.Args")
  let interface = try GobInterface(Args(a: 1, b: -2), registry: registry)
  #expect(interface.typeName == "main.Args")
  let back = try #require(try roundTrip(interface))
  #expect(back.typeName == "main.Args")
  #expect(try back.decode(Args.self) == Args(a: 1, b: -2))
  #expect(try back.decodeRegistered(in: registry) as? Args == Args(a: 1, b: -2))
  #expect(throws: GobError.self) { try back.decodeRegistered(in: .basics) }
  #expect(throws: GobError.self) { try GobInterface(Args(a: 1, b: 2)) }
  #expect(try GobInterface(Int8(3)).typeName == "int8")
  #expect(try GobInterface([UInt8]([1])).typeName == "[]uint8")
  #expect(try GobInterface(["a"]).typeName == "[]string")
}

@Test func decoderWithRegistryRejectsUnknownNames() throws {
  var registry = GobTypeRegistry()
  registry.register(Args.self, as: "main.Args")
  var encoder = GobStreamEncoder()
  var bytes: [UInt8] = []
  try encoder.encode(try GobInterface(Args(a: 1, b: 2), registry: registry), into: &bytes)
  var strict = GobStreamDecoder()
  strict.registry = .basics
  strict.append(bytes)
  #expect {
    _ = try strict.decode(GobInterface.self)
  } throws: { ($0 as? GobError)?.code == .unregisteredType }
  var knowing = GobStreamDecoder()
  knowing.registry = registry
  knowing.append(bytes)
  #expect(try knowing.decode(GobInterface.self)?.decode(Args.self) == Args(a: 1, b: 2))
}

@Test func marshalledValuesAndRawEnumsRoundTrip() throws {
  let value = Logged(at: Stamp(seconds: 0x0102_0304), level: .info, stamps: [Stamp(seconds: 5)])
  #expect(try roundTrip(value) == value)
  var encoder = GobStreamEncoder()
  var bytes: [UInt8] = []
  try encoder.encode(value, into: &bytes)
  var decoder = GobStreamDecoder()
  decoder.append(bytes)
  guard case .structure(let structure)? = try decoder.decode(GobValue.self) else {
    Issue.record("not a struct")
    return
  }
  #expect(structure["At"] == .opaque(name: "Stamp", kind: .gobEncoder, bytes: [1, 2, 3, 4]))
  #expect(structure["Level"] == .int(2))
}

@Test func unknownFieldsAreSkipped() throws {
  var encoder = GobStreamEncoder()
  var bytes: [UInt8] = []
  try encoder.encode(ArgsV2(a: 1, extra: ["x": [1, 2]], b: 3), into: &bytes)
  var decoder = GobStreamDecoder()
  decoder.append(bytes)
  #expect(try decoder.decode(Args.self) == Args(a: 1, b: 3))
}

@Test func compositeGobValuesRoundTrip() throws {
  let values: [GobValue] = [
    .complex(real: 1.5, imaginary: -2),
    .array([.int(1), .int(2), .int(3)], element: .int),
    .slice([.slice([.string("a")], element: .string), .slice([], element: .string)], element: .slice(.string)),
    .map([GobMapEntry(key: .int(-1), value: .bool(true))], key: .int, value: .bool),
    .structure(
      GobStruct(
        name: "Point",
        fields: [
          GobField(name: "X", value: .float(.infinity)),
          GobField(name: "Any", value: .interface(GobInterface(.uint(9)))),
        ]
      )
    ),
    .opaque(name: "Blob", kind: .binaryMarshaler, bytes: [1, 2]),
  ]
  for value in values {
    var encoder = GobStreamEncoder()
    var bytes: [UInt8] = []
    try encoder.encode(value, into: &bytes)
    try encoder.encode(value, into: &bytes)
    var decoder = GobStreamDecoder()
    decoder.append(bytes)
    for _ in 0..<2 {
      let back = try #require(try decoder.decode(GobValue.self))
      if case .structure(let structure) = back {
        #expect(
          structure.fields == [
            GobField(name: "X", value: .float(.infinity)),
            GobField(name: "Any", value: .interface(GobInterface(.uint(9)))),
          ])
      } else {
        #expect(back == value)
      }
    }
  }
}

/// A hand-written Codable that nests containers, as some Swift types do.
struct Nesting: Codable, Equatable {
  var x: Int
  var tags: [String]
  enum CodingKeys: String, CodingKey { case Position, Tags }
  enum PositionKeys: String, CodingKey { case X }
  init(x: Int, tags: [String]) {
    self.x = x
    self.tags = tags
  }
  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    x = try container.nestedContainer(keyedBy: PositionKeys.self, forKey: .Position).decode(Int.self, forKey: .X)
    var tags = try container.nestedUnkeyedContainer(forKey: .Tags)
    self.tags = []
    while !tags.isAtEnd { self.tags.append(try tags.decode(String.self)) }
  }
  func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: CodingKeys.self)
    var position = container.nestedContainer(keyedBy: PositionKeys.self, forKey: .Position)
    try position.encode(x, forKey: .X)
    var tags = container.nestedUnkeyedContainer(forKey: .Tags)
    for tag in self.tags { try tags.encode(tag) }
  }
}

@Test func nestedContainersEncodeAsNestedValues() throws {
  #expect(try roundTrip(Nesting(x: 3, tags: ["a", "b"])) == Nesting(x: 3, tags: ["a", "b"]))
}

struct WithOptionals: Codable, Equatable {
  var name: String?
  var count: Int?
  var inner: Args?
}

@Test func nilOptionalsKeepTheirPlaceInTheType() throws {
  var encoder = GobStreamEncoder()
  var first: [UInt8] = []
  try encoder.encode(WithOptionals(name: nil, count: nil), into: &first)
  var second: [UInt8] = []
  try encoder.encode(WithOptionals(name: "n", count: 2), into: &second)
  // The second value reuses the first's type: no definition before it.
  var definitionsOnly = GobStreamDecoder()
  definitionsOnly.append(second)
  #expect(code { _ = try definitionsOnly.decode(WithOptionals.self) } == .malformed)
  #expect(second.count < first.count)
  var decoder = GobStreamDecoder()
  decoder.append(first + second)
  #expect(try decoder.decode(WithOptionals.self) == WithOptionals())
  #expect(try decoder.decode(WithOptionals.self) == WithOptionals(name: "n", count: 2))
}
