extension PluginManager {
  /// How a manager notices that its directories changed.
  public enum Watching: Sendable, Hashable {
    /// inotify on Linux, polling every second elsewhere.
    case automatic
    /// inotify: a change is seen within milliseconds, and an idle directory costs nothing.
    /// Linux only; elsewhere ``PluginManager/run()`` fails with
    /// ``PluginError/Code/invalidConfiguration``.
    case inotify
    /// A rescan every `interval`: for file systems inotify does not see (network mounts,
    /// some container volumes) and for systems without it.
    case polling(Duration)

    /// What `automatic` means here.
    var resolved: Watching {
      guard case .automatic = self else { return self }
      #if os(Linux)
      return .inotify
      #else
      return .polling(.seconds(1))
      #endif
    }
  }

  /// What a manager watches, what it trusts, and how it runs each plugin.
  public struct Configuration: Sendable {
    /// The directories, glob and naming convention that say which files are plugins. A
    /// plugin's name (the file name, or what the naming convention makes of it) is its key:
    /// when two files give the same name, the first by path is used.
    public var discovery: PluginDiscovery
    /// Makes the configuration a plugin is launched with, from the file that was found: its
    /// command, handshake and plugin set. The manager then sets ``PluginClientConfiguration/trust``,
    /// ``PluginClientConfiguration/trustedName`` and (without a trust) ``PluginClientConfiguration/checksum``,
    /// so that the process runs exactly the file the manager checked and reports.
    public var client: @Sendable (DiscoveredPlugin) -> PluginClientConfiguration
    /// What a file must pass before it is run; `nil` runs every executable found. A file that
    /// fails is ``PluginState/refused(_:)`` and never started. Plugins are looked up in the
    /// lock file by their name.
    public var trust: PluginTrust?
    /// How many processes of each plugin run behind its client (see ``PluginPool``).
    public var instances = 1
    /// The health check each instance must pass before it takes calls, and keeps passing.
    public var healthCheck: PluginHealthCheck? = PluginHealthCheck()
    /// How long calls in flight on an instance being taken offline or swapped out may take.
    public var drainTimeout: Duration = .seconds(30)
    /// How the directories are watched.
    public var watch = Watching.automatic
    /// How a pool replaces an instance that crashed or turned unhealthy.
    public var restart = PluginSupervisor.RestartPolicy()

    /// A manager that launches each plugin with the configuration `client` makes for it.
    public init(
      discovery: PluginDiscovery, client: @escaping @Sendable (DiscoveredPlugin) -> PluginClientConfiguration
    ) {
      self.discovery = discovery
      self.client = client
    }

    /// A manager that launches every plugin as `template` says, with the plugin's file as the
    /// executable (the template's arguments and environment are kept).
    public init(discovery: PluginDiscovery, template: PluginClientConfiguration) {
      self.init(discovery: discovery) { plugin in
        var configuration = template
        configuration.command.executable = plugin.path
        return configuration
      }
    }

    func validate() throws(PluginError) {
      func invalid(_ message: String) -> PluginError { PluginError(code: .invalidConfiguration, message: message) }
      if self.discovery.directories.isEmpty { throw invalid("a plugin manager needs at least one directory to watch") }
      if self.instances < 1 { throw invalid("a plugin manager runs at least one instance of each plugin") }
      if self.drainTimeout < .zero { throw invalid("the drain timeout cannot be negative") }
      if case .polling(let interval) = self.watch, interval <= .zero {
        throw invalid("the polling interval must be positive")
      }
      try self.restart.validate()
    }
  }

  /// Why a plugin is offline.
  public enum OfflineReason: Sendable, Hashable, CustomStringConvertible {
    /// Its file is gone from the directories.
    case removed
    /// The host disabled it (``PluginManager/disable(_:)``).
    case disabled
    /// The manager is stopping.
    case stopped
    /// It failed to start or to pass its first health check, or its instances kept failing
    /// until the pool gave up.
    case failed(PluginError)

    public var description: String {
      switch self {
      case .removed: "removed"
      case .disabled: "disabled"
      case .stopped: "stopped"
      case .failed(let error): "failed: \(error.message)"
      }
    }
  }

