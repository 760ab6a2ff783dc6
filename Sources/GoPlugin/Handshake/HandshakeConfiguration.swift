/// What a host and its plugins agree on before they talk: the application protocol version and
/// the magic cookie.
///
/// The cookie is not a secret or a security measure. It only lets a plugin executable tell that
/// a host launched it, so that a person who runs it by hand gets an explanation instead of a
/// process that waits for a connection.
public struct HandshakeConfiguration: Sendable, Hashable {
  /// The application protocol version of a plugin set given without versions.
  public var protocolVersion: Int
  /// The name of the environment variable the host sets and the plugin checks.
  public var magicCookieKey: String
  /// The value that variable must have.
  public var magicCookieValue: String

  /// A handshake; host and plugins must be built with the same one.
  public init(protocolVersion: Int, magicCookieKey: String, magicCookieValue: String) {
    self.protocolVersion = protocolVersion
    self.magicCookieKey = magicCookieKey
    self.magicCookieValue = magicCookieValue
  }
}

/// The wire protocol a plugin serves: gRPC, or go-plugin's first protocol, Go's `net/rpc` with
/// gob, which a host accepts only when it allows it.
public struct PluginProtocol: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
  public var rawValue: String
  public init(rawValue: String) { self.rawValue = rawValue }

  public static let grpc = PluginProtocol(rawValue: "grpc")
  public static let netRPC = PluginProtocol(rawValue: "netrpc")

  public var description: String { self.rawValue }
}

/// The names of the environment variables of go-plugin's handshake (spec §1.1).
enum PluginEnvironment {
  static let protocolVersions = "PLUGIN_PROTOCOL_VERSIONS"
  static let minPort = "PLUGIN_MIN_PORT"
  static let maxPort = "PLUGIN_MAX_PORT"
  static let multiplexGRPC = "PLUGIN_MULTIPLEX_GRPC"
  static let clientCertificate = "PLUGIN_CLIENT_CERT"
  static let unixSocketDirectory = "PLUGIN_UNIX_SOCKET_DIR"
  static let unixSocketGroup = "PLUGIN_UNIX_SOCKET_GROUP"

  /// The core protocol version; it has been 1 for as long as go-plugin has existed.
  static let coreProtocolVersion = 1
  /// The health-service name every plugin reports as serving.
  static let healthServiceName = "plugin"
}
