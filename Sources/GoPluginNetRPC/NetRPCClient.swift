import GoPluginGob
public import NIOCore
import Synchronization

/// A client of Go's `net/rpc` (gob codec) on one connection: any NIO channel that carries the
/// bytes of a stream, such as a TCP socket, a TLS connection or a yamux stream.
///
/// Calls may run concurrently; each is matched to its reply by sequence number, as Go's
/// `rpc.Client` does. A cancelled call returns at once with ``NetRPCError/Code/cancelled``;
/// its reply, when it comes, is read and dropped. When the connection ends, every call still
/// waiting fails with ``NetRPCError/Code/shutdown``.
///
/// ```swift
/// let client = try await NetRPCClient.start(on: channel)
/// let greeting = try await client.call("Plugin.Greet", GobInterface.none, returning: String.self)
/// ```
public final class NetRPCClient: Sendable {
  /// A call waiting for its reply: decodes it into the caller's type and resumes the caller.
  struct Pending: Sendable {
    /// Reads the reply's body and resumes the caller; false if the body has not fully arrived.
    let complete: @Sendable (_ decoder: inout GobStreamDecoder, _ error: String) throws(GobError) -> Bool
    let fail: @Sendable (NetRPCError) -> Void
  }

  private struct State {
    var nextSeq: UInt64 = 0
    var pending: [UInt64: Pending] = [:]
    var closed = false
  }

  /// The channel the calls go over.
  public let channel: any Channel
  private let writer: GobWriter
  private let state = Mutex(State())

  private init(channel: any Channel) {
    self.channel = channel
    self.writer = GobWriter(channel: channel)
  }

  /// A client on `channel`, whose pipeline gets the handler that reads replies. The channel
  /// must be active, or become so, and carry `ByteBuffer`s.
  public static func start(on channel: any Channel) async throws -> NetRPCClient {
    let client = NetRPCClient(channel: channel)
    try await channel.eventLoop.submit {
      try channel.pipeline.syncOperations.addHandler(ReplyReader(client: client))
      // A channel handed over with reads held (a brokered stream) starts reading now.
      try channel.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
    }.get()
    channel.closeFuture.whenComplete { _ in client.connectionClosed() }
    return client
  }

  /// A client on a channel whose pipeline is being set up on its event loop, such as in a
  /// bootstrap's channel initializer.
  public static func start(settingUp channel: any Channel) throws -> NetRPCClient {
    channel.eventLoop.preconditionInEventLoop()
    let client = NetRPCClient(channel: channel)
    try channel.pipeline.syncOperations.addHandler(ReplyReader(client: client))
    channel.closeFuture.whenComplete { _ in client.connectionClosed() }
    return client
  }

