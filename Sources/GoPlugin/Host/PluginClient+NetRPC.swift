import GoPluginNetRPC
import Logging
import NIOCore
import Synchronization

/// Go's `struct{}`: what `Control.Ping` and `Control.Quit` answer.
struct EmptyReply: Codable, Sendable {}

/// The result of `body`, or nil if it did not finish within `timeout` (it is then cancelled).
func withDeadline<Result: Sendable>(
  _ timeout: Duration,
  _ body: @escaping @Sendable () async throws -> Result
) async throws -> Result? {
  try await withThrowingTaskGroup(of: Result?.self) { group in
    group.addTask { try await body() }
    group.addTask {
      try? await Task.sleep(for: timeout)
      return nil
    }
    defer { group.cancelAll() }
    return try await group.next() ?? nil
  }
}

extension PluginClient {
  /// The session with a plugin that serves net/rpc (spec §4): one connection, TLS if any, then
  /// yamux with the host as client. The host opens the control stream, then the plugin's stdout
  /// and stderr streams, in that order, which is how the plugin tells them apart; every stream
  /// the plugin opens belongs to the broker.
  func serveNetRPC(
    _ process: some PluginProcessHandle,
    info: PluginInfo,
    plugins: PluginSet,
    security: ConnectionSecurity,
    path: String?,
    group: inout TaskGroup<Void>
  ) async -> Result<SessionEnd, PluginError> {
    let multiplexer = Multiplexer(logger: self.logger)
    defer { multiplexer.close() }
    let broker = MuxBroker(multiplexer: multiplexer, logger: self.logger)
    multiplexer.setMainRoute { channel in try broker.takeInbound(channel) }
    let stdioEnded = OneShot<Void>()
    let control: NetRPCClient
    do throws(PluginError) {
      try await multiplexer.connect(
        network: info.network,
        address: info.address,
        connectTimeout: self.configuration.startTimeout,
        tls: security.client,
        serverHostname: security.serverHostname
      )
      control = try await self.openControlStream(multiplexer)
      try await self.openOutputStreams(multiplexer, ended: stdioEnded)
      // Started means able to take calls, as for gRPC: a plugin whose address accepts and then
      // speaks something else, or nothing, fails the start here.
      try await self.pingForStart(control)
    } catch {
      await self.abandonAfterFailedStart(process)
      return .failure(error.about(path: path, pid: info.pid))
    }
    self.connections.increment()
    self.logger.debug("using plugin", metadata: ["version": "\(info.negotiatedVersion)", "address": "\(info.address)"])
    self.transition(
      .started(Session(info: info, plugins: plugins, wire: .netRPC(NetRPCWire(control: control, broker: broker)))))

    await withTaskGroup(of: Void.self) { session in
      session.addTask { await broker.runBackgroundWork() }
      await withTaskGroup(of: Void.self) { race in
        race.addTask { _ = await self.wait(until: .stopOrDetachRequested) }
        race.addTask { _ = await process.terminated.wait() }
        await race.next()
        race.cancelAll()
      }
      broker.close()
      session.cancelAll()
    }
    if self.phase.detachRequested, !Task.isCancelled, process.terminated.current == nil {
      process.release()
      self.logger.debug("detached from the plugin, which keeps running")
      self.transition(.exited(PluginExit(status: nil, reason: .detached)))
      await multiplexer.closeAndWait()
      return .success(.detached)
    }
    await self.stop(
      process,
      request: { deadline in await Self.requestQuit(control, deadline: deadline, logger: self.logger) },
      afterRequest: {}
    )
    // What the plugin wrote last is on its way over the stdio streams, which end with it.
    _ = await stdioEnded.wait(timeout: Self.stdioDrainTime)
    await multiplexer.closeAndWait()
    return .success(.ended)
  }

  private func openControlStream(_ multiplexer: Multiplexer) async throws(PluginError) -> NetRPCClient {
    do {
      let channel = try await multiplexer.openStream { channel in
        try channel.syncOptions?.setOption(ChannelOptions.autoRead, value: false)
      }.get()
      return try await NetRPCClient.start(on: channel)
    } catch let error as PluginError {
      throw error
    } catch {
      throw PluginError(code: .connectionFailed, message: "error opening the control stream: \(error)", cause: error)
    }
  }

