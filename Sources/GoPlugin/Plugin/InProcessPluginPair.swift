package import GRPCCore
import GoPluginPlatform
package import Logging

/// Both sides of a plugin session in one process, for `GoPluginTesting`'s in-process helper:
/// a broker for each side, sharing a private socket directory for the connections they broker,
/// and the services a plugin process would serve — go-plugin's core services (health,
/// controller, broker, stdio) and the plugin's own — without the process, the handshake or the
/// main connection, which the helper provides in memory.
package final class InProcessPluginPair: Sendable {
  /// Where brokered connections listen; removed by ``finish()``.
  package let socketDirectory: String
  /// The broker a plugin's services get in their ``PluginServiceContext``.
  package let pluginBroker: GRPCBroker
  /// The broker the host's ``PluginConnection`` carries.
  package let hostBroker: GRPCBroker
  private let stopping = OneShot<Void>()
  private let shutdownRequested = OneShot<Void>()
  private let stdioCapture = OneShot<StdioCapture?>()

  /// - Throws: ``PluginError`` with ``PluginError/Code/listenFailed`` if no socket directory
  ///   can be made.
  package init(maxMessageSize: Int, logger: Logger) throws(PluginError) {
    // Where a host would make its plugins' directory: the same rules, without Foundation.
    let temporary = getenv("TMPDIR").map { ["TMPDIR": String(cString: $0)] } ?? [:]
    self.socketDirectory = try SocketDirectory.makePrivate(
      in: SocketDirectory.hostBase(environment: temporary),
      prefix: "plugin-test"
    )
    let directory = self.socketDirectory
    self.pluginBroker = .plaintext(socketDirectory: directory, maxMessageSize: maxMessageSize, logger: logger)
    self.hostBroker = .plaintext(socketDirectory: directory, maxMessageSize: maxMessageSize, logger: logger)
    // Nothing is forwarded: the plugin shares the test's standard streams.
    self.stdioCapture.fulfil(nil)
  }

  /// The services a plugin process serving `plugin` as `name` would register, core ones first.
  package func services(
    for plugin: some GRPCPlugin,
    name: String,
    negotiatedVersion: Int,
    logger: Logger
  ) throws -> [any RegistrableRPCService] {
    let context = PluginServiceContext(
      name: name,
      negotiatedVersion: negotiatedVersion,
      logger: logger,
      broker: self.pluginBroker
    )
    let core: [any RegistrableRPCService] = [
      HealthService(stopping: self.stopping, health: PluginHealth()),
      ControllerService(shutdownRequested: self.shutdownRequested),
      BrokerService(stopping: self.stopping, broker: self.pluginBroker),
      StdioService(stopping: self.stopping, capture: self.stdioCapture),
    ]
    return core + (try plugin.services(context: context))
  }

  /// Ends the session as a host stopping a plugin would: brokered servers stop, dials fail, and
  /// the long-lived core streams end, so that the server can shut down gracefully.
  package func stop() {
    self.hostBroker.shutDown()
    self.pluginBroker.shutDown()
    self.stopping.fulfil(())
  }

  /// Removes the socket directory, with any socket a brokered server left in it.
  package func finish() {
    self.stop()
    SocketDirectory.removeTree(self.socketDirectory)
  }
}
