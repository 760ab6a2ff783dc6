extension PluginSupervisor {
  /// When and how often a supervisor restarts its plugin.
  ///
  /// The n-th restart within ``window`` waits `initialDelay × multiplierⁿ⁻¹`, at most
  /// ``maximumDelay``, spread by ``jitter`` so that plugins that crashed together do not
  /// restart together. Once ``maximumRestarts`` restarts have happened within ``window``, the
  /// supervisor gives up (``Event/failed(_:)``).
  public struct RestartPolicy: Sendable, Hashable {
    /// The wait before the first restart.
    public var initialDelay: Duration
    /// The longest wait before a restart.
    public var maximumDelay: Duration
    /// How much longer each further wait within the window is.
    public var multiplier: Double
    /// The share of a wait, at most, by which it is made randomly shorter or longer (0.2: ±20 %).
    public var jitter: Double
    /// The most restarts within ``window``; one more exit and the supervisor gives up.
    public var maximumRestarts: Int
    /// How far back restarts count towards ``maximumRestarts`` and the growth of the delay.
    public var window: Duration

    /// A policy; the defaults restart within about a second and give up on a plugin that needs
    /// more than five restarts in a minute.
    public init(
      initialDelay: Duration = .milliseconds(200),
      maximumDelay: Duration = .seconds(30),
      multiplier: Double = 2,
      jitter: Double = 0.2,
      maximumRestarts: Int = 5,
      window: Duration = .seconds(60)
    ) {
      self.initialDelay = initialDelay
      self.maximumDelay = maximumDelay
      self.multiplier = multiplier
      self.jitter = jitter
      self.maximumRestarts = maximumRestarts
      self.window = window
    }

    /// The wait before a restart that follows `earlier` restarts within the window.
    func delay(afterRestarts earlier: Int) -> Duration {
      var delay = self.initialDelay
      for _ in 0..<earlier where delay < self.maximumDelay {
        delay = delay * self.multiplier
      }
      delay = min(delay, self.maximumDelay)
      guard self.jitter > 0 else { return delay }
      let spread = Double.random(in: -self.jitter...self.jitter)
      return max(.zero, min(delay + delay * spread, self.maximumDelay))
    }

    func validate() throws(PluginError) {
      func invalid(_ message: String) -> PluginError { PluginError(code: .invalidConfiguration, message: message) }
      if self.initialDelay < .zero || self.maximumDelay < self.initialDelay {
        throw invalid("the restart delays must satisfy 0 ≤ initial delay ≤ maximum delay")
      }
      if !(self.multiplier >= 1) { throw invalid("the restart delay multiplier must be at least 1") }
      if !(0...1).contains(self.jitter) { throw invalid("the restart jitter must lie within 0...1") }
      if self.maximumRestarts < 0 { throw invalid("the restart limit cannot be negative") }
      if self.window <= .zero { throw invalid("the restart window must be positive") }
    }
  }

  /// The restarts that count towards a ``RestartPolicy``: a supervisor keeps one for its plugin,
  /// a pool one per instance.
  struct RestartHistory: Sendable {
    /// When the restarts within the window happened, oldest first.
    private var restarts: [ContinuousClock.Instant] = []

    /// Records a restart now, and says how long to wait before it; `nil` when the policy's
    /// limit within its window has been reached.
    mutating func schedule(_ policy: RestartPolicy) -> (delay: Duration?, restarts: Int) {
      let now = ContinuousClock.now
      self.restarts.removeAll { now - $0 >= policy.window }
      let earlier = self.restarts.count
      guard earlier < policy.maximumRestarts else { return (nil, earlier) }
      self.restarts.append(now)
      return (policy.delay(afterRestarts: earlier), earlier + 1)
    }
  }

  /// What a supervisor runs and how it looks after it.
  public struct Configuration: Sendable {
    /// The plugin; each start launches it afresh with this configuration.
    public var client: PluginClientConfiguration
    /// When to restart it.
    public var restart = RestartPolicy()
    /// How to find out that a running plugin is sick; an unhealthy plugin is stopped and
    /// restarted. `nil`: only an exit counts.
    public var healthCheck: PluginHealthCheck? = PluginHealthCheck()
    /// What a call through a supervised client does while the plugin is down: `nil` (the
    /// default) fails it at once with ``PluginError/Code/unavailable``; a duration waits up to
    /// that long for the plugin to be ready again, then fails it the same way.
    public var waitForReady: Duration?

    /// Supervises the plugin that `client` launches.
    public init(client: PluginClientConfiguration) {
      self.client = client
    }
  }

  /// A change in a supervised plugin's life, in the order they happen.
  public enum Event: Sendable, Hashable, CustomStringConvertible {
    /// A plugin process is being launched.
    case starting
    /// The plugin has started and takes calls.
    case ready(pid: Int32, version: Int)
    /// The health check found the plugin unhealthy; it is being stopped, to be restarted.
    case unhealthy(PluginError)
    /// The plugin process ended, with the last lines it wrote to stderr. Also the last event
    /// when the supervisor is stopped (``PluginExit/Reason/stopped``).
    case exited(PluginExit, standardError: [String])
    /// The plugin is restarted once `after` has passed.
    case restarting(after: Duration)
    /// The supervisor gave up: the last event.
    case failed(PluginError)

    public var description: String {
      switch self {
      case .starting: "starting"
      case .ready(let pid, let version): "ready(pid: \(pid), version: \(version))"
      case .unhealthy(let error): "unhealthy(\(error))"
      case .exited(let exit, _): "exited(\(exit))"
      case .restarting(let delay): "restarting(after: \(delay))"
      case .failed(let error): "failed(\(error))"
      }
    }
  }
}
