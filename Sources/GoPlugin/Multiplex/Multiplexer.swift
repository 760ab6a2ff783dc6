import GoPluginPlatform
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Every gRPC connection between a host and its plugin — the main one and each brokered one —
/// as a stream of one yamux session over one socket, as go-plugin ≥ 1.6 does when the host
/// asks for multiplexing (spec §3.7, §5).
///
/// gRPC itself keeps talking to unix sockets: connections this side opens go to a private
/// "dial" socket whose every accepted connection becomes a new yamux stream, and streams the
/// peer opens are connected to the private socket of the server they are meant for — the
/// brokered server whose knock came last, or otherwise (on the plugin) the main server.
/// The private sockets live in a directory only this user can enter.
final class Multiplexer: Sendable {
  /// A private socket whose every connection becomes a new stream to the peer.
  struct DialSocket: Sendable {
    let path: String
    fileprivate let channel: any Channel
    /// Fulfilled when the first connection has been turned into a stream.
    let firstStreamOpened: OneShot<Void>

    func close() {
      self.channel.close(promise: nil)
      unlink(self.path)
    }
  }

  private struct Session: Sendable {
    let channel: any Channel
    let handler: NIOLoopBound<YamuxSession>
  }

  private struct State {
    var session: Session?
    /// Where the next streams the peer opens go, oldest knock first.
    var knocked: [String] = []
    var acceptor: (any Channel)?
    var closed = false
    /// Where streams go that no knock announced; only the plugin has one, its main server.
    var mainRoute: String?
    /// Every channel this multiplexer opened that has not closed yet, so that closing can wait
    /// until their descriptors are gone.
    var channels: [ObjectIdentifier: any Channel] = [:]
  }

  /// Where the private sockets are made.
  let socketDirectory: String
  private let ownsDirectory: Bool
  private let configuration: YamuxSession.Configuration
  private let logger: Logger
  private let state = Mutex(State())
  /// `true` once the session is up; `false` if it never will be.
  private let established = OneShot<Bool>()

  /// How long the plugin's brokered dials wait for the host to connect at all.
  static let establishTimeout: Duration = .seconds(5)

  /// - Parameter socketDirectory: an existing private directory; `nil` makes one in `base`,
  ///   removed again by ``close()``.
  init(
    socketDirectory: String?,
    base: String = "/tmp",
    configuration: YamuxSession.Configuration = YamuxSession.Configuration(),
    logger: Logger
  ) throws(PluginError) {
    self.configuration = configuration
    self.logger = logger
    if let socketDirectory {
      self.socketDirectory = socketDirectory
      self.ownsDirectory = false
    } else {
      self.socketDirectory = try SocketDirectory.makePrivate(in: base, prefix: "plugin-mux")
      self.ownsDirectory = true
    }
  }

  // MARK: - Establishing the session

