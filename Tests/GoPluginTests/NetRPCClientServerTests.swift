import GoPlugin
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// Go's net/rpc on its own, over a real TCP connection on loopback.
@Suite("net/rpc client and server over a socket", .timeLimit(.minutes(1)))
struct NetRPCClientServerTests {
  struct Pair: Codable, Sendable, Equatable {
    var a: Int
    var b: Int
  }

  /// A server with `Arith.Add`, `Arith.Fail`, and `Arith.Wait` (which answers once `release` is
  /// opened), and a client connected to it.
  func withConnection(
    release: OneShotGate = OneShotGate(),
    _ body: (NetRPCClient) async throws -> Void
  ) async throws {
    var arith = NetRPCService(name: "Arith")
    arith.addMethod("Add") { (pair: Pair) in pair.a + pair.b }
    arith.addMethod("Fail") { (text: String) -> Int in throw NetRPCError.server(text) }
    arith.addMethod("Wait") { (value: Int) -> Int in
      await release.wait()
      return value
    }
    let server = NetRPCServer(services: [arith])
    let accepted = AsyncStream.makeStream(of: (any Channel).self)
    let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .childChannelOption(ChannelOptions.autoRead, value: false)
      .childChannelInitializer { channel in
        accepted.continuation.yield(channel)
        return channel.eventLoop.makeSucceededVoidFuture()
      }
      .bind(host: "127.0.0.1", port: 0).get()
    let port = try #require(listener.localAddress?.port)
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask {
        for await channel in accepted.stream {
          try await server.serve(channel)
          return
        }
      }
      let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .connect(host: "127.0.0.1", port: port).get()
      let client = try await NetRPCClient.start(on: channel)
      try await body(client)
      client.close()
      try await group.waitForAll()
    }
    try await listener.close()
  }

  @Test("a call's reply, a method's error text, and Go's texts for unknown services and methods")
  func callsAndErrors() async throws {
    try await withConnection { client in
      let reply = try await client.call("Arith.Add", Pair(a: 40, b: 2), returning: Int.self)
      #expect(reply == 42)
      await #expect(throws: NetRPCError(code: .server, message: "divide by zero")) {
        _ = try await client.call("Arith.Fail", "divide by zero", returning: Int.self)
      }
      await #expect(throws: NetRPCError(code: .server, message: "rpc: can't find service Nope.Add")) {
        _ = try await client.call("Nope.Add", Pair(a: 1, b: 2), returning: Int.self)
      }
      await #expect(throws: NetRPCError(code: .server, message: "rpc: can't find method Arith.Nope")) {
        _ = try await client.call("Arith.Nope", Pair(a: 1, b: 2), returning: Int.self)
      }
      await #expect(throws: NetRPCError(code: .server, message: "rpc: service/method request ill-formed: Add")) {
        _ = try await client.call("Add", Pair(a: 1, b: 2), returning: Int.self)
      }
      // The connection is still good after every failure.
      let again = try await client.call("Arith.Add", Pair(a: 1, b: 2), returning: Int.self)
      #expect(again == 3)
    }
  }

  @Test("replies that come in another order than the calls go to their own callers")
  func outOfOrderReplies() async throws {
    let release = OneShotGate()
    try await withConnection(release: release) { client in
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
          // Answered only after the later calls have been.
          let reply = try await client.call("Arith.Wait", 7, returning: Int.self)
          #expect(reply == 7)
        }
        for index in 0..<20 {
          group.addTask {
            let reply = try await client.call("Arith.Add", Pair(a: index, b: 1), returning: Int.self)
            #expect(reply == index + 1)
          }
        }
        // Waits for the 20 adds, then lets the first call finish.
        for _ in 0..<20 { try await group.next() }
        release.open()
        try await group.waitForAll()
      }
    }
  }

  @Test("a cancelled call returns at once; its late reply is dropped and the next call still works")
  func cancellation() async throws {
    let release = OneShotGate()
    try await withConnection(release: release) { client in
      let waiting = Task { try await client.call("Arith.Wait", 1, returning: Int.self) }
      waiting.cancel()
      await #expect(throws: NetRPCError.self) { _ = try await waiting.value }
      release.open()
      let reply = try await client.call("Arith.Add", Pair(a: 2, b: 2), returning: Int.self)
      #expect(reply == 4)
    }
  }

  static func outcome<T>(_ body: () async throws(NetRPCError) -> T) async -> Result<T, NetRPCError> {
    do throws(NetRPCError) {
      return .success(try await body())
    } catch {
      return .failure(error)
    }
  }

  @Test("calls waiting when the connection closes fail with Go's ErrShutdown text")
  func shutdown() async throws {
    let release = OneShotGate()
    try await withConnection(release: release) { client in
      async let waiting = Self.outcome { () async throws(NetRPCError) -> Int in
        try await client.call("Arith.Wait", 1, returning: Int.self)
      }
      // The call is on the wire before the connection goes.
      let reply = try await client.call("Arith.Add", Pair(a: 0, b: 0), returning: Int.self)
      #expect(reply == 0)
      client.close()
      let outcome = await waiting
      #expect(throws: NetRPCError(code: .shutdown, message: "connection is shut down")) { _ = try outcome.get() }
      await #expect(throws: NetRPCError(code: .shutdown, message: "connection is shut down")) {
        _ = try await client.call("Arith.Add", Pair(a: 0, b: 0), returning: Int.self)
      }
      // The server's call is still running; it ends, and so does the server.
      release.open()
    }
  }
}

extension NetRPCClientServerTests {
  /// Go's `rpc.Response`, as a misbehaving server sends it.
  struct Response: Codable {
    var serviceMethod: String
    var seq: UInt64
    var error: String
    enum CodingKeys: String, CodingKey {
      case serviceMethod = "ServiceMethod"
      case seq = "Seq"
      case error = "Error"
    }
  }

  /// Answers the first request with a reply's header only, then closes the connection.
  final class HeaderOnlyServer: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
      var encoder = GobStreamEncoder()
      var bytes: [UInt8] = []
      try? encoder.encode(Response(serviceMethod: "Arith.Add", seq: 0, error: ""), into: &bytes)
      context.writeAndFlush(NIOAny(ByteBuffer(bytes: bytes)), promise: nil)
      context.close(promise: nil)
    }
  }

  @Test("a reply cut off after its header fails its call when the connection ends, instead of hanging")
  func replyCutOff() async throws {
    let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(HeaderOnlyServer()) }
      }
      .bind(host: "127.0.0.1", port: 0).get()
    let port = try #require(listener.localAddress?.port)
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .connect(host: "127.0.0.1", port: port).get()
    let client = try await NetRPCClient.start(on: channel)
    await #expect(throws: NetRPCError(code: .shutdown, message: "connection is shut down")) {
      _ = try await client.call("Arith.Add", Pair(a: 1, b: 2), returning: Int.self)
    }
    try await listener.close()
  }
}

/// Opens once; every waiter, earlier or later, goes on.
final class OneShotGate: Sendable {
  private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

  func open() {
    let waiters = self.state.withLock { state in
      state.open = true
      defer { state.waiters = [] }
      return state.waiters
    }
    for waiter in waiters { waiter.resume() }
  }

  func wait() async {
    await withCheckedContinuation { continuation in
      let ready = self.state.withLock { state in
        if state.open { return true }
        state.waiters.append(continuation)
        return false
      }
      if ready { continuation.resume() }
    }
  }
}
