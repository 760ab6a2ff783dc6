import Crypto
public import GRPCCore
public import GoPlugin
import SwiftProtobuf

#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

extension HandshakeConfiguration {
  /// The streaming example's handshake.
  public static let streaming = HandshakeConfiguration(
    protocolVersion: 1, magicCookieKey: "BASIC_PLUGIN", magicCookieValue: "hello")
}

/// What the plugin received of a file.
public struct Received: Sendable, Hashable {
  public var bytes: Int64
  public var chunks: Int64
  public var sha256: [UInt8]
}

/// The streaming example's plugin: it fetches files its host offers, on a brokered connection
/// of their own, so a large transfer never shares the plugin's main connection.
public struct StreamingPlugin: GRPCPlugin {
  public init() {}

  public func services(context: PluginServiceContext) throws -> [any RegistrableRPCService] {
    [FileReceiverService(broker: context.broker)]
  }

  public func client(connection: PluginConnection) -> FileSender {
    FileSender(stub: Streaming_FileReceiver.Client(wrapping: connection.grpcClient), broker: connection.broker)
  }
}

/// The host's side: offers a file to the plugin through the broker.
public struct FileSender: Sendable {
  let stub: Streaming_FileReceiver.Client<PluginTransport>
  let broker: GRPCBroker

  /// Serves `file` under a fresh broker ID, has the plugin fetch it, and returns what the
  /// plugin counted and hashed.
  public func send(file: URL, chunkSize: Int = 64 * 1024) async throws -> Received {
    let id = self.broker.nextID()
    return try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask {
        try await self.broker.acceptAndServe(id: id, services: [FileSourceService(file: file, chunkSize: chunkSize)])
      }
      let received = try await self.stub.fetch(.with { $0.source = id })
      group.cancelAll()
      return Received(bytes: received.bytes, chunks: received.chunks, sha256: Array(received.sha256))
    }
  }
}

/// Streams a file in chunks; the plugin's connection pulls them as fast as it takes them.
struct FileSourceService: Streaming_FileSource.SimpleServiceProtocol {
  let file: URL
  let chunkSize: Int

  func read(request: Streaming_Empty, response: RPCWriter<Streaming_Chunk>, context: ServerContext) async throws {
    let file = try LocalFile(reading: self.file.path)
    // Plain blocking reads keep the example short; a server moving many files at once would
    // read through NIO's file system instead.
    while case let data = try file.readChunk(upTo: self.chunkSize), !data.isEmpty {
      try await response.write(.with { $0.data = data })
    }
  }
}

/// Fetches what the host offers under the request's broker ID, counting and hashing it.
struct FileReceiverService: Streaming_FileReceiver.SimpleServiceProtocol {
  let broker: GRPCBroker

  func fetch(request: Streaming_FetchRequest, context: ServerContext) async throws -> Streaming_Received {
    try await self.broker.withClient(for: request.source) { client in
      try await Streaming_FileSource.Client(wrapping: client).read(Streaming_Empty()) { response in
        var hash = SHA256()
        var received = Streaming_Received()
        for try await chunk in response.messages {
          hash.update(data: chunk.data)
          received.bytes += Int64(chunk.data.count)
          received.chunks += 1
        }
        received.sha256 = Data(hash.finalize())
        return received
      }
    }
  }
}
