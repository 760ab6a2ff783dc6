/// SplitMix64 (Steele, Lea and Flood, 2014): a tiny generator whose whole state is one seed, so
/// that any case of a run can be made again from the run's seed and the case's index.
struct SplitMix64: RandomNumberGenerator {
  var state: UInt64

  mutating func next() -> UInt64 {
    self.state &+= 0x9E37_79B9_7F4A_7C15
    var z = self.state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  mutating func chance(_ probability: Double) -> Bool {
    Double(self.next() >> 11) / Double(1 << 53) < probability
  }

  mutating func pick<Element>(_ elements: [Element]) -> Element {
    elements[Int(self.next() % UInt64(elements.count))]
  }
}

/// One plugin the fuzz harness launches: the first line it prints, the listener behind it, what
/// that listener does, and how the host is configured.
///
/// A line may hold placeholders that are filled in late, because their values exist only once
/// the case runs: `{ADDR}` and `{DIR}` (the plugin's listener and socket directory, filled in by
/// `fuzz-plugin`), `{DECOY0}`/`{DECOY1}` (sockets the harness watches) and `{CERT_…}` (the run's
/// certificates, base64 as a plugin prints them), filled in by the harness.
struct FuzzCase: Sendable, CustomStringConvertible {
  enum Listener: String, Sendable { case none, unix, tcp }

  /// What the plugin's listener does with a connection; `fuzz-plugin`'s modes.
  enum Behaviour: String, Sendable, CaseIterable {
    case close, garbage
    case garbageClose = "garbage-close"
    case http1, silent, settings, tls
    case tlsSettings = "tls-settings"
    case noAccept = "no-accept"
  }

  /// What the plugin does once its line is out.
  enum After: String, Sendable {
    case stay, exit
    case closeStdout = "close-stdout"
  }

  /// Which of the run's certificates a TLS listener presents.
  enum ServedCertificate: String, Sendable { case pinned, other, leaf }

  var index: Int
  /// What kind of line this is, for the report: "random bytes", "structured: address", ….
  var family: String
  /// The bytes the plugin prints; `nil`: it prints nothing.
  var line: [UInt8]?
  var listener: Listener
  var behaviour: Behaviour
  var after: After
  var served: ServedCertificate
  var autoMTLS: Bool
  var multiplex: Bool
  /// The host allows net/rpc too, and a structured line usually names it: what is then under
  /// test is the net/rpc session's start (yamux, the control stream, Control.Ping).
  var netRPC: Bool
  /// Seeds the garbage the plugin sends.
  var garbageSeed: UInt64

  var description: String {
    let host = [self.autoMTLS ? "automtls" : "plain", self.multiplex ? "mux" : nil, self.netRPC ? "netrpc" : nil]
      .compactMap { $0 }.joined(
        separator: "+")
    var text =
      "#\(self.index) [\(self.family)] host=\(host) listen=\(self.listener.rawValue) serve=\(self.behaviour.rawValue)"
    if self.behaviour == .tls || self.behaviour == .tlsSettings { text += "(\(self.served.rawValue))" }
    text += " after=\(self.after.rawValue) line="
    guard let line = self.line else { return text + "<none>" }
    return text + Self.escaped(line, limit: 160)
  }

  /// The bytes as a Swift string literal would spell them, cut at `limit`.
  static func escaped(_ bytes: [UInt8], limit: Int) -> String {
    var text = "\""
    for byte in bytes.prefix(limit) {
      switch byte {
      case UInt8(ascii: "\n"): text += "\\n"
      case UInt8(ascii: "\r"): text += "\\r"
      case UInt8(ascii: "\""): text += "\\\""
      case UInt8(ascii: "\\"): text += "\\\\"
      case 0x20..<0x7F: text.unicodeScalars.append(Unicode.Scalar(byte))
      default: text += "\\x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
      }
    }
    text += "\""
    if bytes.count > limit { text += "…(\(bytes.count) bytes)" }
    return text
  }
}

extension FuzzCase {
  /// Case `index` of the run seeded with `seed`; the same pair always makes the same case.
  static func make(index: Int, seed: UInt64) -> FuzzCase {
    var random = SplitMix64(state: seed ^ (UInt64(index) &* 0xD1B5_4A32_D192_ED03))
    _ = random.next()
    var fuzzCase = FuzzCase(
      index: index,
      family: "",
      line: nil,
      listener: random.pick([.unix, .tcp, .none]),
      behaviour: random.pick(Behaviour.allCases),
      after: random.chance(0.85) ? .stay : random.pick([.exit, .closeStdout]),
      served: random.pick([.pinned, .other, .leaf]),
      autoMTLS: random.chance(0.35),
      multiplex: random.chance(0.2),
      netRPC: random.chance(0.25),
      garbageSeed: random.next()
    )
    let family = random.next() % 100
    switch family {
    case 0..<12: fuzzCase.randomBytes(&random)
    case 12..<24: fuzzCase.randomFields(&random)
    case 24..<32: fuzzCase.special(&random)
    default: fuzzCase.structured(&random)
    }
    return fuzzCase
  }

  /// Any bytes at all, usually ended by a newline.
  mutating func randomBytes(_ random: inout SplitMix64) {
    self.family = "random bytes"
    let count = random.chance(0.05) ? 70_000 : Int(random.next() % 300)
    var bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
    if random.chance(0.7) { bytes.append(UInt8(ascii: "\n")) }
    self.line = bytes
  }

