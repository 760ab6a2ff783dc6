public import GRPCCore
import GoPluginProtos
import Logging
import NIOSSL
import SwiftProtobuf
import Synchronization

/// Extra gRPC connections between a host and its plugin, in either direction — go-plugin's
/// broker (spec §3.7), for callbacks into the host and for streams and arguments that deserve
/// a connection of their own.
///
/// One side picks an ID with ``nextID()``, serves on it with ``acceptAndServe(id:services:)``
/// and tells the other side the ID in an ordinary call; the other side connects with
/// ``withClient(for:timeout:_:)``. The rendezvous runs over the `GRPCBroker.StartStream` stream
/// that the host holds open for the plugin's lifetime. IDs are numbered per side from 1, so an
/// ID only means something together with the message that carries it.
///
/// Everything opened for an ID is closed when its task ends, and at the latest when the plugin
/// or the host goes away.
public final class GRPCBroker: Sendable {
  /// How long a connection's address waits for a dial, and a dial for its address.
  public static let rendezvousTimeout: Duration = .seconds(5)

  private struct Waiting {
    var info: Plugin_ConnInfo
    var arrived: ContinuousClock.Instant
  }

  private struct State {
    var arrived: [UInt32: Waiting] = [:]
    var dialers: [UInt32: [Int: OneShot<Plugin_ConnInfo?>]] = [:]
    var nextDialer = 0
    var closed = false
    var streamAttached = false
    /// Multiplexed mode: each ID's server, for the knocks that announce a stream to it.
    var knockTargets: [UInt32: StreamAcceptor] = [:]
    /// Knocks that came before their ID was served, answered once it is (for five seconds).
    var earlyKnocks: [UInt32: ContinuousClock.Instant] = [:]
  }

  private let ids = Atomic<UInt32>(0)
  private let state = Mutex(State())
  private let closedSignal = OneShot<Void>()
  let outbound: AsyncStream<Plugin_ConnInfo>
  private let outboundContinuation: AsyncStream<Plugin_ConnInfo>.Continuation
  private let socketDirectory: String?
  private let environment: [String: String]
  private let security: ConnectionSecurity
  private let maxMessageSize: Int
  /// How long a brokered connection's TLS handshake and HTTP/2 SETTINGS may take: the host's
  /// start timeout on the host's side.
  private let setupTimeout: Duration
  private let logger: Logger
  /// Set when brokered connections ride the main connection as yamux streams.
  private let multiplexer: Multiplexer?
  /// Multiplexed dials take turns: the acceptor routes "the next stream" to the knocked ID.
  private let dialGate = AsyncGate()

  init(
    socketDirectory: String?,
    environment: [String: String],
    security: ConnectionSecurity,
    maxMessageSize: Int,
    multiplexer: Multiplexer? = nil,
    setupTimeout: Duration = Transports.setupTimeout,
    logger: Logger
  ) {
    (self.outbound, self.outboundContinuation) = AsyncStream.makeStream()
    self.socketDirectory = socketDirectory
    self.environment = environment
    self.security = security
    self.maxMessageSize = maxMessageSize
    self.multiplexer = multiplexer
    self.setupTimeout = setupTimeout
    self.logger = logger
  }

  /// Whether brokered connections are yamux streams of the main connection.
  public var isMultiplexed: Bool { self.multiplexer != nil }

  /// A fresh ID for ``acceptAndServe(id:services:)``: 1, 2, 3… on this side.
  public func nextID() -> UInt32 {
    self.ids.wrappingAdd(1, ordering: .relaxed).newValue
  }

