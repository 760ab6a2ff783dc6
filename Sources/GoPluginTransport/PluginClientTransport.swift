public import GRPCCore
package import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import NIOSSL
import Synchronization

/// The connection a host keeps to a plugin (or a brokered server): gRPC over one HTTP/2
/// connection on a local socket, the transport behind every generated client the library hands
/// out.
///
/// A plugin's address is known and live before the host dials it, so there is no name
/// resolution, load balancing or reconnection policy to run: one connection is opened on first
/// use, and opened again if it was lost. A call's reader and writer talk to its stream directly,
/// without the per-stream channel and async bridge of grpc-swift's general transport.
public final class PluginClientTransport: ClientTransport, Sendable {
  public typealias Bytes = PluginBytes

  package enum Target: Sendable {
    case unix(path: String)
    case tcp(host: String, port: Int)
    /// A connection someone else opens, such as a yamux stream: `open` makes the channel, runs
    /// the transport's initializer on it (on its event loop, before it is active) and
    /// activates it. `peer` names it in errors.
    case channel(
      open: @Sendable (_ initializer: @escaping @Sendable (any Channel) throws -> Void) -> EventLoopFuture<any Channel>,
      peer: String
    )
  }

  private enum Connection {
    case idle
    case connecting([UnsafeContinuation<GRPCConnectionHandler, any Error>])
    case ready(GRPCConnectionHandler, any Channel)
    case shutDown
  }

  private let target: Target
  private let tls: ConnectionTLS?
  private let serverHostname: String?
  /// Who is dialled, for error texts: "the plugin", or the other side of a brokered connection.
  private let peerName: String
  /// From dialling to the peer's SETTINGS, TLS handshake included.
  private let setupTimeout: Duration
  private let authority: String
  private let maxMessageSize: Int
  private let methodConfig: MethodConfig
  private let onConnect: @Sendable () -> Void
  private let eventLoop: any EventLoop
  /// Runs tasks on the event loop the connections are made on (a handed channel may use
  /// another). A caller that makes many calls can run on it: see ``callExecutor``.
  private let taskExecutor: EventLoopTaskExecutor
  private let connection = Mutex(Connection.idle)
  /// Every channel dialled and not yet closed: the current one, one still draining after a
  /// GOAWAY, one dialled while shutting down. ``connect()`` returns only once all are closed, so
  /// a stopped host holds no socket.
  private let openChannels = Mutex<[ObjectIdentifier: any Channel]>([:])
  /// Dials not yet connected or failed, whose channels ``connect()`` cannot see yet.
  private let dialsInFlight = Mutex<(next: Int, futures: [Int: EventLoopFuture<any Channel>])>((0, [:]))
  private let shutdownRequested = OneShot<Void>()
  /// A channel connected and waiting for the peer's SETTINGS, which a shutdown closes at once
  /// instead of letting it wait out the set-up timeout.
  private let channelSettingUp = Mutex<(any Channel)?>(nil)

  package init(
    target: Target,
    maxMessageSize: Int,
    tls: ConnectionTLS?,
    serverHostname: String?,
    peerName: String = "the plugin",
    setupTimeout: Duration = Transports.setupTimeout,
    onConnect: @escaping @Sendable () -> Void,
    eventLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next()
  ) {
    self.target = target
    self.maxMessageSize = maxMessageSize
    self.tls = tls
    self.serverHostname = serverHostname
    self.peerName = peerName
    self.setupTimeout = setupTimeout
    // go-plugin hosts send "unused" as the authority; plugins must not look at it.
    self.authority = "unused"
    self.onConnect = onConnect
    self.eventLoop = eventLoop
    self.taskExecutor = EventLoopTaskExecutor(eventLoop)
    var methodConfig = MethodConfig(names: [MethodConfig.Name(service: "")])
    methodConfig.maxRequestMessageBytes = maxMessageSize
    methodConfig.maxResponseMessageBytes = maxMessageSize
    self.methodConfig = methodConfig
  }

  /// The executor every call on this transport runs on while it is on the wire: the event loop
  /// of its connection. A task that makes many calls in a row can prefer it too
  /// (`withTaskExecutorPreference(transport.callExecutor) { … }`), and its calls then make no
  /// thread switch at all; other tasks switch to it and back once per call.
  public var callExecutor: any TaskExecutor { self.taskExecutor }

