import Foundation
import GoPluginGob
import GoPluginTesting
import Testing

/// The Go corpus program (Tests/Interop/go/src/interop/gobcorpus), built by Tests/Interop/build.sh
/// into GOPLUGIN_INTEROP_DIR (default .build/interop), as InteropTests' peers are.
enum GobCorpusProgram {
  static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

  static func path() async throws -> String {
    let output =
      ProcessInfo.processInfo.environment["GOPLUGIN_INTEROP_DIR"]
      ?? repository.appendingPathComponent(".build/interop").path
    let build = try await ExternalProgram.run(
      repository.appendingPathComponent("Tests/Interop/build.sh").path,
      arguments: [output]
    )
    guard build.status == 0 else {
      throw GobError(code: .unsupported, message: "Tests/Interop/build.sh failed: \(build.errorText)")
    }
    return URL(fileURLWithPath: output).appendingPathComponent("go-gob-corpus").path
  }
}

/// The corpus's Go types, in Swift.
enum Corpus {
  struct Basics: Codable, Equatable {
    var bool = false
    var int = 0
    var int8: Int8 = 0
    var int16: Int16 = 0
    var int32: Int32 = 0
    var int64: Int64 = 0
    var uint: UInt = 0
    var uint8: UInt8 = 0
    var uint16: UInt16 = 0
    var uint32: UInt32 = 0
    var uint64: UInt64 = 0
    var float32: Float = 0
    var float64: Double = 0
    var string = ""
    var bytes: [UInt8] = []
  }

  struct Point: Codable, Equatable, Sendable {
    var x = 0
    var y = 0
  }

  struct Inner: Codable, Equatable {
    var name = ""
    var tags: [String] = []
    var point = Point()
  }

  struct Outer: Codable, Equatable {
    var name = ""
    var inner = Inner()
    var inners: [Inner] = []
    var byName: [String: Inner] = [:]
    var grid: [[Int]] = []
    var counts: [Int: UInt] = [:]
  }

  struct WithAny: Codable {
    var any: GobInterface
    var list: [GobInterface]
    var map: [String: GobInterface]
    var shape: GobInterface
    var nothing: GobInterface
  }

  struct Stamp: GobMarshaling, Equatable {
    var seconds: UInt32
    init(_ seconds: UInt32) { self.seconds = seconds }
    func gobMarshal() throws -> [UInt8] { withUnsafeBytes(of: seconds.bigEndian) { Array($0) } }
    init(gobUnmarshaling bytes: [UInt8]) throws {
      guard bytes.count == 4 else { throw GobError(code: .typeMismatch, message: "stamp of \(bytes.count) bytes") }
      seconds = bytes.reduce(0) { $0 << 8 | UInt32($1) }
    }
  }

  struct Event: Codable, Equatable {
    var name: String
    var at: Stamp
  }
}

/// Reads one corpus file as typed values, checking each, and writes them again.
struct TypedPass {
  var decoder = GobStreamDecoder()
  var encoder = GobStreamEncoder()
  var output: [UInt8] = []

  init(_ bytes: [UInt8]) { decoder.append(bytes) }

  /// The next value, re-encoded once read.
  mutating func next<T: Codable>(_ type: T.Type) throws -> T {
    let value = try #require(try decoder.decode(T.self))
    try encoder.encode(value, into: &output)
    return value
  }

