public import GRPCCore
public import GoPlugin
import SwiftProtobuf
import Synchronization

/// Adds two numbers. The host provides one to the plugin for each `put`, through the broker:
/// the plugin calls back into the host to do its sums.
public protocol AddHelper: Sendable {
  func sum(_ a: Int64, _ b: Int64) async throws -> Int64
}

/// The counter of the bidirectional example: it adds to what a key holds, using a helper it is
/// given for the call.
public protocol Counter: Sendable {
  func put(_ key: String, adding value: Int64, using helper: any AddHelper) async throws
  func get(_ key: String) async throws -> Int64
}

extension HandshakeConfiguration {
  /// The counter example's handshake, shared with its Go peers.
  public static let counter = HandshakeConfiguration(
    protocolVersion: 1, magicCookieKey: "BASIC_PLUGIN", magicCookieValue: "hello")
}

/// The counter plugin for both sides: a plugin creates it with the counter it serves, a host
/// creates it empty and dispenses ``CounterClient``s.
public struct CounterPlugin: GRPCPlugin {
  private let counter: (any Counter)?

  /// Host side.
  public init() { self.counter = nil }

  /// Plugin side: serves `counter`.
  public init(serving counter: any Counter) { self.counter = counter }

  public func services(context: PluginServiceContext) throws -> [any RegistrableRPCService] {
    guard let counter = self.counter else {
      throw PluginError(code: .invalidConfiguration, message: "CounterPlugin \(context.name) has no counter to serve")
    }
    return [CounterService(counter: counter, broker: context.broker)]
  }

  public func client(connection: PluginConnection) -> CounterClient {
    CounterClient(stub: Counter_Counter.Client(wrapping: connection.grpcClient), broker: connection.broker)
  }
}

/// The host's view of a counter plugin, in any language.
public struct CounterClient: Counter {
  let stub: Counter_Counter.Client<PluginTransport>
  let broker: GRPCBroker

  /// Serves `helper` to the plugin under a fresh broker ID for the length of the call.
  public func put(_ key: String, adding value: Int64, using helper: any AddHelper) async throws {
    let id = self.broker.nextID()
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await self.broker.acceptAndServe(id: id, services: [AddHelperService(helper: helper)]) }
      _ = try await self.stub.put(
        .with {
          $0.addServer = id
          $0.key = key
          $0.value = value
        })
      group.cancelAll()
    }
  }

  public func get(_ key: String) async throws -> Int64 {
    try await self.stub.get(.with { $0.key = key }).value
  }
}

/// A counter in memory.
public final class MemoryCounter: Counter {
  private let values = Mutex<[String: Int64]>([:])

  public init() {}

  public func put(_ key: String, adding value: Int64, using helper: any AddHelper) async throws {
    let current = self.values.withLock { $0[key] ?? 0 }
    let sum = try await helper.sum(current, value)
    self.values.withLock { $0[key] = sum }
  }

  public func get(_ key: String) async throws -> Int64 {
    self.values.withLock { $0[key] ?? 0 }
  }
}

/// Serves a ``Counter``; each `Put` reaches the host's AddHelper through the broker.
struct CounterService: Counter_Counter.SimpleServiceProtocol {
  let counter: any Counter
  let broker: GRPCBroker

  func get(request: Counter_GetRequest, context: ServerContext) async throws -> Counter_GetResponse {
    let value = try await self.counter.get(request.key)
    return .with { $0.value = value }
  }

  func put(request: Counter_PutRequest, context: ServerContext) async throws -> Counter_Empty {
    try await self.broker.withClient(for: request.addServer) { client in
      try await self.counter.put(
        request.key, adding: request.value, using: RemoteAddHelper(stub: Counter_AddHelper.Client(wrapping: client)))
    }
    return Counter_Empty()
  }
}

/// The host's AddHelper, as the plugin reaches it.
struct RemoteAddHelper: AddHelper {
  let stub: Counter_AddHelper.Client<PluginTransport>

  func sum(_ a: Int64, _ b: Int64) async throws -> Int64 {
    try await self.stub.sum(
      .with {
        $0.a = a
        $0.b = b
      }
    ).r
  }
}

/// Serves an ``AddHelper`` on a brokered connection.
struct AddHelperService: Counter_AddHelper.SimpleServiceProtocol {
  let helper: any AddHelper

  func sum(request: Counter_SumRequest, context: ServerContext) async throws -> Counter_SumResponse {
    let result = try await self.helper.sum(request.a, request.b)
    return .with { $0.r = result }
  }
}