  /// No retries: a plugin call either reaches the plugin or fails.
  public var retryThrottle: RetryThrottle? { nil }

  /// Holds the transport open until ``beginGracefulShutdown()``, then waits for the calls in
  /// flight to finish.
  public func connect() async throws {
    await withTaskCancellationHandler {
      _ = await self.shutdownRequested.wait()
    } onCancel: {
      self.close(gracefully: false)
    }
    self.close(gracefully: true)
    for dial in self.dialsInFlight.withLock({ Array($0.futures.values) }) {
      _ = try? await dial.get()
    }
    for channel in self.openChannels.withLock({ Array($0.values) }) {
      try? await channel.closeFuture.get()
    }
  }

  /// Takes no new calls; the connection closes once the running ones end.
  public func beginGracefulShutdown() {
    _ = self.shutdownRequested.fulfil(())
  }

  private func close(gracefully: Bool) {
    let (ready, waiters) = self.connection.withLock {
      state -> ((GRPCConnectionHandler, any Channel)?, [UnsafeContinuation<GRPCConnectionHandler, any Error>]) in
      defer { state = .shutDown }
      switch state {
      case .ready(let handler, let channel): return ((handler, channel), [])
      case .connecting(let waiters): return (nil, waiters)
      case .idle, .shutDown: return (nil, [])
      }
    }
    for waiter in waiters { waiter.resume(throwing: Self.shutDownError) }
    self.channelSettingUp.withLock { $0 }?.close(promise: nil)
    if let (handler, channel) = ready {
      channel.eventLoop.execute {
        if gracefully { handler.drain() } else { handler.closeNow() }
      }
    }
  }

  public func config(forMethod descriptor: MethodDescriptor) -> MethodConfig? {
    self.methodConfig
  }

  public func withStream<T: Sendable>(
    descriptor: MethodDescriptor,
    options: CallOptions,
    _ closure: (RPCStream<Inbound, Outbound>, ClientContext) async throws -> T
  ) async throws -> T {
    let handler = try await self.readyConnection()
    let stream = handler.makeClientStream()
    let rpcStream = RPCStream(
      descriptor: descriptor,
      inbound: RPCAsyncSequence(wrapping: ClientInbound(stream: stream)),
      outbound: RPCWriter.Closable(wrapping: ClientOutbound(stream: stream, headers: self.requestHeaders(descriptor)))
    )
    let context = ClientContext(descriptor: descriptor, remotePeer: self.peerDescription, localPeer: "local")
    // The call runs on the connection's event loop, with the writer task grpc-swift starts for
    // it: frames go out as they are written and the reader is resumed where they arrive, so a
    // call crosses threads only on its way in and out, not once per frame.
    return try await withTaskExecutorPreference(handler.taskExecutor) {
      // Whatever the closure left open is cancelled, so the plugin stops working on it.
      defer { stream.cancelIfOpen() }
      return try await closure(rpcStream, context)
    }
  }

  /// The headers every request to `descriptor` starts with, before its metadata.
  func requestHeaders(_ descriptor: MethodDescriptor) -> HPACKHeaders {
    var headers: HPACKHeaders = [
      ":method": "POST",
      ":scheme": self.tls == nil ? "http" : "https",
      ":path": GRPCWire.path(of: descriptor),
      ":authority": self.authority,
      "content-type": GRPCWire.contentType,
      "te": "trailers",
    ]
    headers.add(name: "user-agent", value: "grpc-swift-go-plugin")
    return headers
  }

  private var peerDescription: String {
    switch self.target {
    case .unix(let path): "unix:\(path)"
    case .tcp(let host, let port): "\(host):\(port)"
    case .channel(_, let peer): peer
    }
  }

  private static let shutDownError = RPCError(code: .unavailable, message: "the plugin connection is shut down")

  /// Whether a call made now would find its connection open, without dialling or waiting.
  package var hasLiveConnection: Bool {
    self.connection.withLock { state in
      if case .ready(let handler, _) = state { !handler.isClosedOrGoingAway } else { false }
    }
  }

