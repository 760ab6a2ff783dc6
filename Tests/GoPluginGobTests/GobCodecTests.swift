import GoPluginGob
import Testing

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// net/rpc's request header, as Go declares it.
struct Request: Codable, Equatable {
  var serviceMethod: String
  var seq: UInt64
}

/// net/rpc's response header.
struct Response: Codable, Equatable {
  var serviceMethod: String
  var seq: UInt64
  var error: String
}

struct EmptyStruct: Codable, Equatable {}

struct Everything: Codable, Equatable {
  enum Color: String, Codable { case red, green }
  var flag = true
  var int = -1
  var int8: Int8 = -8
  var int16: Int16 = -16
  var int32: Int32 = -32
  var int64: Int64 = .min
  var uint: UInt = 1
  var uint8: UInt8 = 255
  var uint16: UInt16 = 16
  var uint32: UInt32 = 32
  var uint64: UInt64 = .max
  var float: Float = 1.5
  var double = -2.25
  var text = "héllo, 世界"
  var bytes: [UInt8] = [0, 1, 2]
  var data = Data([9, 8])
  var list = [1, 2, 3]
  var nested: [[String]] = [["a"], [], ["b", "c"]]
  var map = ["one": 1, "two": 2]
  var intKeys: [Int: String] = [1: "x"]
  var optional: String? = "here"
  var missing: Int? = nil
  var inner = Request(serviceMethod: "S.M", seq: 9)
  var inners = [Request(serviceMethod: "A", seq: 0)]
  var color = Color.green
  var any = GobInterface(.string("inside"))
  var none = GobInterface.none
}

/// All fields zero: gob sends none of them.
struct Zeroes: Codable, Equatable {
  var int = 0
  var text = ""
  var list: [Int] = []
  var flag = false
  var inner = EmptyStruct()
  var map: [String: Int] = [:]
}

func hex(_ text: String) -> [UInt8] {
  var bytes: [UInt8] = []
  var index = text.startIndex
  while index < text.endIndex {
    let next = text.index(index, offsetBy: 2)
    bytes.append(UInt8(text[index..<next], radix: 16) ?? 0)
    index = next
  }
  return bytes
}

func roundTrip<T: Codable & Equatable>(_ value: T) throws -> T? {
  var encoder = GobStreamEncoder()
  var bytes: [UInt8] = []
  try encoder.encode(value, into: &bytes)
  var decoder = GobStreamDecoder()
  decoder.append(bytes)
  return try decoder.decode(T.self)
}

@Test func gobErrorNamesItself() {
  #expect(GobError(code: .malformed, message: "x").description == "gob: x")
}

@Test func netRPCHeadersRoundTrip() throws {
  let request = Request(serviceMethod: "Plugin.Greet", seq: 1)
  #expect(try roundTrip(request) == request)
  let response = Response(serviceMethod: "Plugin.Greet", seq: 7, error: "boom")
  #expect(try roundTrip(response) == response)
  #expect(try roundTrip(EmptyStruct()) == EmptyStruct())
}

@Test func everyKindRoundTrips() throws {
  let value = Everything()
  #expect(try roundTrip(value) == value)
  #expect(try roundTrip(Zeroes()) == Zeroes())
}

@Test func topLevelNonStructValues() throws {
  #expect(try roundTrip(42) == 42)
  #expect(try roundTrip("text") == "text")
  #expect(try roundTrip([UInt8]([1, 2])) == [1, 2])
  #expect(try roundTrip(["a": [1.5]]) == ["a": [1.5]])
  #expect(try roundTrip([String]()) == [])
  #expect(try roundTrip(UInt64.max) == .max)
  #expect(try roundTrip(GobInterface(.int(-5))) == GobInterface(.int(-5)))
  #expect(try roundTrip(GobInterface.none) == GobInterface.none)
}

@Test func omittedFieldsDecodeAsZeroValues() throws {
  var encoder = GobStreamEncoder()
  var bytes: [UInt8] = []
  try encoder.encode(EmptyStruct(), into: &bytes)
  var decoder = GobStreamDecoder()
  decoder.append(bytes)
  #expect(try decoder.decode(Zeroes.self) == Zeroes())
}

/// The bytes Go 1.19's net/rpc client writes for two calls of `Plugin.Greet` with an empty
/// `interface{}` argument (Request, body, Request, body).
let goRequests = hex(
  "2fff81030101075265717565737401ff82000102010d536572766963654d6574686f64010c000103536571010600000013ff82010c"
    + "506c7567696e2e47726565740101000310000013ff82010c506c7567696e2e477265657401020003100000"
)

/// Go's server answering: Response, "Hello!", then an error Response with a `struct{}` body.
let goResponses = hex(
  "3aff8303010108526573706f6e736501ff84000103010d536572766963654d6574686f64010c00010353657101060001054572726f"
    + "72010c00000013ff84010c506c7567696e2e4772656574010100090c000648656c6c6f2119ff84010c506c7567696e2e4772656574"
    + "01020104626f6f6d000aff85030102ff8600000003ff8600"
)

