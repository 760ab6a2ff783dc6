public import Logging
public import NIOSSL

/// How a plugin process serves its plugins.
public struct PluginServeConfiguration: Sendable {
  /// Where the plugin listens.
  public enum Listener: Sendable, Hashable {
    /// A unix socket, as go-plugin's plugins use everywhere but Windows: in `directory` if
    /// given, else in `PLUGIN_UNIX_SOCKET_DIR`, `TMPDIR` or `/tmp`.
    case unixSocket(directory: String? = nil)
    /// TCP on 127.0.0.1, on the first free port from `PLUGIN_MIN_PORT` to `PLUGIN_MAX_PORT`.
    case tcp
  }

  /// Where a plugin's service handlers run.
  public enum HandlerExecution: Sendable, Hashable {
    /// On the event loop of the connection the call came in on, which reads the request and
    /// writes the response: a call switches no thread inside the plugin. A handler that blocks
    /// its thread (synchronous I/O, a lock held long, heavy computation) holds up every other
    /// call on the connection meanwhile.
    case onConnection
    /// On Swift's global executor: each call switches to it and back, tens of microseconds on
    /// a small machine, and a handler that blocks holds up only itself.
    case globalExecutor
  }

  /// The protocol version and magic cookie hosts launch this plugin with.
  public var handshake: HandshakeConfiguration
  /// The plugins to serve, by application protocol version.
  public var versionedPlugins: [Int: PluginSet]
  /// Where to listen; a unix socket by default, as go-plugin plugins do everywhere but Windows.
  public var listener: Listener = .unixSocket()
  /// The largest message the plugin accepts. go-plugin's plugins stop at 4 MiB; hosts send up
  /// to 2 GiB, and so the default here takes what a host may send.
  public var maxReceiveMessageSize: Int = Transports.defaultMaxMessageSize
  /// How long in-flight calls may take to finish once the host asked the plugin to shut down.
  /// The host waits two seconds in all before it kills the plugin.
  public var shutdownGracePeriod: Duration = .milliseconds(1500)
  /// Your own server-side TLS (go-plugin's `TLSProvider`), for a host given a matching client
  /// configuration. It takes precedence over AutoMTLS; without either, a host that sends
  /// `PLUGIN_CLIENT_CERT` gets AutoMTLS, and any other host plaintext over the private socket.
  public var tls: TLSConfiguration?
  /// Where the handlers of the plugin's services run; on the connection's event loop by
  /// default, which suits handlers that await rather than block.
  public var handlerExecution: HandlerExecution = .onConnection
  /// Whether the server calls the unary methods of services that conform to
  /// ``PluginDirectService`` itself, without grpc-swift's server executor. On by default; turn
  /// it off to answer every call through `GRPCServer`, to compare the two or to rule one out.
  public var directMethods = true
  /// The plugin's logger; by default hclog JSON on the real stderr, which every host parses.
  public var logger: Logger
  /// Whether what the process writes to stdout and stderr after the handshake is captured and
  /// forwarded to the host over `GRPCStdio`, as go-plugin's plugins do. The default logger
  /// keeps writing to the real stderr either way. Applies to ``PluginServer/serve(_:)`` only:
  /// an in-process ``PluginServer/run(_:environment:onListening:)`` leaves the streams alone.
  public var forwardStandardStreams = true
  /// The serving status the health service reports; keep a reference to change it while the
  /// plugin runs (see ``PluginHealth``).
  public var health = PluginHealth()
  /// What the plugin says about itself through the info service (`goplugin.info.v1.PluginInfo`),
  /// which hosts and `goplugin list` read to describe it without knowing its interface. The
  /// plugins and versions it offers are added from ``versionedPlugins``; net/rpc plugins do not
  /// serve it.
  public var info = Info()

  /// Serves `plugins` at the handshake's protocol version.
  public init(handshake: HandshakeConfiguration, plugins: PluginSet, logger: Logger? = nil) {
    self.init(handshake: handshake, versionedPlugins: [handshake.protocolVersion: plugins], logger: logger)
  }

  /// Serves a set of plugins per application protocol version; the host and plugin settle on
  /// the highest version both know.
  public init(handshake: HandshakeConfiguration, versionedPlugins: [Int: PluginSet], logger: Logger? = nil) {
    self.handshake = handshake
    self.versionedPlugins = versionedPlugins
    self.logger = logger ?? Logger(label: "plugin") { HCLogHandler(label: $0) }
  }
}
