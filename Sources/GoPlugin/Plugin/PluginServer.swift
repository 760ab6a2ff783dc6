import Foundation
import GRPCCore
import GoPluginProtos
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
  /// The plugin's logger; by default hclog JSON on the real stderr, which every host parses.
  public var logger: Logger
  /// Whether what the process writes to stdout and stderr after the handshake is captured and
  /// forwarded to the host over `GRPCStdio`, as go-plugin's plugins do. The default logger
  /// keeps writing to the real stderr either way. Applies to ``PluginServer/serve(_:)`` only:
  /// an in-process ``PluginServer/run(_:environment:onListening:)`` leaves the streams alone.
  public var forwardStandardStreams = true

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

/// The plugin side: serve plugins to the host that launched this process.
public enum PluginServer {
  /// go-plugin's words for a person who runs a plugin by hand.
  static let launchedByHandMessage = """
    This binary is a plugin. These are not meant to be executed directly.
    Please execute the program that consumes these plugins, which will
    load any plugins automatically

    """

  /// The one call a plugin's `main` makes: checks that a host launched the process, negotiates
  /// the version, listens, prints the handshake and serves until the host shuts it down.
  ///
  /// It returns after the host asked the plugin to shut down and the server has stopped, so
  /// that `main` returns and the process exits with status 0. If the process was not launched
  /// by a host, or cannot serve, it says why on standard error and exits with status 1.
  public static func serve(_ configuration: PluginServeConfiguration) async {
    do {
      try await self.run(configuration)
    } catch let error as PluginError where error.code == .magicCookieMismatch || error.code == .invalidConfiguration {
      // Messages for a person at a terminal, as go-plugin prints them: plain text, not a log line.
      POSIX.writeAll(error.message.hasSuffix("\n") ? error.message : error.message + "\n", to: 2)
      exit(1)
    } catch {
      configuration.logger.error("plugin init error", metadata: ["error": "\(error)"])
      exit(1)
    }
  }

  /// Serves like ``serve(_:)`` but reports failures by throwing, and hands the handshake to
  /// `onListening` instead of printing it when given one.
  ///
  /// - Parameters:
  ///   - environment: where the host's handshake variables are read from; this process's
  ///     environment when `nil`.
  ///   - onListening: receives the handshake once the server accepts connections; when `nil`
  ///     it is printed on standard output, which is what a host reads, and SIGINT is ignored
  ///     from then on, as a plugin process must (the host, not the terminal, stops plugins).
  public static func run(
    _ configuration: PluginServeConfiguration,
    environment: [String: String]? = nil,
    onListening: (@Sendable (HandshakeLine) -> Void)? = nil
  ) async throws {
    let environment = environment ?? ProcessInfo.processInfo.environment
    let isPluginProcess = onListening == nil
    let onListening = onListening ?? { line in POSIX.writeAll(line.encoded + "\n", to: 1) }
    let handshake = configuration.handshake
    guard !handshake.magicCookieKey.isEmpty, !handshake.magicCookieValue.isEmpty else {
      throw PluginError(
        code: .invalidConfiguration,
        message: "Misconfigured ServeConfig given to serve this plugin: no magic cookie\nkey or value was set. Please notify the plugin author and report\nthis as a bug.\n"
      )
    }
    guard environment[handshake.magicCookieKey] == handshake.magicCookieValue else {
      throw PluginError(code: .magicCookieMismatch, message: Self.launchedByHandMessage)
    }

    let hostVersions = VersionNegotiation.parseHostVersions(environment[PluginEnvironment.protocolVersions]) { bad in
      // go-plugin's wording (it calls the host "server" here) and no newline, as peers print it.
      POSIX.writeAll("server sent invalid plugin version \"\(bad)\"", to: 2)
    }
    guard let version = VersionNegotiation.choose(pluginVersions: configuration.versionedPlugins.keys, hostVersions: hostVersions),
      let plugins = configuration.versionedPlugins[version]
    else {
      throw PluginError(code: .invalidConfiguration, message: "no plugins to serve")
    }

    let (tls, certificate, brokerSecurity) = try Self.security(configuration, environment: environment)
    // A Go plugin answers any non-empty PLUGIN_MULTIPLEX_GRPC with "true" but multiplexes only
    // when the value is a true boolean; this one answers what it does.
    let multiplexRequest = environment[PluginEnvironment.multiplexGRPC] ?? ""
    let multiplexer: Multiplexer? =
      HandshakeLine.parseGoBool(multiplexRequest) == true
      ? try Multiplexer(socketDirectory: nil, base: Self.socketBase(configuration, environment), logger: configuration.logger)
      : nil
    defer { multiplexer?.close() }
    let broker = GRPCBroker(
      socketDirectory: nil,
      environment: environment,
      security: brokerSecurity,
      maxMessageSize: configuration.maxReceiveMessageSize,
      multiplexer: multiplexer,
      logger: configuration.logger
    )
    // When the plugin stops, so does everything served or dialled through the broker.
    defer { broker.close() }

    let logger = configuration.logger
    let shutdownRequested = OneShot<Void>()
    let stopping = OneShot<Void>()
    // Known once the handshake is out: the streams are only captured after it.
    let stdioCapture = OneShot<StdioCapture?>()
    var capture: StdioCapture?
    defer {
      stdioCapture.fulfil(nil)
      capture?.stop()
    }
    var services: [any RegistrableRPCService] = [
      HealthService(stopping: stopping),
      ControllerService(shutdownRequested: shutdownRequested),
      BrokerService(stopping: stopping, broker: broker),
      StdioService(stopping: stopping, capture: stdioCapture),
    ]
    for (name, plugin) in plugins.plugins.sorted(by: { $0.key < $1.key }) {
      let context = PluginServiceContext(name: name, negotiatedVersion: version, logger: logger, broker: broker)
      services += try plugin.services(context: context)
    }

    // Opened last, once nothing else can fail, so that gRPC always takes over the descriptor.
    let listenerKind: PluginListener.Kind =
      switch configuration.listener {
      case .unixSocket(let directory): .unix(directory: directory)
      case .tcp: .tcp
      }
    let listener = try PluginListener.open(listenerKind, environment: environment)
    defer { listener.removeSocketFile() }
    // Multiplexed, gRPC serves on a private socket and the announced one carries yamux.
    let serverListener =
      if let multiplexer {
        try PluginListener.open(.unix(directory: multiplexer.socketDirectory), environment: [:])
      } else {
        listener
      }
    defer { serverListener.removeSocketFile() }
    multiplexer?.setMainRoute(serverListener.address)
    let transport = Transports.server(listener: serverListener, maxReceiveMessageSize: configuration.maxReceiveMessageSize, tls: tls)
    let server = GRPCServer(transport: transport, services: services)
    let line = HandshakeLine(
      appVersion: version,
      network: listener.network,
      address: listener.address,
      serverCertificate: certificate,
      multiplexingSupported: multiplexRequest.isEmpty ? nil : multiplexer != nil
    )

    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await server.serve() }
      group.addTask { _ = await shutdownRequested.wait() }

