public import Logging
public import ServiceLifecycle

/// Keeps a directory of plugins running: it watches the directories, starts each plugin it
/// finds and trusts, swaps a running plugin for its new file without failing a call, and
/// takes plugins offline when their files go or the host disables them.
///
/// ```swift
/// var configuration = PluginManager.Configuration(
///   discovery: PluginDiscovery(directories: ["/usr/lib/myapp/plugins"]),
///   template: PluginClientConfiguration(command: PluginCommand(""), handshake: .kv, plugins: ["kv": KVPlugin()])
/// )
/// configuration.trust = PluginTrust(lockFile: try PluginLockFile(path: "/etc/myapp/plugins.lock", policy: .refuse))
/// let manager = PluginManager(configuration: configuration)
/// try await withThrowingTaskGroup(of: Void.self) { group in
///   group.addTask { try await manager.run() }
///   for await event in manager.events() {
///     if case .online(let name, _, _) = event {
///       let kv = try await manager.dispense(plugin: name, "kv", as: KVPlugin.self)
///       try await kv.put("hello", value: [1])
///     }
///   }
/// }
/// ```
///
/// Each plugin is one ``PluginPool`` of ``Configuration/instances`` processes, and goes through
/// the ``PluginState``s:
///
/// - a new file that passes the ``Configuration/trust`` is started (``PluginState/starting``);
///   once every instance has passed its first health check it is ``PluginState/online``. A
///   file that is refused is ``PluginState/refused(_:)`` and never runs; one that does not
///   start is ``PluginState/offline(_:)`` with the reason;
/// - a file replaced by one with another digest is swapped in (``PluginState/swapping``): the
///   new file must start and pass its health check before a call goes to it, then the old
///   process is drained and stopped, so no call fails. If the new file does not start, the
///   old one keeps serving (``Event/upgradeFailed(name:pid:error:)``);
/// - a file removed, or a plugin the host ``disable(_:)``s, is drained (``Event/draining(name:reason:)``:
///   no new calls, the calls in flight finish) and stopped.
///
/// Files are hashed only when their identity (device, inode, size, modification time)
/// changes; an untouched directory costs a listing per change elsewhere in it. Replace a
/// plugin by writing the new file beside it under a name starting with a dot and renaming it
/// into place: a half-written file is never started, and a running executable is never
/// written to (which Linux refuses with ETXTBSY anyway).
///
/// It is a `Service`: a graceful shutdown drains and stops every plugin, then ``run()``
/// returns; cancelling ``run()`` kills them at once. Either way no process is left behind.
public final class PluginManager: Service, Sendable {
  /// What the manager watches and how it runs plugins.
  public let configuration: Configuration
  let logger: Logger
  let registry = Registry()

  /// - Parameters:
  ///   - logger: given to each plugin's pool, and for the manager's own events.
  public init(configuration: Configuration, logger: Logger = Logger(label: "plugin")) {
    self.configuration = configuration
    self.logger = logger
  }

  /// Every plugin the manager has seen, by name, with its state now.
  public var plugins: [String: PluginStatus] {
    self.registry.statuses
  }

  /// The plugin `name` as it is now; `nil` if the manager has not seen it. Cheaper than
  /// ``plugins`` for a caller that asks before every call.
  public func status(_ name: String) -> PluginStatus? {
    self.registry.status(name)
  }

  /// What happens to the plugins from now on. Each call returns a new sequence; subscribe
  /// before ``run()`` to see every event. The sequence ends when the manager has stopped.
  public func events() -> AsyncStream<Event> {
    self.registry.subscribe()
  }

  /// A typed client for the plugin type `name` that the managed plugin `plugin` serves, whose
  /// calls go to the plugin's instance with the fewest calls in flight, and across swaps to
  /// whichever file runs. Waits while the plugin is starting.
  ///
  /// A plugin taken offline and brought back (removed and added again, disabled and enabled)
  /// is a new pool: dispense again.
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/unavailable`` when the plugin is not
  ///   running, or as ``PluginPool/dispense(_:as:)``.
  public func dispense<Plugin: GRPCPlugin>(
    plugin: String, _ name: String, as type: Plugin.Type = Plugin.self
  ) async throws(PluginError) -> Plugin.Client {
    guard let running = self.registry.running(plugin) else { throw self.registry.unavailable(plugin) }
    return try await running.pool.dispense(name, as: type)
  }

