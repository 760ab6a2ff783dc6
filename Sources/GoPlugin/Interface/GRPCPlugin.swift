public import GRPCCore
public import Logging

/// One named plugin, described once for both sides of the wire: which gRPC services the plugin
/// process registers, and which typed client the host gets when it dispenses it.
///
/// A type conforming to this protocol is shared by the host and the plugin, in the way
/// go-plugin's `GRPCPlugin` is: the plugin creates it with its implementation and serves it,
/// the host creates it without one and asks it for clients.
///
/// ```swift
/// struct KVPlugin: GRPCPlugin {
///   var store: (any KV)?   // set on the plugin side only
///
///   func services(context: PluginServiceContext) throws -> [any RegistrableRPCService] {
///     guard let store else { throw PluginError(code: .invalidConfiguration, message: "no store") }
///     return [KVService(store: store)]
///   }
///
///   func client(connection: PluginConnection) -> KVClient {
///     KVClient(Kvbench_KV.Client(wrapping: connection.grpcClient))
///   }
/// }
/// ```
public protocol GRPCPlugin: PluginDefinition {
  /// What the host gets from ``PluginClient/dispense(_:as:)``.
  associatedtype Client: Sendable

  /// Plugin side: the services to serve for this plugin.
  func services(context: PluginServiceContext) throws -> [any RegistrableRPCService]

  /// Host side: a client that calls this plugin over `connection`. Creating it sends nothing.
  func client(connection: PluginConnection) -> Client
}

/// What a plugin's services may use while they are being set up.
public struct PluginServiceContext: Sendable {
  /// The name the plugin is registered under.
  public var name: String
  /// The application protocol version negotiated with the host.
  public var negotiatedVersion: Int
  /// The plugin process's logger.
  public var logger: Logger
  /// Extra connections to and from the host.
  public var broker: GRPCBroker

  /// A context, for unit-testing a plugin's `services(context:)`.
  public init(name: String, negotiatedVersion: Int, logger: Logger, broker: GRPCBroker) {
    self.name = name
    self.negotiatedVersion = negotiatedVersion
    self.logger = logger
    self.broker = broker
  }
}
