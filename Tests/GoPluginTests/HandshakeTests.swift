import Testing

@testable import GoPlugin

@Suite("Handshake line")
struct HandshakeTests {
  static let host = HandshakeLine.Expectations(
    versions: [1, 2], allowedProtocols: [.grpc], multiplexingRequested: false)
  static let muxHost = HandshakeLine.Expectations(versions: [1], allowedProtocols: [.grpc], multiplexingRequested: true)
  // A real certificate field is ~800 characters; anything over 50 is decoded.
  static let certificate = [UInt8](repeating: 0x30, count: 60)
  static let certificateField = Base64.encodeUnpadded(certificate)

  struct Good: Sendable, CustomTestStringConvertible {
    var line: String
    var expected: HandshakeLine
    var testDescription: String { self.line }
  }

  static let good: [Good] = [
    // What a Go plugin prints: six fields, trailing "|".
    Good(
      line: "1|1|unix|/tmp/plugin123|grpc|",
      expected: HandshakeLine(appVersion: 1, network: .unix, address: "/tmp/plugin123")),
    // The five-field form of go-plugin's docs and its Python example.
    Good(
      line: "1|2|tcp|127.0.0.1:1234|grpc",
      expected: HandshakeLine(appVersion: 2, network: .tcp, address: "127.0.0.1:1234")),
    // Line endings and surrounding blanks are trimmed.
    Good(line: "1|1|unix|/tmp/p|grpc|\r", expected: HandshakeLine(appVersion: 1, network: .unix, address: "/tmp/p")),
    Good(line: "  1|1|unix|/tmp/p|grpc|  ", expected: HandshakeLine(appVersion: 1, network: .unix, address: "/tmp/p")),
    // Short certificate fields are the pre-AutoMTLS config blob and ignored.
    Good(
      line: "1|1|unix|/tmp/p|grpc|eyJzdGRvdXRfYWRkciI6IiJ9",
      expected: HandshakeLine(appVersion: 1, network: .unix, address: "/tmp/p")),
    Good(
      line: "1|1|unix|/tmp/p|grpc|\(certificateField)",
      expected: HandshakeLine(appVersion: 1, network: .unix, address: "/tmp/p", serverCertificate: certificate)
    ),
    // A seventh field, and anything after it, is fine when multiplexing was not asked for.
    Good(
      line: "1|1|unix|/tmp/p|grpc||true|extra",
      expected: HandshakeLine(appVersion: 1, network: .unix, address: "/tmp/p", multiplexingSupported: true)),
    // go's Atoi takes a sign.
    Good(line: "+1|+2|tcp|:1234|grpc|", expected: HandshakeLine(appVersion: 2, network: .tcp, address: ":1234")),
  ]

  @Test("accepts every form real plugins print", arguments: good)
  func accepts(_ sample: Good) throws {
    #expect(try HandshakeLine.parse(sample.line, expecting: Self.host) == sample.expected)
  }

  @Test("accepts the seventh field when multiplexing was requested")
  func acceptsMux() throws {
    let line = try HandshakeLine.parse("1|1|unix|/tmp/p|grpc||T", expecting: Self.muxHost)
    #expect(line.multiplexingSupported == true)
  }

  struct Bad: Sendable, CustomTestStringConvertible {
    var line: String?
    var expectations = HandshakeTests.host
    var code: PluginError.Code
    var message: String
    var testDescription: String { self.line ?? "<no line>" }
  }

  static let bad: [Bad] = [
    Bad(
      line: "hello world", code: .malformedHandshake,
      message: "Unrecognized remote plugin message: hello world\nThis usually means"),
    Bad(line: "1|1|unix", code: .malformedHandshake, message: "Unrecognized remote plugin message: 1|1|unix\n"),
    Bad(
      line: nil, code: .exitedBeforeHandshake,
      message: "Unrecognized remote plugin message: \nFailed to read any lines from plugin's stdout\nThis usually means"
    ),
    Bad(
      line: "x|1|unix|/p|grpc|", code: .malformedHandshake,
      message: "error parsing core protocol version: strconv.Atoi: parsing \"x\": invalid syntax"),
    Bad(
      line: "2|1|unix|/p|grpc|",
      code: .incompatibleCoreVersion,
      message:
        "incompatible core API version with plugin. Plugin version: 2, Core version: 1\n\nTo fix this, the plugin usually only needs to be recompiled.\nPlease report this to the plugin author"
    ),
    Bad(
      line: "1|v|unix|/p|grpc|", code: .malformedHandshake,
      message: "Error parsing protocol version \"v\": strconv.Atoi: parsing \"v\": invalid syntax"),
    Bad(
      line: "1|3|unix|/p|grpc|", code: .incompatibleAppVersion,
      message: "incompatible API version with plugin. Plugin version: 3, Client versions: [1 2]"),
    // go-plugin's quirk: the message names the address, not the network.
    Bad(line: "1|1|pipe|/p|grpc|", code: .unknownAddressType, message: "unknown address type: /p"),
    Bad(
      line: "1|1|unix|/p|netrpc|", code: .unsupportedProtocol,
      message: "unsupported plugin protocol \"netrpc\". Supported: [grpc]"),
    // Four fields mean net/rpc, and an empty protocol field is no protocol.
    Bad(
      line: "1|1|unix|/p", code: .unsupportedProtocol,
      message: "unsupported plugin protocol \"netrpc\". Supported: [grpc]"),
    Bad(
      line: "1|1|unix|/p||", code: .unsupportedProtocol, message: "unsupported plugin protocol \"\". Supported: [grpc]"),
    Bad(
      line: "1|1|unix|/p|grpc|\(certificateField)==", code: .invalidServerCertificate,
      message: "error parsing server cert: illegal base64 data"),
    Bad(
      line: "1|1|unix|/p|grpc|",
      expectations: muxHost,
      code: .multiplexingNotSupported,
      message:
        "client requested gRPC broker multiplexing but plugin does not support the feature; for Go plugins, you will need to update the github.com/hashicorp/go-plugin dependency and recompile"
    ),
    Bad(
      line: "1|1|unix|/p|grpc||false", expectations: muxHost, code: .multiplexingNotSupported,
      message: "client requested gRPC broker multiplexing but plugin does not support the feature"),
    Bad(
      line: "1|1|unix|/p|grpc||maybe", expectations: muxHost, code: .malformedHandshake,
      message: "error parsing \"maybe\" as a boolean for gRPC broker multiplexing support"),
  ]

