#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import GRPCCore
import GoPluginProtos
public import Logging
import NIOSSL
import SwiftProtobuf
import Synchronization

/// What the host learned from a plugin's handshake.
public struct PluginInfo: Sendable, Hashable {
  /// The plugin's process ID.
  public var pid: Int32
  /// The application protocol version both sides agreed on.
  public var negotiatedVersion: Int
  /// The protocol the plugin serves; always gRPC for a running plugin.
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

/// A host's handle on one plugin process: it launches the plugin, connects to it, hands out
/// typed clients, and stops it.
///
/// The process lives for the duration of ``run()``, so that it can never outlive the task that
/// owns it. Most code uses the scoped form instead, which runs it for the length of a closure:
///
/// ```swift
/// try await withPluginClient(configuration) { client in
///   let kv = try await client.dispense("kv", as: KVPlugin.self)
///   try await kv.put("a", value: [1])
/// }   // the plugin has been shut down and reaped here
/// ```
///
/// A long-running service can instead call ``run()`` in a task of its own (a `ServiceGroup`,
/// say) and ``kill()`` to stop it.
public final class PluginClient: Sendable {
  /// What the client was created with.
  public let configuration: PluginClientConfiguration
  private let logger: Logger

  private enum Phase {
    case idle
    case running
    case finished
  }

  private struct Session: Sendable {
    var info: PluginInfo
    var plugins: PluginSet
    var grpcClient: GRPCClient<PluginTransport>
    var broker: GRPCBroker
  }

  private let phase = Mutex(Phase.idle)
  private let started = OneShot<Result<Session, PluginError>>()
  private let stopRequested = OneShot<Void>()
  private let exited = OneShot<PluginExit>()
  private let finished = OneShot<Void>()
  private let connections = ConnectionCounter()

  /// How many connections the client has opened to the plugin; one for the plugin's lifetime
  /// unless the connection broke.
  var connectionsOpened: Int { self.connections.count }

  /// - Parameters:
  ///   - logger: receives the client's own events and the plugin's stderr lines (with `plugin`
  ///     and `pid` metadata), each at the level the plugin logged it at.
  public init(configuration: PluginClientConfiguration, logger: Logger = Logger(label: "plugin")) {
    self.configuration = configuration
    var logger = logger
    logger[metadataKey: "plugin"] = "\(configuration.command.executable.split(separator: "/").last ?? "")"
    self.logger = logger
  }

  // MARK: - Using the plugin

  /// Waits until the plugin has started and returns what its handshake said.
  ///
  /// - Throws: ``PluginError`` if the plugin failed to start or is no longer running.
  public var info: PluginInfo {
    get async throws(PluginError) { try await self.session().info }
  }

  /// A typed client for the plugin registered as `name`. Dispensing is local: it sends nothing
  /// to the plugin.
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/unknownPlugin`` if the negotiated plugin
  ///   set has no such name, ``PluginError/Code/pluginTypeMismatch`` if it is of another type.
  public func dispense<Plugin: GRPCPlugin>(
    _ name: String,
    as type: Plugin.Type = Plugin.self
  ) async throws(PluginError) -> Plugin.Client {
    let session = try await self.session()
    guard let plugin = session.plugins[name] else {
      throw self.error(.unknownPlugin, "unknown plugin type: \(name)", pid: session.info.pid)
    }
    guard let typed = plugin as? Plugin else {
      throw self.error(
        .pluginTypeMismatch,
        "plugin \"\(name)\" is a \(Swift.type(of: plugin)), not a \(Plugin.self)",
        pid: session.info.pid
      )
    }
    let connection = PluginConnection(
      grpcClient: session.grpcClient,
      name: name,
      negotiatedVersion: session.info.negotiatedVersion,
      broker: session.broker
    )
    return typed.client(connection: connection)
  }

  /// Extra connections to and from the plugin; waits until the plugin has started.
  public var broker: GRPCBroker {
    get async throws(PluginError) { try await self.session().broker }
  }

