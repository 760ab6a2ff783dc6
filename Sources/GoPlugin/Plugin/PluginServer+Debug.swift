import GoPluginPlatform
import Logging
import UnixSignals

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension PluginServer {
  /// Serves the plugins without a host, for a person with a debugger (what Terraform providers
  /// call debug mode, go-plugin's test mode): no magic cookie is needed, and instead of a
  /// handshake the process prints its ``PluginReattachConfiguration`` as the first line of
  /// standard output, then on standard error how to point a host at it. A host then attaches
  /// with ``PluginClientConfiguration/init(reattachingTo:handshake:plugins:)``, as many times
  /// as it likes; detaching leaves the plugin serving.
  ///
  /// ```swift
  /// if CommandLine.arguments.contains("--debug") {
  ///   try await PluginServer.serveDebug(configuration)
  /// } else {
  ///   await PluginServer.serve(configuration)
  /// }
  /// ```
  ///
  /// It serves the highest application protocol version the configuration has, and returns
  /// (it never exits the process) when a host asks the plugin to shut down, or on SIGINT or
  /// SIGTERM, which stop it at once, in-flight calls and all. The configuration says
  /// `"Test":true`, as go-plugin's test mode does: Terraform leaves such a plugin running.
  ///
  /// - Parameter announce: receives the reattach configuration once the plugin accepts
  ///   connections, instead of it being printed.
  /// - Throws: what keeps the plugin from serving (``PluginError`` with
  ///   ``PluginError/Code/listenFailed``, ``PluginError/Code/invalidConfiguration``).
  public static func serveDebug(
    _ configuration: PluginServeConfiguration,
    announce: (@Sendable (PluginReattachConfiguration) -> Void)? = nil
  ) async throws {
    let announce =
      announce ?? { reattach in
        POSIX.writeAll(reattach.json + "\n", to: 1)
        POSIX.writeAll(Self.debugHint(reattach), to: 2)
      }
    let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
    let environment = Self.debugEnvironment(configuration, ProcessInfo.processInfo.environment)
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask {
        try await PluginServer.run(configuration, environment: environment) { line in
          announce(
            PluginReattachConfiguration(
              protocol: line.protocol,
              protocolVersion: line.appVersion,
              pid: getpid(),
              test: true,
              network: line.network,
              address: line.address
            ))
        }
      }
      group.addTask {
        for await signal in signals {
          configuration.logger.info("stopping on a signal", metadata: ["signal": "\(signal)"])
          return
        }
      }
      // A host's Shutdown ends the server, a signal the wait for one; either ends the other.
      try await group.next()
      group.cancelAll()
    }
  }

  /// What a host that launched the plugin would have set: the cookie, and every version, so
  /// that the highest is served. Another host's variables, inherited from a shell that is
  /// itself a plugin, are not for this plugin.
  static func debugEnvironment(
    _ configuration: PluginServeConfiguration,
    _ inherited: [String: String]
  ) -> [String: String] {
    var environment = inherited
    for key in [
      PluginEnvironment.clientCertificate, PluginEnvironment.multiplexGRPC, PluginEnvironment.protocolVersions,
    ] {
      environment[key] = nil
    }
    environment[configuration.handshake.magicCookieKey] = configuration.handshake.magicCookieValue
    environment[PluginEnvironment.protocolVersions] =
      configuration.versionedPlugins.keys.sorted().map(String.init).joined(separator: ",")
    return environment
  }

  /// The lines a person pastes to point a host at the plugin.
  static func debugHint(_ reattach: PluginReattachConfiguration) -> String {
    let quoted = "'" + reattach.json.replacing("'", with: #"'\''"#) + "'"
    return """
      Plugin serving in debug mode (pid \(reattach.pid)) until SIGINT, SIGTERM or a host's Shutdown.
      To point a host at it:
        export \(PluginReattachConfiguration.environmentKey)=\(quoted)

      """
  }
}