  /// Takes the plugin `name` offline (drained, then stopped) and keeps it offline until
  /// ``enable(_:)``, whatever happens to its file. A name not seen yet is disabled when it
  /// appears.
  public func disable(_ name: String) {
    self.registry.setDisabled(name, true)
  }

  /// Lets the plugin `name` run again: a disabled plugin is started, and one that failed to
  /// start or was refused is tried again (after, say, the host recorded its new digest in the
  /// lock file).
  public func enable(_ name: String) {
    self.registry.setDisabled(name, false)
  }

  /// Scans the directories now, as a change would: for a host that knows better than the
  /// watcher (a file system inotify does not see).
  public func rescan() {
    self.registry.requestRescan()
  }

  /// Drains and stops every plugin, then ends ``run()``, without waiting.
  public func beginGracefulShutdown() {
    self.registry.stop()
  }

  /// Watches the directories and runs their plugins until ``beginGracefulShutdown()`` is
  /// called, the group it runs in shuts down gracefully, or the task is cancelled. Call it once.
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/invalidConfiguration`` for a
  ///   configuration that cannot work, a second call, or inotify asked for where there is none.
  public func run() async throws {
    do throws(PluginError) {
      try self.configuration.validate()
    } catch {
      // A configuration that cannot work never will: nobody waits for events from it.
      self.registry.finish()
      throw error
    }
    let (rescans, rescan) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    guard self.registry.claim(rescan: rescan) else {
      throw PluginError(
        code: .invalidConfiguration, message: "a PluginManager runs once; make a new one to manage again")
    }
    rescan.yield()
    let watchFailure = OneShot<PluginError>()
    await withGracefulShutdownHandler {
      await withTaskGroup(of: Void.self) { watching in
        watching.addTask {
          do throws(PluginError) {
            try await DirectoryWatcher.run(
              directories: self.configuration.discovery.directories, mode: self.configuration.watch
            ) { rescan.yield() }
          } catch {
            watchFailure.fulfil(error)
            self.beginGracefulShutdown()
          }
        }
        await withTaskGroup(of: Void.self) { workers in
          for await _ in rescans {
            guard !self.registry.isStopping else { break }
            for (name, commands) in self.registry.reconcile(self.scan()) {
              workers.addTask { await self.work(name, commands: commands) }
            }
          }
          self.registry.finishWorkers()
          await workers.waitForAll()
        }
        watching.cancelAll()
      }
    } onGracefulShutdown: {
      self.beginGracefulShutdown()
    }
    self.registry.finish()
    if let failure = watchFailure.current { throw failure }
  }

  /// The plugin files now, each with its identity; a file gone between the listing and the
  /// look at it counts as gone.
  private func scan() -> [(plugin: DiscoveredPlugin, identity: FileIdentity)] {
    let result = self.configuration.discovery.scan()
    for issue in result.issues {
      self.logger.debug("not a plugin", metadata: ["path": "\(issue.path)", "reason": "\(issue.reason)"])
    }
    return result.plugins.compactMap { plugin in FileIdentity(path: plugin.path).map { (plugin, $0) } }
  }

  // MARK: - One plugin's worker

  /// Runs one plugin for as long as the manager runs: does what each command asks, one at a
  /// time, and takes the plugin offline when the commands end.
  private func work(_ name: String, commands: AsyncStream<Command>) async {
    await withTaskGroup(of: Void.self) { pools in
      for await command in commands {
        switch command {
        case .run(let plugin): await self.bringOnline(name, plugin, pools: &pools)
        case .stop(let reason): await self.takeOffline(name, reason: reason)
        }
      }
      await self.takeOffline(name, reason: .stopped)
    }
  }

