public import GRPCCore
import NIOCore
import NIOHPACK
import NIOHTTP2

/// Makes a plugin connection's unary calls itself, and passes the rest to its `GRPCClient`.
///
/// A unary call made here is the same call on the wire, and means the same to any gRPC server
/// in any language. It skips what grpc-swift's client executor does for every call (a task for
/// the request, streams of request and response parts, an interceptor pipeline), which a unary
/// call without interceptors does not need: the request goes out in one write, and the caller
/// waits once, for the response's end.
///
/// A call with a timeout sends it to the server in `grpc-timeout`, as grpc-swift's client does,
/// and fails as that client fails (`deadlineExceeded`, "RPC timed out before completing") when
/// the response has not ended in time; the server sees the stream cancelled. The timeout
/// covers the call on the wire; the response handler runs once the call has ended.
///
/// What it does not make itself goes through ``grpcClient`` unchanged: calls with a retry or
/// hedging policy or with compression, a call with a timeout that would first have to open the
/// connection, and every call when the transport is not the library's own socket (an
/// in-process test transport, a supervisor's connection). A client whose calls must pass
/// through interceptors uses its `GRPCClient` instead of a caller.
///
/// Its ``unary(request:descriptor:serializer:deserializer:options:onResponse:)`` has the shape
/// of `GRPCClient`'s, so a client written for one works with the other.
public struct PluginCaller: Sendable {
  /// The client the caller hands what it does not make itself.
  public let grpcClient: GRPCClient<PluginTransport>
  private let transport: PluginClientTransport?

  /// A caller for `grpcClient`, which must run over `transport`.
  public init(grpcClient: GRPCClient<PluginTransport>, transport: PluginTransport) {
    self.grpcClient = grpcClient
    self.transport = transport.pluginClientTransport
  }

  /// A caller that passes every call to `grpcClient`.
  public init(wrapping grpcClient: GRPCClient<PluginTransport>) {
    self.grpcClient = grpcClient
    self.transport = nil
  }

  /// Whether unary calls without retries or compression skip `GRPCClient`.
  public var callsDirectly: Bool { self.transport != nil }

  /// Makes a unary call, as `GRPCClient.unary` does.
  ///
  /// - Parameters:
  ///   - request: The request's message and metadata.
  ///   - descriptor: The method to call.
  ///   - serializer: Encodes the request message.
  ///   - deserializer: Decodes the response message.
  ///   - options: The call's options; an execution policy or compression send the call
  ///     through ``grpcClient``.
  ///   - handleResponse: Turns the response into the call's result.
  /// - Returns: What `handleResponse` returns.
  public func unary<Request: Sendable, Response: Sendable, Result: Sendable>(
    request: ClientRequest<Request>,
    descriptor: MethodDescriptor,
    serializer: some MessageSerializer<Request>,
    deserializer: some MessageDeserializer<Response>,
    options: CallOptions,
    onResponse handleResponse: @Sendable @escaping (ClientResponse<Response>) async throws -> Result
  ) async throws -> Result {
    // A call with a timeout that would first have to open the connection goes to the client,
    // whose deadline also covers the dial.
    guard let transport = self.transport, Self.isDirect(options),
      options.timeout == nil || transport.hasLiveConnection
    else {
      return try await self.grpcClient.unary(
        request: request, descriptor: descriptor, serializer: serializer, deserializer: deserializer,
        options: options, onResponse: handleResponse)
    }
    let response = try await transport.unary(
      request: request, descriptor: descriptor, serializer: serializer, deserializer: deserializer,
      timeout: options.timeout)
    return try await handleResponse(response)
  }

  /// Options the direct path honours as `GRPCClient` would: it has no retries and no
  /// compression. (`waitForReady` means nothing to a plugin socket either way, and grpc-swift
  /// itself checks no message sizes; the transport limits what it receives.)
  private static func isDirect(_ options: CallOptions) -> Bool {
    guard options.executionPolicy == nil else { return false }
    if let compression = options.compression, compression != .none { return false }
    return true
  }
}

