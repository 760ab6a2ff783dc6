#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Where a running plugin can be found again: go-plugin's `ReattachConfig`, in the JSON that
/// Terraform users know from `TF_REATTACH_PROVIDERS`:
///
/// ```json
/// {"Protocol":"grpc","ProtocolVersion":1,"Pid":1234,"Test":true,"Addr":{"Network":"unix","String":"/tmp/plugin1"}}
/// ```
///
/// A running ``PluginClient`` gives it out (``PluginClient/reattachConfiguration``), a plugin in
/// debug mode prints it (``PluginServer/serveDebug(_:announce:)``), and a client configured with
/// it (``PluginClientConfiguration/init(reattachingTo:handshake:plugins:)``) connects to that
/// plugin instead of launching one.
///
/// Decoding accepts what a Go host's `encoding/json` accepts: keys in any case, a missing
/// `ProtocolVersion` or `Test`, and besides Terraform's `{"Network","String"}` address the
/// shapes `json.Marshal` gives a `*net.UnixAddr` (`{"Name","Net"}`) and a `*net.TCPAddr`
/// (`{"IP","Port","Zone"}`), which is what go-plugin 1.0.1's own `ReattachConfig`
/// (`Protocol`, `Addr`, `Pid` only) turns into.
public struct PluginReattachConfiguration: Codable, Sendable, Hashable, CustomStringConvertible {
  /// The protocol the plugin serves. A missing or empty one means `netrpc`, as go-plugin reads
  /// it; this library attaches to gRPC plugins only.
  public var `protocol`: PluginProtocol
  /// The application protocol version the plugin serves, which picks the plugin set a host
  /// dispenses from. go-plugin 1.0.1 does not record it; `nil` then, and the host uses its
  /// handshake's version.
  public var protocolVersion: Int?
  /// The plugin's process ID.
  public var pid: Int32
  /// go-plugin's test-mode flag: the plugin was started by hand or by a test rather than by a
  /// host, and a host such as Terraform leaves it running when it is done. This library's
  /// clients carry it and do what they are asked (``PluginClient/detach()`` or
  /// ``PluginClient/kill()``) either way.
  public var test: Bool
  /// The network of ``address``: `unix` or `tcp`.
  public var network: HandshakeLine.Network
  /// The socket path, or `host:port`.
  public var address: String

  /// A configuration for the plugin process `pid` listening at `address`.
  public init(
    protocol: PluginProtocol = .grpc,
    protocolVersion: Int?,
    pid: Int32,
    test: Bool = false,
    network: HandshakeLine.Network,
    address: String
  ) {
    self.protocol = `protocol`
    self.protocolVersion = protocolVersion
    self.pid = pid
    self.test = test
    self.network = network
    self.address = address
  }

  /// Reads the JSON form.
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/invalidConfiguration`` saying what is
  ///   wrong with it.
  public init(json: String) throws(PluginError) {
    do {
      self = try JSONDecoder().decode(Self.self, from: Data(json.utf8))
    } catch {
      throw PluginError(
        code: .invalidConfiguration, message: "invalid reattach configuration: \(Self.explain(error))", cause: error)
    }
  }

  /// The JSON form, on one line, with the keys in the order Go writes Terraform's struct (a
  /// `JSONEncoder` keeps no order).
  public var json: String {
    let fields = [
      "\"Protocol\":\(Self.quoted(self.protocol.rawValue))",
      "\"ProtocolVersion\":\(self.protocolVersion ?? 0)",
      "\"Pid\":\(self.pid)",
      "\"Test\":\(self.test)",
      "\"Addr\":{\"Network\":\(Self.quoted(self.network.rawValue)),\"String\":\(Self.quoted(self.address))}",
    ]
    return "{" + fields.joined(separator: ",") + "}"
  }

  /// A JSON string literal.
  private static func quoted(_ text: String) -> String {
    var result = "\""
    for scalar in text.unicodeScalars {
      switch scalar {
      case "\"": result += "\\\""
      case "\\": result += "\\\\"
      case "\n": result += "\\n"
      case "\r": result += "\\r"
      case "\t": result += "\\t"
      case _ where scalar.value < 0x20:
        let hex = String(scalar.value, radix: 16)
        result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
      default: result.unicodeScalars.append(scalar)
      }
    }
    return result + "\""
  }

  public var description: String { self.json }

