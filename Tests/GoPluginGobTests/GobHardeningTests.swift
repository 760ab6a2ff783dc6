import GoPluginGob
import Testing

func code(_ body: () throws -> Void) -> GobError.Code? {
  do {
    try body()
    return nil
  } catch let error as GobError {
    return error.code
  } catch {
    return nil
  }
}

@Test func hugeCountsInSmallMessagesAreErrors() throws {
  var encoder = GobStreamEncoder()
  var bytes: [UInt8] = []
  try encoder.encode([1, 2], into: &bytes)
  // The value message of []int: length, id 65, singleton delta, count. Replace the count by 2^60.
  var definitions = bytes
  let valueLength = Int(definitions[definitions.count - 7])
  #expect(valueLength == 6)
  definitions.removeLast(7)
  let body: [UInt8] = [0xFF, 0x82, 0x00, 0xF8, 0x10, 0, 0, 0, 0, 0, 0, 0]
  var decoder = GobStreamDecoder()
  decoder.append(definitions + [UInt8(body.count)] + body)
  #expect(code { _ = try decoder.decode([Int].self) } == .malformed)

  // A string of 2^40 bytes.
  var strings = GobStreamDecoder()
  strings.append([0x09, 0x0C, 0x00, 0xFB, 0x01, 0, 0, 0, 0, 0])
  #expect(code { _ = try strings.decode(String.self) } == .malformed)
}

@Test func messageLengthsAreChecked() {
  var decoder = GobStreamDecoder()
  decoder.append([0xF8, 0x01, 0, 0, 0, 0, 0, 0, 0])
  #expect(code { _ = try decoder.decode(Int.self) } == .limitExceeded)
  var small = GobStreamDecoder()
  small.maxMessageSize = 16
  small.append([0x20])
  #expect(code { _ = try small.decode(Int.self) } == .limitExceeded)
  var zero = GobStreamDecoder()
  zero.append([0x00])
  #expect(code { _ = try zero.decode(Int.self) } == .malformed)
}

@Test func deepNestingIsLimited() throws {
  var value = GobValue.int(1)
  for _ in 0..<200 {
    value = .interface(GobInterface(value))
  }
  var encoder = GobStreamEncoder()
  var bytes: [UInt8] = []
  try encoder.encode(value, into: &bytes)
  var decoder = GobStreamDecoder()
  decoder.append(bytes)
  #expect(code { _ = try decoder.decode(GobValue.self) } == .limitExceeded)
  var deeper = GobStreamDecoder()
  deeper.maxDepth = 300
  deeper.append(bytes)
  #expect(try deeper.decode(GobValue.self) == value)
}

@Test func everyPrefixIsIncompleteNotAnError() throws {
  var encoder = GobStreamEncoder()
  var bytes: [UInt8] = []
  try encoder.encode(Everything(), into: &bytes)
  for length in 0..<bytes.count {
    var decoder = GobStreamDecoder()
    decoder.append(bytes[..<length])
    #expect(try decoder.decode(Everything.self) == nil, "prefix of \(length) bytes")
  }
}

@Test func selfContainedTypeIdsAreRejected() {
  // A slice type whose element is itself, then a value of it.
  var definition: [UInt8] = [0xFF, 0x81, 0x02, 0x01, 0x02, 0xFF, 0x82, 0x00, 0x01, 0xFF, 0x82, 0x00, 0x00]
  definition.insert(UInt8(definition.count), at: 0)
  var decoder = GobStreamDecoder()
  decoder.append(definition + [0x04, 0xFF, 0x82, 0x00, 0x00])
  #expect(code { _ = try decoder.decode(GobValue.self) } == .malformed)
}