  /// The host's side: connects to the plugin's address and runs the yamux client on it.
  /// What comes after (the gRPC connection's SETTINGS over the session's first stream) is
  /// bounded by the gRPC transport's set-up timeout.
  func connect(
    network: HandshakeLine.Network,
    address: String,
    connectTimeout: Duration = Transports.setupTimeout
  ) async throws(PluginError) {
    let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .connectTimeout(TimeAmount(connectTimeout))
      .channelInitializer { [self] channel in
        channel.eventLoop.makeCompletedFuture { try self.install(on: channel, role: .client) }
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
  func accept(on listener: SocketListener) async throws(PluginError) {
    let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .childChannelInitializer { [self] channel in
        channel.eventLoop.makeCompletedFuture {
          let first = self.state.withLock { $0.session == nil && !$0.closed }
          guard first else {
            channel.close(promise: nil)
            return
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
    let eventLoop = channel.eventLoop
    handler.onInboundStream = { [self] stream in self.route(stream, eventLoop: eventLoop) }
    try channel.pipeline.syncOperations.addHandlers(
      ByteToMessageHandler(YamuxFrameDecoder(maxPayload: self.configuration.maxStreamWindow)),
      handler
    )
    self.track(channel)
    let session = Session(channel: channel, handler: NIOLoopBound(handler, eventLoop: eventLoop))
    let closed = self.state.withLock { state in
      state.session = session
      return state.closed
    }
    if closed { channel.close(promise: nil) }
  }

  private func watch(_ channel: any Channel) {
    channel.closeFuture.whenComplete { [logger] _ in
      logger.debug("multiplexed connection closed")
    }
  }

  // MARK: - Streams

  /// Sends streams the peer opens without a knock to the server listening at `path`: the
  /// plugin's main gRPC server.
  func setMainRoute(_ path: String) {
    self.state.withLock { $0.mainRoute = path }
  }

  /// Sends the next stream the peer opens to the server listening at `path`; called before
  /// acknowledging a knock, so the stream cannot arrive first.
  func routeNextInboundStream(to path: String) {
    self.state.withLock { $0.knocked.append(path) }
  }

  private func route(_ stream: YamuxStream, eventLoop: any EventLoop) {
    let target: String? = self.state.withLock { state in
      state.knocked.isEmpty ? state.mainRoute : state.knocked.removeFirst()
    }
    guard let target else {
      self.logger.warning("refusing a yamux stream nobody knocked for", metadata: ["stream": "\(stream.id)"])
      stream.reset()
      return
    }
    let bridge = NIOLoopBound(YamuxBridge(stream: stream), eventLoop: eventLoop)
    let boundStream = NIOLoopBound(stream, eventLoop: eventLoop)
    ClientBootstrap(group: eventLoop)
      .channelInitializer { [self] channel in
        self.track(channel)
        return channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(bridge.value) }
      }
      .connect(unixDomainSocketPath: target)
      .whenFailure { [logger] error in
        logger.debug("could not hand a yamux stream on", metadata: ["target": "\(target)", "error": "\(error)"])
        boundStream.value.reset()
      }
  }

  /// A private socket for gRPC clients of this side: each connection to it opens a stream.
  func makeDialSocket() async throws(PluginError) -> DialSocket {
    guard await self.established.wait(timeout: Self.establishTimeout) == true,
      let session = self.state.withLock({ $0.closed ? nil : $0.session })
    else {
      throw PluginError(
        code: .connectionFailed,
        message: "error establishing yamux session: timed out waiting for connection to be established")
    }
    let listener = try SocketListener.open(.unix(directory: self.socketDirectory), environment: [:])
    let opened = OneShot<Void>()
    let eventLoop = session.channel.eventLoop
    let bootstrap = ServerBootstrap(group: eventLoop)
      .childChannelInitializer { child in
        child.eventLoop.makeCompletedFuture {
          self.track(child)
          let stream = try session.handler.value.openStream()
          try child.pipeline.syncOperations.addHandler(YamuxBridge(stream: stream))
          opened.fulfil(())
        }
      }
    do {
      let channel = try await bootstrap.withBoundSocket(listener.descriptor).get()
      self.track(channel)
      return DialSocket(path: listener.address, channel: channel, firstStreamOpened: opened)
    } catch {
      listener.removeSocketFile()
      throw PluginError(
        code: .listenFailed,
        message: "could not open a socket for multiplexed dialling: \(error)",
        cause: error
      )
    }
  }

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

  /// ``close()``, and then waits until every connection, listener and bridge the multiplexer
  /// opened has closed: a host that returns from stopping a plugin holds none of them.
  func closeAndWait() async {
    self.close()
    // A channel leaves the list in a close-future callback registered before any waiter's, so
    // each round sees only channels opened while the last one was closing: bridges whose
    // streams the session's end reset. A few rounds empty it.
    for _ in 0..<8 {
      let open = self.state.withLock { Array($0.channels.values) }
      guard !open.isEmpty else { return }
      for channel in open {
        channel.close(promise: nil)
        try? await channel.closeFuture.get()
      }
    }
  }

  /// Ends the session and the acceptor, and removes the private directory if it made it.
  func close() {
    let (session, acceptor) = self.state.withLock { state in
      state.closed = true
      return (state.session, state.acceptor)
    }
    self.established.fulfil(false)
    session?.channel.close(promise: nil)
    acceptor?.close(promise: nil)
    if self.ownsDirectory {
      SocketDirectory.removeTree(self.socketDirectory)
    }
  }
}