  /// Listens on a new socket, tells the other side where it is under `id`, and serves
  /// `services` there until the calling task is cancelled or the plugin goes away.
  ///
  /// - Throws: ``PluginError`` if the broker is closed or no listener can be opened.
  public func acceptAndServe(id: UInt32, services: [any RegistrableRPCService]) async throws {
    if let unsupported = self.security.unsupported, self.security.server == nil {
      throw PluginError(code: .invalidConfiguration, message: "cannot serve a brokered connection: \(unsupported)")
    }
    guard !self.isClosed else { throw Self.closedError }
    // Multiplexed, the server listens on no socket: streams are handed to it after a knock.
    let transport: PluginServerTransport
    var listener: SocketListener?
    if let multiplexer {
      transport = multiplexer.serverTransport(maxReceiveMessageSize: self.maxMessageSize, tls: self.security.server)
    } else {
      let opened = try SocketListener.open(.unix(directory: self.socketDirectory), environment: self.environment)
      listener = opened
      transport = Transports.server(
        listener: opened, maxReceiveMessageSize: self.maxMessageSize, tls: self.security.server)
    }
    defer { listener?.removeSocketFile() }
    let server = GRPCServer(transport: transport, services: services)

    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await server.serve() }
      try await transport.waitUntilListening()
      if let multiplexer = self.multiplexer {
        let acceptor: StreamAcceptor = { channel in try transport.serve(channel) }
        let knocked = self.state.withLock { state in
          state.knockTargets[id] = acceptor
          guard let knocked = state.earlyKnocks.removeValue(forKey: id) else { return false }
          return ContinuousClock.now - knocked < Self.rendezvousTimeout
        }
        if knocked { self.acknowledgeKnock(id, routingTo: acceptor, multiplexer: multiplexer) }
      } else if let listener {
        self.send(
          .with {
            $0.serviceID = id
            $0.network = listener.network.rawValue
            $0.address = listener.address
          })
      }
      defer { self.state.withLock { _ = $0.knockTargets.removeValue(forKey: id) } }
      _ = await self.closedSignal.wait()
      server.beginGracefulShutdown()
      try await group.waitForAll()
    }
  }

  /// Connects to what the other side serves under `id` and runs `body` with a gRPC client for
  /// it; the connection is closed when `body` returns.
  ///
  /// - Parameter timeout: how long to wait for the other side to announce `id`.
  /// - Throws: ``PluginError`` with ``PluginError/Code/brokerTimeout`` if nothing was announced
  ///   in time, or what `body` throws.
  public func withClient<Result: Sendable>(
    for id: UInt32,
    timeout: Duration = GRPCBroker.rendezvousTimeout,
    _ body: (GRPCClient<PluginTransport>) async throws -> Result
  ) async throws -> Result {
    if let unsupported = self.security.unsupported, self.security.client == nil {
      throw PluginError(code: .invalidConfiguration, message: "cannot dial a brokered connection: \(unsupported)")
    }
    if let multiplexer {
      return try await self.withMultiplexedClient(for: id, timeout: timeout, multiplexer: multiplexer, body)
    }
    let info = try await self.connectionInfo(for: id, timeout: timeout)
    let network = HandshakeLine.Network(rawValue: info.network)
    guard network == .unix || network == .tcp else {
      throw PluginError(code: .unknownAddressType, message: "unknown address type: \(info.address)")
    }
    let transport = try Transports.client(
      network: network,
      address: info.address,
      maxMessageSize: self.maxMessageSize,
      tls: self.security.client,
      serverHostname: self.security.serverHostname,
      peerName: "the brokered server \(id)",
      setupTimeout: self.setupTimeout
    )
    return try await withGRPCClient(transport: PluginTransport(transport)) { client in try await body(client) }
  }

  /// The knock exchange of multiplexed brokers (spec §3.7): announce the dial, wait for the
  /// acceptor to route the next stream to `id`, then open that stream, on which the gRPC
  /// connection runs.
  private func withMultiplexedClient<Result: Sendable>(
    for id: UInt32,
    timeout: Duration,
    multiplexer: Multiplexer,
    _ body: (GRPCClient<PluginTransport>) async throws -> Result
  ) async throws -> Result {
    await self.dialGate.acquire()
    let release = OnceAction { [dialGate] in dialGate.release() }
    defer { release.run() }
    do {
      try await self.knock(id, timeout: timeout)
      try await multiplexer.waitUntilEstablished()
    } catch {
      throw PluginError(
        code: error.code,
        message: "failed to knock before dialling client: \(error.message)",
        cause: error
      )
    }
    let streamOpened = OneShot<Void>()
    let transport = multiplexer.clientTransport(
      maxMessageSize: self.maxMessageSize,
      tls: self.security.client,
      serverHostname: self.security.serverHostname,
      peerName: "the brokered server \(id)",
      setupTimeout: self.setupTimeout,
      onConnect: { streamOpened.fulfil(()) }
    )
    return try await withThrowingTaskGroup(of: Void.self) { group in
      // The next dial may knock once this one's stream exists.
      group.addTask {
        _ = await streamOpened.wait(timeout: Self.rendezvousTimeout)
        release.run()
      }
      defer { group.cancelAll() }
      return try await withGRPCClient(transport: PluginTransport(transport)) { client in try await body(client) }
    }
  }

  private func knock(_ id: UInt32, timeout: Duration) async throws(PluginError) {
    self.send(
      .with {
        $0.serviceID = id
        $0.knock = .with { $0.knock = true }
      })
    let reply: Plugin_ConnInfo
    do {
      reply = try await self.connectionInfo(for: id, timeout: timeout)
    } catch  where error.code == .brokerTimeout {
      throw PluginError(code: .knockFailed, message: "timeout waiting for multiplexing knock handshake on id \(id)")
    }
    guard reply.serviceID == id else {
      throw PluginError(
        code: .knockFailed,
        message: "handshake failed for multiplexing on id \(id); got response for \(reply.serviceID)")
    }
    guard reply.hasKnock, reply.knock.knock, reply.knock.ack else {
      throw PluginError(
        code: .knockFailed,
        message:
          "handshake failed for multiplexing on id \(id); expected knock and ack, but got \(reply.knock.textFormatString())"
      )
    }
    guard reply.knock.error.isEmpty else {
      throw PluginError(code: .knockFailed, message: "failed to knock for id \(id): \(reply.knock.error)")
    }
  }

  /// The acceptor's half of the knock exchange: route the next stream, then acknowledge. A
  /// knock for an ID not served yet waits for it, as a non-multiplexed dial waits for its
  /// address: serving and dialling race in most programs. go-plugin refuses such a knock at
  /// once with "no listener for id"; a dialler here that gets that answer fails with it.
  private func answerKnock(_ id: UInt32, multiplexer: Multiplexer) {
    let now = ContinuousClock.now
    let target: StreamAcceptor? = self.state.withLock { state in
      if let target = state.knockTargets[id] { return target }
      state.earlyKnocks = state.earlyKnocks.filter { now - $0.value < Self.rendezvousTimeout }
      state.earlyKnocks[id] = now
      return nil
    }
    if let target {
      self.acknowledgeKnock(id, routingTo: target, multiplexer: multiplexer)
    } else {
      self.logger.debug("knock for an ID not served yet", metadata: ["id": "\(id)"])
    }
  }

  private func acknowledgeKnock(_ id: UInt32, routingTo target: @escaping StreamAcceptor, multiplexer: Multiplexer) {
    multiplexer.routeNextInboundStream(to: target)
    self.send(
      .with {
        $0.serviceID = id
        $0.knock = .with {
          $0.knock = true
          $0.ack = true
        }
      })
  }

  // MARK: - The stream

  /// Claims the broker stream; there is one per plugin, and a second would compete for the
  /// announcements meant for the first.
  func attachStream() -> Bool {
    self.state.withLock { state in
      guard !state.streamAttached else { return false }
      state.streamAttached = true
      return true
    }
  }

  /// Hands on a message from the other side's end of the broker stream.
  func received(_ info: Plugin_ConnInfo) {
    if info.hasKnock, info.knock.knock, !info.knock.ack {
      guard let multiplexer = self.multiplexer else {
        // Knocks belong to multiplexed brokers, which this side did not offer.
        self.logger.debug("ignoring a multiplexing knock", metadata: ["id": "\(info.serviceID)"])
        return
      }
      self.answerKnock(info.serviceID, multiplexer: multiplexer)
      return
    }
    // Addresses and knock acknowledgements both wait for the dial of their ID.
    let now = ContinuousClock.now
    let dialer: OneShot<Plugin_ConnInfo?>? = self.state.withLock { state in
      guard !state.closed else { return nil }
      if let waiting = state.dialers[info.serviceID], let first = waiting.keys.min() {
        let dialer = waiting[first]
        state.dialers[info.serviceID]?[first] = nil
        return dialer
      }
      // Unclaimed announcements expire; go-plugin keeps one per ID for five seconds.
      state.arrived = state.arrived.filter { now - $0.value.arrived < Self.rendezvousTimeout }
      if state.arrived[info.serviceID] == nil {
        state.arrived[info.serviceID] = Waiting(info: info, arrived: now)
      }
      return nil
    }
    dialer?.fulfil(info)
  }

  /// Stops everything: served IDs stop, dials fail, and the stream's writer finishes.
  func close() {
    let dialers = self.state.withLock { state -> [OneShot<Plugin_ConnInfo?>] in
      state.closed = true
      defer { state.dialers = [:] }
      return state.dialers.values.flatMap(\.values)
    }
    for dialer in dialers { dialer.fulfil(nil) }
    self.closedSignal.fulfil(())
    self.outboundContinuation.finish()
  }

  private var isClosed: Bool { self.state.withLock { $0.closed } }

  private static let closedError = PluginError(code: .notRunning, message: "broker closed")

  private func send(_ info: Plugin_ConnInfo) {
    self.outboundContinuation.yield(info)
  }

  private func connectionInfo(for id: UInt32, timeout: Duration) async throws(PluginError) -> Plugin_ConnInfo {
    let now = ContinuousClock.now
    let (ready, dialer, key): (Plugin_ConnInfo?, OneShot<Plugin_ConnInfo?>?, Int) = try self.state.withLock {
      state throws(PluginError) in
      guard !state.closed else { throw Self.closedError }
      if let waiting = state.arrived.removeValue(forKey: id), now - waiting.arrived < Self.rendezvousTimeout {
        return (waiting.info, nil, 0)
      }
      let dialer = OneShot<Plugin_ConnInfo?>()
      let key = state.nextDialer
      state.nextDialer += 1
      state.dialers[id, default: [:]][key] = dialer
      return (nil, dialer, key)
    }
    if let ready { return ready }
    guard let dialer else { throw Self.closedError }
    let outcome = await dialer.wait(timeout: timeout)
    self.state.withLock { _ = $0.dialers[id]?.removeValue(forKey: key) }
    // An announcement that raced the timeout still counts.
    switch outcome ?? dialer.current {
    case .some(.some(let info)): return info
    case .some(.none): throw Self.closedError
    case .none: throw PluginError(code: .brokerTimeout, message: "timeout waiting for connection info")
    }
  }
}
