import GRPCCore
import GoPluginPlatform
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOSSL
import NIOTLS
import Synchronization

/// One gRPC call's HTTP/2 stream. Its state belongs to the connection's event loop; the methods
/// a reader or writer calls from elsewhere hop there first.
final class GRPCStream: @unchecked Sendable {
  /// Buffered writes past this wait for the socket, so a fast writer cannot outrun memory.
  static let writeHighWater = 1 << 20

  let connection: GRPCConnectionHandler
  let eventLoop: any EventLoop
  private(set) var id: HTTP2StreamID?
  private(set) var inbox: StreamInbox<WirePart>!
  private var reader: GRPCWire.MessageReader
  private var streamCredit = 0
  /// Message bytes a writer has handed over that have not reached the socket yet.
  private let queuedWriteBytes = Atomic(0)
  /// Writes handed to the event loop that have not run yet; while there are any, a writer that
  /// finds itself on the loop still queues, so frames keep their order.
  private let scheduledWrites = Atomic(0)
  /// Set on the loop when the stream ends, read by writers anywhere.
  private let writesClosed = Atomic(false)
  private var heldData: (ByteBuffer, EventLoopPromise<Void>)?
  private var remoteEnded = false
  private var localEnded = false
  private var finished = false
  /// Bytes of the message still arriving that were already given back to the window.
  private var creditedAhead = 0
  /// Set once a message could not be taken; what else arrives is dropped.
  private var refusedInbound = false
  /// Server side: whether the response has begun, so a status knows if it is trailers-only.
  var sentResponseHeaders = false
  /// Called once if the peer resets the stream or the connection drops under it.
  var onAbort: (@Sendable () -> Void)?

  init(connection: GRPCConnectionHandler, id: HTTP2StreamID?) {
    self.connection = connection
    self.eventLoop = connection.eventLoop
    self.id = id
    self.reader = GRPCWire.MessageReader(maximumLength: connection.maxMessageSize)
    self.inbox = StreamInbox { [weak self] part in
      let size = part.flowControlledSize
      guard size > 0, let self else { return }
      if self.eventLoop.inEventLoop {
        self.credit(size)
      } else {
        self.eventLoop.execute { self.credit(size) }
      }
    }
  }

  // MARK: Inbound, on the event loop

  func received(headers: HPACKHeaders, endStream: Bool) {
    self.inbox.yield(.headers(headers, endStream: endStream))
    if endStream { self.remoteEnd() }
  }

  func received(data: ByteBuffer, endStream: Bool) {
    guard !self.refusedInbound else { return }
    self.reader.append(data)
    do {
      while let message = try self.reader.next() {
        let size = message.count + PluginBytes.prefixLength
        let creditedAlready = min(self.creditedAhead, size)
        self.creditedAhead -= creditedAlready
        self.inbox.yield(.message(message, credit: size - creditedAlready))
      }
    } catch {
      // A server answers with the error as the call's status (resourceExhausted for a message
      // over the limit, as grpc-go does), so it only stops reading; a client resets.
      // What was read before (the request's headers above all) still reaches the reader first.
      self.refusedInbound = true
      self.inbox.finish(throwing: error)
      if case .client = self.connection.role { self.reset(.cancel) }
      return
    }
    // A message bigger than the window could never complete if its first part waited for its
    // reader: what a half-arrived message holds is given back at once, and only whole messages
    // wait for their reader.
    let partial = self.reader.bufferedBytes
    if partial > self.creditedAhead {
      self.credit(partial - self.creditedAhead)
      self.creditedAhead = partial
    }
    if endStream { self.remoteEnd() }
  }

  private func remoteEnd() {
    self.remoteEnded = true
    if self.reader.hasPartialMessage {
      self.abort(RPCError(code: .internalError, message: "the stream ended inside a message"), code: .protocolError)
      return
    }
    self.inbox.finish()
  }

  func credit(_ bytes: Int) {
    self.streamCredit += bytes
    guard self.streamCredit >= self.connection.streamWindow / 2, let id = self.id, !self.remoteEnded, !self.finished
    else { return }
    self.connection.write(.windowUpdate(windowSizeIncrement: self.streamCredit), on: id, promise: nil)
    self.streamCredit = 0
  }

  func wasReset(by code: HTTP2ErrorCode) {
    self.markFinished()
    self.dropHeldData()
    // RFC 9113 §8.1: a server may reset with NO_ERROR once its response is complete, to stop a
    // request it no longer needs; grpc-go does. The response stands.
    if code == .noError && self.remoteEnded { return }
    let error: RPCError =
      switch code {
      case .cancel: RPCError(code: .cancelled, message: "the peer cancelled the call")
      case .refusedStream: RPCError(code: .unavailable, message: "the peer refused the call")
      case .enhanceYourCalm: RPCError(code: .resourceExhausted, message: "the peer reset the call: too much traffic")
      default: RPCError(code: .internalError, message: "the peer reset the call (HTTP/2 error \(code))")
      }
    self.inbox.fail(error)
    self.onAbort?()
  }

  func closedByHTTP2(reason: HTTP2ErrorCode?) {
    if let reason, !self.finished {
      self.wasReset(by: reason)
      return
    }
    self.markFinished()
    if !self.remoteEnded {
      self.inbox.finish(throwing: RPCError(code: .unavailable, message: "the stream closed"))
    }
  }

  func connectionEnded(_ error: RPCError) {
    guard !self.finished else { return }
    self.markFinished()
    self.dropHeldData()
    self.inbox.fail(error)
    self.onAbort?()
  }

