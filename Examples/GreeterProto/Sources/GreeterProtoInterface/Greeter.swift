// Everything the host and the plugin share besides the generated code: the handshake and one
// value that describes the plugin for both sides.
public import GoPlugin

extension HandshakeConfiguration {
  /// The GreeterProto example's handshake: a plugin started with another cookie refuses to run.
  public static let greeterProto = HandshakeConfiguration(
    protocolVersion: 1, magicCookieKey: "GREETER_PROTO_PLUGIN", magicCookieValue: "hello")
}

/// The greeter plugin as a host dispenses it: the generated `PluginClient`, which has the
/// methods of grpc-swift's generated client and makes its unary calls straight on the
/// connection.
public typealias GreeterPlugin = GRPCServicePlugin<Greeter_V1_Greeter.PluginClient>

/// The host's side of the greeter plugin; the plugin adds its service with `.serving(…)`.
public let greeterPlugin = GreeterPlugin(connection: Greeter_V1_Greeter.PluginClient.init(connection:))
