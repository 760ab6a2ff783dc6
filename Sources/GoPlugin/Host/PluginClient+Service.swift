public import ServiceLifecycle

/// A client is a `Service`: in a `ServiceGroup`, ``PluginClient/run()`` launches the plugin, and
/// the group's graceful shutdown stops it as ``PluginClient/kill()`` does (the host's Shutdown
/// request, then SIGKILL past the grace period), after which `run()` returns.
///
/// ```swift
/// let client = PluginClient(configuration: configuration)
/// let group = ServiceGroup(services: [client, supervisor, server], logger: logger)
/// try await group.run()   // until SIGTERM, say, with gracefulShutdownSignals: [.sigterm]
/// ```
extension PluginClient: Service {}
