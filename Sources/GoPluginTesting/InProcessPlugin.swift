import GRPCCore
import GRPCInProcessTransport
public import GoPlugin
public import Logging

/// Runs `body` with a client of `plugin` whose services run in this process: go-plugin's
/// `TestPluginGRPCConn`, for testing a plugin's services and its typed client together without
/// building or launching a plugin executable.
///
/// The plugin's services, and the core services a plugin process serves (health, controller,
/// broker, stdio), are served on grpc-swift's in-process transport. The client is what a
/// host's `PluginClient.dispense(_:as:)` would return — `plugin.client(connection:)` over a
/// `PluginConnection` — and its broker is connected to the plugin's, so callbacks into the
/// host and brokered streams work. Brokered connections, like go-plugin's test helper's, are
/// real unix sockets, in a private directory that is removed before this returns.
///
/// ```swift
/// @Test func putThenGet() async throws {
///   try await withInProcessPlugin(KVPlugin(serving: MemoryKV())) { kv, _ in
///     try await kv.put("k", value: [1, 2, 3])
///     #expect(try await kv.get("k") == [1, 2, 3])
///   }
/// }
/// ```
///
/// Everything is stopped when `body` returns or throws: both sides' brokers are closed, so
/// brokered servers stop and dials fail, and the server shuts down once its calls have ended.
///
/// - Parameters:
///   - plugin: the plugin, created as the plugin side creates it (with its implementation).
///     The same value makes the client, so a plugin type whose host side needs a different
///     value can be tested by dispensing from `connection` in `body`.
///   - name: the name the plugin is served under, as in a `PluginSet`.
///   - negotiatedVersion: the application protocol version both sides see.
///   - maxMessageSize: the largest message a brokered connection takes, in either direction.
///   - logger: where the plugin's services and the brokers log.
///   - body: gets the typed client and the connection it was made from.
/// - Throws: `PluginError` if the socket directory cannot be made, what the plugin's
///   `services(context:)` throws, or what `body` throws.
public func withInProcessPlugin<Plugin: GRPCPlugin, Result>(
  _ plugin: Plugin,
  name: String = "plugin",
  negotiatedVersion: Int = 1,
  maxMessageSize: Int = Int(Int32.max),
  logger: Logger = Logger(label: "goplugin.in-process", factory: { _ in SwiftLogNoOpLogHandler() }),
  _ body: (_ client: Plugin.Client, _ connection: PluginConnection) async throws -> Result
) async throws -> Result {
  let pair = try InProcessPluginPair(maxMessageSize: maxMessageSize, logger: logger)
  defer { pair.finish() }
  let services = try pair.services(for: plugin, name: name, negotiatedVersion: negotiatedVersion, logger: logger)

  let inProcess = InProcessTransport()
  let server = GRPCServer(transport: inProcess.server, services: services)
  let grpcClient = GRPCClient(transport: PluginTransport(inProcess.client))
  let connection = PluginConnection(
    grpcClient: grpcClient,
    name: name,
    negotiatedVersion: negotiatedVersion,
    broker: pair.hostBroker
  )

  return try await withThrowingTaskGroup(of: Void.self, returning: Result.self) { group in
    group.addTask { try await server.serve() }
    group.addTask { try await grpcClient.runConnections() }
    group.addTask {
      // Ends when the session does; how it ends is of no interest to the test.
      try? await pair.hostBroker.holdHostStream(over: grpcClient)
    }
    let outcome: Swift.Result<Result, any Error>
    do {
      outcome = .success(try await body(plugin.client(connection: connection), connection))
    } catch {
      outcome = .failure(error)
    }
    pair.stop()
    grpcClient.beginGracefulShutdown()
    server.beginGracefulShutdown()
    try await group.waitForAll()
    return try outcome.get()
  }
}
