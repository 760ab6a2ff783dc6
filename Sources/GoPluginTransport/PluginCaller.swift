public import GRPCCore
import NIOCore
import NIOHTTP2

/// Makes a plugin connection's unary calls itself, and passes the rest to its `GRPCClient`.
///
/// A unary call made here is the same call on the wire, and means the same to any gRPC server
/// in any language. It skips what grpc-swift's client executor does for every call (a task for
/// the request, streams of request and response parts, an interceptor pipeline), which a unary
/// call without interceptors does not need: the request goes out in one write, and the caller
/// waits once, for the response's end.
///
/// What it does not make itself goes through ``grpcClient`` unchanged: calls with a timeout,
/// a retry or hedging policy, or compression, and every call when the transport is not the
/// library's own socket (an in-process test transport, a supervisor's connection). A client
/// whose calls must pass through interceptors uses its `GRPCClient` instead of a caller.
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

  /// Whether unary calls without a timeout, retries or compression skip `GRPCClient`.
  public var callsDirectly: Bool { self.transport != nil }

  /// Makes a unary call, as `GRPCClient.unary` does.
  ///
  /// - Parameters:
  ///   - request: The request's message and metadata.
  ///   - descriptor: The method to call.
  ///   - serializer: Encodes the request message.
  ///   - deserializer: Decodes the response message.
  ///   - options: The call's options; a timeout, an execution policy or compression send the
  ///     call through ``grpcClient``.
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
    guard let transport = self.transport, Self.isPlain(options) else {
      return try await self.grpcClient.unary(
        request: request, descriptor: descriptor, serializer: serializer, deserializer: deserializer,
        options: options, onResponse: handleResponse)
    }
    let response = await transport.unary(
      request: request, descriptor: descriptor, serializer: serializer, deserializer: deserializer)
    return try await handleResponse(response)
  }

  /// Options the direct path honours as `GRPCClient` would: it has no timer, no retries and no
  /// compression. (`waitForReady` means nothing to a plugin socket either way, and grpc-swift
  /// itself checks no message sizes; the transport limits what it receives.)
  private static func isPlain(_ options: CallOptions) -> Bool {
    guard options.timeout == nil, options.executionPolicy == nil else { return false }
    if let compression = options.compression, compression != .none { return false }
    return true
  }
}

extension PluginClientTransport {
  /// One unary call on the connection's event loop: headers, message and end in one write,
  /// then the response read to its status.
  fileprivate func unary<Request, Response>(
    request: ClientRequest<Request>,
    descriptor: MethodDescriptor,
    serializer: some MessageSerializer<Request>,
    deserializer: some MessageDeserializer<Response>
  ) async -> ClientResponse<Response> {
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
    GRPCWire.append(request.metadata, to: &headers)
    return await withTaskExecutorPreference(handler.taskExecutor) {
      // Whatever is still open when the call returns (it was cancelled, or failed) is reset,
      // so the plugin stops working on it.
      defer { stream.cancelIfOpen() }
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
      return await Self.response(on: stream, deserializer: deserializer)
    }
  }

  /// The response as grpc-swift's client would make it of the same parts: a failure when the
  /// call ends before the response's headers, its error with those headers when it ends after
  /// them without exactly one message.
  private static func response<Response>(
    on stream: GRPCStream,
    deserializer: some MessageDeserializer<Response>
  ) async -> ClientResponse<Response> {
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
