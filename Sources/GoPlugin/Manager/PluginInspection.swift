/// Everything one launch of a plugin showed, with timings: what ``PluginDescriber/inspect(_:)``
/// returns, for tools that report on one plugin in detail (`goplugin inspect`). A
/// ``PluginDescription`` is the part of it worth keeping.
public struct PluginInspection: Sendable, Hashable {
  /// What the handshake said.
  public var plugin: PluginInfo
  /// go-plugin's core protocol version in the handshake.
  public var coreProtocolVersion: Int
  /// The application protocol versions the host offered.
  public var offeredVersions: [Int]
  /// The health check of `plugin` (gRPC), or `Control.Ping` (net/rpc).
  public var health: PluginDescription.Health
  /// The services reflection lists, else what the health service knows; for net/rpc, its
  /// control services.
  public var services: [String]
  /// Whether ``services`` came from gRPC server reflection.
  public var reflection: Bool
  /// Why reflection gave nothing, when the reason is not simply that it is not served.
  public var reflectionError: String?
  /// The info service's answer; `nil` when the plugin does not serve it (it is not a Swift
  /// plugin, or it speaks net/rpc).
  public var info: PluginDescription.Info?
  /// From launch until the handshake was read and the connection set up.
  public var startDuration: Duration
  /// How long stopping took: Shutdown, the plugin's exit, and the reap.
  public var shutdownDuration: Duration
  /// How the plugin ended once stopped.
  public var exit: PluginExit
}
