/// What the host learned from a plugin's handshake.
public struct PluginInfo: Sendable, Hashable {
  /// The plugin's process ID.
  public var pid: Int32
  /// The application protocol version both sides agreed on.
  public var negotiatedVersion: Int
  /// The protocol the plugin serves: gRPC, or net/rpc when the host allows it.
  public var `protocol`: PluginProtocol
  /// The network of ``address``.
  public var network: HandshakeLine.Network
  /// Where the plugin listens: a socket path or `host:port`.
  public var address: String
  /// The certificate (DER) the plugin announced for AutoMTLS, if it sent one.
  public var serverCertificate: [UInt8]?
  /// Whether every connection to the plugin is a yamux stream of one connection
  /// (``PluginClientConfiguration/multiplexBroker``, accepted by the plugin).
  public var multiplexed = false
}
