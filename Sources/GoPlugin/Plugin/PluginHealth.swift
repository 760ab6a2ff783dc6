import Synchronization

/// The serving status a plugin reports through `grpc.health.v1.Health`, set by the plugin's own
/// code while it runs.
///
/// A plugin that is not ready yet (warming a cache), or is draining, says so here; a host's
/// periodic health check (``PluginClient/monitorHealth(_:)``) reports it `unhealthy`, and a
/// ``PluginSupervisor`` restarts it. go-plugin's own `Ping` only asks whether the health call
/// succeeds and ignores the status (go-plugin #341); this library's hosts do not.
///
/// Create one, keep it, and hand it to the server through ``PluginServeConfiguration/health``:
///
/// ```swift
/// let health = PluginHealth()
/// var configuration = PluginServeConfiguration(handshake: .kv, plugins: ["kv": KVPlugin(serving: store)])
/// configuration.health = health
/// // later, from the plugin's own code:
/// health.setStatus(.notServing)                                  // the plugin as a whole
/// health.setStatus(.notServing, forService: "kvbench.KV")        // one gRPC service
/// ```
///
/// The plugin as a whole is the service `"plugin"`, which is what go-plugin hosts ask about; the
/// empty name (the server, in gRPC's convention) reads the same entry. Every gRPC service a
/// plugin registers starts SERVING. Once the server begins to stop, every name answers
/// NOT_SERVING, whatever was set.
public final class PluginHealth: Sendable {
  /// What `Check` and `Watch` answer for a service.
  public enum Status: Sendable, Hashable {
    case serving
    case notServing
  }

  /// The name go-plugin hosts check: the plugin as a whole.
  public static let pluginService = "plugin"

  private struct State {
    var statuses: [String: Status]
    var watchers: [Int: AsyncStream<Void>.Continuation] = [:]
    var nextWatcher = 0
  }

  private let state: Mutex<State>

  /// A status holder whose plugin as a whole starts as `status`: `.notServing` for a plugin
  /// that has work to do before it can take calls.
  public init(status: Status = .serving) {
    self.state = Mutex(State(statuses: [Self.pluginService: status]))
  }

  /// Sets the status of the plugin as a whole.
  public func setStatus(_ status: Status) {
    self.setStatus(status, forService: Self.pluginService)
  }

  /// Sets the status of one service, by its fully qualified gRPC name (`"kvbench.KV"`), or of
  /// any name the plugin wants hosts to be able to check.
  public func setStatus(_ status: Status, forService service: String) {
    let name = Self.canonical(service)
    let watchers = self.state.withLock { state -> [AsyncStream<Void>.Continuation] in
      guard state.statuses[name] != status else { return [] }
      state.statuses[name] = status
      return Array(state.watchers.values)
    }
    for watcher in watchers { watcher.yield() }
  }

  /// The status set for `service`, or `nil` for a name the plugin does not know.
  public func status(ofService service: String = PluginHealth.pluginService) -> Status? {
    self.state.withLock { $0.statuses[Self.canonical(service)] }
  }

  /// The names a host can ask about, `""` included.
  var knownServices: [String] {
    self.state.withLock { [""] + $0.statuses.keys.sorted() }
  }

  /// Services the plugin serves start SERVING, unless the plugin set them already.
  func register(services: some Sequence<String>) {
    self.state.withLock { state in
      for name in services where state.statuses[name] == nil { state.statuses[name] = .serving }
    }
  }

  /// A sequence that yields whenever any status changes; for `Watch`.
  func changes() -> AsyncStream<Void> {
    let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    let id = self.state.withLock { state in
      defer { state.nextWatcher += 1 }
      state.watchers[state.nextWatcher] = continuation
      return state.nextWatcher
    }
    continuation.onTermination = { [weak self] _ in
      _ = self?.state.withLock { $0.watchers.removeValue(forKey: id) }
    }
    return stream
  }

  private static func canonical(_ service: String) -> String {
    service.isEmpty ? Self.pluginService : service
  }
}