  /// Asks the plugin's health service whether it is serving.
  ///
  /// - Throws: the `RPCError` of a failed call, or ``PluginError`` if the plugin is not running
  ///   or reports anything but SERVING.
  public func ping(timeout: Duration = .seconds(5)) async throws {
    let session = try await self.session()
    let health = Grpc_Health_V1_Health.Client(wrapping: session.grpcClient)
    var options = CallOptions.defaults
    options.timeout = timeout
    let response = try await health.check(.with { $0.service = PluginEnvironment.healthServiceName }, options: options)
    guard response.status == .serving else {
      throw self.error(.unhealthy, "plugin health status is \(response.status)", pid: session.info.pid)
    }
  }

  /// Stops the plugin: closes the broker stream, asks the plugin to shut down, and kills it with
  /// SIGKILL if it has not exited within ``PluginClientConfiguration/gracefulStopTimeout`` of
  /// answering. Returns once the process has been reaped and everything the client opened for
  /// it is closed. Safe to call more than once and from several tasks at once.
  public func kill() async {
    self.stopRequested.fulfil(())
    let wasIdle = self.phase.withLock { phase in
      guard case .idle = phase else { return false }
      phase = .finished
      return true
    }
    if wasIdle {
      self.started.fulfil(.failure(self.error(.notRunning, "the plugin was stopped before it was started")))
      self.exited.fulfil(PluginExit(status: nil, reason: .notStarted))
      self.finished.fulfil(())
    }
    // Even a cancelled caller returns only once the plugin is gone, as documented.
    await self.finished.valueIgnoringCancellation()
  }

  /// How the plugin process ended; waits for it to end.
  public var exit: PluginExit {
    get async {
      if let exit = await self.exited.wait() { return exit }
      return PluginExit(status: nil, reason: .killed)
    }
  }

  /// Whether the plugin process has ended.
  public var hasExited: Bool { self.exited.current != nil }

  private func session() async throws(PluginError) -> Session {
    guard let outcome = await self.started.wait() else {
      throw self.error(.notRunning, "cancelled while waiting for the plugin to start")
    }
    let session = try outcome.get()
    if self.exited.current != nil {
      throw self.error(.notRunning, "the plugin is no longer running", pid: session.info.pid)
    }
    return session
  }

  private func error(_ code: PluginError.Code, _ message: String, pid: Int32? = nil) -> PluginError {
    PluginError(code: code, message: message, pluginPath: self.configuration.command.executable, pid: pid)
  }

  // MARK: - Running

  /// Launches the plugin and keeps it until ``kill()`` is called, the plugin exits, or the
  /// calling task is cancelled (which kills the plugin at once). Call it once.
  ///
  /// - Throws: ``PluginError`` if the plugin could not be started; once it has started, `run`
  ///   returns normally however it ends (see ``exit``).
  public func run() async throws(PluginError) {
    let firstRun = self.phase.withLock { phase in
      guard case .idle = phase else { return false }
      phase = .running
      return true
    }
    guard firstRun else {
      if self.exited.current?.reason == .notStarted {
        throw self.error(.notRunning, "the plugin was stopped before it was started")
      }
      throw self.error(.invalidConfiguration, "a PluginClient runs its plugin once; make a new client to launch it again")
    }
    defer {
      self.phase.withLock { $0 = .finished }
      self.finished.fulfil(())
    }
    do {
      try await self.launchAndServe()
    } catch {
      self.started.fulfil(.failure(error))
      // Failures before launch leave no process to report on.
      self.exited.fulfil(PluginExit(status: nil, reason: .launchFailed))
      throw error
    }
  }

