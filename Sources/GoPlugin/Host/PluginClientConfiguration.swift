/// Everything a host needs to launch one plugin and talk to it.
public struct PluginClientConfiguration: Sendable {
  /// What stdin the plugin gets.
  public enum StandardInput: Sendable, Hashable {
    /// The host's own standard input, as go-plugin passes it (a plugin may prompt on a TTY).
    case inherit
    /// Nothing: the plugin reads end-of-file.
    case none
  }

  /// The program to launch.
  public var command: PluginCommand
  /// The protocol version and magic cookie the plugin expects.
  public var handshake: HandshakeConfiguration
  /// The plugins the host knows, by application protocol version; all versions are offered.
  public var versionedPlugins: [Int: PluginSet]
  /// The protocols the host accepts, as go-plugin's `AllowedProtocols`: gRPC by default, so a
  /// `netrpc` plugin is refused with go-plugin's "unsupported plugin protocol" unless
  /// ``PluginProtocol/netRPC`` is added.
  public var allowedProtocols: Set<PluginProtocol> = [.grpc]
  /// How long the plugin may take, from launch, to print its handshake.
  public var startTimeout: Duration = .seconds(60)
  /// How long the plugin may take to answer the host's Shutdown request, and then to exit,
  /// before it is killed with SIGKILL. A plugin that does not answer in time is killed at once.
  public var gracefulStopTimeout: Duration = .seconds(2)
  /// The longest stderr line, in bytes, that becomes one log record (go-plugin's
  /// `PluginLogBufferSize`, whose default is 64 KiB). A longer line is logged in pieces of at
  /// most this size, each at debug level with the metadata `partial: true` and not parsed as
  /// hclog JSON, so that a plugin writing an endless line costs the host this much memory and
  /// no more.
  public var logLineLimit: Int = 1024 * 1024
  /// Which of the host's environment variables the plugin inherits.
  public enum InheritedEnvironment: Sendable, Hashable {
    /// All of them (go-plugin's default).
    case all
    /// None (go-plugin's `SkipHostEnv`): the plugin sees only the command's variables and
    /// go-plugin's own.
    case none
    /// Only these, if the host has them.
    case only(Set<String>)
  }

  /// Which of the host's variables the plugin inherits. The host's own `PLUGIN_*` variables are
  /// never passed on, so a host that is itself a plugin does not leak its handshake.
  public var inheritedEnvironment: InheritedEnvironment = .all
  /// The digest the executable must have; it is not run otherwise.
  public var checksum: PluginChecksum?
  /// The lock file and signatures the executable must pass (``PluginTrust``); it is checked
  /// through the descriptor that is then executed, and not run if refused (the error is
  /// ``PluginError/Code/untrustedPlugin``). Combines with ``checksum``: both must pass.
  public var trust: PluginTrust?
  /// The plugin's name in ``trust``'s lock file; the executable's file name when `nil`.
  public var trustedName: String?
  /// The ports a plugin that listens on TCP may use (`PLUGIN_MIN_PORT`, `PLUGIN_MAX_PORT`).
  public var portRange: ClosedRange<Int> = 10000...25000
  /// The largest message the host sends or accepts on the plugin's connection.
  public var maxMessageSize: Int = Transports.defaultMaxMessageSize
  /// What the plugin reads on stdin.
  public var standardInput: StandardInput = .inherit
  /// How the connection to the plugin is secured. When `nil` it is plaintext, protected only by
  /// the socket's permissions (and, for a plugin listening on TCP, by nothing).
  public var tls: PluginTLS?
  /// A group (name or gid) whose members may also reach the plugin's socket, for a plugin that
  /// runs as another user: the socket directory becomes 0770 and the socket 0660, both owned
  /// by that group, and the plugin learns it from `PLUGIN_UNIX_SOCKET_GROUP`.
  public var unixSocketGroup: String?
  /// Whether brokered connections ride the plugin's one connection as yamux streams
  /// (go-plugin's `GRPCBrokerMultiplex`). The plugin must announce support in its handshake,
  /// or starting fails with ``PluginError/Code/multiplexingNotSupported``; go-plugin plugins
  /// support it from 1.6.0. Set up multiplexed brokered connections one after another: each
  /// side routes "the next stream" to the ID that knocked last.
  public var multiplexBroker = false
  /// Where the plugin's stdout goes, as forwarded over `GRPCStdio` (go-plugin's `SyncStdout`).
  /// What a plugin writes to its real stdout after the handshake is drained and dropped.
  public var syncStdout: PluginOutput = .discard
  /// Where the plugin's stderr goes, as forwarded over `GRPCStdio` (go-plugin's `SyncStderr`).
  /// A Go plugin's real stderr is its log, which becomes log records instead.
  public var syncStderr: PluginOutput = .discard

