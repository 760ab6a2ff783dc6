package import GRPCCore
package import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import NIOSSL
import Synchronization

/// The server side of plugin connections: gRPC over HTTP/2 on a socket the plugin already
/// listens on.
///
/// A plugin serves one host over a local socket, so its connections share one event loop.
/// Handlers run as tasks on that loop by default, so that a call is read, handled and answered
/// on one thread; a handler that blocks its thread then stalls the connection, and a server whose
/// handlers may block runs them on Swift's global executor instead (`handlersOnEventLoop`).
/// Unary methods in its method table are answered without `GRPCServer`'s router and executor
/// (``PluginDirectService``); every other call goes to the router.
package final class PluginServerTransport: ServerTransport, Sendable {
  package typealias Bytes = PluginBytes

  private struct State {
    var serverChannel: (any Channel)?
    var connections: [ObjectIdentifier: GRPCConnectionHandler] = [:]
    var accepting: AsyncStream<Accepted>.Continuation?
    var shuttingDown = false
  }

  /// A call for `GRPCServer`'s router, or one the transport's method table answers itself.
  private enum Accepted: @unchecked Sendable {
    case routed(RPCStream<Inbound, Outbound>, AcceptedCall)
    case direct(PluginMethodHandler, GRPCStream, AcceptedCall)
  }

  let eventLoop: any EventLoop
  /// Where handlers run: the event loop, or Swift's global executor when handlers may block.
  private let handlerExecutor: EventLoopTaskExecutor?
  private let descriptor: Int32
  private let tls: ConnectionTLS?
  private let maxReceiveMessageSize: Int
  /// Unary methods answered without `GRPCServer` (see ``PluginDirectService``).
  private let methods: [String: PluginMethodHandler]
  private let state = Mutex(State())
  private let listening = OneShot<Result<Void, any Error>>()

  package init(
    listeningDescriptor: Int32,
    maxReceiveMessageSize: Int,
    tls: ConnectionTLS?,
    eventLoop: any EventLoop,
    handlersOnEventLoop: Bool = true,
    methods: PluginMethodTable = PluginMethodTable()
  ) {
    self.methods = methods.handlers
    self.handlerExecutor = handlersOnEventLoop ? EventLoopTaskExecutor(eventLoop) : nil
    self.descriptor = listeningDescriptor
    self.maxReceiveMessageSize = maxReceiveMessageSize
    self.tls = tls
    self.eventLoop = eventLoop
  }

  /// A transport that serves the connections handed to it with ``serve(_:)``, such as yamux
  /// streams, and listens on no socket. `eventLoop` must be theirs.
  package convenience init(
    handedConnectionsOn eventLoop: any EventLoop,
    maxReceiveMessageSize: Int,
    tls: ConnectionTLS?,
    handlersOnEventLoop: Bool = true,
    methods: PluginMethodTable = PluginMethodTable()
  ) {
    self.init(
      listeningDescriptor: -1,
      maxReceiveMessageSize: maxReceiveMessageSize,
      tls: tls,
      eventLoop: eventLoop,
      handlersOnEventLoop: handlersOnEventLoop,
      methods: methods
    )
  }

  /// Serves gRPC on `channel`, a connection made elsewhere: called on the transport's event
  /// loop before the channel is active. Once shutting down, the channel is closed instead.
  package func serve(_ channel: any Channel) throws {
    try self.configure(channel)
  }

  /// Binds the listening socket; none for a transport of handed connections.
  private func bindListeningSocket() async throws -> (any Channel)? {
    guard self.descriptor >= 0 else { return nil }
    return try await ServerBootstrap(group: self.eventLoop)
      .serverChannelOption(.backlog, value: 256)
      .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture { try self.configure(channel) }
      }
      .withBoundSocket(self.descriptor)
      .get()
  }

  /// Returns once connections are being accepted, so a handshake never announces a socket
  /// nobody answers yet.
  package func waitUntilListening() async throws {
    guard let result = await self.listening.wait() else { throw CancellationError() }
    try result.get()
  }

  package func listen(
    streamHandler: @escaping @Sendable (RPCStream<Inbound, Outbound>, ServerContext) async -> Void
  ) async throws {
    let (accepted, continuation) = AsyncStream.makeStream(of: Accepted.self)
    self.state.withLock { $0.accepting = continuation }
    let serverChannel: (any Channel)?
    do {
      serverChannel = try await self.bindListeningSocket()
    } catch {
      _ = self.listening.fulfil(.failure(error))
      throw error
    }
    let shutDownAlready = self.state.withLock { state in
      state.serverChannel = serverChannel
      return state.shuttingDown
    }
    if shutDownAlready { serverChannel?.close(promise: nil) }
    _ = self.listening.fulfil(.success(()))

    await withTaskCancellationHandler {
      // Calls are handled on the connections' event loop (they share one), which reads their
      // requests and writes their responses: a call makes no thread switch inside the plugin.
      await withTaskExecutorPreference(self.handlerExecutor) {
        await withDiscardingTaskGroup { group in
          for await call in accepted {
            switch call {
            case .routed(let stream, let call):
              group.addTask { await call.withContext { await streamHandler(stream, $0) } }
            case .direct(let method, let stream, let call):
              group.addTask { await call.withContext { await method.run(stream, $0) } }
            }
          }
        }
      }
    } onCancel: {
      self.stop(gracefully: false)
    }
    try? await serverChannel?.closeFuture.get()
  }

  package func beginGracefulShutdown() {
    self.stop(gracefully: true)
  }

  private func stop(gracefully: Bool) {
    let (channel, connections) = self.state.withLock { state in
      state.shuttingDown = true
      return (state.serverChannel, Array(state.connections.values))
    }
    self.eventLoop.execute {
      channel?.close(promise: nil)
      for connection in connections {
        if gracefully { connection.drain() } else { connection.closeNow() }
      }
      self.finishIfIdle()
    }
  }

  /// The accept loop ends once no connection is left and none will come.
  private func finishIfIdle() {
    let continuation = self.state.withLock { state -> AsyncStream<Accepted>.Continuation? in
      guard state.shuttingDown, state.connections.isEmpty else { return nil }
      defer { state.accepting = nil }
      return state.accepting
    }
    continuation?.finish()
  }

  private func configure(_ channel: any Channel) throws {
    let pipeline = channel.pipeline.syncOperations
    let handler = GRPCConnectionHandler(
      role: .server(onStream: { stream, headers, peers in
        self.accept(stream, headers: headers, peers: peers)
      }),
      channel: channel,
      maxMessageSize: self.maxReceiveMessageSize,
      streamWindow: Transports.windowSize,
      connectionWindow: Transports.connectionWindowSize,
      peer: "the client",
      taskExecutor: self.handlerExecutor
    )
    do {
      if let tls = self.tls { try pipeline.addHandler(tls.serverHandler { handler.noteCertificateRefused($0) }) }
      try pipeline.addHandler(PingResponder(isServer: true))
      try pipeline.addHandler(GRPCConnectionHandler.http2Handler(mode: .server))
      try pipeline.addHandler(handler)
    } catch {
      handler.abandon(because: error)
      throw error
    }
    let id = ObjectIdentifier(handler)
    let shuttingDown = self.state.withLock { state in
      if !state.shuttingDown { state.connections[id] = handler }
      return state.shuttingDown
    }
    if shuttingDown { channel.close(promise: nil) }
    handler.closed.futureResult.whenComplete { _ in
      self.state.withLock { _ = $0.connections.removeValue(forKey: id) }
      self.finishIfIdle()
    }
  }

  /// A new stream: either a call for the router, or an answer straight from here when the
  /// request is not gRPC at all.
  private func accept(_ stream: GRPCStream, headers: HPACKHeaders, peers: (remote: String, local: String)) {
    guard GRPCWire.isGRPC(contentType: headers.first(name: "content-type")) else {
      try? stream.send(headers: [":status": "415"], endStream: true)
      return
    }
    let path = headers.first(name: ":path")
    guard let descriptor = path.flatMap(GRPCWire.descriptor(path:)) else {
      var trailers: HPACKHeaders = [":status": "200", "content-type": GRPCWire.contentType]
      GRPCWire.trailers(Status(code: .unimplemented, message: "malformed method path"), [:], into: &trailers)
      try? stream.send(headers: trailers, endStream: true)
      return
    }
    let accepted = AcceptedCall(descriptor: descriptor, peers: peers)
    stream.onAbort = { accepted.cancel() }
    let call: Accepted
    if let path, let method = self.methods[path] {
      call = .direct(method, stream, accepted)
    } else {
      let rpcStream = RPCStream(
        descriptor: descriptor,
        inbound: RPCAsyncSequence(wrapping: ServerInbound(stream: stream)),
        outbound: RPCWriter.Closable(wrapping: ServerOutbound(stream: stream))
      )
      call = .routed(rpcStream, accepted)
    }
    // A server past its shutdown refuses the call, so the client knows it never ran.
    guard let continuation = self.state.withLock({ $0.accepting }),
      case .enqueued = continuation.yield(call)
    else {
      stream.reset(.refusedStream)
      return
    }
  }
}

