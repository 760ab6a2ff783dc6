import GRPCCore
public import Logging
public import ServiceLifecycle

/// Runs several instances of one plugin behind one typed client: each call goes to the ready
/// instance with the fewest calls in flight; a crashed or unhealthy instance is replaced while
/// the others serve; and ``swap(to:)`` moves every instance to a new binary, one at a time,
/// without failing a call.
///
/// ```swift
/// var configuration = PluginPool.Configuration(client: clientConfiguration)
/// configuration.instances = 4
/// let pool = PluginPool(configuration: configuration)
/// try await withThrowingTaskGroup(of: Void.self) { group in
///   group.addTask { try await pool.run() }
///   try await pool.ready()                        // all four started and healthy
///   let kv = try await pool.dispense("kv", as: KVPlugin.self)
///   try await kv.put("a", value: [1])             // to the least busy instance
///   try await pool.swap(to: upgradedConfiguration) // rolling, zero failed calls
///   pool.beginGracefulShutdown()                  // drains, then stops every instance
/// }
/// ```
///
/// An instance takes calls once it has started and answered its first health check, so that a
/// new binary that starts but cannot serve never gets a call. An instance taken out — by a swap,
/// as unhealthy, or at shutdown — drains first: it gets no new call, and is stopped once the
/// calls in flight on it have finished (or ``Configuration/drainTimeout`` has passed). Calls
/// fail only when they were in flight on an instance that died
/// (``PluginError/Code/exitedDuringCall``), or when no instance is ready
/// (``PluginError/Code/unavailable``); nothing is retried behind the caller's back.
///
/// Pools route gRPC calls only: an instance that negotiates net/rpc fails its start with
/// ``PluginError/Code/unsupportedProtocol``. As with a ``PluginSupervisor``, the broker of a
/// typed client is the one of the instance that was ready when it was dispensed.
///
/// It is a `Service`: in a `ServiceGroup` a graceful shutdown drains and stops every instance,
/// and ``run()`` returns.
public final class PluginPool: Service, Sendable {
  /// What the pool runs, and how.
  public let configuration: Configuration
  let logger: Logger
  let machine: Machine
  /// The one client every typed client of the pool calls through.
  private let grpcClient: GRPCClient<PluginTransport>
  /// One swap at a time, in the order they were asked for.
  private let swapGate = AsyncGate()

  /// - Parameters:
  ///   - logger: given to each instance's ``PluginClient``, and for the pool's own events.
  public init(configuration: Configuration, logger: Logger = Logger(label: "plugin")) {
    self.configuration = configuration
    self.logger = logger
    self.machine = Machine(configuration: configuration, logger: logger)
    self.grpcClient = GRPCClient(
      transport: PluginTransport(PooledTransport(machine: self.machine, waitForReady: configuration.waitForReady))
    )
  }

  /// What happens to the instances from now on, as it happens. Each call returns a new
  /// sequence; subscribe before ``run()`` to see the first ``Event/ready(instance:pid:version:)``.
  /// The sequence ends once the pool has stopped.
  public func events() -> AsyncStream<Event> {
    self.machine.subscribe()
  }

  /// Waits until every instance has started and passed its first health check, so that a
  /// host can tell a pool that is online from one that failed to start.
  ///
  /// - Throws: the first start failure of an instance, naming the plugin (the pool then stops
  ///   what it started, and ``run()`` ends with that error), or ``PluginError/Code/unavailable``
  ///   if the pool was stopped first.
  public func ready() async throws(PluginError) {
    if let error = await self.machine.waitUntilReady() { throw error }
  }

