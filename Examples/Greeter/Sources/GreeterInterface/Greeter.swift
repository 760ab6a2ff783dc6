// The net/rpc example's interfaces, in the shapes of go-plugin's own examples, so that a Swift
// host loads their Go plugins and a Go host loads the Swift plugin: `greeter` as in
// examples/basic, `kv` as the net/rpc half of examples/grpc, and `callback`, which uses the
// MuxBroker in both directions.
public import GoPlugin

extension HandshakeConfiguration {
  /// go-plugin's examples/basic handshake.
  public static let greeter = HandshakeConfiguration(
    protocolVersion: 1, magicCookieKey: "BASIC_PLUGIN", magicCookieValue: "hello")
}

/// Says hello: go-plugin's `Greeter`.
public protocol Greeter: Sendable {
  func greet() async throws -> String
}

/// The greeter the example plugin serves.
public struct HelloGreeter: Greeter {
  public init() {}
  public func greet() async throws -> String { "Hello!" }
}

/// `greeter`: `Plugin.Greet(interface{}) → string`. Go's example passes `new(interface{})`, a nil
/// interface, as the argument, and so does this client.
public struct GreeterPlugin: NetRPCPlugin {
  /// The implementation; set on the plugin's side only.
  public var greeter: (any Greeter)?

  public init(serving greeter: (any Greeter)? = nil) {
    self.greeter = greeter
  }

  public func server(context: NetRPCPluginContext) throws -> NetRPCService {
    guard let greeter else { throw NetRPCError.server("the greeter plugin has no implementation") }
    var service = NetRPCService(name: "Plugin")
    service.addMethod("Greet") { (_: GobInterface) in try await greeter.greet() }
    return service
  }

  public func client(context: NetRPCPluginContext, rpcClient: NetRPCClient) -> GreeterClient {
    GreeterClient(rpcClient: rpcClient)
  }
}

/// A ``Greeter`` in another process.
public struct GreeterClient: Greeter {
  public let rpcClient: NetRPCClient

  public func greet() async throws -> String {
    try await self.rpcClient.call("Plugin.Greet", GobInterface.none, returning: String.self)
  }
}
