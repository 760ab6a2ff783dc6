public import GoPlugin

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The arguments of `Plugin.Relay`: Go's `struct { BrokerID uint32; Text string }`.
public struct RelayArguments: Codable, Sendable, Hashable {
  public var brokerID: UInt32
  public var text: String

  public init(brokerID: UInt32, text: String) {
    self.brokerID = brokerID
    self.text = text
  }

  enum CodingKeys: String, CodingKey {
    case brokerID = "BrokerID"
    case text = "Text"
  }
}

/// `callback`: the MuxBroker both ways, and the plugin's stdout and stderr.
/// - `Plugin.Relay(RelayArguments) → string`: the plugin dials the host's `BrokerID`, calls
///   `Plugin.Upper(Text)` there and answers `relayed: <result>`.
/// - `Plugin.Offer(prefix string) → uint32`: the plugin serves `Plugin.Echo(text) → prefix + text`
///   on a broker ID of its own and answers the ID, which the host dials.
/// - `Plugin.Print(text string) → bool`: writes `stdout: <text>` to stdout and `stderr: <text>` to
///   stderr, which reach the host's `syncStdout` and `syncStderr`.
public struct CallbackPlugin: NetRPCPlugin {
  public init() {}

  public func server(context: NetRPCPluginContext) throws -> NetRPCService {
    let broker = context.broker
    var service = NetRPCService(name: "Plugin")
    service.addMethod("Relay") { (arguments: RelayArguments) -> String in
      let upper = try await broker.withClient(arguments.brokerID) { host in
        try await host.call("Plugin.Upper", arguments.text, returning: String.self)
      }
      return "relayed: \(upper)"
    }
    service.addMethod("Offer") { (prefix: String) -> UInt32 in
      var echo = NetRPCService(name: "Plugin")
      echo.addMethod("Echo") { (text: String) in prefix + text }
      let id = broker.nextID()
      broker.serveInBackground(id, echo)
      return id
    }
    service.addMethod("Print") { (text: String) -> Bool in
      print("stdout: \(text)")
      let line = Array("stderr: \(text)\n".utf8)
      _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
      return true
    }
    return service
  }

  public func client(context: NetRPCPluginContext, rpcClient: NetRPCClient) -> CallbackClient {
    CallbackClient(rpcClient: rpcClient, broker: context.broker)
  }
}

/// The host's side of ``CallbackPlugin``.
public struct CallbackClient: Sendable {
  public let rpcClient: NetRPCClient
  public let broker: MuxBroker

  /// Serves `Plugin.Upper` on a broker ID of the host's, and has the plugin call it.
  public func relay(_ text: String) async throws -> String {
    var upper = NetRPCService(name: "Plugin")
    upper.addMethod("Upper") { (text: String) in text.uppercased() }
    let id = self.broker.nextID()
    self.broker.serveInBackground(id, upper)
    return try await self.rpcClient.call(
      "Plugin.Relay", RelayArguments(brokerID: id, text: text), returning: String.self)
  }

  /// Has the plugin serve `Plugin.Echo` with `prefix`, dials it and calls it with `text`.
  public func offer(prefix: String, echo text: String) async throws -> String {
    let id = try await self.rpcClient.call("Plugin.Offer", prefix, returning: UInt32.self)
    return try await self.broker.withClient(id) { plugin in
      try await plugin.call("Plugin.Echo", text, returning: String.self)
    }
  }

  /// Has the plugin write `text` to its stdout and stderr.
  public func print(_ text: String) async throws -> Bool {
    try await self.rpcClient.call("Plugin.Print", text, returning: Bool.self)
  }
}

extension PluginSet {
  /// The example's set: what the Swift greeter-plugin serves, and what the greeter host and go-plugin's
  /// examples expect.
  public static func greeterExample(serving: Bool) -> PluginSet {
    [
      "greeter": GreeterPlugin(serving: serving ? HelloGreeter() : nil),
      "kv": KeyValuePlugin(serving: serving ? MemoryStore() : nil),
      "callback": CallbackPlugin(),
    ]
  }
}