  /// The plugin's stdout and stderr, each a stream of raw bytes, to the configured sinks (which
  /// drop them by default, as go-plugin's do). `ended` is fulfilled when both have ended.
  private func openOutputStreams(_ multiplexer: Multiplexer, ended: OneShot<Void>) async throws(PluginError) {
    let open = OpenStreams(count: 2, ended: ended)
    for output in [self.configuration.syncStdout, self.configuration.syncStderr] {
      do {
        _ = try await multiplexer.openStream { channel in
          try channel.pipeline.syncOperations.addHandler(OutputForwarder(output: output, onEnd: open.ended))
        }.get()
      } catch {
        throw PluginError(
          code: .connectionFailed, message: "error opening the plugin's stdio streams: \(error)", cause: error)
      }
    }
  }

  private func pingForStart(_ control: NetRPCClient) async throws(PluginError) {
    let answered: Bool?
    do {
      answered = try await withDeadline(self.configuration.startTimeout) {
        _ = try await control.call("Control.Ping", true, returning: EmptyReply.self)
        return true
      }
    } catch {
      throw PluginError(code: .connectionFailed, message: "error connecting to the plugin: \(error)", cause: error)
    }
    guard answered != nil else {
      throw PluginError(code: .connectionFailed, message: "the plugin did not answer Control.Ping in time")
    }
  }

  /// `Control.Quit`: a Go plugin closes the connection as it exits, so a connection that ends
  /// before the answer is an answer too.
  private static func requestQuit(
    _ control: NetRPCClient,
    deadline: ContinuousClock.Instant,
    logger: Logger
  ) async -> ShutdownOutcome? {
    do {
      let answered: Bool? = try await withDeadline(max(deadline - ContinuousClock.now, .milliseconds(1))) {
        _ = try await control.call("Control.Quit", true, returning: EmptyReply.self)
        return true
      }
      return answered == nil ? .noAnswer : .answered
    } catch let error as NetRPCError where error.code == .shutdown {
      return .answered
    } catch {
      guard !Task.isCancelled else { return nil }
      logger.debug("error asking the plugin to quit", metadata: ["error": "\(error)"])
      return .noAnswer
    }
  }

  func dispenseNetRPC<Plugin: NetRPCPlugin>(
    _ plugin: Plugin,
    name: String,
    session: Session,
    wire: NetRPCWire
  ) async throws(PluginError) -> Plugin.Client {
    let pid = session.info.pid
    let id: UInt32
    do {
      id = try await wire.control.call("Dispenser.Dispense", name, returning: UInt32.self)
    } catch  where error.code == .server {
      let code: PluginError.Code = error.message.hasPrefix("unknown plugin type") ? .unknownPlugin : .dispenseFailed
      throw self.error(code, error.message, pid: pid)
    } catch {
      throw self.error(.dispenseFailed, "error dispensing \(name): \(error)", pid: pid)
    }
    let rpcClient: NetRPCClient
    do {
      rpcClient = try await wire.broker.dialClient(id)
    } catch {
      throw self.error(.dispenseFailed, "error dispensing \(name): \(error)", pid: pid)
    }
    let context = NetRPCPluginContext(
      name: name, negotiatedVersion: session.info.negotiatedVersion, logger: self.logger, broker: wire.broker)
    return plugin.client(context: context, rpcClient: rpcClient)
  }
}

/// Counts streams down to their end.
private final class OpenStreams: Sendable {
  private let remaining: Atomic<Int>
  private let signal: OneShot<Void>

  init(count: Int, ended: OneShot<Void>) {
    self.remaining = Atomic(count)
    self.signal = ended
  }

  @Sendable func ended() {
    if self.remaining.subtract(1, ordering: .relaxed).newValue == 0 { self.signal.fulfil(()) }
  }
}

/// Hands what arrives on a plugin's stdout or stderr stream to the host's sink.
private final class OutputForwarder: ChannelInboundHandler {
  typealias InboundIn = ByteBuffer

  private let output: PluginOutput
  private let onEnd: @Sendable () -> Void

  init(output: PluginOutput, onEnd: @escaping @Sendable () -> Void) {
    self.output = output
    self.onEnd = onEnd
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    let buffer = Self.unwrapInboundIn(data)
    self.output.write(Array(buffer.readableBytesView))
  }

  func channelInactive(context: ChannelHandlerContext) {
    self.onEnd()
    context.fireChannelInactive()
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    context.close(promise: nil)
  }
}
