/// The one line a plugin prints on stdout to tell its host where and how to connect
/// (spec §1.2): `CORE|APP|NETWORK|ADDRESS|PROTOCOL|CERT[|MUX]`.
public struct HandshakeLine: Sendable, Hashable {
  /// The network of ``address``.
  public struct Network: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public static let unix = Network(rawValue: "unix")
    public static let tcp = Network(rawValue: "tcp")
    public var description: String { self.rawValue }
  }

  /// The core protocol version; always 1.
  public var coreVersion: Int
  /// The negotiated application protocol version.
  public var appVersion: Int
  /// Where the plugin listens: `unix` or `tcp`.
  public var network: Network
  /// A socket path for `unix`, `host:port` for `tcp`.
  public var address: String
  /// The protocol the plugin serves; `netrpc` when the line has only four fields.
  public var `protocol`: PluginProtocol
  /// The plugin's AutoMTLS certificate (DER), when it sent one.
  public var serverCertificate: [UInt8]?
  /// The seventh field: whether the plugin multiplexes broker connections; `nil` when absent.
  public var multiplexingSupported: Bool?

  /// A handshake line from its fields.
  public init(
    coreVersion: Int = 1,
    appVersion: Int,
    network: Network,
    address: String,
    protocol: PluginProtocol = .grpc,
    serverCertificate: [UInt8]? = nil,
    multiplexingSupported: Bool? = nil
  ) {
    self.coreVersion = coreVersion
    self.appVersion = appVersion
    self.network = network
    self.address = address
    self.protocol = `protocol`
    self.serverCertificate = serverCertificate
    self.multiplexingSupported = multiplexingSupported
  }

  /// The line as a Go plugin prints it, without the newline: always six fields (so an empty
  /// certificate leaves a trailing `|`), and the seventh only when it is set, because hosts
  /// older than go-plugin 1.6 split into at most six fields and would glue it onto the cert.
  public var encoded: String {
    var fields = [
      String(self.coreVersion), String(self.appVersion), self.network.rawValue, self.address,
      self.protocol.rawValue, self.serverCertificate.map { Base64.encodeUnpadded($0) } ?? "",
    ]
    if let multiplexingSupported = self.multiplexingSupported {
      fields.append(multiplexingSupported ? "true" : "false")
    }
    return fields.joined(separator: "|")
  }
}

extension HandshakeLine {
  /// What a host expects of a handshake, to validate it against.
  public struct Expectations: Sendable, Hashable {
    /// The application versions the host offered.
    public var versions: [Int]
    /// The protocols the host speaks.
    public var allowedProtocols: Set<PluginProtocol>
    /// Whether the host asked for a multiplexed broker (`PLUGIN_MULTIPLEX_GRPC`).
    public var multiplexingRequested: Bool

    /// Expectations of a gRPC host that offered `versions`.
    public init(versions: [Int], allowedProtocols: Set<PluginProtocol> = [.grpc], multiplexingRequested: Bool = false) {
      self.versions = versions
      self.allowedProtocols = allowedProtocols
      self.multiplexingRequested = multiplexingRequested
    }
  }