  /// Starts the plugin from `plugin`'s file, or swaps the running plugin to it when its digest
  /// differs.
  private func bringOnline(_ name: String, _ plugin: DiscoveredPlugin, pools: inout TaskGroup<Void>) async {
    let digest: PluginChecksum
    let trust = self.configuration.trust
    // Reading a binary of many MiB is work for a thread of its own, not for one of the few
    // that run every task.
    let checked = await DedicatedThread.run { () -> Result<PluginChecksum, PluginError> in
      do throws(PluginError) {
        if let trust { return .success(try trust.check(path: plugin.path, name: name).sha256) }
        return .success(try PluginChecksum(ofFile: plugin.path))
      } catch {
        return .failure(error)
      }
    }
    do throws(PluginError) {
      digest = try checked.get()
    } catch {
      var error = error
      error.pluginPath = error.pluginPath ?? plugin.path
      self.logger.warning("plugin not started", metadata: ["plugin": "\(name)", "error": "\(error)"])
      self.registry.notStarted(name, error: error)
      return
    }
    let client = self.clientConfiguration(plugin, digest: digest)

    if let running = self.registry.running(name) {
      guard !running.digest.matches(digest) else { return }
      let before = Self.pids(running.pool)
      self.registry.swapping(name, to: digest)
      do throws(PluginError) {
        try await running.pool.swap(to: client)
        let after = Self.pids(running.pool)
        let pairs = before.keys.sorted().compactMap { instance -> (Int32, Int32)? in
          guard let old = before[instance], let new = after[instance], old != new else { return nil }
          return (old, new)
        }
        self.registry.swapped(
          name, pool: running.pool, digest: digest, pid: Self.firstPID(running.pool), pids: pairs)
      } catch {
        self.logger.warning("plugin upgrade failed", metadata: ["plugin": "\(name)", "error": "\(error)"])
        self.registry.swapFailed(name, pool: running.pool, pid: Self.firstPID(running.pool), error: error)
      }
      return
    }

    var configuration = PluginPool.Configuration(client: client)
    configuration.instances = self.configuration.instances
    configuration.healthCheck = self.configuration.healthCheck
    configuration.drainTimeout = self.configuration.drainTimeout
    configuration.restart = self.configuration.restart
    var logger = self.logger
    logger[metadataKey: "plugin"] = "\(name)"
    let pool = PluginPool(configuration: configuration, logger: logger)
    let running = Running(pool: pool, digest: digest, ended: OneShot())
    self.registry.starting(name, running)
    let events = pool.events()
    pools.addTask { await self.forward(events, of: pool, name: name) }
    pools.addTask {
      var failure: PluginError?
      do {
        try await pool.run()
      } catch {
        failure =
          (error as? PluginError)
          ?? PluginError(code: .notRunning, message: "plugin \(name)'s pool failed: \(error)", pluginPath: plugin.path)
      }
      running.ended.fulfil(failure)
      self.registry.poolEnded(name, pool: pool, error: failure)
    }
    do throws(PluginError) {
      try await pool.ready()
      self.registry.online(name, pool: pool, pid: Self.firstPID(pool))
    } catch {
      self.logger.warning("plugin failed to start", metadata: ["plugin": "\(name)", "error": "\(error)"])
      pool.beginGracefulShutdown()
      _ = await running.ended.valueIgnoringCancellation()
      self.registry.failedToStart(name, pool: pool, error: error)
    }
  }

  /// Drains and stops the plugin's pool, if it runs, and records why it is offline.
  private func takeOffline(_ name: String, reason: OfflineReason) async {
    guard let running = self.registry.beginDrain(name, reason: reason) else { return }
    running.pool.beginGracefulShutdown()
    _ = await running.ended.valueIgnoringCancellation()
    self.registry.drained(name, pool: running.pool, reason: reason)
  }

  /// Passes on what the pool says about its instances while the pool is the plugin's.
  private func forward(_ events: AsyncStream<PluginPool.Event>, of pool: PluginPool, name: String) async {
    for await event in events {
      switch event {
      case .replaced(_, _, let newPID):
        self.registry.restarted(name, pool: pool, pid: newPID, firstPID: Self.firstPID(pool))
      case .unhealthy(_, let pid, let error):
        self.registry.publish(.unhealthy(name: name, pid: pid, error: error), from: pool)
      default:
        break
      }
    }
  }

  /// The configuration a plugin's instances are launched with: the host's, checked against
  /// the trust (or the digest the manager computed) through the descriptor that is executed.
  private func clientConfiguration(_ plugin: DiscoveredPlugin, digest: PluginChecksum) -> PluginClientConfiguration {
    var client = self.configuration.client(plugin)
    if let trust = self.configuration.trust {
      client.trust = trust
      client.trustedName = plugin.name
    } else if client.checksum == nil {
      client.checksum = digest
    }
    return client
  }

  private static func pids(_ pool: PluginPool) -> [Int: Int32] {
    var pids: [Int: Int32] = [:]
    for status in pool.instances where status.state == .ready {
      if let pid = status.pid { pids[status.instance] = pid }
    }
    return pids
  }

  private static func firstPID(_ pool: PluginPool) -> Int32 {
    let pids = Self.pids(pool)
    return pids.keys.min().flatMap { pids[$0] } ?? 0
  }
}