  /// Where a plugin is in its life. One value per plugin name, changed only by the manager.
  public enum PluginState: Sendable, Hashable, CustomStringConvertible {
    /// Being checked and launched; not taking calls yet.
    case starting
    /// Taking calls. `pid` is its first instance's process; `digest` the SHA-256 of the file
    /// that runs.
    case online(pid: Int32, digest: PluginChecksum)
    /// Taking calls on the version that runs (`pid`) while the new file (`to`) is started;
    /// calls move to it once it is healthy.
    case swapping(pid: Int32, from: PluginChecksum, to: PluginChecksum)
    /// Taking no new calls: the calls in flight finish, then it stops.
    case draining
    /// Not running, with why.
    case offline(OfflineReason)
    /// Disabled by the host while its file was not there, or after it went offline.
    case disabled
    /// Its file did not pass the manager's ``Configuration/trust``; it was never started.
    case refused(PluginError)

    /// Whether calls go to the plugin.
    public var isServing: Bool {
      switch self {
      case .online, .swapping: true
      default: false
      }
    }

    public var description: String {
      switch self {
      case .starting: "starting"
      case .online(let pid, let digest): "online(pid: \(pid), \(digest))"
      case .swapping(let pid, let from, let to): "swapping(pid: \(pid), \(from) → \(to))"
      case .draining: "draining"
      case .offline(let reason): "offline(\(reason))"
      case .disabled: "disabled"
      case .refused(let error): "refused(\(error.message))"
      }
    }
  }

  /// A plugin the manager knows, as it is now.
  public struct PluginStatus: Sendable, Hashable {
    /// Its name: the key of ``PluginManager/plugins`` and of ``PluginManager/dispense(plugin:_:as:)``.
    public var name: String
    /// The file it was last found at.
    public var path: String
    public var state: PluginState
  }

  /// A change in the plugins' lives, in the order they happen.
  public enum Event: Sendable, Hashable, CustomStringConvertible {
    /// The plugin started, passed its health check and takes calls.
    case online(name: String, pid: Int32, digest: PluginChecksum)
    /// The plugin stopped taking calls (removed, disabled, stopped) or could not be started.
    /// When it was running, its processes are gone by now.
    case offline(name: String, reason: OfflineReason)
    /// The plugin will be stopped: from now on it takes no new calls, and the calls in flight
    /// may finish. Callers that check ``PluginManager/plugins`` stop calling it here.
    case draining(name: String, reason: OfflineReason)
    /// One instance of the plugin was swapped for one running the new file: `newPID` took
    /// over, `oldPID` drained and stopped.
    case swapped(name: String, oldPID: Int32, newPID: Int32)
    /// A new file for a running plugin could not be started or failed its health check; the
    /// old version, at `pid`, keeps serving.
    case upgradeFailed(name: String, pid: Int32, error: PluginError)
    /// An instance that crashed or turned unhealthy was replaced by the process `pid`.
    case restarted(name: String, pid: Int32)
    /// The health check found the instance `pid` unhealthy; it is being replaced.
    case unhealthy(name: String, pid: Int32, error: PluginError)
    /// The plugin's file did not pass the trust check; it was not started. A running plugin
    /// whose new file is refused keeps running its old file.
    case refused(name: String, error: PluginError)

    /// The plugin the event is about.
    public var name: String {
      switch self {
      case .online(let name, _, _), .offline(let name, _), .draining(let name, _), .swapped(let name, _, _),
        .upgradeFailed(let name, _, _), .restarted(let name, _), .unhealthy(let name, _, _), .refused(let name, _):
        name
      }
    }

    public var description: String {
      switch self {
      case .online(let name, let pid, let digest): "\(name): online(pid: \(pid), \(digest))"
      case .offline(let name, let reason): "\(name): offline(\(reason))"
      case .draining(let name, let reason): "\(name): draining(\(reason))"
      case .swapped(let name, let oldPID, let newPID): "\(name): swapped(\(oldPID) → \(newPID))"
      case .upgradeFailed(let name, let pid, let error): "\(name): upgradeFailed(pid \(pid) serves on: \(error))"
      case .restarted(let name, let pid): "\(name): restarted(pid: \(pid))"
      case .unhealthy(let name, let pid, let error): "\(name): unhealthy(pid: \(pid), \(error))"
      case .refused(let name, let error): "\(name): refused(\(error))"
      }
    }
  }
}

/// What identifies one version of a file without reading it. A changed identity may be a
/// changed content; only then is the file hashed again.
struct FileIdentity: Sendable, Hashable {
  var device: UInt64
  var inode: UInt64
  var size: Int64
  var modifiedSeconds: Int64
  var modifiedNanoseconds: Int64
}