  /// A running plugin to attach to instead of launching ``command``, which is then not used:
  /// the client connects to its address (no launch, no handshake line, no version
  /// negotiation), dispenses from ``versionedPlugins`` at the configuration's protocol version
  /// (the handshake's when it has none), watches the process through a pidfd, and in the end
  /// either stops it (``PluginClient/kill()``) or leaves it running (``PluginClient/detach()``).
  ///
  /// AutoMTLS, checksums and broker multiplexing cannot be combined with it.
  public var reattach: PluginReattachConfiguration?
  /// Whether a launched plugin may outlive this host: it is launched apart from the host's
  /// lifetime (no parent-death signal, a process group of its own), so that
  /// ``PluginClient/detach()`` can leave it running for another host to reattach to (a host
  /// upgrade). Such a plugin is no longer stopped when the host dies.
  public var keepsPluginRunning = false

  /// A host that attaches to the running plugin `reattach` describes instead of launching one.
  public init(
    reattachingTo reattach: PluginReattachConfiguration, handshake: HandshakeConfiguration, plugins: PluginSet
  ) {
    self.init(reattachingTo: reattach, handshake: handshake, versionedPlugins: [handshake.protocolVersion: plugins])
  }

  /// A host that attaches to a running plugin, with plugin sets per application protocol
  /// version; the reattach configuration's version picks one.
  public init(
    reattachingTo reattach: PluginReattachConfiguration,
    handshake: HandshakeConfiguration,
    versionedPlugins: [Int: PluginSet]
  ) {
    self.init(command: PluginCommand(""), handshake: handshake, versionedPlugins: versionedPlugins)
    self.reattach = reattach
  }

  /// A host for plugins of one protocol version, the handshake's.
  public init(command: PluginCommand, handshake: HandshakeConfiguration, plugins: PluginSet) {
    self.init(command: command, handshake: handshake, versionedPlugins: [handshake.protocolVersion: plugins])
  }

  /// A host that offers several application protocol versions, each with its own plugins.
  public init(command: PluginCommand, handshake: HandshakeConfiguration, versionedPlugins: [Int: PluginSet]) {
    self.command = command
    self.handshake = handshake
    self.versionedPlugins = versionedPlugins
  }

  func validate() throws(PluginError) {
    func invalid(_ message: String) -> PluginError { PluginError(code: .invalidConfiguration, message: message) }
    if let reattach = self.reattach {
      try self.validateReattach(reattach)
    } else if self.command.executable.isEmpty {
      throw invalid("the plugin command has no executable")
    }
    if self.keepsPluginRunning && self.multiplexBroker {
      throw invalid("a plugin kept running for another host cannot multiplex: its one connection would be used up")
    }
    // A reattach has no launch, so no cookie to hand over.
    if self.reattach == nil && (self.handshake.magicCookieKey.isEmpty || self.handshake.magicCookieValue.isEmpty) {
      throw invalid("the handshake needs a magic cookie key and value")
    }
    if self.versionedPlugins.isEmpty { throw invalid("no plugin versions to offer") }
    let unknown = self.allowedProtocols.subtracting([.grpc, .netRPC])
    if self.allowedProtocols.isEmpty || !unknown.isEmpty {
      throw invalid(
        "allowed protocols must be grpc, netrpc or both: this library does not speak \(unknown.map(\.rawValue).sorted())"
      )
    }
    if self.multiplexBroker && !self.allowedProtocols.contains(.grpc) {
      throw invalid("multiplexing the broker is a gRPC option; a net/rpc session is always one yamux connection")
    }
    if self.logLineLimit < 4 { throw invalid("the log line limit must be at least 4 bytes") }
    if self.startTimeout <= .zero { throw invalid("the start timeout must be positive") }
    if !(0...65535).contains(self.portRange.lowerBound) || !(0...65535).contains(self.portRange.upperBound) {
      throw invalid("the port range must lie within 0...65535")
    }
  }
}