  private func launchAndServe() async throws(PluginError) {
    let configuration = self.configuration
    try configuration.validate()
    let executable = try Self.resolveExecutable(
      configuration.command.executable,
      searchPath: configuration.command.environment["PATH"] ?? ProcessInfo.processInfo.environment["PATH"]
    )
    // Opened and checked before anything else happens, and kept open until the plugin is gone.
    let verified = try configuration.checksum.map { checksum throws(PluginError) in
      try VerifiedExecutable(path: executable, checksum: checksum)
    }
    defer { withExtendedLifetime(verified) {} }
    var certificate: AutoMTLSCertificate?
    if case .autoMTLS? = configuration.tls?.mode {
      do {
        certificate = try AutoMTLSCertificate.generate()
      } catch {
        throw self.error(.invalidConfiguration, "failed to generate client certificate: \(error)")
      }
    }
    let socketDirectory = try Self.makeSocketDirectory(group: configuration.unixSocketGroup)
    defer { Self.removeTree(socketDirectory) }

    let process = PluginProcess(
      executablePath: verified?.launchPath ?? executable,
      argumentZero: executable,
      arguments: configuration.command.arguments,
      environment: self.childEnvironment(socketDirectory: socketDirectory, clientCertificate: certificate?.pem),
      workingDirectory: configuration.command.workingDirectory,
      standardInput: configuration.standardInput,
      logger: self.logger
    )

    let outcome: Result<Void, PluginError> = await withTaskGroup(of: Void.self) { group in
      group.addTask { await process.run() }
      defer { group.cancelAll() }
      let result = await self.connectAndServe(
        process: process,
        executable: executable,
        certificate: certificate,
        socketDirectory: socketDirectory,
        group: &group
      )
      // Whatever happened, the process is gone and reaped when the group ends.
      return result
    }
    try outcome.get()
  }