/// `interface{}` holding `map[string]interface{}{"key": "k", "value": []byte("v")}` (go-plugin's
/// kv Put): Go splits the message after the map's type definition.
let goKVPut = hex(
  "281000176d61705b737472696e675d696e74657266616365207b7dff87040102ff8800010c0110000028ff88250002036b657906"
    + "737472696e670c0300016b0576616c7565075b5d75696e74380a03000176"
)

@Test func decodesGoNetRPCRequests() throws {
  var decoder = GobStreamDecoder()
  decoder.append(goRequests)
  #expect(try decoder.decode(Request.self) == Request(serviceMethod: "Plugin.Greet", seq: 1))
  #expect(try decoder.decode(GobInterface.self) == GobInterface.none)
  #expect(try decoder.decode(Request.self) == Request(serviceMethod: "Plugin.Greet", seq: 2))
  #expect(try decoder.skipValue())
  #expect(try decoder.decode(Request.self) == nil)
}

@Test func decodesGoNetRPCResponses() throws {
  var decoder = GobStreamDecoder()
  decoder.append(goResponses)
  #expect(try decoder.decode(Response.self) == Response(serviceMethod: "Plugin.Greet", seq: 1, error: ""))
  #expect(try decoder.decode(String.self) == "Hello!")
  #expect(try decoder.decode(Response.self) == Response(serviceMethod: "Plugin.Greet", seq: 2, error: "boom"))
  #expect(try decoder.decode(EmptyStruct.self) == EmptyStruct())
}

@Test func encodesRequestsAsGoDoes() throws {
  var encoder = GobStreamEncoder()
  var bytes: [UInt8] = []
  for seq in [1, 2] as [UInt64] {
    try encoder.encode(Request(serviceMethod: "Plugin.Greet", seq: seq), into: &bytes)
    try encoder.encode(GobInterface.none, into: &bytes)
  }
  // Go names the struct type "Request" too, and numbers its first type 65 in a fresh process.
  #expect(bytes == goRequests)
}

@Test func decodesGoInterfaceMapSplitAcrossMessages() throws {
  var decoder = GobStreamDecoder()
  // Byte by byte: nil until the whole value is there.
  for byte in goKVPut.dropLast() {
    decoder.append([byte])
    #expect(try decoder.decode(GobInterface.self) == nil)
  }
  decoder.append(goKVPut.suffix(1))
  let put = try #require(try decoder.decode(GobInterface.self))
  #expect(put.typeName == "map[string]interface {}")
  guard case .map(let entries, key: .string, value: .interface)? = put.value else {
    Issue.record("not a map: \(String(describing: put.value))")
    return
  }
  #expect(entries.map(\.key) == [.string("key"), .string("value")])
  #expect(entries.map(\.value) == [.interface(GobInterface(.string("k"))), .interface(GobInterface(.bytes([0x76])))])
  #expect(decoder.bufferedByteCount == 0)
}

@Test func interfaceMapsRoundTripWithGoNames() throws {
  let map = GobValue.map(
    [
      GobMapEntry(key: .string("key"), value: .interface(GobInterface(.string("k")))),
      GobMapEntry(key: .string("value"), value: .interface(GobInterface(.bytes([1])))),
    ],
    key: .string,
    value: .interface
  )
  let put = GobInterface(map)
  #expect(put.typeName == "map[string]interface {}")
  #expect(try roundTrip(put) == put)
  #expect(GobInterface(.slice([], element: .interface)).typeName == "[]interface {}")
  #expect(GobInterface(.float(1)).typeName == "float64")
}

@Test func typesAreDefinedOncePerStream() throws {
  var encoder = GobStreamEncoder()
  var first: [UInt8] = []
  try encoder.encode(Request(serviceMethod: "A", seq: 1), into: &first)
  var second: [UInt8] = []
  try encoder.encode(Request(serviceMethod: "A", seq: 1), into: &second)
  #expect(second.count < first.count)
  var decoder = GobStreamDecoder()
  decoder.append(first + second)
  #expect(try decoder.decode(Request.self) == Request(serviceMethod: "A", seq: 1))
  #expect(try decoder.decode(Request.self) == Request(serviceMethod: "A", seq: 1))
}

@Test func decodesEverythingIntoGobValue() throws {
  var encoder = GobStreamEncoder()
  var bytes: [UInt8] = []
  try encoder.encode(Everything(), into: &bytes)
  var decoder = GobStreamDecoder()
  decoder.append(bytes)
  let value = try #require(try decoder.decode(GobValue.self))
  guard case .structure(let structure) = value else {
    Issue.record("not a struct")
    return
  }
  #expect(structure["Text"] == .string("héllo, 世界"))
  #expect(structure["Uint64"] == .uint(.max))
  #expect(structure["Missing"] == nil)
  #expect(structure["Color"] == .string("green"))
  // And back, into the typed value, through a second stream.
  #expect(try roundTrip(value) == value)
}