  /// Calls `serviceMethod` (`"Service.Method"`) with `arguments` and waits for the reply.
  ///
  /// - Throws: ``NetRPCError``: ``NetRPCError/Code/server`` with the server's text when the
  ///   method failed, ``NetRPCError/Code/shutdown`` when the connection ended first,
  ///   ``NetRPCError/Code/encoding`` when the arguments or the reply do not fit gob or the
  ///   reply's type, ``NetRPCError/Code/cancelled`` when the task was cancelled.
  public func call<Arguments: Encodable & Sendable, Reply: Decodable & Sendable>(
    _ serviceMethod: String,
    _ arguments: Arguments,
    returning reply: Reply.Type = Reply.self
  ) async throws(NetRPCError) -> Reply {
    let registration = CallRegistration()
    let result: Result<Reply, NetRPCError> = await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<Result<Reply, NetRPCError>, Never>) in
        let once = ResumeOnce(continuation)
        let pending = Pending(
          complete: { (decoder: inout GobStreamDecoder, error: String) throws(GobError) -> Bool in
            if !error.isEmpty {
              guard try decoder.skipValue() else { return false }
              once.resume(.failure(NetRPCError(code: .server, message: error)))
              return true
            }
            do throws(GobError) {
              guard let value = try decoder.decode(Reply.self) else { return false }
              once.resume(.success(value))
            } catch {
              once.resume(.failure(NetRPCError(code: .encoding, message: "reading body \(error)", gobError: error)))
            }
            return true
          },
          fail: { once.resume(.failure($0)) }
        )
        self.send(serviceMethod, arguments, pending: pending, registration: registration)
      }
    } onCancel: {
      self.cancel(registration)
    }
    return try result.get()
  }

  /// Closes the connection; calls still waiting fail with ``NetRPCError/Code/shutdown``.
  public func close() {
    self.channel.close(promise: nil)
    self.connectionClosed()
  }

  // MARK: - Internals

  /// Where a call stands, for its cancellation handler.
  enum Registration {
    case none
    case sent(UInt64)
    case cancelled
  }

  final class CallRegistration: Sendable {
    let state = Mutex(Registration.none)
  }

  private func send<Arguments: Encodable & Sendable>(
    _ serviceMethod: String,
    _ arguments: Arguments,
    pending: Pending,
    registration: CallRegistration
  ) {
    // The lock order is always registration, then state.
    let failure: NetRPCError? = registration.state.withLock { registration in
      if case .cancelled = registration { return NetRPCError(code: .cancelled, message: "the call was cancelled") }
      return self.state.withLock { state -> NetRPCError? in
        guard !state.closed else { return NetRPCError.shutdownError }
        let seq = state.nextSeq
        // Registered before it is sent, so that no reply can come first; taken back if it
        // cannot be encoded.
        state.pending[seq] = pending
        do throws(GobError) {
          try self.writer.send(RequestHeader(serviceMethod: serviceMethod, seq: seq), arguments)
        } catch {
          state.pending[seq] = nil
          return NetRPCError(code: .encoding, message: "gob error encoding body: \(error)", gobError: error)
        }
        state.nextSeq &+= 1
        registration = .sent(seq)
        return nil
      }
    }
    if let failure { pending.fail(failure) }
  }

  private func cancel(_ registration: CallRegistration) {
    let pending: Pending? = registration.state.withLock { registration in
      defer { registration = .cancelled }
      guard case .sent(let seq) = registration else { return nil }
      return self.state.withLock { $0.pending.removeValue(forKey: seq) }
    }
    pending?.fail(NetRPCError(code: .cancelled, message: "the call was cancelled"))
  }

  /// The call waiting for `seq`, left in the table until its reply is complete, so that the
  /// connection's end or a cancellation still reaches it while its body arrives; nil for one
  /// that was cancelled.
  fileprivate func pending(_ seq: UInt64) -> Pending? {
    self.state.withLock { $0.pending[seq] }
  }

  fileprivate func finished(_ seq: UInt64) {
    _ = self.state.withLock { $0.pending.removeValue(forKey: seq) }
  }

  fileprivate func connectionClosed(_ error: NetRPCError = NetRPCError.shutdownError) {
    let pending = self.state.withLock { state in
      state.closed = true
      defer { state.pending = [:] }
      return Array(state.pending.values)
    }
    for call in pending { call.fail(error) }
  }
}

/// Resumes a continuation once, whichever of the reply, the cancellation or the connection's
/// end comes first.
private final class ResumeOnce<Value: Sendable>: Sendable {
  private let continuation: Mutex<CheckedContinuation<Value, Never>?>

  init(_ continuation: CheckedContinuation<Value, Never>) {
    self.continuation = Mutex(continuation)
  }

  func resume(_ value: Value) {
    let continuation = self.continuation.withLock { continuation in
      defer { continuation = nil }
      return continuation
    }
    continuation?.resume(returning: value)
  }
}

/// Reads replies on the connection's event loop: a header, then the body of the call it names.
private final class ReplyReader: ChannelInboundHandler {
  typealias InboundIn = ByteBuffer

  private enum Expecting {
    case header
    case body(ResponseHeader, NetRPCClient.Pending?)
  }

  private let client: NetRPCClient
  private var decoder = GobStreamDecoder()
  private var expecting = Expecting.header

  init(client: NetRPCClient) {
    self.client = client
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    let buffer = Self.unwrapInboundIn(data)
    self.decoder.append(buffer.readableBytesView)
    do {
      while try self.step() {}
    } catch {
      // A stream that cannot be read any further ends the connection, and every call on it.
      self.client.connectionClosed(
        NetRPCError(code: .encoding, message: "gob error reading response: \(error)", gobError: error))
      context.close(promise: nil)
    }
  }

  /// Reads one header or one body; false when what comes next has not fully arrived.
  private func step() throws(GobError) -> Bool {
    switch self.expecting {
    case .header:
      guard let header = try self.decoder.decode(ResponseHeader.self) else { return false }
      self.expecting = .body(header, self.client.pending(header.seq))
      return true
    case .body(let header, let pending):
      if let pending {
        guard try pending.complete(&self.decoder, header.error) else { return false }
        self.client.finished(header.seq)
      } else {
        // A cancelled call's reply, or one for no call at all: read and dropped.
        guard try self.decoder.skipValue() else { return false }
      }
      self.expecting = .header
      return true
    }
  }

  func channelInactive(context: ChannelHandlerContext) {
    self.client.connectionClosed()
    context.fireChannelInactive()
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    context.close(promise: nil)
  }
}