  /// Everything between launch and reap; the process task runs beside it in `group`.
  private func connectAndServe(
    process: PluginProcess,
    executable: String,
    certificate: AutoMTLSCertificate?,
    socketDirectory: String,
    group: inout TaskGroup<Void>
  ) async -> Result<Void, PluginError> {
    guard let pid = await process.launched.valueIgnoringCancellation() else {
      let status = await process.terminated.valueIgnoringCancellation()
      self.exited.fulfil(PluginExit(status: status, reason: .launchFailed))
      if case .launchFailed(let reason)? = process.firstLine.current {
        return .failure(self.error(.launchFailed, "could not launch \(executable): \(reason)"))
      }
      return .failure(self.error(.launchFailed, "could not launch \(executable)"))
    }
    self.logger.debug("plugin started", metadata: ["path": "\(executable)", "pid": "\(pid)"])

    let line: HandshakeLine
    let security: GRPCBroker.Security
    do throws(PluginError) {
      line = try await self.handshake(process).get()
      security = try self.security(for: line, certificate: certificate)
    } catch {
      await self.killAndReap(process, reason: .killed)
      // A refused plugin may already listen where its line said; killed, it cannot clean up.
      if case .line(let text)? = process.firstLine.current, let path = HandshakeLine.unixSocketPath(announcedIn: text) {
        Self.removeStaleSocket(path)
      }
      return .failure(error.about(path: executable, pid: pid))
    }

    let plugins = self.configuration.versionedPlugins[line.appVersion] ?? PluginSet()
    let transport: PluginClientTransport
    var multiplexer: Multiplexer?
    // Multiplexed, gRPC dials a private socket whose connections become yamux streams.
    var mainDial: Multiplexer.DialSocket?
    defer {
      mainDial?.close()
      multiplexer?.close()
    }
    do {
      var (network, address) = (line.network, line.address)
      if self.configuration.multiplexBroker {
        let mux = try Multiplexer(socketDirectory: socketDirectory, logger: self.logger)
        multiplexer = mux
        try await mux.connect(network: line.network, address: line.address)
        let dial = try await mux.makeDialSocket()
        mainDial = dial
        (network, address) = (.unix, dial.path)
      }
      transport = try Transports.client(
        network: network,
        address: address,
        maxMessageSize: self.configuration.maxMessageSize,
        tls: security.client,
        serverHostname: security.serverHostname,
        onConnect: { [connections] in connections.increment() }
      )
    } catch {
      await self.killAndReap(process, reason: .killed)
      if line.network == .unix { Self.removeStaleSocket(line.address) }
      let failure = (error as? PluginError) ?? PluginError(code: .unknownAddressType, message: "\(error)")
      return .failure(failure.about(path: executable, pid: pid))
    }
    let grpcClient = GRPCClient(transport: transport)
    group.addTask {
      do {
        try await grpcClient.runConnections()
      } catch {
        self.logger.debug("plugin connection ended", metadata: ["error": "\(error)"])
      }
    }

    let info = PluginInfo(
      pid: pid,
      negotiatedVersion: line.appVersion,
      protocol: line.protocol,
      network: line.network,
      address: line.address,
      serverCertificate: line.serverCertificate,
      multiplexed: multiplexer != nil
    )
    self.logger.debug("using plugin", metadata: ["version": "\(info.negotiatedVersion)", "address": "\(info.address)"])
    let broker = GRPCBroker(
      socketDirectory: socketDirectory,
      environment: [:],
      security: security,
      maxMessageSize: self.configuration.maxMessageSize,
      multiplexer: multiplexer,
      logger: self.logger
    )
    self.started.fulfil(.success(Session(info: info, plugins: plugins, grpcClient: grpcClient, broker: broker)))

    // The session: the broker and stdio streams stay open until the plugin is stopped or exits.
    // Those streams ending (a plugin without a broker, a dropped connection) ends nothing.
    await withTaskGroup(of: Void.self) { stdio in
      // Stdio outlives the stop request: a plugin flushes what it still holds as it shuts
      // down, and the stream ends by itself once the plugin has gone.
      stdio.addTask { await self.drainStdio(grpcClient) }
      await withTaskGroup(of: Void.self) { session in
        session.addTask { await self.holdBrokerStream(grpcClient, broker: broker) }
        await withTaskGroup(of: Void.self) { race in
          race.addTask { _ = await self.stopRequested.wait() }
          race.addTask { _ = await process.terminated.wait() }
          await race.next()
          race.cancelAll()
        }
        session.cancelAll()
      }
      // Brokered servers stop and dials fail before the plugin is asked to shut down.
      broker.close()
      await self.stop(process, grpcClient: grpcClient)
      // The process is gone; whatever it sent is in the socket buffers and drains at once.
      stdio.addTask { try? await Task.sleep(for: Self.stdioDrainTime) }
      await stdio.next()
      stdio.cancelAll()
    }
    // A plugin that vanished without removing its socket (killed, crashed) leaves it behind.
    if line.network == .unix {
      Self.removeStaleSocket(line.address)
    }
    return .success(())
  }

  /// The first stdout line, parsed and validated, raced against the start timeout and a stop
  /// request.
  private func handshake(_ process: PluginProcess) async -> Result<HandshakeLine, PluginError> {
    let firstLine = await self.waitForFirstLine(process, timeout: self.configuration.startTimeout)
    return Result { () throws(PluginError) -> HandshakeLine in
      switch firstLine {
      case .line(let text)?:
        return try HandshakeLine.parse(text, expecting: self.expectations)
      case .closed?, .launchFailed?:
        return try HandshakeLine.parse(nil, expecting: self.expectations)
      case nil:
        if self.stopRequested.current != nil || Task.isCancelled {
          throw PluginError(code: .notRunning, message: "the plugin was stopped before it finished starting")
        }
        throw PluginError(code: .startTimeout, message: "timeout while waiting for plugin to start")
      }
    }
  }

