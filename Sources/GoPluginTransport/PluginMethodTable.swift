public import GRPCCore

/// A service some of whose methods a plugin's server calls itself, without grpc-swift's server
/// executor in between.
///
/// The wire does not change: a Go or Python host calls these methods as it calls any other.
/// Inside the plugin, a unary call in the table is read, decoded, handled, encoded and answered
/// by one function on the connection's event loop. What grpc-swift's executor adds for every
/// call (a stream of request parts, a response writer, interceptors, three separate writes)
/// serves streaming calls and interceptors, which a unary call without interceptors does not
/// need. Methods left out of the table, streaming ones above all, keep going through
/// `GRPCServer` as before, as do calls on connections whose server was given interceptors.
///
/// Conform a service type you already wrote to it and register its unary methods:
///
/// ```swift
/// extension KVService: PluginDirectService {
///   public func registerDirectMethods(with table: inout PluginMethodTable) {
///     table.registerUnary(
///       Kvbench_KV.Method.Get.descriptor,
///       deserializer: ProtobufDeserializer<Kvbench_GetRequest>(),
///       serializer: ProtobufSerializer<Kvbench_GetResponse>()
///     ) { request, context in
///       try await self.get(request: request, context: context)
///     }
///   }
/// }
/// ```
///
/// Each handler must behave as the one registered with `registerMethods(with:)` for the same
/// method: either may answer a given call.
public protocol PluginDirectService: RegistrableRPCService {
  /// Adds the methods this service answers directly.
  func registerDirectMethods(with table: inout PluginMethodTable)
}

/// The methods a plugin's server answers without grpc-swift's server executor, by path.
public struct PluginMethodTable: Sendable {
  package private(set) var handlers: [String: PluginMethodHandler] = [:]

  /// An empty table.
  public init() {}

  /// A table of the direct methods of every service in `services` that has some.
  public init(collecting services: [any RegistrableRPCService]) {
    for case let service as any PluginDirectService in services {
      service.registerDirectMethods(with: &self)
    }
  }

  /// Registers a unary method. A later registration for the same method replaces an earlier
  /// one.
  ///
  /// - Parameters:
  ///   - method: The method, as the generated code describes it.
  ///   - deserializer: Decodes the request message.
  ///   - serializer: Encodes the response message.
  ///   - handler: Handles one call; an error it throws becomes the call's status, as with
  ///     `GRPCServer` (an `RPCError` as it is, anything else as `unknown`).
  public mutating func registerUnary<Input: Sendable, Output: Sendable>(
    _ method: MethodDescriptor,
    deserializer: some MessageDeserializer<Input>,
    serializer: some MessageSerializer<Output>,
    handler: @escaping @Sendable (ServerRequest<Input>, ServerContext) async throws -> ServerResponse<Output>
  ) {
    self.handlers[GRPCWire.path(of: method)] = PluginMethodHandler { stream, context in
      await UnaryCall.run(
        on: stream, context: context, deserializer: deserializer, serializer: serializer, handler: handler)
    }
  }
}

/// One registered method: runs a call on its stream, from the request's headers to the status.
package struct PluginMethodHandler: Sendable {
  let run: @Sendable (GRPCStream, ServerContext) async -> Void
}

/// The server side of a unary call, as grpc-swift's executor and generated code would run it,
/// with one write of the whole response at the end.
enum UnaryCall {
  static func run<Input: Sendable, Output: Sendable>(
    on stream: GRPCStream,
    context: ServerContext,
    deserializer: some MessageDeserializer<Input>,
    serializer: some MessageSerializer<Output>,
    handler: @Sendable (ServerRequest<Input>, ServerContext) async throws -> ServerResponse<Output>
  ) async {
    let outcome: Result<(metadata: Metadata, message: PluginBytes, trailers: Metadata), RPCError>
    do {
      let (metadata, bytes) = try await Self.request(on: stream)
      let request = ServerRequest(metadata: metadata, message: try deserializer.deserialize(bytes))
      let response: ServerResponse<Output>
      do {
        response = try await handler(request, context)
      } catch {
        throw GRPCWire.rpcError(error, otherwise: "Service method threw an unknown error.")
      }
      switch response.accepted {
      case .success(let contents):
        let message: PluginBytes
        do {
          message = try serializer.serialize(contents.message)
        } catch {
          throw GRPCWire.rpcError(error, otherwise: "")
        }
        outcome = .success((contents.metadata, message, contents.trailingMetadata))
      case .failure(let error):
        outcome = .failure(error)
      }
    } catch {
      outcome = .failure(GRPCWire.rpcError(error, otherwise: ""))
    }
    let size = if case .success(let response) = outcome { response.message.count + PluginBytes.prefixLength } else { 0 }
    // A stream that was reset while the handler ran takes no answer; nobody waits for one.
    try? await stream.write(queuing: size) {
      switch outcome {
      case .success(let response):
        _ = try stream.sendResponse(.metadata(response.metadata))
        let wait = try stream.send(message: response.message)
        _ = try stream.sendResponse(.status(Status(code: .ok, message: ""), response.trailers))
        return wait
      case .failure(let error):
        let status = Status(code: Status.Code(error.code), message: error.message)
        _ = try stream.sendResponse(.status(status, error.metadata))
        return nil
      }
    }
  }

  /// The request's metadata and its one message, once the client has ended its side: a unary
  /// handler starts with the whole request, as grpc-swift's does.
  private static func request(on stream: GRPCStream) async throws -> (Metadata, PluginBytes) {
    var metadata: Metadata?
    var message: PluginBytes?
    while let part = try await stream.inbox.next() {
      switch part {
      case .headers(let headers, _):
        // Clients send no trailers; a second block carries nothing for the handler.
        if metadata == nil { metadata = GRPCWire.requestMetadata(from: headers) }
      case .message(let bytes, _):
        // grpc-swift's words for the same two mistakes, so that a client sees one answer.
        guard message == nil else { throw RPCError(code: .internalError, message: "Too many messages.") }
        message = bytes
      }
    }
    guard let message else { throw RPCError(code: .internalError, message: "Empty stream.") }
    return (metadata ?? [:], message)
  }
}