  /// The live connection, opening one if there is none: concurrent first calls share one dial.
  package func readyConnection() async throws -> GRPCConnectionHandler {
    enum Next {
      case use(GRPCConnectionHandler)
      case dial
      case wait
      case fail
    }
    return try await withUnsafeThrowingContinuation { continuation in
      let next = self.connection.withLock { state -> Next in
        switch state {
        case .ready(let handler, _) where !handler.isClosedOrGoingAway:
          return .use(handler)
        case .ready, .idle:
          state = .connecting([continuation])
          return .dial
        case .connecting(var waiters):
          waiters.append(continuation)
          state = .connecting(waiters)
          return .wait
        case .shutDown:
          return .fail
        }
      }
      switch next {
      case .use(let handler): continuation.resume(returning: handler)
      case .dial: self.dial()
      case .wait: break
      case .fail: continuation.resume(throwing: Self.shutDownError)
      }
    }
  }

  private func dial() {
    let bootstrap = ClientBootstrap(group: self.eventLoop)
      .connectTimeout(TimeAmount(self.setupTimeout))
      .channelInitializer { channel in
        channel.eventLoop.makeCompletedFuture { try self.configure(channel) }
      }
    let connected: EventLoopFuture<any Channel> =
      switch self.target {
      case .unix(let path): bootstrap.connect(unixDomainSocketPath: path)
      case .tcp(let host, let port): bootstrap.connect(host: host, port: port)
      case .channel(let open, _): open { channel in try self.configure(channel) }
      }
    let dial = self.dialsInFlight.withLock { dials in
      defer { dials.next += 1 }
      dials.futures[dials.next] = connected
      return dials.next
    }
    let peer = "\(self.peerName) at \(self.peerDescription)"
    let expectingTLS = self.tls != nil
    let setupTimeout = self.setupTimeout
    // Connected is not ready: a peer that accepts and then closes, answers in another
    // protocol or says nothing fails the dial here, with what did not arrive.
    let ready = connected.flatMapError { error in
      self.eventLoop.makeFailedFuture(RPCError(code: .unavailable, message: "could not connect to \(peer): \(error)"))
    }.flatMap { channel -> EventLoopFuture<(GRPCConnectionHandler, any Channel)> in
      self.channelSettingUp.withLock { $0 = channel }
      let shutDown = self.connection.withLock { state in
        if case .shutDown = state { true } else { false }
      }
      if shutDown {
        channel.close(promise: nil)
        return channel.eventLoop.makeFailedFuture(Self.shutDownError)
      }
      let handler: GRPCConnectionHandler
      do {
        handler = try channel.pipeline.syncOperations.handler(type: GRPCConnectionHandler.self)
      } catch {
        channel.close(promise: nil)
        return channel.eventLoop.makeFailedFuture(error)
      }
      return handler.awaitReady(within: setupTimeout, expectingTLS: expectingTLS)
        .map { (handler, channel) }
        .flatMapErrorThrowing { error in
          channel.close(promise: nil)
          throw error
        }
    }
    ready.whenComplete { outcome in
      _ = self.dialsInFlight.withLock { $0.futures.removeValue(forKey: dial) }
      self.channelSettingUp.withLock { $0 = nil }
      let (waiters, orphan) = self.connection.withLock {
        state -> ([UnsafeContinuation<GRPCConnectionHandler, any Error>], (any Channel)?) in
        guard case .connecting(let waiters) = state else {
          // Shut down while dialling: the new connection has nobody to serve.
          return ([], try? outcome.get().1)
        }
        switch outcome {
        case .success(let (handler, channel)): state = .ready(handler, channel)
        case .failure: state = .idle
        }
        return (waiters, nil)
      }
      orphan?.close(promise: nil)
      switch outcome {
      case .success(let (handler, _)):
        for waiter in waiters { waiter.resume(returning: handler) }
      case .failure(let error):
        let failure =
          (error as? RPCError) ?? RPCError(code: .unavailable, message: "could not connect to \(peer): \(error)")
        for waiter in waiters { waiter.resume(throwing: failure) }
      }
    }
  }