  /// The TLS the connection needs, from the configuration and what the handshake brought: the
  /// main connection's client side, and both sides for brokered connections.
  private func security(
    for line: HandshakeLine,
    certificate: AutoMTLSCertificate?
  ) throws(PluginError) -> GRPCBroker.Security {
    do {
      switch self.configuration.tls?.mode {
      case nil:
        // A plugin that inherited another host's PLUGIN_CLIENT_CERT may answer with a
        // certificate nobody asked for; go-plugin hosts crash on that, this one ignores it.
        if line.serverCertificate != nil {
          self.logger.debug("ignoring a server certificate the host did not ask for")
        }
        return GRPCBroker.Security()
      case .autoMTLS?:
        guard let der = line.serverCertificate, let certificate else {
          throw PluginError(
            code: .invalidServerCertificate,
            message: "the host asked for AutoMTLS, but the plugin's handshake carries no certificate"
          )
        }
        let peer: NIOSSLCertificate
        do {
          peer = try NIOSSLCertificate(bytes: der, format: .der)
        } catch {
          throw PluginError(code: .invalidServerCertificate, message: "error parsing server cert: \(error)")
        }
        return GRPCBroker.Security(
          server: try TLSContexts.autoMTLSServer(own: certificate, peer: peer),
          client: try TLSContexts.autoMTLSClient(own: certificate, peer: peer),
          serverHostname: "localhost"
        )
      case .custom(let configuration, let serverHostname)?:
        return GRPCBroker.Security(
          client: try TLSContexts.custom(configuration),
          serverHostname: serverHostname,
          unsupported: "the host's custom TLS configuration is a client configuration, so it cannot serve"
        )
      }
    } catch let error as PluginError {
      throw error
    } catch {
      throw PluginError(code: .invalidConfiguration, message: "TLS configuration: \(error)")
    }
  }

  /// Ends a session and records how the plugin ended, exactly once: a plugin still running is
  /// asked to shut down and killed if it lingers past the grace period (or at once, if this
  /// task was cancelled); one that already exited went away by itself.
  private func stop(_ process: PluginProcess, grpcClient: GRPCClient<PluginTransport>) async {
    let askedToStop = process.terminated.current == nil
    let timeout = self.configuration.gracefulStopTimeout
    var exitDeadline = ContinuousClock.now + timeout
    if askedToStop && !Task.isCancelled {
      // A plugin that answered gets the whole timeout to exit, counted from its answer, as a
      // go-plugin host gives it; one that did not answer in time has used it up.
      if await self.shutDown(grpcClient, deadline: exitDeadline) {
        exitDeadline = ContinuousClock.now + timeout
      }
    }
    grpcClient.beginGracefulShutdown()

    guard askedToStop else {
      let exit = PluginExit(status: process.terminated.current ?? nil, reason: .exitedUnexpectedly)
      self.exited.fulfil(exit)
      self.logger.info("plugin process exited", metadata: ["exit": "\(exit)"])
      return
    }
    if !Task.isCancelled, let status = await process.terminated.wait(timeout: exitDeadline - ContinuousClock.now) {
      self.exited.fulfil(PluginExit(status: status, reason: .stopped))
      self.logger.debug("plugin exited")
      return
    }
    if !Task.isCancelled {
      self.logger.warning("plugin failed to exit gracefully")
    }
    await self.killAndReap(process, reason: .killed)
  }

  private var expectations: HandshakeLine.Expectations {
    HandshakeLine.Expectations(
      versions: Array(self.configuration.versionedPlugins.keys),
      allowedProtocols: self.configuration.allowedProtocols,
      multiplexingRequested: self.configuration.multiplexBroker
    )
  }

  private func waitForFirstLine(_ process: PluginProcess, timeout: Duration) async -> PluginProcess.FirstLine? {
    await withTaskGroup(of: PluginProcess.FirstLine?.self) { group in
      group.addTask { await process.firstLine.wait(timeout: timeout) }
      group.addTask {
        _ = await self.stopRequested.wait()
        return nil
      }
      let first = await group.next() ?? nil
      group.cancelAll()
      return first
    }
  }

  private func killAndReap(_ process: PluginProcess, reason: PluginExit.Reason) async {
    process.kill()
    let status = await process.terminated.valueIgnoringCancellation()
    self.exited.fulfil(PluginExit(status: status, reason: reason))
  }

