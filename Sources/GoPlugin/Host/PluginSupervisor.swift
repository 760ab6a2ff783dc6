import GRPCCore
public import Logging
public import ServiceLifecycle

/// Runs a plugin and keeps it running: it restarts the plugin when it exits or turns unhealthy,
/// with exponential backoff, until it is stopped or gives up, and hands out typed clients that
/// keep working across restarts.
///
/// ```swift
/// var configuration = PluginSupervisor.Configuration(client: clientConfiguration)
/// configuration.restart = .init(initialDelay: .milliseconds(100), maximumRestarts: 5, window: .seconds(60))
/// let supervisor = PluginSupervisor(configuration: configuration)
/// try await withThrowingTaskGroup(of: Void.self) { group in
///   group.addTask { try await supervisor.run() }
///   group.addTask { for await event in supervisor.events() { logger.info("plugin: \(event)") } }
///   let kv = try await supervisor.dispense("kv", as: KVPlugin.self)
///   try await kv.put("a", value: [1])      // to whichever process is running now
///   supervisor.beginGracefulShutdown()
/// }
/// ```
///
/// It is a `Service`: in a `ServiceGroup` a graceful shutdown stops the plugin as ``PluginClient/kill()``
/// does, and ``run()`` returns.
///
/// A call through a supervised client goes to the process that runs when the call starts.
/// While the plugin is down it fails at once with ``PluginError/Code/unavailable`` (or waits
/// up to ``Configuration/waitForReady``); a call in flight when the process exits fails with
/// ``PluginError/Code/exitedDuringCall``, naming the exit. Nothing is retried behind the
/// caller's back.
///
/// The broker does not survive a restart: a brokered ID belongs to the process (the session)
/// it was made with, and the ``PluginConnection/broker`` a supervised client is made with is
/// the one of the process running when it was dispensed. Dispense again after a restart to
/// broker with the new process.
public final class PluginSupervisor: Service, Sendable {
  /// What the supervisor runs, and how.
  public let configuration: Configuration
  let logger: Logger
  let machine: Machine
  /// Wakes whatever the run loop waits on when it is asked to stop.
  private let stopRequested = OneShot<Void>()
  /// The one client every supervised typed client calls through.
  private let grpcClient: GRPCClient<PluginTransport>

  /// - Parameters:
  ///   - logger: given to each ``PluginClient`` the supervisor launches, and for its own events.
  public init(configuration: Configuration, logger: Logger = Logger(label: "plugin")) {
    self.configuration = configuration
    self.logger = logger
    self.machine = Machine(pluginPath: configuration.client.command.executable)
    self.grpcClient = GRPCClient(
      transport: PluginTransport(SupervisedTransport(machine: self.machine, waitForReady: configuration.waitForReady))
    )
  }

  /// What happens to the plugin from now on, as it happens. Each call returns a new sequence;
  /// subscribe before ``run()`` to see the first ``Event/starting``. The sequence ends when the
  /// supervisor has stopped or given up.
  public func events() -> AsyncStream<Event> {
    self.machine.subscribe()
  }

  /// A typed client for the plugin registered as `name`, whose calls go to whichever plugin
  /// process is running. Waits until the plugin is first ready.
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/unavailable`` if the supervisor stopped
  ///   or gave up first, ``PluginError/Code/unknownPlugin`` or
  ///   ``PluginError/Code/pluginTypeMismatch`` as ``PluginClient/dispense(_:as:)``.
  public func dispense<Plugin: GRPCPlugin>(
    _ name: String,
    as type: Plugin.Type = Plugin.self
  ) async throws(PluginError) -> Plugin.Client {
    guard let route = await self.machine.route(waitingUpTo: nil) else { throw self.machine.unavailable() }
    let pid = route.session.info.pid
    guard let plugin = route.session.plugins[name] else {
      throw route.client.error(.unknownPlugin, "unknown plugin type: \(name)", pid: pid)
    }
    guard let typed = plugin as? Plugin else {
      throw route.client.error(
        .pluginTypeMismatch, "plugin \"\(name)\" is a \(Swift.type(of: plugin)), not a \(Plugin.self)", pid: pid)
    }
    guard case .grpc(let wire) = route.session.wire else {
      throw route.client.error(
        .unsupportedProtocol, "a supervisor routes gRPC calls; this plugin serves net/rpc", pid: pid)
    }
    return typed.client(
      connection: PluginConnection(
        grpcClient: self.grpcClient,
        name: name,
        negotiatedVersion: route.session.info.negotiatedVersion,
        broker: wire.broker
      )
    )
  }