  mutating func expect<T: Codable & Equatable>(_ expected: T, sourceLocation: SourceLocation = #_sourceLocation) throws
  {
    let value = try next(T.self)
    #expect(value == expected, sourceLocation: sourceLocation)
  }
}

let corpusNames: Set<String> = [
  "basics", "floats", "unicode", "nested", "interfaces", "twice", "gobencoder", "toplevel", "rpc", "complex", "arrays",
]

/// Reads and checks the values of the corpus entry `name`.
func checkCorpus(_ name: String, _ pass: inout TypedPass) throws {
  switch name {
  case "basics":
    try pass.expect(
      Corpus.Basics(
        bool: true, int: 1, int8: 2, int16: 3, int32: 4, int64: 5, uint: 6, uint8: 7, uint16: 8, uint32: 9,
        uint64: 10, float32: 1.5, float64: 2.25, string: "eleven", bytes: [1, 2, 3]))
    try pass.expect(
      Corpus.Basics(
        bool: false, int: -1, int8: .min, int16: .min, int32: .min, int64: .min, uint: UInt(Int64.max), uint8: .max,
        uint16: .max, uint32: .max, uint64: .max, float32: -1.5, float64: -2.25, string: "negative", bytes: [0]))
    try pass.expect(Corpus.Basics())
  case "floats":
    let floats = try pass.next([Double].self)
    #expect(floats.count == 6)
    #expect(floats.first?.isNaN == true)
    #expect(Array(floats.dropFirst()).map(\.description) == ["inf", "-inf", "-0.0", "1e+300", "5e-324"])
    try pass.expect(Float(1.25))
  case "unicode":
    try pass.expect(["héllo, 世界 🌍", "", "tab\tnul\0", String(repeating: "ü", count: 300)])
    try pass.expect(["ключ": "значение"])
  case "nested":
    try pass.expect(
      Corpus.Outer(
        name: "outer",
        inner: Corpus.Inner(name: "in", tags: ["a", "b"], point: Corpus.Point(x: 1, y: -1)),
        inners: [
          Corpus.Inner(name: "first"), Corpus.Inner(tags: ["only tags"]), Corpus.Inner(point: Corpus.Point(x: 0, y: 9)),
        ],
        byName: ["x": Corpus.Inner(name: "x"), "y": Corpus.Inner(point: Corpus.Point(x: 2, y: 3))],
        grid: [[1, 2], [], [3]],
        counts: [-1: 1, 1_000_000: 2]
      ))
  case "interfaces":
    let value = try pass.next(Corpus.WithAny.self)
    #expect(value.any == GobInterface(.string("str")))
    #expect(value.list.map(\.typeName) == ["int", "string", "float64", "bool", "[]uint8", "uint64", "int64"])
    #expect(
      value.list.map(\.value) == [.int(1), .string("two"), .float(3.5), .bool(true), .bytes([98]), .uint(5), .int(-6)])
    #expect(value.map["key"] == GobInterface(.string("k")))
    #expect(value.map["value"] == GobInterface(.bytes([118])))
    #expect(value.map["n"] == GobInterface(.int(1)))
    #expect(value.map["point"]?.typeName == "main.Point")
    #expect(try value.map["point"]?.decode(Corpus.Point.self) == Corpus.Point(x: 1, y: 2))
    #expect(try value.shape.decode(Corpus.Point.self) == Corpus.Point(x: 3, y: 4))
    #expect(value.nothing == .none)
    let map = try pass.next(GobInterface.self)
    #expect(map.typeName == "map[string]interface {}")
    #expect(
      try map.decode([String: GobInterface].self) == [
        "key": GobInterface(.string("k")), "value": GobInterface(.bytes([118])),
      ])
    try pass.expect(GobInterface.none)
    let point = try pass.next(GobInterface.self)
    #expect(point.typeName == "main.Point")
    #expect(try point.decode(Corpus.Point.self) == Corpus.Point(x: 5, y: 6))
  case "twice":
    try pass.expect(Corpus.Point(x: 1, y: 2))
    try pass.expect(Corpus.Point(x: 0, y: 5))
    try pass.expect(Corpus.Outer(name: "one"))
    try pass.expect(Corpus.Outer(name: "two", grid: [[1]]))
    try pass.expect(Corpus.Point())
  case "gobencoder":
    try pass.expect(Corpus.Event(name: "e", at: Corpus.Stamp(42)))
    try pass.expect(Corpus.Stamp(7))
    try pass.expect([Corpus.Stamp(1), Corpus.Stamp(2)])
  case "toplevel":
    try pass.expect(7)
    try pass.expect(-7)
    try pass.expect("s")
    try pass.expect(["a", "b"])
    try pass.expect(["x": 1])
    try pass.expect(true)
    try pass.expect(UInt64.max)
    try pass.expect(Array("raw".utf8))
    try pass.expect(EmptyStruct())
    try pass.expect([[1], [], [2, 3]])
    try pass.expect(0)
    try pass.expect("")
  case "rpc":
    try pass.expect(Request(serviceMethod: "Plugin.Greet", seq: 1))
    try pass.expect(GobInterface.none)
    try pass.expect(Response(serviceMethod: "Plugin.Greet", seq: 1, error: "boom"))
    try pass.expect("Hello!")
  case "complex":
    guard case .structure(let complexes) = try pass.next(GobValue.self) else {
      Issue.record("Complexes is not a struct")
      return
    }
    #expect(complexes["C64"] == .complex(real: 1, imaginary: 2))
    #expect(complexes["C128"] == .complex(real: -3.5, imaginary: 0))
    #expect(try pass.next(GobValue.self) == .complex(real: 0, imaginary: -1))
  case "arrays":
    #expect(try pass.next(GobValue.self) == .array([.int(1), .int(-2), .int(3)], element: .int))
    guard case .structure(let arrays) = try pass.next(GobValue.self) else {
      Issue.record("Arrays is not a struct")
      return
    }
    #expect(arrays["A"] == .array([.string("x"), .string("")], element: .string))
  default:
    Issue.record("\(name) is not a corpus entry")
  }
}

@Test func goCorpusDecodesReencodesAndGoAgrees() async throws {
  let program = try await GobCorpusProgram.path()
  let root = FileManager.default.temporaryDirectory.appendingPathComponent("gob-corpus-\(UUID().uuidString)")
  defer { try? FileManager.default.removeItem(at: root) }
  let source = root.appendingPathComponent("go")
  let typed = root.appendingPathComponent("typed")
  let values = root.appendingPathComponent("values")
  for directory in [source, typed, values] {
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
  }
  let write = try await ExternalProgram.run(program, arguments: ["write", source.path])
  #expect(write.status == 0, "\(write.errorText)")

  let files = try FileManager.default.contentsOfDirectory(atPath: source.path).filter { $0.hasSuffix(".gob") }.sorted()
  #expect(Set(files.map { String($0.dropLast(4)) }) == corpusNames)
  for file in files {
    let bytes = try [UInt8](Data(contentsOf: source.appendingPathComponent(file)))
    let name = String(file.dropLast(4))

    // Typed: each value checked, then written again.
    var pass = TypedPass(bytes)
    try checkCorpus(name, &pass)
    #expect(pass.decoder.bufferedByteCount == 0, "\(name): bytes left after the typed values")
    try Data(pass.output).write(to: typed.appendingPathComponent(file))

    // Untyped: whatever arrives as GobValue, written again.
    var decoder = GobStreamDecoder()
    decoder.append(bytes)
    var encoder = GobStreamEncoder()
    var output: [UInt8] = []
    var count = 0
    while let value = try decoder.decode(GobValue.self) {
      try encoder.encode(value, into: &output)
      count += 1
    }
    #expect(count > 0)
    #expect(decoder.bufferedByteCount == 0)
    try Data(output).write(to: values.appendingPathComponent(file))
  }

  for directory in [typed, values] {
    let check = try await ExternalProgram.run(program, arguments: ["check", directory.path])
    #expect(check.status == 0, "\(directory.lastPathComponent): \(check.errorText)")
    #expect(check.outputText == "\(files.count) files match\n")
  }
}
