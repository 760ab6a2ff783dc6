extension PluginPool {
  /// What a pool runs, how many of it, and how it looks after them.
  public struct Configuration: Sendable {
    /// The plugin every instance runs, until a ``PluginPool/swap(to:)`` replaces it; its
    /// ``PluginClientConfiguration/startTimeout`` bounds each instance's start.
    public var client: PluginClientConfiguration
    /// How many instances serve at once; at least one.
    public var instances: Int = 1
    /// How to find out that an instance is sick. An instance takes calls only once it has
    /// answered one check, and is replaced when it turns unhealthy. `nil`: an instance is
    /// ready as soon as it has started, and only an exit counts.
    public var healthCheck: PluginHealthCheck? = PluginHealthCheck()
    /// When to replace a crashed or unhealthy instance; counted per instance. An instance
    /// whose replacements pass the limit makes the pool give up (``Event/failed(_:)``).
    public var restart = PluginSupervisor.RestartPolicy()
    /// How long the calls in flight on an instance being taken out (by a swap, a shutdown)
    /// may take before it is stopped anyway, failing them.
    public var drainTimeout: Duration = .seconds(30)
    /// What a call does while no instance is ready: `nil` (the default) fails it at once with
    /// ``PluginError/Code/unavailable``; a duration waits up to that long for an instance.
    public var waitForReady: Duration?

    /// A pool of one instance of the plugin `client` launches; set ``instances`` for more.
    public init(client: PluginClientConfiguration) {
      self.client = client
    }

    func validate() throws(PluginError) {
      try self.restart.validate()
      func invalid(_ message: String) -> PluginError {
        PluginError(code: .invalidConfiguration, message: message, pluginPath: self.client.command.executable)
      }
      if self.client.reattach != nil { throw invalid("a pool launches its instances; it cannot reattach to one") }
      if self.instances < 1 { throw invalid("a pool needs at least one instance, not \(self.instances)") }
      if self.drainTimeout < .zero { throw invalid("the drain timeout cannot be negative") }
      if let check = self.healthCheck, check.interval <= .zero || check.timeout <= .zero || check.failureThreshold < 1 {
        throw invalid("a health check needs a positive interval, timeout and failure threshold")
      }
    }
  }

  /// A change in the life of a pool's instances, in the order they happen. `instance` is the
  /// instance's place in the pool, `0..<instances`, which its replacements and its successor
  /// in a swap keep.
  public enum Event: Sendable, Hashable, CustomStringConvertible {
    /// An instance started and passed its first health check; calls go to it from now on.
    case ready(instance: Int, pid: Int32, version: Int)
    /// An instance failed to start or failed its first health check; it never took a call.
    case startFailed(instance: Int, PluginError)
    /// The health check found a ready instance unhealthy: it takes no new call, drains and is
    /// stopped, while its replacement starts.
    case unhealthy(instance: Int, pid: Int32, PluginError)
    /// A ready instance exited without being asked to: it crashed. It is replaced.
    case exited(instance: Int, pid: Int32, PluginExit)
    /// A crashed or unhealthy instance's replacement is ready.
    case replaced(instance: Int, oldPID: Int32, newPID: Int32)
    /// One step of a rolling swap is done: the new instance is ready and the old one drained
    /// and stopped.
    case swapped(instance: Int, oldPID: Int32, newPID: Int32)
    /// A rolling swap stopped at a new instance that failed; the instances not yet swapped
    /// keep serving.
    case swapFailed(PluginError)
    /// An instance the pool took out (a swap, an unhealthy instance, a shutdown) has stopped.
    case stopped(instance: Int, pid: Int32, PluginExit)
    /// The pool gave up: an initial instance failed to start, or an instance passed its
    /// restart limit. Every instance is stopped; the last event but the stops.
    case failed(PluginError)

    public var description: String {
      switch self {
      case .ready(let instance, let pid, let version): "ready(instance: \(instance), pid: \(pid), version: \(version))"
      case .startFailed(let instance, let error): "startFailed(instance: \(instance), \(error))"
      case .unhealthy(let instance, let pid, let error): "unhealthy(instance: \(instance), pid: \(pid), \(error))"
      case .exited(let instance, let pid, let exit): "exited(instance: \(instance), pid: \(pid), \(exit))"
      case .replaced(let instance, let old, let new): "replaced(instance: \(instance), oldPID: \(old), newPID: \(new))"
      case .swapped(let instance, let old, let new): "swapped(instance: \(instance), oldPID: \(old), newPID: \(new))"
      case .swapFailed(let error): "swapFailed(\(error))"
      case .stopped(let instance, let pid, let exit): "stopped(instance: \(instance), pid: \(pid), \(exit))"
      case .failed(let error): "failed(\(error))"
      }
    }
  }

  /// One plugin process of a pool, as it was when ``PluginPool/instances`` was read. During a
  /// swap an instance's place has two: the old one draining, the new one starting or ready.
  public struct InstanceStatus: Sendable, Hashable {
    /// Where an instance is in its life.
    public enum State: Sendable, Hashable {
      /// A replacement waiting out its restart delay; no process yet.
      case scheduled
      /// Launched; not yet through its start and first health check.
      case starting
      /// Takes calls.
      case ready
      /// Takes no new calls; stopped once those in flight have finished.
      case draining
      /// Being stopped.
      case stopping
    }

    /// The instance's place in the pool, `0..<instances`.
    public var instance: Int
    /// Its process, once it has started.
    public var pid: Int32?
    /// Whether it takes calls, or is on its way in or out.
    public var state: State
    /// The calls in flight on it.
    public var outstandingCalls: Int
    /// The executable it runs.
    public var path: String
  }
}