  /// Stops the plugin (as ``PluginClient/kill()`` does) and ends ``run()``, without waiting.
  public func beginGracefulShutdown() {
    self.stopRequested.fulfil(())
  }

  /// Runs and restarts the plugin until ``beginGracefulShutdown()`` is called, the group it
  /// runs in shuts down gracefully, or the task is cancelled (which kills the plugin at once).
  /// Call it once.
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/restartLimitReached`` when it gave up
  ///   (after publishing ``Event/failed(_:)``), ``PluginError/Code/invalidConfiguration`` for a
  ///   configuration that cannot work or a second call.
  public func run() async throws {
    try self.configuration.restart.validate()
    guard self.machine.claim() else {
      throw PluginError(
        code: .invalidConfiguration, message: "a PluginSupervisor runs once; make a new one to supervise again",
        pluginPath: self.machine.pluginPath)
    }
    let failure = await withGracefulShutdownHandler {
      await withTaskGroup(of: Void.self) { group in
        group.addTask {
          do {
            try await self.grpcClient.runConnections()
          } catch {
            self.logger.debug("supervised client ended", metadata: ["error": "\(error)"])
          }
        }
        let failure = await self.supervise()
        self.grpcClient.beginGracefulShutdown()
        return failure
      }
    } onGracefulShutdown: {
      self.beginGracefulShutdown()
    }
    if let failure { throw failure }
  }

  /// The run loop: start, wait for the end, restart after a delay, until stopped or given up.
  private func supervise() async -> PluginError? {
    while !Task.isCancelled && self.stopRequested.current == nil {
      self.machine.transition(.start)
      let client = PluginClient(configuration: self.configuration.client, logger: self.logger)
      let exit = await self.runOnce(client)
      guard !Task.isCancelled && self.stopRequested.current == nil else { break }

      let policy = self.configuration.restart
      let (delay, restarts) = self.machine.scheduleRestart(policy)
      guard let delay else {
        let error = PluginError(
          code: .restartLimitReached,
          message: "the plugin ended (\(exit)) after \(restarts) restarts within \(policy.window); giving up",
          pluginPath: self.machine.pluginPath
        )
        self.logger.error("plugin supervisor gave up", metadata: ["error": "\(error)"])
        self.machine.transition(.finish(error))
        return error
      }
      self.machine.transition(.restart(after: delay))
      // Woken early by a stop request (or cancellation), which the loop's condition then sees.
      _ = await self.stopRequested.wait(timeout: delay)
    }
    self.machine.transition(.finish(nil))
    return nil
  }

  /// One plugin process, from launch to reap: ready once started, watched for health, stopped
  /// when the supervisor is. Returns how it ended, once everything it opened is closed.
  private func runOnce(_ client: PluginClient) async -> PluginExit {
    await withTaskGroup(of: Void.self) { lifetime in
      lifetime.addTask {
        do {
          try await client.run()
        } catch {
          self.logger.warning("plugin failed to start", metadata: ["error": "\(error)"])
        }
      }
      await withTaskGroup(of: Void.self) { watchers in
        watchers.addTask {
          if await self.stopRequested.wait() != nil { await client.kill() }
        }
        if let session = try? await client.session() {
          self.machine.transition(.ready(Route(client: client, session: session)))
          if let check = self.configuration.healthCheck {
            watchers.addTask {
              do throws(PluginError) {
                try await client.monitorHealth(check)
              } catch {
                self.logger.warning("plugin unhealthy; restarting it", metadata: ["error": "\(error)"])
                self.machine.transition(.unhealthy(error))
                await client.kill()
              }
            }
          }
        }
        let exit = await client.exit
        self.machine.transition(.exited(exit, standardError: client.lastStandardErrorLines))
        watchers.cancelAll()
      }
      await lifetime.waitForAll()
      return await client.exit
    }
  }
}
