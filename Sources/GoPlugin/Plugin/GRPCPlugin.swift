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
public protocol GRPCPlugin: Sendable {
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

/// The gRPC client transport a host uses to reach its plugins.
public typealias PluginTransport = PluginClientTransport

/// A host's connection to a running plugin, from which typed clients are made.
public struct PluginConnection: Sendable {
  /// The gRPC client bound to the plugin's connection; generated stubs wrap it.
  public let grpcClient: GRPCClient<PluginTransport>
  /// The name of the plugin being dispensed.
  public let name: String
  /// The negotiated application protocol version.
  public let negotiatedVersion: Int
  /// Extra connections to and from the plugin.
  public let broker: GRPCBroker

  /// A connection over any gRPC client, for instance to test a plugin's client type against an
  /// in-process server.
  public init(grpcClient: GRPCClient<PluginTransport>, name: String, negotiatedVersion: Int, broker: GRPCBroker) {
    self.grpcClient = grpcClient
    self.name = name
    self.negotiatedVersion = negotiatedVersion
    self.broker = broker
  }
}

/// Plugins by name, for one application protocol version.
public struct PluginSet: Sendable, ExpressibleByDictionaryLiteral {
  /// The plugins by the name a host dispenses them under.
  public var plugins: [String: any GRPCPlugin]

  /// A set from a dictionary of plugins by name.
  public init(_ plugins: [String: any GRPCPlugin]) {
    self.plugins = plugins
  }

  public init(dictionaryLiteral elements: (String, any GRPCPlugin)...) {
    self.plugins = Dictionary(elements, uniquingKeysWith: { _, last in last })
  }

  /// The plugin registered as `name`.
  public subscript(name: String) -> (any GRPCPlugin)? {
    self.plugins[name]
  }
}
