import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// Sets up the channel of a yamux stream the peer opened — a server transport's pipeline —
/// synchronously on the session's event loop, before the channel is active.
typealias StreamAcceptor = @Sendable (any Channel) throws -> Void

/// Every gRPC connection between a host and its plugin — the main one and each brokered one —
/// as a stream of one yamux session over one socket, as go-plugin ≥ 1.6 does when the host
/// asks for multiplexing (spec §3.7, §5).
///
/// Each connection runs directly on its stream: a ``YamuxStreamChannel`` carries the gRPC
/// transport's pipeline, so a call crosses one socket and no bridge. Streams this side opens
/// come from ``clientTransport(maxMessageSize:tls:serverHostname:peerName:setupTimeout:onConnect:)``;
/// streams the peer opens go to the server they are meant for — the brokered server whose
/// knock came first, or otherwise (on the plugin) the main server.
final class Multiplexer: Sendable {
  private struct Session: Sendable {
    let channel: any Channel
    let handler: NIOLoopBound<YamuxSession>
  }

  private struct State {
    var session: Session?
    /// Where the next streams the peer opens go, oldest knock first.
    var knocked: [StreamAcceptor] = []
    var acceptor: (any Channel)?
    var closed = false
    /// Where streams go that no knock announced; only the plugin has one, its main server.
    var mainRoute: StreamAcceptor?
    /// Every channel this multiplexer opened that has not closed yet, so that closing can wait
    /// until they are gone.
    var channels: [ObjectIdentifier: any Channel] = [:]
  }

  /// The session's connection, its streams and the transports running on them all live on
  /// this one loop, so no hop separates a call from the socket.
  let eventLoop: any EventLoop
  private let configuration: YamuxSession.Configuration
  private let logger: Logger
  private let state = Mutex(State())
  /// `true` once the session is up; `false` if it never will be.
  private let established = OneShot<Bool>()
  /// Set when the session's connection has closed.
  let ended = OneShot<Void>()

  /// How long the plugin's brokered dials wait for the host to connect at all.
  static let establishTimeout: Duration = .seconds(5)

  /// The receive window this side grants each stream. A multiplexed gRPC connection is one
  /// stream, whose HTTP/2 flow control already bounds what is in flight; yamux's default of
  /// 256 KiB, given back half at a time, would add a round trip per 128 KiB under it.
  static let streamWindow: UInt32 = 4 << 20

  init(
    configuration: YamuxSession.Configuration = YamuxSession.Configuration(maxStreamWindow: Multiplexer.streamWindow),
    logger: Logger,
    eventLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next()
  ) {
    self.configuration = configuration
    self.logger = logger
    self.eventLoop = eventLoop
  }

  // MARK: - Establishing the session

  /// The host's side: connects to the plugin's address and runs the yamux client on it.
  /// What comes after (the gRPC connection's SETTINGS over the session's first stream) is
  /// bounded by the gRPC transport's set-up timeout.
  ///
  /// With `tls`, TLS wraps the connection under yamux, as for a net/rpc plugin (a multiplexed
  /// gRPC connection puts TLS inside each stream instead).
  func connect(
    network: HandshakeLine.Network,
    address: String,
    connectTimeout: Duration = Transports.setupTimeout,
    tls: ConnectionTLS? = nil,
    serverHostname: String? = nil
  ) async throws(PluginError) {
    let bootstrap = ClientBootstrap(group: self.eventLoop)
      .connectTimeout(TimeAmount(connectTimeout))
      .channelInitializer { [self] channel in
        channel.eventLoop.makeCompletedFuture {
          if let tls {
            let handler = try tls.clientHandler(serverHostname: serverHostname) { [logger] reason in
              logger.error("TLS handshake with the plugin refused", metadata: ["reason": "\(reason)"])
            }
            try channel.pipeline.syncOperations.addHandler(handler)
          }
          try self.install(on: channel, role: .client)
        }
      }
    do {
      let channel: any Channel
      if network == .unix {
        channel = try await bootstrap.connect(unixDomainSocketPath: address).get()
      } else {
        let (host, port) = try Transports.splitHostPort(address)
        channel = try await bootstrap.connect(host: host, port: port).get()
      }
      self.established.fulfil(true)
      self.watch(channel)
    } catch let error as PluginError {
      self.established.fulfil(false)
      throw error
    } catch {
      self.established.fulfil(false)
      throw PluginError(code: .connectionFailed, message: "error establishing yamux session: \(error)", cause: error)
    }
  }

