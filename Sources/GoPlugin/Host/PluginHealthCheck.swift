import Logging

/// How often, and how patiently, a host checks that a running plugin is healthy.
///
/// A check is go-plugin's health call (`grpc.health.v1.Health/Check` for the service
/// `"plugin"`), but unlike go-plugin's `Ping` (go-plugin #341) an answer of NOT_SERVING counts
/// as a failure: a plugin that says it cannot serve is not healthy.
public struct PluginHealthCheck: Sendable, Hashable {
  /// The time between the end of one check and the start of the next.
  public var interval: Duration
  /// How long one check may take before it counts as failed.
  public var timeout: Duration
  /// How many checks in a row must fail before the plugin is reported unhealthy; one failed
  /// check may be a passing stall.
  public var failureThreshold: Int

  /// A check every `interval`, each given `timeout`, reported after `failureThreshold`
  /// failures in a row.
  public init(interval: Duration = .seconds(10), timeout: Duration = .seconds(5), failureThreshold: Int = 3) {
    self.interval = interval
    self.timeout = timeout
    self.failureThreshold = failureThreshold
  }
}

extension PluginClient {
  /// Checks the plugin's health periodically until it is found unhealthy, which this reports by
  /// throwing, or until the plugin ends or the calling task is cancelled, which end it
  /// normally. It does not stop the plugin: what to do about an unhealthy plugin is the
  /// caller's choice (a ``PluginSupervisor`` restarts it).
  ///
  /// Run it beside the client, in the same task group as ``run()``:
  ///
  /// ```swift
  /// group.addTask {
  ///   do { try await client.monitorHealth(PluginHealthCheck(interval: .seconds(5))) }
  ///   catch { logger.error("plugin unhealthy: \(error)"); await client.kill() }
  /// }
  /// ```
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/unhealthy`` once
  ///   ``PluginHealthCheck/failureThreshold`` checks in a row have failed (NOT_SERVING, an
  ///   error, or no answer within ``PluginHealthCheck/timeout``); its message says what the
  ///   last one saw. ``PluginError/Code/invalidConfiguration`` for a check that cannot work.
  public func monitorHealth(_ check: PluginHealthCheck) async throws(PluginError) {
    guard check.interval > .zero, check.timeout > .zero, check.failureThreshold > 0 else {
      throw self.error(.invalidConfiguration, "a health check needs a positive interval, timeout and failure threshold")
    }
    // A plugin that never starts is not unhealthy: its start failure is reported elsewhere.
    guard let session = try? await self.session() else { return }
    var failures = 0
    while true {
      do {
        try await Task.sleep(for: check.interval)
      } catch {
        return
      }
      guard self.isRunning else { return }
      do {
        try await self.ping(timeout: check.timeout)
        failures = 0
      } catch {
        // A failure because the plugin ended, or the caller gave up, says nothing about health.
        guard self.isRunning, !Task.isCancelled else { return }
        failures += 1
        self.logger.debug(
          "plugin health check failed", metadata: ["failures": "\(failures)", "error": "\(error)"])
        if failures >= check.failureThreshold {
          throw self.error(
            .unhealthy,
            "the plugin failed \(failures) health checks in a row; the last: \(error)",
            pid: session.info.pid
          )
        }
      }
    }
  }

  /// Started, not stopped or asked to stop.
  private var isRunning: Bool {
    !self.hasExited && !self.phase.stopRequested
  }
}
