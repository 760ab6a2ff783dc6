import GRPCCore
import GoPluginPlatform
import GoPluginProtos
public import Logging
import NIOSSL
import ServiceLifecycle
import SwiftProtobuf
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

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
  let logger: Logger

  struct Session: Sendable {
    var info: PluginInfo
    var plugins: PluginSet
    var wire: Wire
  }

  /// The gRPC client of a gRPC plugin's session, for the library's own calls and tests.
  func grpcClient() async throws(PluginError) -> GRPCClient<PluginTransport> {
    let session = try await self.session()
    guard case .grpc(let wire) = session.wire else {
      throw self.error(.unsupportedProtocol, "the plugin serves net/rpc, not gRPC", pid: session.info.pid)
    }
    return wire.grpcClient
  }

  /// What a session talks over: the protocol the plugin chose.
  enum Wire: Sendable {
    case grpc(GRPCWire)
    case netRPC(NetRPCWire)
  }

  struct GRPCWire: Sendable {
    var grpcClient: GRPCClient<PluginTransport>
    var broker: GRPCBroker
    /// The connection's transport, which a supervisor's calls are routed to.
    var transport: PluginTransport
  }

  struct NetRPCWire: Sendable {
    /// The control stream: `Control.*` and `Dispenser.Dispense`.
    var control: NetRPCClient
    var broker: MuxBroker
  }

  /// The client's lifecycle (see ``Phase``), the launched process and the tasks waiting on them.
  let state = Mutex(LifecycleState())
  let connections = ConnectionCounter()

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
    if let reattach = configuration.reattach { logger[metadataKey: "plugin"] = "\(reattach.address)" }
    self.logger = logger
  }

  // MARK: - Using the plugin

  /// Waits until the plugin has started and returns what its handshake said. Started means
  /// connected: the TLS handshake, if any, and the plugin's HTTP/2 SETTINGS have arrived.
  ///
  /// - Throws: ``PluginError`` if the plugin failed to start (``PluginError/Code/connectionFailed``
  ///   when its address could not be connected to within the start timeout) or is no longer
  ///   running.
  public var info: PluginInfo {
    get async throws(PluginError) { try await self.session().info }
  }

  /// A typed client for the gRPC plugin registered as `name`. Dispensing is local: it sends
  /// nothing to the plugin.
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/unknownPlugin`` if the negotiated plugin
  ///   set has no such name, ``PluginError/Code/pluginTypeMismatch`` if it is of another type or
  ///   the plugin serves net/rpc.
  public func dispense<Plugin: GRPCPlugin>(
    _ name: String,
    as type: Plugin.Type = Plugin.self
  ) async throws(PluginError) -> Plugin.Client {
    let session = try await self.session()
    let typed: Plugin = try self.plugin(name, in: session)
    guard case .grpc(let wire) = session.wire else {
      throw self.error(
        .pluginTypeMismatch, "plugin \"\(name)\" is served over net/rpc, and \(Plugin.self) only speaks gRPC",
        pid: session.info.pid)
    }
    return typed.client(connection: self.connection(name, session: session, wire: wire))
  }

  /// A typed client for the net/rpc plugin registered as `name`: asks the plugin to dispense
  /// it (`Dispenser.Dispense`), which serves it on a brokered stream, and connects to that.
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/unknownPlugin`` if the negotiated plugin
  ///   set has no such name, ``PluginError/Code/pluginTypeMismatch`` if it is of another type or
  ///   the plugin serves gRPC, ``PluginError/Code/dispenseFailed`` with the plugin's text if it
  ///   refused.
  public func dispense<Plugin: NetRPCPlugin>(
    _ name: String,
    as type: Plugin.Type = Plugin.self
  ) async throws(PluginError) -> Plugin.Client {
    let session = try await self.session()
    let typed: Plugin = try self.plugin(name, in: session)
    guard case .netRPC(let wire) = session.wire else {
      throw self.error(
        .pluginTypeMismatch, "plugin \"\(name)\" is served over gRPC, and \(Plugin.self) only speaks net/rpc",
        pid: session.info.pid)
    }
    return try await self.dispenseNetRPC(typed, name: name, session: session, wire: wire)
  }

  /// A typed client for a plugin described for both protocols, over the one the plugin chose.
  public func dispense<Plugin: GRPCPlugin & NetRPCPlugin>(
    _ name: String,
    as type: Plugin.Type = Plugin.self
  ) async throws(PluginError) -> Plugin.Client {
    let session = try await self.session()
    let typed: Plugin = try self.plugin(name, in: session)
    switch session.wire {
    case .grpc(let wire):
      return typed.client(connection: self.connection(name, session: session, wire: wire))
    case .netRPC(let wire):
      return try await self.dispenseNetRPC(typed, name: name, session: session, wire: wire)
    }
  }

  private func plugin<Plugin>(_ name: String, in session: Session) throws(PluginError) -> Plugin {
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
    return typed
  }

  private func connection(_ name: String, session: Session, wire: GRPCWire) -> PluginConnection {
    PluginConnection(
      grpcClient: wire.grpcClient,
      name: name,
      negotiatedVersion: session.info.negotiatedVersion,
      broker: wire.broker,
      callExecutor: wire.transport.callExecutor,
      caller: PluginCaller(grpcClient: wire.grpcClient, transport: wire.transport)
    )
  }

  /// Extra connections to and from a gRPC plugin; waits until the plugin has started.
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/unsupportedProtocol`` for a net/rpc
  ///   plugin, whose broker is ``muxBroker``.
  public var broker: GRPCBroker {
    get async throws(PluginError) {
      let session = try await self.session()
      guard case .grpc(let wire) = session.wire else {
        throw self.error(
          .unsupportedProtocol, "a net/rpc plugin has a MuxBroker, not a GRPCBroker", pid: session.info.pid)
      }
      return wire.broker
    }
  }

  /// The executor the plugin's gRPC calls run on while they are on the wire, its connection's
  /// event loop; waits until the plugin has started. A task that makes many calls can run on
  /// it, and its calls then switch no thread (see ``PluginConnection/callExecutor``). Nil for a
  /// net/rpc plugin.
  public var callExecutor: (any TaskExecutor)? {
    get async throws(PluginError) {
      let session = try await self.session()
      guard case .grpc(let wire) = session.wire else { return nil }
      return wire.transport.callExecutor
    }
  }

  /// Extra streams to and from a net/rpc plugin; waits until the plugin has started.
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/unsupportedProtocol`` for a gRPC plugin,
  ///   whose broker is ``broker``.
  public var muxBroker: MuxBroker {
    get async throws(PluginError) {
      let session = try await self.session()
      guard case .netRPC(let wire) = session.wire else {
        throw self.error(.unsupportedProtocol, "a gRPC plugin has a GRPCBroker, not a MuxBroker", pid: session.info.pid)
      }
      return wire.broker
    }
  }

  /// Asks the plugin whether it is serving: its health service for a gRPC plugin,
  /// `Control.Ping` for a net/rpc one.
  ///
  /// - Throws: the `RPCError` of a failed call, a ``NetRPCError``, or ``PluginError`` if the
  ///   plugin is not running, reports anything but SERVING or does not answer in time.
  public func ping(timeout: Duration = .seconds(5)) async throws {
    let session = try await self.session()
    switch session.wire {
    case .grpc(let wire):
      let health = Grpc_Health_V1_Health.Client(wrapping: wire.grpcClient)
      var options = CallOptions.defaults
      options.timeout = timeout
      let response = try await health.check(
        .with { $0.service = PluginEnvironment.healthServiceName }, options: options)
      guard response.status == .serving else {
        throw self.error(.unhealthy, "plugin health status is \(response.status)", pid: session.info.pid)
      }
    case .netRPC(let wire):
      let answered: Bool? = try await withDeadline(timeout) {
        _ = try await wire.control.call("Control.Ping", true, returning: EmptyReply.self)
        return true
      }
      guard answered != nil else {
        throw self.error(.unhealthy, "the plugin did not answer Control.Ping within \(timeout)", pid: session.info.pid)
      }
    }
  }

  /// Stops the plugin: closes the broker stream, asks the plugin to shut down, and kills it with
  /// SIGKILL if it has not exited within ``PluginClientConfiguration/gracefulStopTimeout`` of
  /// answering. Returns once the process has been reaped and everything the client opened for
  /// it is closed. Safe to call more than once and from several tasks at once.
  public func kill() async {
    self.transition(.stop)
    // Let go of by detach(), the plugin is no longer this client's to stop.
    if self.phase.exit?.reason == .detached { return }
    // Even a cancelled caller returns only once the plugin is gone, as documented.
    _ = await self.waitIgnoringCancellation(until: .finished)
  }

  /// How the plugin process ended; waits for it to end.
  public var exit: PluginExit {
    get async {
      await self.wait(until: .exited)?.exit ?? PluginExit(status: nil, reason: .killed)
    }
  }

  /// Whether the plugin process has ended.
  public var hasExited: Bool { self.phase.exit != nil }

  /// The plugin's last lines on stderr (at most 10 lines and 4 KiB), oldest first: after a
  /// crash, usually what the plugin said about it (a Go panic, a Swift fatal error).
  public var lastStandardErrorLines: [String] {
    self.state.withLock { $0.process }?.lastStandardErrorLines ?? []
  }

  func session() async throws(PluginError) -> Session {
    guard let start = await self.wait(until: .startOutcome)?.start else {
      throw self.error(.notRunning, "cancelled while waiting for the plugin to start")
    }
    let session = try start.get()
    if self.hasExited {
      throw self.error(.notRunning, "the plugin is no longer running", pid: session.info.pid)
    }
    return session
  }

  func error(_ code: PluginError.Code, _ message: String, pid: Int32? = nil) -> PluginError {
    PluginError(code: code, message: message, pluginPath: self.pluginPath, pid: pid ?? self.configuration.reattach?.pid)
  }

  // MARK: - Running

  /// Launches the plugin and keeps it until ``kill()`` is called, the plugin exits, or the
  /// calling task is cancelled (which kills the plugin at once). Call it once.
  ///
  /// - Throws: ``PluginError`` if the plugin could not be started; once it has started, `run`
  ///   returns normally however it ends (see ``exit``).
  public func run() async throws(PluginError) {
    guard self.transition(.run) else {
      if self.phase.exit?.reason == .notStarted {
        throw self.error(.notRunning, "the plugin was stopped before it was started")
      }
      throw self.error(
        .invalidConfiguration, "a PluginClient runs its plugin once; make a new client to launch it again")
    }
    // Registered while it runs, for PluginClient.stopAll().
    LivePluginClients.insert(self)
    defer { LivePluginClients.remove(self) }
    defer { self.transition(.finish) }
    do throws(PluginError) {
      // In a ServiceGroup, a graceful shutdown stops the plugin as kill() does.
      let outcome = await withGracefulShutdownHandler { () async -> PluginError? in
        do throws(PluginError) {
          try await self.launchAndServe()
          return nil
        } catch {
          return error
        }
      } onGracefulShutdown: {
        self.transition(.stop)
      }
      if let outcome { throw outcome }
    } catch {
      // Failures before launch leave no process to report on: their exit is a failed launch.
      self.transition(.startFailed(error))
      throw error
    }
  }
}

/// Runs `body` with a started plugin, then stops the plugin, whether `body` returns or throws.
///
/// Nothing outlives the call: when it returns the plugin has been shut down (or killed),
/// reaped, and its sockets and connections are closed.
///
/// - Parameter isolation: where `body` runs: the caller's actor, so that a host's `@main`
///   (main actor) can pass a closure that uses its state without making it `Sendable`.
/// - Throws: ``PluginError`` if the plugin fails to start, or what `body` throws.
public func withPluginClient<Result: Sendable>(
  _ configuration: PluginClientConfiguration,
  logger: Logger = Logger(label: "plugin"),
  isolation: isolated (any Actor)? = #isolation,
  _ body: (PluginClient) async throws -> Result
) async throws -> Result {
  let client = PluginClient(configuration: configuration, logger: logger)
  return try await withThrowingTaskGroup(of: Void.self, isolation: isolation) { group in
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
final class ConnectionCounter: Sendable {
  let value = Atomic<Int>(0)
  func increment() { self.value.add(1, ordering: .relaxed) }
  var count: Int { self.value.load(ordering: .relaxed) }
}
