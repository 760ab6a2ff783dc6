import Foundation
import GRPCCore
import GRPCProtobuf
import GoPlugin
import KVInterface
import Logging
import NIOPosix
import SwiftProtobuf
import Synchronization
import Testing

/// The library's own gRPC transport on a real unix socket, with the server side served in this
/// process so its limits can be set; every host test covers the ordinary path.
@Suite("The plugin transport", .timeLimit(.minutes(2)))
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
    try await self.withServedPlugin(configure: configure) { client, transport in
      try await body(KVClient(grpcClient: client), transport)
    }
  }

  /// Serves the KV plugin, or what `configure` puts in its place, and runs `body` with a gRPC
  /// client and the transport under it.
  private func withServedPlugin(
    configure: (inout PluginServeConfiguration) -> Void = { _ in },
    interceptors: [any ClientInterceptor] = [],
    _ body: @Sendable (GRPCClient<PluginTransport>, PluginClientTransport) async throws -> Void
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
      try await withGRPCClient(transport: PluginTransport(transport), interceptors: interceptors) { client in
        try await body(client, transport)
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

  @Test("a direct service's unary calls skip the router; streams and a server told not to use them do not")
  func directDispatch() async throws {
    for direct in [true, false] {
      let probe: (inout PluginServeConfiguration) -> Void = {
        $0.versionedPlugins = [1: ["kv": ProbePlugin()]]
        $0.directMethods = direct
      }
      try await self.withServedPlugin(configure: probe) { client, _ in
        let kv = Kvbench_KV.Client(wrapping: client)
        let answer = try await kv.get(.with { $0.key = "who" })
        #expect(answer.value == (direct ? ProbeService.direct : ProbeService.routed), "direct: \(direct)")
        let count = try await kv.upload(requestProducer: { try await $0.write(.with { $0.data = Data([1, 2]) }) })
        #expect(count.bytes == 2)
      }
    }
  }

  @Test(
    "direct methods and direct calls carry metadata both ways and report errors as grpc-swift's server and client do",
    arguments: [(false, false), (true, false), (false, true), (true, true)]
  )
  func directStatus(serverDirect direct: Bool, clientDirect: Bool) async throws {
    do {
      let probe: (inout PluginServeConfiguration) -> Void = {
        $0.versionedPlugins = [1: ["kv": ProbePlugin()]]
        $0.directMethods = direct
      }
      try await self.withServedPlugin(configure: probe) { client, transport in
        let caller =
          clientDirect
          ? PluginCaller(grpcClient: client, transport: PluginTransport(transport)) : PluginCaller(wrapping: client)
        #expect(caller.callsDirectly == clientDirect)
        let kv = Kvbench_KV.PluginClient(caller: caller)
        let (value, initial, trailing) = try await kv.get(
          .with { $0.key = "metadata" }, metadata: ["x-probe": "sent"]
        ) { response in
          (try response.message.value, response.metadata, response.trailingMetadata)
        }
        #expect(value == Data("sent".utf8), "direct: \(direct)")
        #expect(Array(initial[stringValues: "x-initial"]) == ["first"])
        #expect(Array(trailing[stringValues: "x-trailing"]) == ["last"])

        let expected: [(key: String, code: RPCError.Code, message: String)] = [
          ("missing", .notFound, "no key missing"),
          ("boom", .unknown, "Service method threw an unknown error."),
          ("rejected", .permissionDenied, "rejected by the response"),
        ]
        for (key, code, message) in expected {
          do {
            _ = try await kv.get(.with { $0.key = key })
            Issue.record("\(key) succeeded")
          } catch let error as RPCError {
            #expect(error.code == code, "\(key), direct: \(direct)")
            #expect(error.message == message, "\(key), direct: \(direct)")
          }
        }
      }
    }
  }

  @Test("a plugin caller makes unary calls itself, timed ones too, and hands retried calls and streams to the client")
  func callerPaths() async throws {
    let counter = CallCounter()
    try await self.withServedPlugin(interceptors: [counter]) { client, transport in
      let kv = Kvbench_KV.PluginClient(caller: PluginCaller(grpcClient: client, transport: PluginTransport(transport)))
      _ = try await kv.put(.with { $0.key = "a" })
      _ = try await kv.get(.with { $0.key = "a" })
      var timed = CallOptions.defaults
      timed.timeout = .seconds(30)
      _ = try await kv.get(.with { $0.key = "a" }, options: timed)
      #expect(counter.count == 0, "a unary call passed through the client's interceptors")
      var retried = CallOptions.defaults
      retried.executionPolicy = .retry(
        RetryPolicy(
          maxAttempts: 2, initialBackoff: .milliseconds(10), maxBackoff: .milliseconds(10), backoffMultiplier: 1,
          retryableStatusCodes: [.unavailable]))
      _ = try await kv.get(.with { $0.key = "a" }, options: retried)
      #expect(counter.count == 1)
      _ = try await kv.upload(requestProducer: { try await $0.write(.with { $0.data = Data([1]) }) })
      #expect(counter.count == 2)
    }
  }

  @Test(
    "a call that runs out of time fails as grpc-swift's client fails it, and the connection carries on",
    arguments: [(true, true), (false, true), (true, false)]
  )
  func timeouts(clientDirect: Bool, serverDirect: Bool) async throws {
    let counter = CallCounter()
    let probe: (inout PluginServeConfiguration) -> Void = {
      $0.versionedPlugins = [1: ["kv": ProbePlugin()]]
      $0.directMethods = serverDirect
    }
    try await self.withServedPlugin(configure: probe, interceptors: [counter]) { client, transport in
      let caller =
        clientDirect
        ? PluginCaller(grpcClient: client, transport: PluginTransport(transport)) : PluginCaller(wrapping: client)
      let kv = Kvbench_KV.PluginClient(caller: caller)
      _ = try await kv.get(.with { $0.key = "a" })
      var options = CallOptions.defaults
      options.timeout = .milliseconds(200)
      do {
        _ = try await kv.get(.with { $0.key = "slow" }, options: options)
        Issue.record("a call the plugin never answers returned")
      } catch let error as RPCError {
        #expect(error.code == .deadlineExceeded)
        #expect(error.message == "RPC timed out before completing")
      }
      // A call that ends in time keeps its answer.
      options.timeout = .seconds(30)
      let answer = try await kv.get(.with { $0.key = "a" }, options: options)
      #expect(answer.value == (serverDirect ? ProbeService.direct : ProbeService.routed))
      #expect(counter.count == (clientDirect ? 0 : 3), "direct: \(clientDirect)")
    }
  }

  @Test(
    "a call its caller gives up on is cancelled in the plugin, where withRPCCancellationHandler hears of it",
    arguments: [(true, true), (false, true), (true, false), (false, false)]
  )
  func cancellationReachesTheHandler(clientDirect: Bool, serverDirect: Bool) async throws {
    let (events, event) = AsyncStream.makeStream(of: String.self)
    let probe: (inout PluginServeConfiguration) -> Void = {
      $0.versionedPlugins = [
        1: ["kv": ProbePlugin(onSlow: { event.yield("started") }, onCancelled: { event.yield("cancelled") })]
      ]
      $0.directMethods = serverDirect
    }
    try await self.withServedPlugin(configure: probe) { client, transport in
      let caller =
        clientDirect
        ? PluginCaller(grpcClient: client, transport: PluginTransport(transport)) : PluginCaller(wrapping: client)
      let kv = Kvbench_KV.PluginClient(caller: caller)
      var seen = events.makeAsyncIterator()
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { _ = try await kv.get(.with { $0.key = "slow" }) }
        #expect(await seen.next() == "started")
        group.cancelAll()
        #expect(await seen.next() == "cancelled", "client direct: \(clientDirect), server direct: \(serverDirect)")
        do {
          try await group.next()
          Issue.record("a call whose caller gave up returned")
        } catch let error as RPCError {
          #expect(error.code == .cancelled)
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

/// A KV service whose Get says which path answered it: the router (grpc-swift's server
/// executor) or the transport's method table. Its other answers are the same either way.
private struct ProbeService: Kvbench_KV.ServiceProtocol, PluginDirectService {
  static let routed = Data("routed".utf8)
  static let direct = Data("direct".utf8)

  /// Called when a "slow" Get, which never answers on its own, starts, and when it is
  /// cancelled.
  var onSlow: @Sendable () -> Void = {}
  var onCancelled: @Sendable () -> Void = {}

  struct Boom: Error {}

  func registerDirectMethods(with table: inout PluginMethodTable) {
    table.registerUnary(
      Kvbench_KV.Method.Get.descriptor,
      deserializer: ProtobufDeserializer<Kvbench_GetRequest>(),
      serializer: ProtobufSerializer<Kvbench_GetResponse>()
    ) { request, context in
      try await self.get(request: request, context: context, answer: Self.direct)
    }
  }

  func get(
    request: ServerRequest<Kvbench_GetRequest>, context: ServerContext
  ) async throws -> ServerResponse<Kvbench_GetResponse> {
    try await self.get(request: request, context: context, answer: Self.routed)
  }

  private func get(
    request: ServerRequest<Kvbench_GetRequest>, context: ServerContext, answer: Data
  ) async throws -> ServerResponse<Kvbench_GetResponse> {
    switch request.message.key {
    case "metadata":
      let sent = request.metadata[stringValues: "x-probe"].first(where: { _ in true }) ?? ""
      return ServerResponse(
        message: .with { $0.value = Data(sent.utf8) }, metadata: ["x-initial": "first"],
        trailingMetadata: ["x-trailing": "last"])
    case "missing":
      throw RPCError(code: .notFound, message: "no key missing")
    case "boom":
      throw Boom()
    case "rejected":
      return ServerResponse(error: RPCError(code: .permissionDenied, message: "rejected by the response"))
    case "slow":
      self.onSlow()
      let (cancelled, signal) = AsyncStream.makeStream(of: Void.self)
      await withRPCCancellationHandler {
        for await _ in cancelled { break }
      } onCancelRPC: {
        signal.finish()
      }
      self.onCancelled()
      throw RPCError(code: .cancelled, message: "the call was cancelled")
    default:
      return ServerResponse(message: .with { $0.value = answer })
    }
  }

  func put(
    request: ServerRequest<Kvbench_PutRequest>, context: ServerContext
  ) async throws -> ServerResponse<Kvbench_Empty> {
    ServerResponse(message: Kvbench_Empty())
  }

  func upload(
    request: StreamingServerRequest<Kvbench_Chunk>, context: ServerContext
  ) async throws -> ServerResponse<Kvbench_Count> {
    var count = Kvbench_Count()
    for try await chunk in request.messages { count.bytes += Int64(chunk.data.count) }
    return ServerResponse(message: count)
  }
}

private struct ProbePlugin: GRPCPlugin {
  var onSlow: @Sendable () -> Void = {}
  var onCancelled: @Sendable () -> Void = {}

  func services(context: PluginServiceContext) throws -> [any RegistrableRPCService] {
    [ProbeService(onSlow: self.onSlow, onCancelled: self.onCancelled)]
  }
  func client(connection: PluginConnection) -> Kvbench_KV.Client<PluginTransport> {
    Kvbench_KV.Client(wrapping: connection.grpcClient)
  }
}

/// Counts the calls that pass through a client's interceptors, which only calls made by
/// grpc-swift's client executor do.
private final class CallCounter: ClientInterceptor, Sendable {
  private let calls = Mutex(0)

  var count: Int { self.calls.withLock { $0 } }

  func intercept<Input: Sendable, Output: Sendable>(
    request: StreamingClientRequest<Input>,
    context: ClientContext,
    next: (StreamingClientRequest<Input>, ClientContext) async throws -> StreamingClientResponse<Output>
  ) async throws -> StreamingClientResponse<Output> {
    self.calls.withLock { $0 += 1 }
    return try await next(request, context)
  }
}
