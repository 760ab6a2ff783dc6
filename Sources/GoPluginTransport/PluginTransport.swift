public import GRPCCore
import NIOCore

/// The gRPC client transport behind every client a plugin's interface is written against:
/// `GRPCClient<PluginTransport>` and the generated `…Client<PluginTransport>` stubs.
///
/// A host's plugin connections and brokered connections use the library's own
/// ``PluginClientTransport``, which this type hands calls to directly. Any other
/// `ClientTransport` can stand in for it — grpc-swift's in-process transport, for instance — so
/// that a plugin's client type can be exercised without a process or a socket (see
/// `GoPluginTesting`'s `withInProcessPlugin`). Messages of a transport whose bytes are not
/// ``PluginBytes`` are copied once at that boundary; the library's own transport pays nothing.
public struct PluginTransport: ClientTransport {
  public typealias Bytes = PluginBytes

  private enum Backing: Sendable {
    case direct(PluginClientTransport)
    case converting(any ConvertingTransport)
  }

  private let backing: Backing

  /// The library's own transport behind this one, if that is what it carries calls over.
  var pluginClientTransport: PluginClientTransport? {
    if case .direct(let transport) = self.backing { transport } else { nil }
  }

  /// Calls over the library's own transport, as a host's connections make them.
  public init(_ transport: PluginClientTransport) {
    self.backing = .direct(transport)
  }

  /// Calls over any other gRPC client transport, such as `InProcessTransport.Client`.
  public init<Transport: ClientTransport>(_ transport: Transport) {
    if let same = transport as? PluginTransport {
      self = same
    } else if let direct = transport as? PluginClientTransport {
      self.backing = .direct(direct)
    } else {
      self.backing = .converting(BytesConverter(base: transport))
    }
  }

  /// The executor calls over the library's own transport run on: their connection's event loop.
  /// A task that prefers it makes its calls without switching threads; nil for other transports.
  public var callExecutor: (any TaskExecutor)? {
    switch self.backing {
    case .direct(let transport): transport.callExecutor
    case .converting: nil
    }
  }

  public var retryThrottle: RetryThrottle? {
    switch self.backing {
    case .direct(let transport): transport.retryThrottle
    case .converting(let transport): transport.retryThrottle
    }
  }

  public func connect() async throws {
    switch self.backing {
    case .direct(let transport): try await transport.connect()
    case .converting(let transport): try await transport.connect()
    }
  }

  public func beginGracefulShutdown() {
    switch self.backing {
    case .direct(let transport): transport.beginGracefulShutdown()
    case .converting(let transport): transport.beginGracefulShutdown()
    }
  }

  public func withStream<T: Sendable>(
    descriptor: MethodDescriptor,
    options: CallOptions,
    _ closure: (RPCStream<Inbound, Outbound>, ClientContext) async throws -> T
  ) async throws -> T {
    switch self.backing {
    case .direct(let transport):
      try await transport.withStream(descriptor: descriptor, options: options, closure)
    case .converting(let transport):
      try await transport.withConvertedStream(descriptor: descriptor, options: options, closure)
    }
  }

  public func config(forMethod descriptor: MethodDescriptor) -> MethodConfig? {
    switch self.backing {
    case .direct(let transport): transport.config(forMethod: descriptor)
    case .converting(let transport): transport.config(forMethod: descriptor)
    }
  }
}

/// A foreign transport behind an existential, so that ``PluginTransport`` stays one concrete
/// type whatever it wraps.
private protocol ConvertingTransport: Sendable {
  var retryThrottle: RetryThrottle? { get }
  func connect() async throws
  func beginGracefulShutdown()
  func config(forMethod descriptor: MethodDescriptor) -> MethodConfig?
  func withConvertedStream<T: Sendable>(
    descriptor: MethodDescriptor,
    options: CallOptions,
    _ closure: (RPCStream<PluginTransport.Inbound, PluginTransport.Outbound>, ClientContext) async throws -> T
  ) async throws -> T
}

private struct BytesConverter<Base: ClientTransport>: ConvertingTransport {
  let base: Base

  var retryThrottle: RetryThrottle? { self.base.retryThrottle }
  func connect() async throws { try await self.base.connect() }
  func beginGracefulShutdown() { self.base.beginGracefulShutdown() }
  func config(forMethod descriptor: MethodDescriptor) -> MethodConfig? { self.base.config(forMethod: descriptor) }

  func withConvertedStream<T: Sendable>(
    descriptor: MethodDescriptor,
    options: CallOptions,
    _ closure: (RPCStream<PluginTransport.Inbound, PluginTransport.Outbound>, ClientContext) async throws -> T
  ) async throws -> T {
    try await self.base.withStream(descriptor: descriptor, options: options) { stream, context in
      let converted = RPCStream(
        descriptor: stream.descriptor,
        inbound: RPCAsyncSequence<RPCResponsePart<PluginBytes>, any Error>(
          wrapping: stream.inbound.map { part -> RPCResponsePart<PluginBytes> in
            switch part {
            case .metadata(let metadata): .metadata(metadata)
            case .message(let bytes): .message(PluginBytes(copying: bytes))
            case .status(let status, let metadata): .status(status, metadata)
            }
          }
        ),
        outbound: RPCWriter<RPCRequestPart<PluginBytes>>.Closable(wrapping: ConvertingWriter(base: stream.outbound))
      )
      return try await closure(converted, context)
    }
  }
}

/// Writes requests of ``PluginBytes`` to a writer of another kind of bytes.
private struct ConvertingWriter<Bytes: GRPCContiguousBytes & Sendable>: ClosableRPCWriterProtocol {
  let base: RPCWriter<RPCRequestPart<Bytes>>.Closable

  func write(_ element: RPCRequestPart<PluginBytes>) async throws {
    try await self.base.write(Self.convert(element))
  }

  func write(contentsOf elements: some Sequence<RPCRequestPart<PluginBytes>>) async throws {
    try await self.base.write(contentsOf: elements.map(Self.convert))
  }

  func finish() async {
    await self.base.finish()
  }

  func finish(throwing error: any Error) async {
    await self.base.finish(throwing: error)
  }

  private static func convert(_ part: RPCRequestPart<PluginBytes>) -> RPCRequestPart<Bytes> {
    switch part {
    case .metadata(let metadata):
      return .metadata(metadata)
    case .message(let message):
      var bytes = Bytes(repeating: 0, count: message.count)
      message.withUnsafeBytes { source in
        bytes.withUnsafeMutableBytes { $0.copyMemory(from: source) }
      }
      return .message(bytes)
    }
  }
}

extension PluginBytes {
  /// The same bytes, copied out of another transport's representation.
  init(copying other: some GRPCContiguousBytes) {
    self.init(buffer: other.withUnsafeBytes { ByteBuffer(bytes: $0) })
  }
}
