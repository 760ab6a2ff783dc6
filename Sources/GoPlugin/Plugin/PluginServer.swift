import GRPCCore
import GoPluginPlatform
import GoPluginProtos
import Logging
import NIOSSL
import ServiceLifecycle

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

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
    let (version, plugins) = try Self.negotiate(configuration, environment: environment)
    if plugins.servedProtocol == .netRPC {
      try await Self.runNetRPC(
        configuration, version: version, plugins: plugins, environment: environment,
        isPluginProcess: isPluginProcess, onListening: onListening)
      return
    }

    let (tls, certificate, brokerSecurity) = try ConnectionSecurity.plugin(
      tls: configuration.tls, environment: environment)
    // A Go plugin answers any non-empty PLUGIN_MULTIPLEX_GRPC with "true" but multiplexes only
    // when the value is a true boolean; this one answers what it does.
    let multiplexRequest = environment[PluginEnvironment.multiplexGRPC] ?? ""
    let multiplexer: Multiplexer? =
      HandshakeLine.parseGoBool(multiplexRequest) == true ? Multiplexer(logger: configuration.logger) : nil
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

    let signals = Signals()
    defer { signals.stdioCapture.fulfil(nil) }
    let services = try Self.services(
      plugins, version: version, broker: broker, signals: signals, logger: configuration.logger,
      health: configuration.health,
      info: InfoService(configuration.info, versionedPlugins: configuration.versionedPlugins))

    // Opened last, once nothing else can fail, so that gRPC always takes over the descriptor.
    let listener = try SocketListener.open(configuration.listener.socketKind, environment: environment)
    defer { listener.removeSocketFile() }
    // Multiplexed, the announced socket carries yamux, and gRPC serves the streams the host
    // opens without a knock, on no socket of its own.
    let transport: PluginServerTransport
    let handlersOnEventLoop = configuration.handlerExecution == .onConnection
    let methods = configuration.directMethods ? PluginMethodTable(collecting: services) : PluginMethodTable()
    if let multiplexer {
      transport = multiplexer.serverTransport(
        maxReceiveMessageSize: configuration.maxReceiveMessageSize, tls: tls,
        handlersOnEventLoop: handlersOnEventLoop, methods: methods)
      multiplexer.setMainRoute { channel in try transport.serve(channel) }
    } else {
      transport = Transports.server(
        listener: listener, maxReceiveMessageSize: configuration.maxReceiveMessageSize, tls: tls,
        handlersOnEventLoop: handlersOnEventLoop, methods: methods)
    }
    let line = HandshakeLine(
      appVersion: version,
      network: listener.network,
      address: listener.address,
      serverCertificate: certificate,
      multiplexingSupported: multiplexRequest.isEmpty ? nil : multiplexer != nil
    )

    try await Self.serve(
      GRPCServer(transport: transport, services: services),
      announcing: line,
      configuration: configuration,
      signals: signals,
      whenListening: { () async throws -> StdioCapture? in
        // Resolves once the server accepts connections, so the host never dials too early.
        try await transport.waitUntilListening()
        try await multiplexer?.accept(on: listener)
        configuration.logger.debug(
          "plugin address", metadata: ["network": "\(line.network)", "address": "\(line.address)"])
        // Ctrl-C reaches the whole process group; the host, not the terminal, stops plugins.
        if isPluginProcess { POSIX.ignoreInterrupts() }
        onListening(line)
        guard isPluginProcess && configuration.forwardStandardStreams else { return nil }
        do {
          return try await StdioCapture.start(logger: configuration.logger)
        } catch {
          configuration.logger.warning("stdout and stderr are not forwarded", metadata: ["error": "\(error)"])
          return nil
        }
      },
      onStop: { broker.close() }
    )
    configuration.logger.debug("plugin stopped")
  }

  /// What the core services and the serving loop tell each other.
  private struct Signals: Sendable {
    /// The host called `GRPCController.Shutdown`.
    let shutdownRequested = OneShot<Void>()
    /// The server is on its way down: health answers NOT_SERVING, streams end.
    let stopping = OneShot<Void>()
    /// Known once the handshake is out: the streams are only captured after it.
    let stdioCapture = OneShot<StdioCapture?>()
  }

  /// The checks a plugin makes before anything else: a host launched it (the magic cookie), and
  /// it shares an application protocol version with that host.
  private static func negotiate(
    _ configuration: PluginServeConfiguration,
    environment: [String: String]
  ) throws(PluginError) -> (version: Int, plugins: PluginSet) {
    let handshake = configuration.handshake
    guard !handshake.magicCookieKey.isEmpty, !handshake.magicCookieValue.isEmpty else {
      throw PluginError(
        code: .invalidConfiguration,
        message:
          "Misconfigured ServeConfig given to serve this plugin: no magic cookie\nkey or value was set. Please notify the plugin author and report\nthis as a bug.\n"
      )
    }
    guard environment[handshake.magicCookieKey] == handshake.magicCookieValue else {
      throw PluginError(code: .magicCookieMismatch, message: Self.launchedByHandMessage)
    }
    let hostVersions = VersionNegotiation.parseHostVersions(environment[PluginEnvironment.protocolVersions]) { bad in
      // go-plugin's wording (it calls the host "server" here) and no newline, as peers print it.
      POSIX.writeAll("server sent invalid plugin version \"\(bad)\"", to: 2)
    }
    guard
      let version = VersionNegotiation.choose(
        pluginVersions: configuration.versionedPlugins.keys, hostVersions: hostVersions),
      let plugins = configuration.versionedPlugins[version]
    else {
      throw PluginError(code: .invalidConfiguration, message: "no plugins to serve")
    }
    return (version, plugins)
  }

  /// go-plugin's core services and this library's info service, then each plugin's own, in the
  /// order of their names; the plugin's own start SERVING in `health` (the core ones are not
  /// listed there: they are the protocol's, not the plugin's).
  private static func services(
    _ plugins: PluginSet,
    version: Int,
    broker: GRPCBroker,
    signals: Signals,
    logger: Logger,
    health: PluginHealth,
    info: InfoService
  ) throws -> [any RegistrableRPCService] {
    let services: [any RegistrableRPCService] = [
      HealthService(stopping: signals.stopping, health: health),
      ControllerService(shutdownRequested: signals.shutdownRequested),
      BrokerService(stopping: signals.stopping, broker: broker),
      StdioService(stopping: signals.stopping, capture: signals.stdioCapture),
      info,
    ]
    var own: [any RegistrableRPCService] = []
    for (name, definition) in plugins.plugins.sorted(by: { $0.key < $1.key }) {
      // In a set served over gRPC, a plugin described for net/rpc only has nothing to serve.
      guard let plugin = definition as? any GRPCPlugin else { continue }
      let context = PluginServiceContext(name: name, negotiatedVersion: version, logger: logger, broker: broker)
      own += try plugin.services(context: context)
    }
    health.register(services: Self.serviceNames(own))
    return services + own
  }

  /// Serves until the host asks the plugin to shut down or the server stops by itself, then
  /// gives calls still running the grace period to finish.
  private static func serve(
    _ server: GRPCServer<PluginServerTransport>,
    announcing line: HandshakeLine,
    configuration: PluginServeConfiguration,
    signals: Signals,
    whenListening: () async throws -> StdioCapture?,
    onStop: () -> Void
  ) async throws {
    let logger = configuration.logger
    var capture: StdioCapture?
    defer { capture?.stop() }
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await server.serve() }
      group.addTask { _ = await signals.shutdownRequested.wait() }
      capture = try await whenListening()
      signals.stdioCapture.fulfil(capture)

      // Either the host asked to shut down, the server stopped by itself, or (served as one
      // service of a ServiceGroup) the process is shutting down gracefully; in each case the
      // waiter for a shutdown request has nothing left to wait for.
      try await withGracefulShutdownHandler {
        try await group.next()
      } onGracefulShutdown: {
        signals.shutdownRequested.fulfil(())
      }
      signals.shutdownRequested.fulfil(())
      signals.stopping.fulfil(())
      // What the plugin wrote last still reaches the host: the stdio call ends once drained.
      capture?.stop()
      onStop()
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
  }

  /// The gRPC services a plugin registers, by their fully qualified names.
  private static func serviceNames(_ services: some Sequence<any RegistrableRPCService>) -> Set<String> {
    var router = RPCRouter<PluginServerTransport>()
    for service in services { service.registerMethods(with: &router) }
    return Set(router.methods.map(\.service.fullyQualifiedService))
  }
}

extension PluginServeConfiguration.Listener {
  /// The socket this listener choice opens.
  var socketKind: SocketListener.Kind {
    switch self {
    case .unixSocket(let directory): .unix(directory: directory)
    case .tcp: .tcp
    }
  }
}