  /// `GRPCController.Shutdown`, bounded in time; `true` when the plugin took it. A Go plugin
  /// stops its server before it answers, so UNAVAILABLE is the usual answer, and a success.
  private func shutDown(_ grpcClient: GRPCClient<PluginTransport>, deadline: ContinuousClock.Instant) async -> Bool {
    let controller = Plugin_GRPCController.Client(wrapping: grpcClient)
    var options = CallOptions.defaults
    options.timeout = max(deadline - ContinuousClock.now, .milliseconds(1))
    do {
      _ = try await controller.shutdown(Plugin_Empty(), options: options)
      return true
    } catch let error as RPCError where error.code == .unavailable {
      // The plugin closed the connection on its way out.
      return true
    } catch {
      self.logger.debug("error asking the plugin to shut down", metadata: ["error": "\(error)"])
      return false
    }
  }

  /// Opens `GRPCBroker.StartStream` and keeps it open for the session, as go-plugin hosts do:
  /// the broker's announcements go out on it, the plugin's come back.
  private func holdBrokerStream(_ grpcClient: GRPCClient<PluginTransport>, broker: GRPCBroker) async {
    let stub = Plugin_GRPCBroker.Client(wrapping: grpcClient)
    do {
      try await stub.startStream(
        requestProducer: { writer in
          for await info in broker.outbound { try await writer.write(info) }
        },
        onResponse: { response in
          for try await info in response.messages { broker.received(info) }
        }
      )
    } catch let error as RPCError where [.unimplemented, .unavailable, .cancelled].contains(error.code) {
      self.logger.trace("broker stream ended", metadata: ["code": "\(error.code)"])
    } catch {
      self.logger.debug("broker stream ended", metadata: ["error": "\(error)"])
    }
  }

  /// How long the stdio stream may take to deliver its last bytes once the plugin has exited.
  private static let stdioDrainTime: Duration = .milliseconds(500)

  /// Opens `GRPCStdio.StreamStdio` so that the plugin's forwarded stdout and stderr reach the
  /// configured sinks (go-plugin's default drops both), and so that a Go plugin's writes never
  /// block on a full pipe. Plugins built before the service existed answer UNIMPLEMENTED.
  private func drainStdio(_ grpcClient: GRPCClient<PluginTransport>) async {
    let stdio = Plugin_GRPCStdio.Client(wrapping: grpcClient)
    let (stdout, stderr) = (self.configuration.syncStdout, self.configuration.syncStderr)
    do {
      try await stdio.streamStdio(Google_Protobuf_Empty()) { response in
        for try await chunk in response.messages {
          switch chunk.channel {
          case .stdout: stdout.write(Array(chunk.data))
          case .stderr: stderr.write(Array(chunk.data))
          default: self.logger.warning("unknown channel, dropping", metadata: ["channel": "\(chunk.channel.rawValue)"])
          }
        }
      }
    } catch let error as RPCError where [.unimplemented, .unavailable].contains(error.code) {
      self.logger.debug("stdio service not available, stdout/stderr syncing unavailable")
    } catch {
      self.logger.trace("stdio stream ended", metadata: ["error": "\(error)"])
    }
  }

  // MARK: - Environment and files

