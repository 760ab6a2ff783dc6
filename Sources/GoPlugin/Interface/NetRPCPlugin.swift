public import GoPluginNetRPC
public import Logging

/// One named plugin served over go-plugin's net/rpc protocol, described once for both sides of
/// the wire, as go-plugin's `Plugin` interface: `Server(broker)` on the plugin's side,
/// `Client(broker, rpcClient)` on the host's.
///
/// When the host dispenses it, the plugin makes the ``NetRPCService`` that implements it and
/// serves it on a stream of its own, under net/rpc's service name `Plugin`, so calls are named
/// `Plugin.<Method>`; the host gets a typed client on that stream. A type may conform to both
/// this protocol and ``GRPCPlugin`` (with one `Client` type), as a Go plugin may implement both.
///
/// ```swift
/// struct GreeterPlugin: NetRPCPlugin {
///   var greeter: (any Greeter)?   // set on the plugin side only
///
///   func server(context: NetRPCPluginContext) throws -> NetRPCService {
///     guard let greeter else { throw NetRPCError.server("no greeter") }
///     var service = NetRPCService(name: "Plugin")
///     service.addMethod("Greet") { (_: GobInterface) in try await greeter.greet() }
///     return service
///   }
///
///   func client(context: NetRPCPluginContext, rpcClient: NetRPCClient) -> GreeterClient {
///     GreeterClient(rpcClient: rpcClient)
///   }
/// }
/// ```
public protocol NetRPCPlugin: PluginDefinition {
  /// What the host gets from ``PluginClient/dispense(_:as:)``.
  associatedtype Client: Sendable

  /// Plugin side: the methods to serve for this plugin (go-plugin's `Server`). An error thrown
  /// here is the dispense call's error text on the host.
  func server(context: NetRPCPluginContext) throws -> NetRPCService

  /// Host side: a client that calls the plugin over `rpcClient` (go-plugin's `Client`). Each
  /// dispense opens a stream that stays open until the plugin stops or the client calls
  /// ``NetRPCClient/close()``, as in go-plugin.
  func client(context: NetRPCPluginContext, rpcClient: NetRPCClient) -> Client
}

/// What a net/rpc plugin's two sides may use: the broker for more streams, and who they are.
public struct NetRPCPluginContext: Sendable {
  /// The name the plugin is registered under.
  public var name: String
  /// The application protocol version negotiated with the other side.
  public var negotiatedVersion: Int
  /// The logger of the process this side runs in.
  public var logger: Logger
  /// Extra streams to and from the other side.
  public var broker: MuxBroker

  public init(name: String, negotiatedVersion: Int, logger: Logger, broker: MuxBroker) {
    self.name = name
    self.negotiatedVersion = negotiatedVersion
    self.logger = logger
    self.broker = broker
  }
}
