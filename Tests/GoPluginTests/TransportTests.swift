import Foundation
import GRPCCore
import GoPlugin
import KVInterface
import Logging
import NIOPosix
import Testing

/// The library's own gRPC transport on a real unix socket, with the server side served in this
/// process so its limits can be set; every host test covers the ordinary path.
@Suite("The plugin transport")
struct TransportTests {
  /// Serves the KV plugin with `configure` applied, and runs `body` with a client that dials
  /// the announced socket through ``PluginClientTransport``'s public initializer.
  private func withServedKV(
    configure: (inout PluginServeConfiguration) -> Void = { _ in },
    _ body: @Sendable (KVClient) async throws -> Void
  ) async throws {
    try await self.withServedKVAndTransport(configure: configure) { kv, _ in try await body(kv) }
  }

  private func withServedKVAndTransport(
    configure: (inout PluginServeConfiguration) -> Void = { _ in },
    _ body: @Sendable (KVClient, PluginClientTransport) async throws -> Void
  ) async throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
      "transport-\(UUID().uuidString.prefix(8))"
    ).path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var serve = PluginServeConfiguration(
      handshake: .kv,
      plugins: ["kv": KVPlugin(serving: MemoryKV())],
      logger: Logger(label: "transport-test", factory: { _ in SwiftLogNoOpLogHandler() })
    )
    configure(&serve)
    let environment = [
      HandshakeConfiguration.kv.magicCookieKey: HandshakeConfiguration.kv.magicCookieValue,
      "PLUGIN_PROTOCOL_VERSIONS": "1",
      "PLUGIN_UNIX_SOCKET_DIR": directory,
    ]
    let (lines, continuation) = AsyncStream.makeStream(of: HandshakeLine.self)
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { [serve] in
        try? await PluginServer.run(serve, environment: environment) { continuation.yield($0) }
        continuation.finish()
      }
      var iterator = lines.makeAsyncIterator()
      let line = try #require(await iterator.next())
      let transport = try PluginClientTransport(network: line.network, address: line.address)
      try await withGRPCClient(transport: PluginTransport(transport)) { client in
        try await body(KVClient(grpcClient: client), transport)
      }
      group.cancelAll()
    }
  }

  @Test("a request over the server's limit fails as resourceExhausted; the connection carries on")
  func receiveLimit() async throws {
    let smallLimit: (inout PluginServeConfiguration) -> Void = { $0.maxReceiveMessageSize = 4096 }
    try await self.withServedKV(configure: smallLimit) { kv in
      do {
        try await kv.put("big", value: [UInt8](repeating: 7, count: 8192))
        Issue.record("an 8 KiB request passed a 4 KiB limit")
      } catch let error as RPCError {
        #expect(error.code == .resourceExhausted)
      }
      try await kv.put("small", value: [1, 2, 3])
      #expect(try await kv.get("small") == [1, 2, 3])
    }
  }

  @Test("messages far larger than a frame or a window go both ways whole")
  func largeMessages() async throws {
    try await self.withServedKV { kv in
      let value = repeated((0..<256).map { UInt8(truncatingIfNeeded: $0 &* 31) }, count: 12 << 20)
      try await kv.put("large", value: value)
      let back = try await kv.get("large")
      #expect(back.count == value.count)
      // Not #expect(back == value): on failure the test library would diff 12 MiB for hours.
      let same = back == value
      #expect(same)
    }
  }

  @Test("handlers run on the connection's event loop unless the plugin asks for the global executor")
  func handlerExecution() async throws {
    let onConnection: (inout PluginServeConfiguration) -> Void = {
      $0.versionedPlugins = [1: ["kv": KVPlugin(serving: WhereKV())]]
    }
    try await self.withServedKV(configure: onConnection) { kv in
      let answer = try await kv.get("where")
      #expect(answer == WhereKV.onEventLoop)
    }
    let onGlobalExecutor: (inout PluginServeConfiguration) -> Void = {
      $0.versionedPlugins = [1: ["kv": KVPlugin(serving: WhereKV())]]
      $0.handlerExecution = .globalExecutor
    }
    try await self.withServedKV(configure: onGlobalExecutor) { kv in
      let answer = try await kv.get("where")
      #expect(answer == WhereKV.offEventLoop)
    }
  }

  @Test("a caller on the connection's call executor stays on its event loop through its calls")
  func callExecutor() async throws {
    try await self.withServedKVAndTransport { kv, transport in
      // Not on an event loop yet: the test runs on the cooperative pool.
      #expect(WhereKV.here == WhereKV.offEventLoop)
      try await withTaskExecutorPreference(transport.callExecutor) {
        for index in 0..<20 {
          try await kv.put("k\(index)", value: [UInt8(index)])
          #expect(try await kv.get("k\(index)") == [UInt8(index)])
          #expect(WhereKV.here == WhereKV.onEventLoop)
        }
      }
    }
  }

  @Test("an unknown address type is a typed error")
  func badNetwork() {
    #expect(throws: PluginError.self) {
      try PluginClientTransport(network: HandshakeLine.Network(rawValue: "udp"), address: "x")
    }
    #expect(throws: PluginError.self) { try PluginClientTransport(network: .tcp, address: "no-port") }
  }
}

/// A store that answers every Get with where its handler ran.
private struct WhereKV: KV {
  static let onEventLoop: [UInt8] = [1]
  static let offEventLoop: [UInt8] = [0]

  static var here: [UInt8] {
    MultiThreadedEventLoopGroup.currentEventLoop == nil ? Self.offEventLoop : Self.onEventLoop
  }

  func get(_ key: String) async throws -> [UInt8] { Self.here }
  func put(_ key: String, value: [UInt8]) async throws {}
  func upload(_ chunks: [[UInt8]]) async throws -> UploadCount { UploadCount(bytes: 0, chunks: 0) }
}
