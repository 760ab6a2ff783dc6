import GoPluginGob
public import NIOCore
import Synchronization

/// A named set of methods served over Go's `net/rpc`, as a Go value registered with
/// `rpc.RegisterName`: calls name them `"<name>.<Method>"`.
///
/// Each method is a typed async handler: its argument is decoded from gob into `Arguments`, its
/// result encoded as the reply. An error it throws becomes the call's error text: a
/// ``NetRPCError`` of code ``NetRPCError/Code/server`` is sent as its message, exactly; any other
/// error as its description.
///
/// ```swift
/// var service = NetRPCService(name: "Plugin")
/// service.addMethod("Greet") { (_: GobInterface) in "Hello!" }
/// ```
public struct NetRPCService: Sendable {
  /// Decodes a call's argument and returns the work that answers it; nil when the argument has
  /// not fully arrived.
  typealias Method = @Sendable (_ decoder: inout GobStreamDecoder) throws -> Work?
  typealias Work = @Sendable () async -> Answer

  /// The service's name, the part of `"Service.Method"` before the dot.
  public var name: String
  var methods: [String: Method] = [:]

  /// An empty service called `name`.
  public init(name: String) {
    self.name = name
  }

  /// Adds (or replaces) the method called `name`.
  public mutating func addMethod<Arguments: Decodable & Sendable, Reply: Encodable & Sendable>(
    _ name: String,
    _ handler: @escaping @Sendable (Arguments) async throws -> Reply
  ) {
    self.methods[name] = { (decoder: inout GobStreamDecoder) throws -> Work? in
      guard let arguments = try decoder.decode(Arguments.self) else { return nil }
      return {
        do {
          return .reply(try await handler(arguments))
        } catch let error as NetRPCError where error.code == .server {
          return .error(error.message)
        } catch {
          return .error("\(error)")
        }
      }
    }
  }

  /// The names of the methods, for diagnostics.
  public var methodNames: [String] { self.methods.keys.sorted() }
}

/// What a call ends with.
enum Answer: Sendable {
  case reply(any Encodable & Sendable)
  case error(String)
}

/// A server of Go's `net/rpc` (gob codec): serves its services on any channel carrying bytes,
/// running each call as its own child task, as Go's server runs each in a goroutine.
public struct NetRPCServer: Sendable {
  private var services: [String: NetRPCService]

  /// A server for `services`; a later service of the same name replaces an earlier one.
  public init(services: [NetRPCService]) {
    self.services = Dictionary(services.map { ($0.name, $0) }, uniquingKeysWith: { _, last in last })
  }

  /// Serves calls on `channel` until it closes or the task is cancelled (which closes it). Calls
  /// still running when the connection ends are cancelled.
  ///
  /// - Parameters:
  ///   - answered: called with a call's `"Service.Method"` once its answer is queued on the
  ///     channel: what must happen only after the caller has its answer (a server that stops when
  ///     asked to) happens here, and the answer still goes out before a close that follows.
  /// - Throws: the error of setting up the channel's pipeline.
  public func serve(_ channel: any Channel, answered: (@Sendable (String) -> Void)? = nil) async throws {
    let (calls, continuation) = AsyncStream.makeStream(of: IncomingCall.self)
    try await channel.eventLoop.submit {
      try channel.pipeline.syncOperations.addHandler(
        RequestReader(services: self.services, calls: continuation))
      // A channel handed over with reads held (a brokered stream) starts reading now, with the
      // reader in place.
      try channel.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
    }.get()
    // A channel that closed just before the reader was added never tells it so.
    channel.closeFuture.whenComplete { _ in continuation.finish() }
    let writer = GobWriter(channel: channel)
    await withTaskCancellationHandler {
      await withDiscardingTaskGroup { group in
        for await call in calls {
          group.addTask {
            let answer = await call.work()
            Self.answer(call.header, with: answer, writer: writer)
            answered?(call.header.serviceMethod)
          }
        }
        group.cancelAll()
      }
    } onCancel: {
      channel.close(promise: nil)
    }
  }

  private static func answer(_ request: RequestHeader, with answer: Answer, writer: GobWriter) {
    var header = ResponseHeader(serviceMethod: request.serviceMethod, seq: request.seq, error: "")
    switch answer {
    case .reply(let reply):
      do {
        try writer.send(header, reply)
      } catch {
        // The caller learns why instead of waiting for a reply that cannot be written.
        header.error = "gob error encoding body: \(error)"
        try? writer.send(header, EmptyBody())
      }
    case .error(let message):
      header.error = message
      try? writer.send(header, EmptyBody())
    }
  }
}

/// A decoded call and the work that answers it.
struct IncomingCall: Sendable {
  let header: RequestHeader
  let work: @Sendable () async -> Answer
}

/// Reads requests on the connection's event loop: a header, then the argument the method named
/// there expects; hands each complete call to the serving task.
private final class RequestReader: ChannelInboundHandler {
  typealias InboundIn = ByteBuffer

  private enum Expecting {
    case header
    case body(RequestHeader, NetRPCService.Method?, error: String)
  }

  private let services: [String: NetRPCService]
  private let calls: AsyncStream<IncomingCall>.Continuation
  private var decoder = GobStreamDecoder()
  private var expecting = Expecting.header

  init(services: [String: NetRPCService], calls: AsyncStream<IncomingCall>.Continuation) {
    self.services = services
    self.calls = calls
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    let buffer = Self.unwrapInboundIn(data)
    self.decoder.append(buffer.readableBytesView)
    do {
      while try self.step() {}
    } catch {
      // Go's server stops reading a connection whose stream it cannot decode.
      self.calls.finish()
      context.close(promise: nil)
    }
  }

  private func step() throws -> Bool {
    switch self.expecting {
    case .header:
      guard let header = try self.decoder.decode(RequestHeader.self) else { return false }
      let (method, error) = self.lookUp(header.serviceMethod)
      self.expecting = .body(header, method, error: error)
      return true
    case .body(let header, let method, let error):
      if let method {
        let work: NetRPCService.Work?
        do {
          work = try method(&self.decoder)
        } catch {
          // An argument of the wrong type fails this call only, as in Go.
          self.expecting = .header
          let text = "\(error)"
          self.calls.yield(IncomingCall(header: header, work: { .error(text) }))
          return true
        }
        guard let work else { return false }
        self.calls.yield(IncomingCall(header: header, work: work))
      } else {
        guard try self.decoder.skipValue() else { return false }
        self.calls.yield(IncomingCall(header: header, work: { .error(error) }))
      }
      self.expecting = .header
      return true
    }
  }

  /// The method `serviceMethod` names, or Go's text for why there is none.
  private func lookUp(_ serviceMethod: String) -> (NetRPCService.Method?, String) {
    guard let dot = serviceMethod.lastIndex(of: ".") else {
      return (nil, "rpc: service/method request ill-formed: \(serviceMethod)")
    }
    let serviceName = serviceMethod[..<dot]
    let methodName = serviceMethod[serviceMethod.index(after: dot)...]
    guard let service = self.services[String(serviceName)] else {
      return (nil, "rpc: can't find service \(serviceMethod)")
    }
    guard let method = service.methods[String(methodName)] else {
      return (nil, "rpc: can't find method \(serviceMethod)")
    }
    return (method, "")
  }

  func channelInactive(context: ChannelHandlerContext) {
    self.calls.finish()
    context.fireChannelInactive()
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    context.close(promise: nil)
  }
}