  /// The plugin's side: the first connection to `listener` becomes the yamux server session;
  /// later ones are turned away, as go-plugin never accepts them.
  ///
  /// With `tls`, the connection is TLS under yamux, as a net/rpc plugin's listener is.
  func accept(on listener: SocketListener, tls: ConnectionTLS? = nil) async throws(PluginError) {
    let bootstrap = ServerBootstrap(group: self.eventLoop)
      .childChannelInitializer { [self] channel in
        channel.eventLoop.makeCompletedFuture {
          let first = self.state.withLock { $0.session == nil && !$0.closed }
          guard first else {
            channel.close(promise: nil)
            return
          }
          if let tls {
            let handler = tls.serverHandler { [logger] reason in
              logger.error("TLS handshake with the host refused", metadata: ["reason": "\(reason)"])
            }
            try channel.pipeline.syncOperations.addHandler(handler)
          }
          try self.install(on: channel, role: .server)
          self.established.fulfil(true)
          self.watch(channel)
        }
      }
    do {
      let acceptor = try await bootstrap.withBoundSocket(listener.descriptor).get()
      self.track(acceptor)
      let closed = self.state.withLock { state in
        state.acceptor = acceptor
        return state.closed
      }
      if closed { acceptor.close(promise: nil) }
    } catch {
      throw PluginError(
        code: .listenFailed,
        message: "could not accept multiplexed connections: \(error)",
        cause: error
      )
    }
  }

