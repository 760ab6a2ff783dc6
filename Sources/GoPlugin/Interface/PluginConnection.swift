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
  /// The executor the connection's calls run on while they are on the wire: the event loop
  /// that reads and writes its socket. Every call switches to it and back; a task that makes
  /// many calls in a row can run on it throughout, and its calls then switch no thread at all:
  ///
  /// ```swift
  /// try await withTaskExecutorPreference(connection.callExecutor) {
  ///   for key in keys { _ = try await kv.get(key) }
  /// }
  /// ```
  ///
  /// Keep blocking work off it: it serves the connection. Nil where the connection is not one
  /// socket of the library's own, such as a supervisor's or a pool's, whose process changes,
  /// or an in-process test transport.
  public let callExecutor: (any TaskExecutor)?
  /// Makes the connection's unary calls without grpc-swift's client executor where it can, and
  /// hands the rest to ``grpcClient``; a client type built on it keeps the generated client's
  /// methods (see ``PluginCaller``). Over a supervisor's, a pool's or an in-process test
  /// connection it passes every call to ``grpcClient``.
  public let caller: PluginCaller

  /// A connection over any gRPC client, for instance to test a plugin's client type against an
  /// in-process server: wrap that client's transport in a ``PluginTransport``, as
  /// `GoPluginTesting`'s `withInProcessPlugin` does with grpc-swift's `InProcessTransport`.
  public init(
    grpcClient: GRPCClient<PluginTransport>,
    name: String,
    negotiatedVersion: Int,
    broker: GRPCBroker,
    callExecutor: (any TaskExecutor)? = nil,
    caller: PluginCaller? = nil
  ) {
    self.grpcClient = grpcClient
    self.caller = caller ?? PluginCaller(wrapping: grpcClient)
    self.name = name
    self.negotiatedVersion = negotiatedVersion
    self.broker = broker
    self.callExecutor = callExecutor
  }
}