  /// go-plugin's environment (spec §1.1), except that the host's own `PLUGIN_*` variables are
  /// never inherited: a host that is itself a plugin must not pass its handshake on.
  private func childEnvironment(socketDirectory: String, clientCertificate: String?) -> [String: String] {
    let configuration = self.configuration
    var environment: [String: String] = [:]
    for (key, value) in ProcessInfo.processInfo.environment where !key.hasPrefix("PLUGIN_") {
      switch configuration.inheritedEnvironment {
      case .all: environment[key] = value
      case .only(let names) where names.contains(key): environment[key] = value
      case .none, .only: break
      }
    }
    environment.merge(configuration.command.environment) { _, new in new }
    environment[configuration.handshake.magicCookieKey] = configuration.handshake.magicCookieValue
    environment[PluginEnvironment.minPort] = String(configuration.portRange.lowerBound)
    environment[PluginEnvironment.maxPort] = String(configuration.portRange.upperBound)
    environment[PluginEnvironment.protocolVersions] =
      configuration.versionedPlugins.keys.sorted().map(String.init).joined(separator: ",")
    environment[PluginEnvironment.unixSocketDirectory] = socketDirectory
    if let group = configuration.unixSocketGroup {
      environment[PluginEnvironment.unixSocketGroup] = group
    }
    if let clientCertificate {
      environment[PluginEnvironment.clientCertificate] = clientCertificate
    }
    if configuration.multiplexBroker {
      environment[PluginEnvironment.multiplexGRPC] = "true"
    }
    return environment
  }

  /// A bare name is looked up as the plugin's own environment would find it.
  private static func resolveExecutable(_ executable: String, searchPath: String?) throws(PluginError) -> String {
    if executable.contains("/") {
      guard access(executable, X_OK) == 0 else {
        throw PluginError(code: .launchFailed, message: "\(executable) is not an executable file: \(String(cString: strerror(errno)))", pluginPath: executable)
      }
      return executable
    }
    for directory in (searchPath ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") {
      let candidate = "\(directory)/\(executable)"
      if access(candidate, X_OK) == 0 { return candidate }
    }
    throw PluginError(code: .launchFailed, message: "\(executable) was not found in PATH", pluginPath: executable)
  }

  /// A private directory per plugin for its sockets: only this user can enter it, and it is
  /// removed, with whatever the plugin left in it, when the plugin is gone.
  private static func makeSocketDirectory(group: String?) throws(PluginError) -> String {
    let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    var template = Array("\(base)/plugin-dir-XXXXXX".utf8CString)
    guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
      throw PluginError(code: .launchFailed, message: "could not create a socket directory in \(base): \(String(cString: strerror(errno)))")
    }
    let directory = String(cString: made)
    if let group {
      let gid = try PluginListener.groupID(group)
      guard chown(directory, uid_t.max, gid) == 0, chmod(directory, 0o770) == 0 else {
        let reason = String(cString: strerror(errno))
        Self.removeTree(directory)
        throw PluginError(code: .invalidConfiguration, message: "could not give \(directory) to group \(group): \(reason)")
      }
    }
    return directory
  }

  private static func removeTree(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
  }

  /// Removes a plugin's socket file once the plugin is gone, but only if it is a socket owned
  /// by this user: the path came from the plugin, and must not become a way to delete files.
  private static func removeStaleSocket(_ path: String) {
    var info = stat()
    guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK, info.st_uid == getuid() else { return }
    unlink(path)
  }
}

/// Runs `body` with a started plugin, then stops the plugin, whether `body` returns or throws.
///
/// Nothing outlives the call: when it returns the plugin has been shut down (or killed),
/// reaped, and its sockets and connections are closed.
///
/// - Throws: ``PluginError`` if the plugin fails to start, or what `body` throws.
public func withPluginClient<Result: Sendable>(
  _ configuration: PluginClientConfiguration,
  logger: Logger = Logger(label: "plugin"),
  _ body: (PluginClient) async throws -> Result
) async throws -> Result {
  let client = PluginClient(configuration: configuration, logger: logger)
  return try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await client.run() }
    do {
      _ = try await client.info
      let result = try await body(client)
      await client.kill()
      return result
    } catch {
      await client.kill()
      throw error
    }
  }
}

/// Counts connections; kept apart from the client because the transport holds its callbacks
/// for as long as it lives, and they must not keep the client alive.
private final class ConnectionCounter: Sendable {
  private let value = Atomic<Int>(0)
  func increment() { self.value.add(1, ordering: .relaxed) }
  var count: Int { self.value.load(ordering: .relaxed) }
}