  /// A typed client for the plugin registered as `name`, whose calls go to the least busy
  /// ready instance, whichever instances run by then. Waits until an instance is ready.
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/unavailable`` if the pool stopped or
  ///   gave up first, ``PluginError/Code/unknownPlugin`` or
  ///   ``PluginError/Code/pluginTypeMismatch`` as ``PluginClient/dispense(_:as:)``.
  public func dispense<Plugin: GRPCPlugin>(
    _ name: String,
    as type: Plugin.Type = Plugin.self
  ) async throws(PluginError) -> Plugin.Client {
    guard let lease = await self.machine.lease(waitingUpTo: nil, reserve: false) else {
      throw self.machine.unavailable()
    }
    let route = lease.route
    let pid = route.session.info.pid
    guard let plugin = route.session.plugins[name] else {
      throw route.client.error(.unknownPlugin, "unknown plugin type: \(name)", pid: pid)
    }
    guard let typed = plugin as? Plugin else {
      throw route.client.error(
        .pluginTypeMismatch, "plugin \"\(name)\" is a \(Swift.type(of: plugin)), not a \(Plugin.self)", pid: pid)
    }
    guard case .grpc(let wire) = route.session.wire else {
      throw route.client.error(.unsupportedProtocol, "a pool routes gRPC calls; this plugin serves net/rpc", pid: pid)
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

  /// Moves every instance to `client` (a new binary, or a new configuration), one instance at
  /// a time: the new instance is launched beside the old one and must start and pass its
  /// first health check before any call goes to it; then the old one drains and is stopped,
  /// and the next instance follows. The pool keeps serving throughout, with as many ready
  /// instances as before, so no call fails because of the swap.
  ///
  /// Swaps run one at a time; a second waits for the first. Cancelling the calling task does
  /// not interrupt a step under way.
  ///
  /// Waits until the pool is ready (``ready()``) before it begins.
  ///
  /// - Throws: ``PluginError`` with the new instance's start failure (naming the file) when
  ///   one fails: the swap stops there, the instances already swapped keep the new binary, and
  ///   those not yet swapped keep serving with the old one. ``PluginError/Code/unavailable`` if
  ///   the pool is not running or stops during the swap.
  public func swap(to client: PluginClientConfiguration) async throws(PluginError) {
    await self.swapGate.acquire()
    defer { self.swapGate.release() }
    try client.validate()
    // A swap replaces serving instances: it begins once the pool is online.
    try await self.ready()
    for slot in 0..<self.configuration.instances {
      if let error = await self.machine.swapStep(slot: slot, configuration: client) { throw error }
    }
  }

  /// Every instance as it is now: its place, process, state, calls in flight and binary.
  public var instances: [InstanceStatus] {
    self.machine.instances
  }

  /// Drains every instance (new calls fail with ``PluginError/Code/unavailable``; calls in
  /// flight may finish, up to ``Configuration/drainTimeout``), stops them, and ends ``run()``,
  /// without waiting.
  public func beginGracefulShutdown() {
    self.machine.stop()
  }

  /// Runs the instances, replacing those that crash or turn unhealthy, until
  /// ``beginGracefulShutdown()`` is called, the group it runs in shuts down gracefully, the
  /// pool gives up, or the task is cancelled (which kills every instance at once). Returns once
  /// every process it started has been stopped and reaped; at once if the pool was shut down
  /// before it ran. Call it once.
  ///
  /// - Throws: ``PluginError`` when the pool gave up: an initial instance failed to start, or
  ///   an instance passed its restart limit (``PluginError/Code/restartLimitReached``);
  ///   ``PluginError/Code/invalidConfiguration`` for a configuration that cannot work or a
  ///   second call.
  public func run() async throws {
    try self.configuration.validate()
    try self.configuration.client.validate()
    switch self.machine.start(self.configuration) {
    case .started:
      break
    case .stoppedBeforeStart:
      return
    case .ranBefore:
      throw PluginError(
        code: .invalidConfiguration, message: "a PluginPool runs once; make a new one to run the plugin again",
        pluginPath: self.machine.pluginPath)
    }
    await withGracefulShutdownHandler {
      await withTaskGroup(of: Void.self) { group in
        group.addTask {
          do {
            try await self.grpcClient.runConnections()
          } catch {
            self.logger.debug("pooled client ended", metadata: ["error": "\(error)"])
          }
        }
        // Ends once the pool has finished, or at once when the task is cancelled.
        for await member in self.machine.launches {
          group.addTask { await self.runMember(member) }
        }
        // Finished, or cancelled: then the members' tasks kill their processes, and nothing
        // is replaced.
        self.machine.stop()
        self.grpcClient.beginGracefulShutdown()
        await group.waitForAll()
      }
    } onGracefulShutdown: {
      self.beginGracefulShutdown()
    }
    if let failure = self.machine.failure { throw failure }
  }

  /// One member, from its restart delay to its reaping: ready once started and checked,
  /// watched for health, drained and stopped when retired.
  private func runMember(_ member: Member) async {
    if member.delay > .zero {
      // Woken early when the member is retired, which launching() then sees.
      _ = await member.retire.wait(timeout: member.delay)
    }
    guard !Task.isCancelled, self.machine.launching(member) else {
      self.machine.ended(member, exit: nil, startFailure: nil, cancelled: Task.isCancelled)
      return
    }
    let client = member.client
    let failure: PluginError? = await withTaskGroup(of: PluginError?.self) { lifetime in
      lifetime.addTask {
        do throws(PluginError) {
          try await client.run()
          return nil
        } catch {
          return error
        }
      }
      let checkFailure = await withTaskGroup(of: Void.self) { watchers -> PluginError? in
        watchers.addTask {
          guard await member.retire.wait() != nil else { return }
          if member.drained.current == nil, self.machine.isDraining(member) {
            _ = await member.drained.wait(timeout: self.configuration.drainTimeout)
          }
          self.machine.stopping(member)
          await client.kill()
        }
        var failure: PluginError?
        do throws(PluginError) {
          let session = try await client.session()
          try await self.firstCheck(client, session)
          if self.machine.ready(member, route: PluginSupervisor.Route(client: client, session: session)),
            let check = self.configuration.healthCheck
          {
            watchers.addTask {
              do throws(PluginError) {
                try await client.monitorHealth(check)
              } catch {
                // Drained and stopped by the retire watcher, as the machine decided.
                self.logger.warning("pool instance unhealthy; replacing it", metadata: ["error": "\(error)"])
                self.machine.unhealthy(member, error)
              }
            }
          }
        } catch {
          failure = error
          await client.kill()
        }
        _ = await client.exit
        watchers.cancelAll()
        return failure
      }
      var runFailure: PluginError?
      for await case let error? in lifetime { runFailure = error }
      // How the launch failed says more than what the check saw of it.
      return runFailure ?? checkFailure
    }
    self.machine.ended(member, exit: await client.exit, startFailure: failure, cancelled: Task.isCancelled)
  }

  /// What an instance must pass before it takes a call: it speaks gRPC, and it answers a
  /// health check.
  private func firstCheck(_ client: PluginClient, _ session: PluginClient.Session) async throws(PluginError) {
    let pid = session.info.pid
    guard case .grpc = session.wire else {
      throw client.error(.unsupportedProtocol, "a pool routes gRPC calls; this plugin serves net/rpc", pid: pid)
    }
    guard let check = self.configuration.healthCheck else { return }
    // As the periodic check does, one failure is not enough: a plugin still warming up on a
    // busy machine gets `failureThreshold` tries, a moment apart.
    var attempt = 1
    while true {
      do {
        try await client.ping(timeout: check.timeout)
        return
      } catch {
        guard attempt < check.failureThreshold, !client.hasExited, !Task.isCancelled else {
          throw PluginError(
            code: .unhealthy, message: "the first health check failed \(attempt) time(s); the last: \(error)",
            pluginPath: client.pluginPath, pid: pid, cause: error)
        }
      }
      attempt += 1
      do {
        try await Task.sleep(for: min(check.interval, .seconds(1)))
      } catch {
        throw client.error(.notRunning, "cancelled during the first health check", pid: pid)
      }
    }
  }
}