  /// The environment variable a plugin in debug mode tells a person to set, and that this
  /// library's example hosts read a reattach configuration from.
  public static let environmentKey = "PLUGIN_REATTACH"

  // MARK: - Codable

  private enum Key: String, CodingKey, CaseIterable {
    case `protocol` = "Protocol"
    case protocolVersion = "ProtocolVersion"
    case pid = "Pid"
    case test = "Test"
    case addr = "Addr"
  }

  private enum AddressKey: String, CodingKey, CaseIterable {
    case network = "Network"
    case string = "String"
  }

  /// Any key, so that decoding can match keys without regard to case, as Go does.
  private struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: Key.self)
    try container.encode(self.protocol.rawValue, forKey: .protocol)
    try container.encode(self.protocolVersion ?? 0, forKey: .protocolVersion)
    try container.encode(self.pid, forKey: .pid)
    try container.encode(self.test, forKey: .test)
    var address = container.nestedContainer(keyedBy: AddressKey.self, forKey: .addr)
    try address.encode(self.network.rawValue, forKey: .network)
    try address.encode(self.address, forKey: .string)
  }

  public init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: AnyKey.self)
    func key(_ name: String, in container: KeyedDecodingContainer<AnyKey>) -> AnyKey? {
      // Go prefers an exact match, then any match that ignores case.
      container.allKeys.first { $0.stringValue == name }
        ?? container.allKeys.first { $0.stringValue.lowercased() == name.lowercased() }
    }
    let protocolName = try key("Protocol", in: container).map { try container.decode(String.self, forKey: $0) } ?? ""
    self.protocol = protocolName.isEmpty ? .netRPC : PluginProtocol(rawValue: protocolName)
    let version = try key("ProtocolVersion", in: container).map { try container.decode(Int.self, forKey: $0) }
    // Go's zero value: a writer that knew no version wrote 0.
    self.protocolVersion = version == 0 ? nil : version
    guard let pidKey = key("Pid", in: container) else {
      throw DecodingError.keyNotFound(
        AnyKey(stringValue: "Pid"), .init(codingPath: decoder.codingPath, debugDescription: "no Pid"))
    }
    self.pid = try container.decode(Int32.self, forKey: pidKey)
    self.test = try key("Test", in: container).map { try container.decode(Bool.self, forKey: $0) } ?? false
    guard let addrKey = key("Addr", in: container) else {
      throw DecodingError.keyNotFound(
        AnyKey(stringValue: "Addr"), .init(codingPath: decoder.codingPath, debugDescription: "no Addr"))
    }
    let address = try container.nestedContainer(keyedBy: AnyKey.self, forKey: addrKey)
    func string(_ name: String) throws -> String? {
      try key(name, in: address).map { try address.decode(String.self, forKey: $0) }
    }
    if let network = try string("Network"), let path = try string("String") {
      // Terraform's ReattachConfigAddr.
      (self.network, self.address) = (HandshakeLine.Network(rawValue: network), path)
    } else if let name = try string("Name") {
      // json.Marshal of a *net.UnixAddr.
      (self.network, self.address) = (HandshakeLine.Network(rawValue: try string("Net") ?? "unix"), name)
    } else if let ip = try string("IP"), let portKey = key("Port", in: address) {
      // json.Marshal of a *net.TCPAddr.
      let port = try address.decode(Int.self, forKey: portKey)
      let host = ip.contains(":") ? "[\(ip)]" : ip
      (self.network, self.address) = (.tcp, "\(host):\(port)")
    } else {
      throw DecodingError.dataCorrupted(
        .init(
          codingPath: decoder.codingPath + [addrKey],
          debugDescription: "Addr needs Network and String (or a Go net.UnixAddr or net.TCPAddr)"))
    }
  }

  private static func explain(_ error: any Error) -> String {
    switch error as? DecodingError {
    case .keyNotFound(let key, _)?: return "no \(key.stringValue)"
    case .typeMismatch(_, let context)?, .valueNotFound(_, let context)?:
      let path = context.codingPath.map(\.stringValue).joined(separator: ".")
      return "\(path): \(context.debugDescription)"
    case .dataCorrupted(let context)?:
      let path = context.codingPath.map(\.stringValue).joined(separator: ".")
      return path.isEmpty ? context.debugDescription : "\(path): \(context.debugDescription)"
    default: return "\(error)"
    }
  }
}