  /// Parses and validates a handshake line in go-plugin's order, so that a plugin that fails
  /// gets the same diagnosis, in the same words, from a Swift host as from a Go one.
  ///
  /// ``PluginClient`` does this with the first line a plugin prints. It is public for hosts that
  /// start plugins their own way, and for tools that check a plugin's output.
  ///
  /// - Parameters:
  ///   - line: the first line, with or without its line ending, or `nil` when standard output
  ///     ended before a line arrived.
  ///   - expected: what the host offered.
  /// - Throws: ``PluginError`` with the code of the first check that failed: a malformed line,
  ///   an incompatible core or application version, an unknown address type, an unsupported
  ///   protocol, a certificate that is not base64, or a refused multiplexing request.
  public static func parse(_ line: String?, expecting expected: Expectations) throws(PluginError) -> HandshakeLine {
    let trimmed = (line ?? "").trimmingGoSpace()
    // Split on bytes: a Character split walks grapheme clusters, ten times slower over the
    // certificate's 800 characters.
    let fields = trimmed.utf8.split(separator: UInt8(ascii: "|"), omittingEmptySubsequences: false).map {
      String(decoding: $0, as: UTF8.self)
    }

    guard fields.count >= 4 else {
      var message = "Unrecognized remote plugin message: \(trimmed)"
      if line == nil {
        message += "\nFailed to read any lines from plugin's stdout"
        try Self.fail(.exitedBeforeHandshake, message + "\n" + Self.diagnosis)
      }
      throw PluginError(code: .malformedHandshake, message: message + "\n" + Self.diagnosis)
    }

    guard let core = Int(fields[0]) else {
      try Self.fail(.malformedHandshake, "error parsing core protocol version: \(Self.atoiError(fields[0]))")
    }
    guard core == PluginEnvironment.coreProtocolVersion else {
      try Self.fail(
        .incompatibleCoreVersion,
        """
        incompatible core API version with plugin. Plugin version: \(fields[0]), Core version: 1

        To fix this, the plugin usually only needs to be recompiled.
        Please report this to the plugin author
        """
      )
    }

    guard let app = Int(fields[1]) else {
      try Self.fail(
        .malformedHandshake, "Error parsing protocol version \"\(fields[1])\": \(Self.atoiError(fields[1]))")
    }
    guard expected.versions.contains(app) else {
      let offered = expected.versions.sorted().map(String.init).joined(separator: " ")
      try Self.fail(
        .incompatibleAppVersion,
        "incompatible API version with plugin. Plugin version: \(app), Client versions: [\(offered)]"
      )
    }

    let network = Network(rawValue: fields[2])
    let address = fields[3]
    guard network == .unix || network == .tcp else {
      try Self.fail(.unknownAddressType, "unknown address type: \(address)")
    }
    // The system would read such a path only as far as the NUL: another file than the one named.
    guard !address.utf8.contains(0) else {
      let shown = address.split(separator: "\0", omittingEmptySubsequences: false).joined(separator: "\\0")
      try Self.fail(.malformedHandshake, "invalid plugin address \"\(shown)\": it contains a NUL byte")
    }

    let proto = PluginProtocol(rawValue: fields.count >= 5 ? fields[4] : PluginProtocol.netRPC.rawValue)
    guard expected.allowedProtocols.contains(proto) else {
      let supported = expected.allowedProtocols.map(\.rawValue).sorted(by: >).joined(separator: " ")
      try Self.fail(
        .unsupportedProtocol, "unsupported plugin protocol \"\(proto.rawValue)\". Supported: [\(supported)]")
    }

    // go-plugin ignores short values here: before AutoMTLS this field held a base64 JSON blob
    // of 48 characters.
    var certificate: [UInt8]?
    if fields.count >= 6, fields[5].utf8.count > 50 {
      guard let der = Base64.decodeUnpadded(fields[5]) else {
        try Self.fail(.invalidServerCertificate, "error parsing server cert: illegal base64 data")
      }
      certificate = der
    }

    var multiplexing: Bool?
    if fields.count >= 7 {
      multiplexing = Self.parseGoBool(fields[6])
    }
    if expected.multiplexingRequested && proto == .grpc {
      guard fields.count >= 7 else {
        try Self.fail(
          .multiplexingNotSupported,
          "client requested gRPC broker multiplexing but plugin does not support the feature; for Go plugins, you will need to update the github.com/hashicorp/go-plugin dependency and recompile"
        )
      }
      guard let supported = multiplexing else {
        try Self.fail(
          .malformedHandshake, "error parsing \"\(fields[6])\" as a boolean for gRPC broker multiplexing support")
      }
      guard supported else {
        try Self.fail(
          .multiplexingNotSupported, "client requested gRPC broker multiplexing but plugin does not support the feature"
        )
      }
    }

    return HandshakeLine(
      coreVersion: core,
      appVersion: app,
      network: network,
      address: address,
      protocol: proto,
      serverCertificate: certificate,
      multiplexingSupported: multiplexing
    )
  }

  private static func fail(_ code: PluginError.Code, _ message: String) throws(PluginError) -> Never {
    throw PluginError(code: code, message: message)
  }

  private static func atoiError(_ text: String) -> String {
    "strconv.Atoi: parsing \"\(text)\": invalid syntax"
  }

  /// The values Go's `strconv.ParseBool` accepts; anything else is not a boolean.
  static func parseGoBool(_ text: String) -> Bool? {
    switch text {
    case "1", "t", "T", "TRUE", "true", "True": return true
    case "0", "f", "F", "FALSE", "false", "False": return false
    default: return nil
    }
  }

  /// go-plugin's hint for a plugin that printed nothing usable; people search for this text.
  static let diagnosis = """
    This usually means
      the plugin was not compiled for this architecture,
      the plugin is missing dynamic-link libraries necessary to run,
      the plugin is not executable by this process due to file permissions, or
      the plugin failed to negotiate the initial go-plugin protocol handshake
    """
}

extension String {
  /// Go's `strings.TrimSpace`: Unicode white space off both ends.
  func trimmingGoSpace() -> String {
    let scalars = self.unicodeScalars
    guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
    let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })!
    return String(Substring(scalars[first...last]))
  }
}
