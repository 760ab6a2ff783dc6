public import GoPlugin
import Synchronization

/// A store of byte values by key: go-plugin's examples/grpc `KV`, over net/rpc.
public protocol KeyValueStore: Sendable {
  func put(_ key: String, _ value: [UInt8]) async throws
  func get(_ key: String) async throws -> [UInt8]
}

/// The store the example plugin serves: in memory; a missing key is an error.
public final class MemoryStore: KeyValueStore {
  private let values = Mutex<[String: [UInt8]]>([:])

  public init() {}

  public func put(_ key: String, _ value: [UInt8]) async throws {
    self.values.withLock { $0[key] = value }
  }

  public func get(_ key: String) async throws -> [UInt8] {
    guard let value = self.values.withLock({ $0[key] }) else {
      throw NetRPCError.server("key not found: \(key)")
    }
    return value
  }
}

/// `kv`: `Plugin.Put(map[string]interface{}{"key": string, "value": []byte}) → interface{}` and
/// `Plugin.Get(string) → []byte`, exactly as go-plugin's examples/grpc/shared/rpc.go.
public struct KeyValuePlugin: NetRPCPlugin {
  /// The implementation; set on the plugin's side only.
  public var store: (any KeyValueStore)?

  public init(serving store: (any KeyValueStore)? = nil) {
    self.store = store
  }

  public func server(context: NetRPCPluginContext) throws -> NetRPCService {
    guard let store else { throw NetRPCError.server("the kv plugin has no implementation") }
    var service = NetRPCService(name: "Plugin")
    service.addMethod("Put") { (arguments: [String: GobInterface]) -> GobInterface in
      guard case .string(let key)? = arguments["key"]?.value, case .bytes(let value)? = arguments["value"]?.value else {
        throw NetRPCError.server("Put wants a map with a string \"key\" and a []byte \"value\"")
      }
      try await store.put(key, value)
      return .none
    }
    service.addMethod("Get") { (key: String) -> [UInt8] in try await store.get(key) }
    return service
  }

  public func client(context: NetRPCPluginContext, rpcClient: NetRPCClient) -> KeyValueClient {
    KeyValueClient(rpcClient: rpcClient)
  }
}

/// A ``KeyValueStore`` in another process.
public struct KeyValueClient: KeyValueStore {
  public let rpcClient: NetRPCClient

  public func put(_ key: String, _ value: [UInt8]) async throws {
    let arguments: [String: GobInterface] = ["key": GobInterface(.string(key)), "value": GobInterface(.bytes(value))]
    _ = try await self.rpcClient.call("Plugin.Put", arguments, returning: GobInterface.self)
  }

  public func get(_ key: String) async throws -> [UInt8] {
    try await self.rpcClient.call("Plugin.Get", key, returning: [UInt8].self)
  }
}