  private func install(on channel: any Channel, role: YamuxSession.Role) throws {
    let handler = YamuxSession(role: role, configuration: self.configuration, logger: self.logger)
    handler.onInboundStream = { [self] stream in self.route(stream) }
    try channel.pipeline.syncOperations.addHandlers(
      ByteToMessageHandler(YamuxFrameDecoder(maxPayload: self.configuration.maxStreamWindow)),
      handler
    )
    self.track(channel)
    let session = Session(channel: channel, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop))
    let closed = self.state.withLock { state in
      state.session = session
      return state.closed
    }
    if closed { channel.close(promise: nil) }
  }

  private func watch(_ channel: any Channel) {
    channel.closeFuture.whenComplete { [logger, ended] _ in
      logger.debug("multiplexed connection closed")
      ended.fulfil(())
    }
  }

  /// Returns once the session is up: the plugin's brokered dials may come before the host has
  /// connected.
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/connectionFailed`` if it is not up within
  ///   ``establishTimeout`` or has ended.
  func waitUntilEstablished() async throws(PluginError) {
    guard await self.established.wait(timeout: Self.establishTimeout) == true,
      self.state.withLock({ !$0.closed && $0.session != nil })
    else {
      throw PluginError(
        code: .connectionFailed,
        message: "error establishing yamux session: timed out waiting for connection to be established")
    }
  }

  // MARK: - Streams

  /// Sends streams the peer opens without a knock to `acceptor`: the plugin's main gRPC server.
  func setMainRoute(_ acceptor: @escaping StreamAcceptor) {
    self.state.withLock { $0.mainRoute = acceptor }
  }

  /// Sends the next stream the peer opens to `acceptor`; called before acknowledging a knock,
  /// so the stream cannot arrive first.
  func routeNextInboundStream(to acceptor: @escaping StreamAcceptor) {
    self.state.withLock { $0.knocked.append(acceptor) }
  }

  /// Opens a stream to the peer as a channel that `initializer` sets up; the future holds it
  /// active, or the reason there is none (the session ended, or the peer sent a go-away).
  func openStream(initializer: @escaping StreamAcceptor) -> EventLoopFuture<any Channel> {
    guard let session = self.state.withLock({ $0.closed ? nil : $0.session }) else {
      return self.eventLoop.makeFailedFuture(
        PluginError(code: .connectionFailed, message: "the multiplexed connection is closed"))
    }
    return session.channel.eventLoop.submit { () throws -> any Channel in
      let stream = try session.handler.value.openStream()
      return try self.start(stream, parent: session.channel, initializer: initializer)
    }
  }

  private func route(_ stream: YamuxStream) {
    let (acceptor, parent) = self.state.withLock { state -> (StreamAcceptor?, (any Channel)?) in
      let acceptor = state.knocked.isEmpty ? state.mainRoute : state.knocked.removeFirst()
      return (acceptor, state.session?.channel)
    }
    guard let acceptor, let parent else {
      self.logger.warning("refusing a yamux stream nobody knocked for", metadata: ["stream": "\(stream.id)"])
      stream.reset()
      return
    }
    do {
      _ = try self.start(stream, parent: parent, initializer: acceptor)
    } catch {
      self.logger.debug("could not serve a yamux stream", metadata: ["stream": "\(stream.id)", "error": "\(error)"])
    }
  }

  /// A channel for `stream`, set up by `initializer` and then activated; a stream whose
  /// pipeline cannot be set up is reset.
  private func start(
    _ stream: YamuxStream,
    parent: any Channel,
    initializer: StreamAcceptor
  ) throws -> YamuxStreamChannel {
    let channel = YamuxStreamChannel(stream: stream, parent: parent)
    self.track(channel)
    do {
      try initializer(channel)
    } catch {
      channel.abandon()
      throw error
    }
    channel.activate()
    return channel
  }

  // MARK: - Transports on streams

  /// A gRPC client whose connection is a new stream of this session, opened on first use.
  func clientTransport(
    maxMessageSize: Int,
    tls: ConnectionTLS?,
    serverHostname: String?,
    peerName: String,
    setupTimeout: Duration,
    onConnect: @escaping @Sendable () -> Void = {}
  ) -> PluginClientTransport {
    PluginClientTransport(
      target: .channel(open: { [self] initializer in self.openStream(initializer: initializer) }, peer: "yamux"),
      maxMessageSize: maxMessageSize,
      tls: tls,
      serverHostname: serverHostname,
      peerName: peerName,
      setupTimeout: setupTimeout,
      onConnect: onConnect,
      eventLoop: self.eventLoop
    )
  }

  /// A gRPC server for the streams routed to it with ``setMainRoute(_:)`` or
  /// ``routeNextInboundStream(to:)`` (pass its ``PluginServerTransport/serve(_:)``).
  func serverTransport(
    maxReceiveMessageSize: Int, tls: ConnectionTLS?, handlersOnEventLoop: Bool = true,
    methods: PluginMethodTable = PluginMethodTable()
  ) -> PluginServerTransport {
    PluginServerTransport(
      handedConnectionsOn: self.eventLoop, maxReceiveMessageSize: maxReceiveMessageSize, tls: tls,
      handlersOnEventLoop: handlersOnEventLoop, methods: methods)
  }

  // MARK: - Closing

  /// Keeps `channel` until it closes; one opened after ``close()`` is closed at once.
  private func track(_ channel: any Channel) {
    let id = ObjectIdentifier(channel)
    let closed = self.state.withLock { state in
      state.channels[id] = channel
      return state.closed
    }
    channel.closeFuture.whenComplete { [self] _ in
      _ = self.state.withLock { $0.channels.removeValue(forKey: id) }
    }
    if closed { channel.close(promise: nil) }
  }

  /// ``close()``, and then waits until the connection, the listener and every stream channel
  /// the multiplexer opened has closed: a host that returns from stopping a plugin holds none.
  func closeAndWait() async {
    self.close()
    // A channel leaves the list in a close-future callback registered before any waiter's, so
    // each round sees only channels opened while the last one was closing. A few rounds empty it.
    for _ in 0..<8 {
      let open = self.state.withLock { Array($0.channels.values) }
      guard !open.isEmpty else { return }
      for channel in open {
        channel.close(promise: nil)
        try? await channel.closeFuture.get()
      }
    }
  }

  /// Ends the session, and with it every stream, and the acceptor.
  func close() {
    let (session, acceptor) = self.state.withLock { state in
      state.closed = true
      state.knocked = []
      state.mainRoute = nil
      return (state.session, state.acceptor)
    }
    self.established.fulfil(false)
    session?.channel.close(promise: nil)
    acceptor?.close(promise: nil)
  }
}
