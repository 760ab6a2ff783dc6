public import GRPCCore
public import GoPlugin
import SwiftProtobuf

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The key-value store both sides of the KV example speak: the plugin implements it, the host
/// calls it. The wire contract is `kv.proto`, which Go and Python plugins implement too.
public protocol KV: Sendable {
  /// The value stored under `key`; empty when there is none.
  func get(_ key: String) async throws -> [UInt8]
  func put(_ key: String, value: [UInt8]) async throws
  /// Streams `chunks` to the plugin, which counts and discards them.
  func upload(_ chunks: [[UInt8]]) async throws -> UploadCount
}

/// What the plugin counted of an upload.
public struct UploadCount: Sendable, Hashable {
  public var bytes: Int64
  public var chunks: Int64

  public init(bytes: Int64, chunks: Int64) {
    self.bytes = bytes
    self.chunks = chunks
  }
}

extension HandshakeConfiguration {
  /// The KV example's handshake, shared with the Go and Python peers built from `kv.proto`.
  public static let kv = HandshakeConfiguration(
    protocolVersion: 1, magicCookieKey: "BASIC_PLUGIN", magicCookieValue: "hello")
}

/// The KV plugin for both sides: a plugin creates it with the store it serves, a host creates
/// it empty and dispenses ``KVClient``s from it.
public struct KVPlugin: GRPCPlugin {
  private let store: (any KV)?

  /// Host side.
  public init() {
    self.store = nil
  }

  /// Plugin side: serves `store`.
  public init(serving store: any KV) {
    self.store = store
  }

  public func services(context: PluginServiceContext) throws -> [any RegistrableRPCService] {
    guard let store = self.store else {
      throw PluginError(code: .invalidConfiguration, message: "KVPlugin \(context.name) has no store to serve")
    }
    return [KVService(store: store)]
  }

  public func client(connection: PluginConnection) -> KVClient {
    KVClient(caller: connection.caller)
  }
}

/// The host's view of a KV plugin, in any language.
public struct KVClient: KV {
  private let stub: Kvbench_KV.PluginClient

  /// A KV client over any connection to a KV server, such as a brokered one; every call goes
  /// through `grpcClient`.
  public init(grpcClient: GRPCClient<PluginTransport>) {
    self.stub = Kvbench_KV.PluginClient(caller: PluginCaller(wrapping: grpcClient))
  }

  /// A KV client whose unary calls go straight onto the connection (see `PluginCaller`).
  public init(caller: PluginCaller) {
    self.stub = Kvbench_KV.PluginClient(caller: caller)
  }

  public func get(_ key: String) async throws -> [UInt8] {
    let response = try await self.stub.get(.with { $0.key = key })
    return Array(response.value)
  }

  public func put(_ key: String, value: [UInt8]) async throws {
    _ = try await self.stub.put(
      .with {
        $0.key = key
        $0.value = Data(value)
      })
  }

  public func upload(_ chunks: [[UInt8]]) async throws -> UploadCount {
    let count = try await self.stub.upload(requestProducer: { writer in
      for chunk in chunks {
        try await writer.write(.with { $0.data = Data(chunk) })
      }
    })
    return UploadCount(bytes: count.bytes, chunks: count.chunks)
  }
}

/// Serves a ``KV`` store as the generated `kvbench.KV` service, on a plugin's main connection
/// or on a brokered one.
public struct KVService: Kvbench_KV.SimpleServiceProtocol {
  let store: any KV

  public init(store: any KV) {
    self.store = store
  }

  public func get(request: Kvbench_GetRequest, context: ServerContext) async throws -> Kvbench_GetResponse {
    let value = try await self.store.get(request.key)
    return .with { $0.value = Data(value) }
  }

  public func put(request: Kvbench_PutRequest, context: ServerContext) async throws -> Kvbench_Empty {
    try await self.store.put(request.key, value: Array(request.value))
    return Kvbench_Empty()
  }

  public func upload(
    request: RPCAsyncSequence<Kvbench_Chunk, any Error>, context: ServerContext
  ) async throws -> Kvbench_Count {
    // Counted as it arrives, never held: uploads can be far larger than memory.
    var count = Kvbench_Count()
    for try await chunk in request {
      count.bytes += Int64(chunk.data.count)
      count.chunks += 1
    }
    return count
  }
}

/// Get and Put, the unary methods, are answered by the plugin's server directly, without
/// grpc-swift's server executor (`registerDirectMethods(with:)` is generated); Upload, a
/// stream, is not.
extension KVService: PluginDirectService {}