      // Resolves once the server accepts connections, so the host never dials too early.
      try await transport.waitUntilListening()
      try await multiplexer?.accept(on: listener)
      logger.debug("plugin address", metadata: ["network": "\(line.network)", "address": "\(line.address)"])
      // Ctrl-C reaches the whole process group; the host, not the terminal, stops plugins.
      if isPluginProcess { POSIX.ignoreInterrupts() }
      onListening(line)
      if isPluginProcess && configuration.forwardStandardStreams {
        do {
          capture = try await StdioCapture.start(logger: logger)
        } catch {
          logger.warning("stdout and stderr are not forwarded", metadata: ["error": "\(error)"])
        }
      }
      stdioCapture.fulfil(capture)

      // Either the host asked to shut down, or the server stopped by itself; either way the
      // waiter for a shutdown request has nothing left to wait for.
      try await group.next()
      shutdownRequested.fulfil(())
      stopping.fulfil(())
      // What the plugin wrote last still reaches the host: the stdio call ends once drained.
      capture?.stop()
      broker.close()
      server.beginGracefulShutdown()
      group.addTask { [grace = configuration.shutdownGracePeriod] in
        try await Task.sleep(for: grace)
        throw CancellationError()
      }
      do {
        try await group.next()
      } catch is CancellationError {
        logger.debug("calls still running after the grace period; stopping hard")
      }
      group.cancelAll()
    }
    logger.debug("plugin stopped")
  }

  /// Where a plugin's sockets go: the configured directory, else the host's
  /// `PLUGIN_UNIX_SOCKET_DIR`, `TMPDIR` or `/tmp`.
  private static func socketBase(_ configuration: PluginServeConfiguration, _ environment: [String: String]) -> String {
    if case .unixSocket(let directory?) = configuration.listener { return directory }
    return environment[PluginEnvironment.unixSocketDirectory].flatMap { $0.isEmpty ? nil : $0 }
      ?? environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
  }

  /// The server's TLS, the certificate to announce in the handshake under AutoMTLS, and the
  /// broker's TLS for both roles.
  private static func security(
    _ configuration: PluginServeConfiguration,
    environment: [String: String]
  ) throws -> (NIOSSLContext?, [UInt8]?, GRPCBroker.Security) {
    if let custom = configuration.tls {
      let context = try TLSContexts.custom(custom)
      let broker = GRPCBroker.Security(
        server: context,
        unsupported: "the plugin's custom TLS configuration is a server configuration, so it cannot dial the host"
      )
      return (context, nil, broker)
    }
    guard let pem = environment[PluginEnvironment.clientCertificate], !pem.isEmpty else {
      return (nil, nil, GRPCBroker.Security())
    }
    let hostCertificate: NIOSSLCertificate
    do {
      hostCertificate = try NIOSSLCertificate(bytes: Array(pem.utf8), format: .pem)
    } catch {
      // go-plugin carries on here with a pool that trusts nothing; failing says why at once.
      throw PluginError(code: .invalidConfiguration, message: "client cert provided but failed to parse: \(error)")
    }
    let own = try AutoMTLSCertificate.generate()
    let server = try TLSContexts.autoMTLSServer(own: own, peer: hostCertificate)
    // The host may serve brokered connections too; then the plugin is the TLS client.
    let client = try TLSContexts.autoMTLSClient(own: own, peer: hostCertificate)
    return (server, own.der, GRPCBroker.Security(server: server, client: client, serverHostname: "localhost"))
  }
}