/// A call the server has taken, until its task makes its `ServerContext`.
///
/// The context's cancellation handle must be made inside the call's task, by
/// `withServerContextRPCCancellationHandle`, for a handler's `withRPCCancellationHandler` to
/// hear of it; the peer may reset the stream before that task runs. One state behind one lock
/// carries a reset from the event loop to whichever handle exists, or to the one still to come.
private final class AcceptedCall: Sendable {
  private enum State {
    case waiting
    case running(ServerContext.RPCCancellationHandle)
    case cancelled
  }

  let descriptor: MethodDescriptor
  let peers: (remote: String, local: String)
  private let state = Mutex(State.waiting)

  init(descriptor: MethodDescriptor, peers: (remote: String, local: String)) {
    self.descriptor = descriptor
    self.peers = peers
  }

  /// The peer reset the call, or the connection under it ended.
  func cancel() {
    let handle = self.state.withLock { state -> ServerContext.RPCCancellationHandle? in
      defer { state = .cancelled }
      if case .running(let handle) = state { return handle }
      return nil
    }
    handle?.cancel()
  }

  /// Runs `body` with the call's context, in the call's task.
  func withContext(_ body: (ServerContext) async -> Void) async {
    await withServerContextRPCCancellationHandle { handle in
      let cancelledAlready = self.state.withLock { state in
        guard case .waiting = state else { return true }
        state = .running(handle)
        return false
      }
      if cancelledAlready { handle.cancel() }
      let context = ServerContext(
        descriptor: self.descriptor,
        remotePeer: self.peers.remote,
        localPeer: self.peers.local,
        cancellation: handle
      )
      await body(context)
    }
  }
}