  /// Stops the stream from this side: the reader gets `error`, the peer a reset.
  private func abort(_ error: any Error, code: HTTP2ErrorCode) {
    self.inbox.fail(error)
    self.reset(code)
  }

  private func markFinished() {
    self.finished = true
    self.writesClosed.store(true, ordering: .relaxed)
  }

  // MARK: Outbound

  /// Hands a write to the event loop. Off the loop it is queued without waiting, as long as no
  /// more than ``writeHighWater`` bytes are on their way; past that the writer waits until its
  /// write has reached the socket. A failure of a queued write (the stream ended under it) is
  /// reported by the writer's next write.
  func write(queuing size: Int, _ body: @escaping @Sendable () throws -> EventLoopFuture<Void>?) async throws {
    if self.writesClosed.load(ordering: .relaxed) { throw self.finishedError }
    if size > 0 { self.queuedWriteBytes.add(size, ordering: .relaxed) }
    let run: @Sendable () throws -> EventLoopFuture<Void>? = {
      do {
        return try body()
      } catch {
        if size > 0 { self.queuedWriteBytes.subtract(size, ordering: .relaxed) }
        throw error
      }
    }
    if self.eventLoop.inEventLoop && self.scheduledWrites.load(ordering: .acquiring) == 0 {
      if let wait = try run() { try await wait.get() }
      return
    }
    self.scheduledWrites.add(1, ordering: .relaxed)
    if self.queuedWriteBytes.load(ordering: .relaxed) > Self.writeHighWater {
      let wait = try await self.eventLoop.submit {
        defer { self.scheduledWrites.subtract(1, ordering: .releasing) }
        return try run()
      }.get()
      try await wait?.get()
      return
    }
    self.eventLoop.execute {
      defer { self.scheduledWrites.subtract(1, ordering: .releasing) }
      do {
        _ = try run()
      } catch {
        // Nobody waits for this write; the call's reader must learn that it failed. A stream
        // that already ended keeps the outcome it had.
        if !self.finished { self.abort(error, code: .cancel) }
      }
    }
  }

  /// Sends a header block; a client stream takes its ID here.
  func send(headers: HPACKHeaders, endStream: Bool) throws {
    if self.finished { throw self.finishedError }
    self.releaseHeldData(endStream: false)
    let id: HTTP2StreamID
    if let existing = self.id {
      id = existing
    } else {
      do {
        id = try self.connection.assignID(to: self)
      } catch {
        // The connection ended before this call reached it: the stream is in no table that
        // the connection's end reaches, so it fails here or never.
        self.connectionEnded(error)
        throw error
      }
    }
    self.id = id
    self.connection.write(.headers(.init(headers: headers, endStream: endStream)), on: id, promise: nil)
    if endStream { self.localEnded = true }
  }

  /// Sends a message the writer has counted in ``queuedWriteBytes``, and returns a future to
  /// wait on when too much is already waiting for the socket or the peer's window.
  func send(message: PluginBytes) throws -> EventLoopFuture<Void>? {
    if self.finished { throw self.finishedError }
    guard self.id != nil else {
      throw RPCError(code: .internalError, message: "a message was written before the headers")
    }
    let framed = message.framed(allocator: ByteBufferAllocator())
    let size = message.count + PluginBytes.prefixLength
    let promise = self.eventLoop.makePromise(of: Void.self)
    promise.futureResult.whenComplete { _ in self.queuedWriteBytes.subtract(size, ordering: .relaxed) }
    if self.heldData != nil {
      self.releaseHeldData(endStream: false)
    } else {
      self.connection.holdData(for: self)
    }
    self.heldData = (framed, promise)
    return self.queuedWriteBytes.load(ordering: .relaxed) > Self.writeHighWater ? promise.futureResult : nil
  }

  private func dropHeldData() {
    guard let (_, promise) = self.heldData else { return }
    self.heldData = nil
    promise.fail(RPCError(code: .cancelled, message: "the call ended before its data was sent"))
  }

  func releaseHeldData(endStream: Bool) {
    guard let (data, promise) = self.heldData, let id = self.id else { return }
    self.heldData = nil
    self.connection.write(.data(.init(data: .byteBuffer(data), endStream: endStream)), on: id, promise: promise)
  }

  /// Half-closes: END_STREAM on the held DATA frame, or on an empty one.
  func sendEnd() throws {
    if self.finished { throw self.finishedError }
    guard let id = self.id else { return }
    if self.heldData != nil {
      self.releaseHeldData(endStream: true)
    } else {
      self.connection.write(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)), on: id, promise: nil)
    }
    self.localEnded = true
  }

  /// Resets the stream with CANCEL unless it already ended, from wherever the caller is: inline
  /// on the loop, else one hop to it. What a call does when it returns.
  func cancelIfOpen() {
    if self.eventLoop.inEventLoop {
      self.reset(.cancel)
    } else {
      self.eventLoop.execute { self.reset(.cancel) }
    }
  }

  /// Resets the stream unless it already ended both ways; safe to call more than once. Its
  /// reader, if still reading, gets `error`, or `cancelled` without one. (The error is made only
  /// when the stream is still open: every call ends by asking, and boxing one costs a malloc.)
  func reset(_ code: HTTP2ErrorCode, failing error: (any Error)? = nil) {
    guard !self.finished else { return }
    self.markFinished()
    self.dropHeldData()
    self.inbox.fail(error ?? RPCError(code: .cancelled, message: "the call was cancelled"))
    if let id = self.id, !(self.localEnded && self.remoteEnded) {
      self.connection.write(.rstStream(code), on: id, promise: nil)
      self.connection.forget(id)
    }
  }

  private var finishedError: RPCError {
    RPCError(code: .unavailable, message: "the stream has already ended")
  }
}