  @Test("rejects bad lines with go-plugin's diagnosis, in go-plugin's order", arguments: bad)
  func rejects(_ sample: Bad) {
    #expect {
      try HandshakeLine.parse(sample.line, expecting: sample.expectations)
    } throws: { error in
      guard let error = error as? PluginError else { return false }
      return error.code == sample.code && error.message.hasPrefix(sample.message)
    }
  }

  @Test("prints exactly what a Go plugin prints")
  func encodes() {
    #expect(
      HandshakeLine(appVersion: 1, network: .unix, address: "/tmp/plugin1").encoded == "1|1|unix|/tmp/plugin1|grpc|")
    #expect(
      HandshakeLine(appVersion: 3, network: .tcp, address: "127.0.0.1:10000").encoded == "1|3|tcp|127.0.0.1:10000|grpc|"
    )
    #expect(
      HandshakeLine(appVersion: 1, network: .unix, address: "/p", multiplexingSupported: true).encoded
        == "1|1|unix|/p|grpc||true")
    let withCertificate = HandshakeLine(appVersion: 1, network: .unix, address: "/p", serverCertificate: [1, 2, 3, 4])
    #expect(withCertificate.encoded == "1|1|unix|/p|grpc|AQIDBA")
  }

  @Test("what a plugin prints, a host parses back")
  func roundTrip() throws {
    let line = HandshakeLine(
      appVersion: 2, network: .unix, address: "/tmp/x", serverCertificate: Self.certificate, multiplexingSupported: true
    )
    #expect(try HandshakeLine.parse(line.encoded, expecting: Self.host) == line)
  }

  @Test(
    "Go's ParseBool",
    arguments: [
      ("1", true), ("t", true), ("T", true), ("TRUE", true), ("true", true), ("True", true),
      ("0", false), ("f", false), ("F", false), ("FALSE", false), ("false", false), ("False", false),
    ])
  func goBool(_ text: String, _ value: Bool) {
    #expect(HandshakeLine.parseGoBool(text) == value)
  }

  @Test("Go's ParseBool rejects other spellings", arguments: ["yes", "tRUE", "", " true"])
  func goBoolRejects(_ text: String) {
    #expect(HandshakeLine.parseGoBool(text) == nil)
  }
}

@Suite("Version negotiation")
struct NegotiationTests {
  @Test(
    "the plugin picks the highest common version, or its lowest when there is none",
    arguments: [
      ([1], [1], 1), ([1, 2, 3], [2, 3, 4], 3), ([1, 2, 3], [1, 2], 2), ([2, 3], [1], 2), ([5, 1], [], 1),
      ([4], [4, 9], 4),
    ] as [([Int], [Int], Int)]
  )
  func choose(plugin: [Int], host: [Int], chosen: Int) {
    #expect(VersionNegotiation.choose(pluginVersions: plugin, hostVersions: host) == chosen)
  }

  @Test("PLUGIN_PROTOCOL_VERSIONS is read as go-plugin reads it")
  func parsesHostVersions() {
    var invalid: [String] = []
    #expect(VersionNegotiation.parseHostVersions("3,1,2", reportInvalid: { invalid.append($0) }) == [3, 1, 2])
    #expect(VersionNegotiation.parseHostVersions("1, 2,x,,4", reportInvalid: { invalid.append($0) }) == [1, 4])
    #expect(invalid == [" 2", "x", ""])
    #expect(VersionNegotiation.parseHostVersions(nil, reportInvalid: { invalid.append($0) }) == [])
    #expect(VersionNegotiation.parseHostVersions("", reportInvalid: { invalid.append($0) }) == [])
    #expect(invalid == [" 2", "x", ""])
  }
}

@Suite("Unpadded base64")
struct Base64Tests {
  @Test("round-trips every length", arguments: 0..<10)
  func roundTrip(length: Int) {
    let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 * 37 + 11) }
    let text = Base64.encodeUnpadded(bytes)
    #expect(!text.contains("="))
    #expect(Base64.decodeUnpadded(text) == bytes)
  }

  @Test("matches Go's RawStdEncoding")
  func knownValues() {
    #expect(Base64.encodeUnpadded(Array("hello".utf8)) == "aGVsbG8")
    #expect(Base64.encodeUnpadded([0xfb, 0xff]) == "+/8")
    #expect(Base64.decodeUnpadded("aGVsbG8") == Array("hello".utf8))
  }

  @Test("rejects padding and foreign characters", arguments: ["aGVsbG8=", "aGVs_G8", "a"])
  func rejects(_ text: String) {
    #expect(Base64.decodeUnpadded(text) == nil)
  }
}