/// A request as grpc-swift's server reads it: metadata, then messages, then the end.
struct ServerInbound: AsyncSequence, Sendable {
  typealias Element = RPCRequestPart<PluginBytes>
  typealias Failure = any Error
  let stream: GRPCStream

  struct AsyncIterator: AsyncIteratorProtocol {
    let stream: GRPCStream
    var sawHeaders = false

    mutating func next() async throws -> Element? {
      while let part = try await self.stream.inbox.next() {
        switch part {
        case .headers(let headers, _):
          // Clients send no trailers; a second block carries nothing for the handler.
          guard !self.sawHeaders else { continue }
          self.sawHeaders = true
          return .metadata(GRPCWire.requestMetadata(from: headers))
        case .message(let bytes, _):
          return .message(bytes)
        }
      }
      return nil
    }
  }

  func makeAsyncIterator() -> AsyncIterator {
    AsyncIterator(stream: self.stream)
  }
}

/// A response as grpc-swift's server writes it, turned into HTTP/2 frames on the stream.
struct ServerOutbound: ClosableRPCWriterProtocol {
  typealias Element = RPCResponsePart<PluginBytes>
  let stream: GRPCStream

  func write(_ element: Element) async throws {
    let size = if case .message(let bytes) = element { bytes.count + PluginBytes.prefixLength } else { 0 }
    try await self.stream.write(queuing: size) { try self.stream.sendResponse(element) }
  }

  func write(contentsOf elements: some Sequence<Element>) async throws {
    for element in elements { try await self.write(element) }
  }

  func finish() async {}

  func finish(throwing error: any Error) async {
    try? await self.stream.write(queuing: 0) {
      self.stream.reset(.internalError)
      return nil
    }
  }
}

extension GRPCStream {
  /// Response headers go out with the first message, or alone, or as a trailers-only
  /// response when the status comes first.
  func sendResponse(_ part: RPCResponsePart<PluginBytes>) throws -> EventLoopFuture<Void>? {
    switch part {
    case .metadata(let metadata):
      var headers: HPACKHeaders = [":status": "200", "content-type": GRPCWire.contentType]
      GRPCWire.append(metadata, to: &headers)
      try self.send(headers: headers, endStream: false)
      self.sentResponseHeaders = true
      return nil
    case .message(let bytes):
      if !self.sentResponseHeaders {
        try self.send(headers: [":status": "200", "content-type": GRPCWire.contentType], endStream: false)
        self.sentResponseHeaders = true
      }
      return try self.send(message: bytes)
    case .status(let status, let metadata):
      var trailers: HPACKHeaders =
        self.sentResponseHeaders ? [:] : [":status": "200", "content-type": GRPCWire.contentType]
      GRPCWire.trailers(status, metadata, into: &trailers)
      self.sentResponseHeaders = true
      try self.send(headers: trailers, endStream: true)
      return nil
    }
  }
}