  /// Fields of the right and the wrong kinds, in any number and order.
  mutating func randomFields(_ random: inout SplitMix64) {
    self.family = "random fields"
    let tokens = [
      "1", "2", "0", "-1", "", "unix", "tcp", "grpc", "netrpc", "{ADDR}", "{DIR}", "{DECOY0}", "{DECOY1}", "true",
      "false", "{CERT_PINNED}", "{CERT_GARBAGE}", "127.0.0.1:1", "\u{0}", "|", " ", "\u{FEFF}", "é",
    ]
    let count = Int(random.next() % 10)
    let fields = (0..<count).map { _ in
      random.chance(0.8)
        ? random.pick(tokens)
        : String((0..<(random.next() % 12)).map { _ in Character(Unicode.Scalar(UInt8(32 + random.next() % 95))) })
    }
    self.line = Array((fields.joined(separator: "|") + "\n").utf8)
  }

  /// Lines at the edges: none at all, empty, enormous, unterminated.
  mutating func special(_ random: inout SplitMix64) {
    let kinds: [(String, [UInt8]?)] = [
      ("special: no line", nil),
      ("special: empty line", Array("\n".utf8)),
      ("special: white space", Array(" \t \r\n".utf8)),
      ("special: unterminated valid line", Array("1|1|unix|{ADDR}|grpc|".utf8)),
      ("special: NULs", [UInt8](repeating: 0, count: 64) + [UInt8(ascii: "\n")]),
      ("special: 1 MiB line", [UInt8](repeating: UInt8(ascii: "a"), count: 1 << 20) + [UInt8(ascii: "\n")]),
      ("special: 1 MiB address", Array("1|1|unix|/tmp/\(String(repeating: "a", count: 1 << 20))|grpc|\n".utf8)),
      ("special: invalid UTF-8", [0xFF, 0xFE, 0xC0, 0x80, 0xED, 0xA0, 0x80] + Array("|1|unix|{ADDR}|grpc|\n".utf8)),
    ]
    let (family, line) = random.pick(kinds)
    self.family = family
    self.line = line
  }

  /// A line a real plugin could print, with a few of its fields mutated. With no mutation it is
  /// valid, and the listener's behaviour is what is under test.
  mutating func structured(_ random: inout SplitMix64) {
    let network: Listener = random.chance(0.6) ? .unix : .tcp
    self.listener = network
    if self.autoMTLS && random.chance(0.7) {
      self.behaviour = random.pick([.tls, .tlsSettings])
    } else {
      self.behaviour = random.pick([.close, .garbage, .garbageClose, .http1, .silent, .settings, .noAccept])
    }
    var fields = [
      "1", "1", network.rawValue, "{ADDR}", self.netRPC && random.chance(0.8) ? "netrpc" : "grpc",
      self.autoMTLS ? (self.served == .leaf ? "{CERT_LEAF}" : "{CERT_PINNED}") : "",
    ]
    if self.multiplex || random.chance(0.2) { fields.append("true") }

    let mutations: [[String]] = [
      ["2", "0", "-1", "", " 1", "01", "+1", "1a", "99999999999999999999", "１", "\u{0}1"],
      ["2", "0", "-1", "", "x", "1.0", "4294967297"],
      ["udp", "UNIX", "", "unixgram", "tcp6", "ip", "unix\u{0}", network == .unix ? "tcp" : "unix"],
      [
        "{DECOY0}", "{DECOY1}", "{DECOY0}\u{0}garbage", "{ADDR}\u{0}{DECOY1}", "/nonexistent/dir/x.sock",
        "{DIR}/missing.sock", "{DIR}", "", "127.0.0.1:1", "127.0.0.1:99999", "[::1]:x", "localhost:0", "plugin.sock",
        "/tmp/\(String(repeating: "d", count: 4000))", "{ADDR}{ADDR}", "{DECOY0}/", "{DIR}/../{DECOY0}",
      ],
      ["netrpc", "", "GRPC", "grpc ", "http", "grpc\u{0}"],
      [
        "", "{CERT_PINNED}", "{CERT_OTHER}", "{CERT_LEAF}", "{CERT_GARBAGE}", "{CERT_HALF}", "{CERT_PINNED}==",
        "abc", "{CERT_PINNED}{CERT_PINNED}",
      ],
      ["true", "false", "maybe", "", "1", "TRUE", "true|extra"],
    ]
    let names = ["core", "app", "network", "address", "protocol", "cert", "multiplex"]
    var mutated: [String] = []
    let count = random.pick([0, 0, 1, 1, 1, 2, 3])
    for _ in 0..<count {
      let field = Int(random.next() % UInt64(mutations.count))
      while fields.count <= field { fields.append("") }
      fields[field] = random.pick(mutations[field])
      mutated.append(names[field])
    }
    if random.chance(0.05) { fields += ["extra", "fields"] }
    var text = fields.joined(separator: "|")
    if random.chance(0.05) { text = "  " + text }
    text += random.pick(["\n", "\n", "\n", "\n", "\n", "\n", "\r\n", " \n", "\n\n"])
    self.family = mutated.isEmpty ? "valid line" : "structured: " + mutated.joined(separator: ",")
    self.line = Array(text.utf8)
  }
}