  private func configure(_ channel: any Channel) throws {
    let id = ObjectIdentifier(channel)
    self.openChannels.withLock { $0[id] = channel }
    channel.closeFuture.whenComplete { _ in
      _ = self.openChannels.withLock { $0.removeValue(forKey: id) }
    }
    let pipeline = channel.pipeline.syncOperations
    let handler = GRPCConnectionHandler(
      role: .client,
      channel: channel,
      maxMessageSize: self.maxMessageSize,
      streamWindow: Transports.windowSize,
      connectionWindow: Transports.connectionWindowSize,
      peer: "\(self.peerName) at \(self.peerDescription)",
      taskExecutor: self.taskExecutor
    )
    do {
      if let tls = self.tls {
        let tlsHandler = try tls.clientHandler(serverHostname: self.serverHostname) {
          handler.noteCertificateRefused($0)
        }
        try pipeline.addHandler(tlsHandler)
      }
      try pipeline.addHandler(PingResponder(isServer: false))
      try pipeline.addHandler(GRPCConnectionHandler.http2Handler(mode: .client))
      try pipeline.addHandler(handler)
    } catch {
      handler.abandon(because: error)
      throw error
    }
    self.onConnect()
  }
}

/// A response as grpc-swift's client reads it: metadata, messages, then the status, which is
/// also what a trailers-only answer or an HTTP error becomes.
struct ClientInbound: AsyncSequence, Sendable {
  typealias Element = RPCResponsePart<PluginBytes>
  typealias Failure = any Error
  let stream: GRPCStream

  struct AsyncIterator: AsyncIteratorProtocol {
    let stream: GRPCStream
    var sawHeaders = false
    var done = false

    mutating func next() async throws -> Element? {
      guard !self.done else { return nil }
      guard let part = try await self.stream.inbox.next() else {
        self.done = true
        throw RPCError(code: .internalError, message: "the plugin ended the call without a status")
      }
      switch part {
      case .message(let bytes, _):
        return .message(bytes)
      case .headers(let headers, let endStream):
        if self.sawHeaders || endStream || headers.contains(name: "grpc-status") {
          self.done = true
          if !self.sawHeaders, let httpStatus = headers.first(name: ":status"), httpStatus != "200" {
            return .status(GRPCWire.status(httpStatus: httpStatus), [:])
          }
          let (status, metadata) = GRPCWire.status(fromTrailers: headers)
          return .status(status, metadata)
        }
        self.sawHeaders = true
        guard headers.first(name: ":status") == "200" else {
          self.done = true
          return .status(GRPCWire.status(httpStatus: headers.first(name: ":status")), [:])
        }
        guard GRPCWire.isGRPC(contentType: headers.first(name: "content-type")) else {
          self.done = true
          return .status(
            Status(code: .internalError, message: "the plugin answered with content that is not gRPC"), [:])
        }
        return .metadata(GRPCWire.metadata(from: headers))
      }
    }
  }

  func makeAsyncIterator() -> AsyncIterator {
    AsyncIterator(stream: self.stream)
  }
}

/// A request as grpc-swift's client writes it: headers with the metadata, messages, the end.
struct ClientOutbound: ClosableRPCWriterProtocol {
  typealias Element = RPCRequestPart<PluginBytes>
  let stream: GRPCStream
  let headers: HPACKHeaders

  func write(_ element: Element) async throws {
    switch element {
    case .metadata(let metadata):
      var headers = self.headers
      GRPCWire.append(metadata, to: &headers)
      try await self.stream.write(queuing: 0) { [headers] in
        try self.stream.send(headers: headers, endStream: false)
        return nil
      }
    case .message(let bytes):
      try await self.stream.write(queuing: bytes.count + PluginBytes.prefixLength) {
        try self.stream.send(message: bytes)
      }
    }
  }

  func write(contentsOf elements: some Sequence<Element>) async throws {
    for element in elements { try await self.write(element) }
  }

  func finish() async {
    try? await self.stream.write(queuing: 0) {
      try self.stream.sendEnd()
      return nil
    }
  }

  func finish(throwing error: any Error) async {
    try? await self.stream.write(queuing: 0) {
      self.stream.reset(.cancel)
      return nil
    }
  }
}