extension PluginClientTransport {
  /// One unary call on the connection's event loop: headers, message and end in one write,
  /// then the response read to its status.
  ///
  /// With a `timeout`, the server is told it in `grpc-timeout`, and a timer on the loop resets
  /// the stream if the response has not ended when it runs out; the call then throws what
  /// grpc-swift's client throws. A timer, unlike a sleeping task, is gone the moment the call
  /// ends, so a long timeout holds nothing after its call.
  fileprivate func unary<Request, Response>(
    request: ClientRequest<Request>,
    descriptor: MethodDescriptor,
    serializer: some MessageSerializer<Request>,
    deserializer: some MessageDeserializer<Response>,
    timeout: Duration?
  ) async throws(RPCError) -> ClientResponse<Response> {
    let deadline = timeout.map { NIODeadline.now() + TimeAmount($0) }
    let message: PluginBytes
    do {
      message = try serializer.serialize(request.message)
    } catch {
      return ClientResponse(of: Response.self, metadata: [:], error: Self.rpcError(error))
    }
    let handler: GRPCConnectionHandler
    do {
      handler = try await self.readyConnection()
    } catch {
      return ClientResponse(accepted: .failure(Self.rpcError(error)))
    }
    let stream = handler.makeClientStream()
    var headers = self.requestHeaders(descriptor)
    if let deadline {
      let left = deadline - .now()
      guard left > .zero else { throw Self.deadlineExceeded }
      var metadata = request.metadata
      metadata.removeAllValues(forKey: "grpc-timeout")
      GRPCWire.append(metadata, to: &headers)
      headers.add(name: "grpc-timeout", value: GRPCWire.timeoutHeader(.nanoseconds(left.nanoseconds)))
    } else {
      GRPCWire.append(request.metadata, to: &headers)
    }
    return try await withTaskExecutorPreference(handler.taskExecutor) { () async throws(RPCError) in
      // Whatever is still open when the call returns (it was cancelled, or failed) is reset,
      // so the plugin stops working on it.
      defer { stream.cancelIfOpen() }
      let timer = deadline.map { deadline in
        handler.eventLoop.scheduleTask(deadline: deadline) { stream.reset(.cancel, failing: DeadlinePassed()) }
      }
      defer { timer?.cancel() }
      do {
        try await stream.write(queuing: message.count + PluginBytes.prefixLength) { [headers] in
          try stream.send(headers: headers, endStream: false)
          let wait = try stream.send(message: message)
          try stream.sendEnd()
          return wait
        }
      } catch {
        return ClientResponse(accepted: .failure(Self.rpcError(error)))
      }
      return try await Self.response(on: stream, deserializer: deserializer)
    }
  }

  /// What fails a stream's reader when its call's timer runs out, told apart from every error
  /// the peer or the connection can cause.
  private struct DeadlinePassed: Error {}

  private static var deadlineExceeded: RPCError {
    RPCError(code: .deadlineExceeded, message: "RPC timed out before completing")
  }

  /// The response as grpc-swift's client would make it of the same parts: a failure when the
  /// call ends before the response's headers, its error with those headers when it ends after
  /// them without exactly one message. Throws only when the call's timer ran out first, as
  /// grpc-swift's client throws rather than answer.
  private static func response<Response>(
    on stream: GRPCStream,
    deserializer: some MessageDeserializer<Response>
  ) async throws(RPCError) -> ClientResponse<Response> {
    var parts = ClientInbound(stream: stream).makeAsyncIterator()
    var metadata: Metadata?
    var message: PluginBytes?
    var tooMany = false
    do {
      while let part = try await parts.next() {
        switch part {
        case .metadata(let headers):
          metadata = headers
        case .message(let bytes):
          if message != nil { tooMany = true }
          message = bytes
        case .status(let status, let trailers):
          guard let metadata else {
            // Trailers only: the server answered before it began a response.
            if let error = RPCError(status: status, metadata: trailers) {
              return ClientResponse(accepted: .failure(error))
            }
            return ClientResponse(of: Response.self, metadata: [:], error: Self.noMessage)
          }
          if let error = RPCError(status: status, metadata: trailers) {
            return ClientResponse(of: Response.self, metadata: metadata, error: error)
          }
          guard !tooMany else { return ClientResponse(of: Response.self, metadata: metadata, error: Self.tooMany) }
          guard let message else { return ClientResponse(of: Response.self, metadata: metadata, error: Self.noMessage) }
          do {
            return ClientResponse(
              message: try deserializer.deserialize(message), metadata: metadata, trailingMetadata: trailers)
          } catch {
            return ClientResponse(of: Response.self, metadata: metadata, error: Self.rpcError(error))
          }
        }
      }
    } catch {
      if error is DeadlinePassed { throw Self.deadlineExceeded }
      guard let metadata else { return ClientResponse(accepted: .failure(Self.rpcError(error))) }
      return ClientResponse(of: Response.self, metadata: metadata, error: Self.rpcError(error))
    }
    let error = RPCError(code: .internalError, message: "the response ended without a status")
    return ClientResponse(accepted: .failure(error))
  }

  // grpc-swift's words for the same two answers, so that a caller sees one answer either way.
  private static var noMessage: RPCError {
    RPCError(code: .unimplemented, message: "No messages received, exactly one was expected.")
  }

  private static var tooMany: RPCError {
    RPCError(
      code: .unimplemented,
      message: """
        Multiple messages received, but only one is expected. The server may have \
        incorrectly implemented the RPC or the client and server may have a different \
        opinion on whether this RPC streams responses.
        """
    )
  }

  private static func rpcError(_ error: any Error) -> RPCError {
    GRPCWire.rpcError(error, otherwise: String(describing: error))
  }
}
