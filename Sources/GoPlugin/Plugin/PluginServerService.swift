public import ServiceLifecycle

/// A plugin server as one service of a `ServiceGroup`, for a plugin process that runs other
/// services beside it (a metrics endpoint, a background job).
///
/// It serves as ``PluginServer/run(_:environment:onListening:)`` does, and never exits the
/// process: ``run()`` returns when the host asks the plugin to shut down, and stops the server
/// gracefully (calls in flight get ``PluginServeConfiguration/shutdownGracePeriod``) when the
/// group shuts down gracefully. Failures are thrown to the group.
///
/// ```swift
/// let group = ServiceGroup(
///   configuration: .init(
///     services: [
///       .init(service: PluginServerService(configuration), successTerminationBehavior: .gracefullyShutdownGroup),
///       .init(service: metrics),
///     ],
///     logger: logger
///   )
/// )
/// try await group.run()
/// ```
///
/// A host's Shutdown ends ``run()`` normally; give the service the success termination
/// behaviour `.gracefullyShutdownGroup` so that the rest of the process follows.
public struct PluginServerService: Service {
  /// What the server serves.
  public var configuration: PluginServeConfiguration
  private let environment: [String: String]?
  private let onListening: (@Sendable (HandshakeLine) -> Void)?

  /// A service serving `configuration`; `environment` and `onListening` as for
  /// ``PluginServer/run(_:environment:onListening:)``.
  public init(
    _ configuration: PluginServeConfiguration,
    environment: [String: String]? = nil,
    onListening: (@Sendable (HandshakeLine) -> Void)? = nil
  ) {
    self.configuration = configuration
    self.environment = environment
    self.onListening = onListening
  }

  public func run() async throws {
    try await PluginServer.run(self.configuration, environment: self.environment, onListening: self.onListening)
  }
}
