public import GRPCCore

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
  /// in-process server: wrap that client's transport in a ``PluginTransport``, as
  /// `GoPluginTesting`'s `withInProcessPlugin` does with grpc-swift's `InProcessTransport`.
  public init(grpcClient: GRPCClient<PluginTransport>, name: String, negotiatedVersion: Int, broker: GRPCBroker) {
    self.grpcClient = grpcClient
    self.name = name
    self.negotiatedVersion = negotiatedVersion
    self.broker = broker
  }
}
