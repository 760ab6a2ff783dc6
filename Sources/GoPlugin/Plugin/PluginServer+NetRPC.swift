import GoPluginNetRPC
import GoPluginPlatform
import GoPluginProtos
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

extension PluginServer {
  /// Serves a plugin set over go-plugin's net/rpc protocol (spec §4): one connection (TLS if
  /// the host asked for AutoMTLS), yamux with the plugin as server; the host's first stream is
  /// the control stream, the next two carry this process's stdout and stderr, and every other
  /// stream belongs to the broker. Returns once the host called `Control.Quit`, the connection
  /// ended, or (as one service of a ServiceGroup) the process shuts down gracefully.
  static func runNetRPC(
    _ configuration: PluginServeConfiguration,
    version: Int,
    plugins: PluginSet,
    environment: [String: String],
    isPluginProcess: Bool,
    onListening: @Sendable (HandshakeLine) -> Void
  ) async throws {
    let logger = configuration.logger
    let (tls, certificate, _) = try ConnectionSecurity.plugin(tls: configuration.tls, environment: environment)
    let multiplexer = Multiplexer(logger: logger)
    defer { multiplexer.close() }
    let broker = MuxBroker(multiplexer: multiplexer, logger: logger)
    defer { broker.close() }

    let streams = HostStreams()
    multiplexer.setMainRoute { channel in try streams.route(channel, broker: broker) }
    let control = NetRPCServer(services: [
      Self.controlService(),
      Self.dispenserService(plugins, version: version, broker: broker, logger: logger),
    ])

    let listener = try SocketListener.open(configuration.listener.socketKind, environment: environment)
    defer { listener.removeSocketFile() }
    try await multiplexer.accept(on: listener, tls: tls)
    let line = HandshakeLine(
      appVersion: version,
      network: listener.network,
      address: listener.address,
      protocol: .netRPC,
      serverCertificate: certificate
    )
    logger.debug("plugin address", metadata: ["network": "\(line.network)", "address": "\(line.address)"])
    if isPluginProcess { POSIX.ignoreInterrupts() }
    onListening(line)
    var capture: StdioCapture?
    if isPluginProcess && configuration.forwardStandardStreams {
      do {
        capture = try await StdioCapture.start(logger: logger)
      } catch {
        logger.warning("stdout and stderr are not forwarded", metadata: ["error": "\(error)"])
      }
    }
    let captured = capture
    defer { captured?.stop() }

    let quit = OneShot<Void>()
    let forwarded = OneShot<Void>()
    await withTaskGroup(of: Void.self) { group in
      group.addTask {
        // One control stream: when it ends, the host has gone.
        if let channel = await streams.control.wait() {
          do {
            try await control.serve(channel) { method in
              if method == "Control.Quit" { quit.fulfil(()) }
            }
          } catch {
            logger.debug("control stream failed", metadata: ["error": "\(error)"])
          }
        }
        quit.fulfil(())
      }
      group.addTask { await broker.runBackgroundWork() }
      group.addTask {
        // A host gone before it opened the control stream ends the plugin too.
        _ = await multiplexer.ended.wait()
        quit.fulfil(())
      }
      group.addTask {
        if let captured { await Self.forward(captured, to: streams) }
        forwarded.fulfil(())
      }
      await withGracefulShutdownHandler {
        _ = await quit.wait()
      } onGracefulShutdown: {
        quit.fulfil(())
      }
      logger.debug("plugin stopping")
      // What the plugin wrote last still reaches the host before the streams close.
      captured?.stop()
      _ = await forwarded.wait(timeout: configuration.shutdownGracePeriod)
      broker.close()
      group.cancelAll()
    }
    await multiplexer.closeAndWait()
    logger.debug("plugin stopped")
  }

  /// `Control.Ping` and `Control.Quit`; the server stops once Quit's answer is on its way.
  private static func controlService() -> NetRPCService {
    var service = NetRPCService(name: "Control")
    service.addMethod("Ping") { (_: Bool) in EmptyReply() }
    service.addMethod("Quit") { (_: Bool) in EmptyReply() }
    return service
  }

  /// `Dispenser.Dispense`: makes the named plugin's service, answers the broker ID it will be
  /// served on, and serves it there in the background once the host dials.
  private static func dispenserService(
    _ plugins: PluginSet,
    version: Int,
    broker: MuxBroker,
    logger: Logger
  ) -> NetRPCService {
    var service = NetRPCService(name: "Dispenser")
    service.addMethod("Dispense") { (name: String) -> UInt32 in
      guard let definition = plugins[name], let plugin = definition as? any NetRPCPlugin else {
        throw NetRPCError.server("unknown plugin type: \(name)")
      }
      let context = NetRPCPluginContext(name: name, negotiatedVersion: version, logger: logger, broker: broker)
      let served: NetRPCService
      do {
        served = try plugin.server(context: context)
      } catch let error as NetRPCError {
        throw error
      } catch {
        throw NetRPCError.server("\(error)")
      }
      let id = broker.nextID()
      broker.serveInBackground(id, served)
      return id
    }
    return service
  }

  /// Copies the captured stdout and stderr to their streams, once the host has opened them.
  private static func forward(_ capture: StdioCapture, to streams: HostStreams) async {
    guard capture.attachConsumer() else { return }
    guard let stdout = await streams.stdout.wait(), let stderr = await streams.stderr.wait() else { return }
    for await chunk in capture.chunks {
      let channel = chunk.channel == .stderr ? stderr : stdout
      channel.writeAndFlush(ByteBuffer(bytes: chunk.data), promise: nil)
    }
    // Half-closed, as Go closes its end when the pipe ends.
    stdout.close(mode: .output, promise: nil)
    stderr.close(mode: .output, promise: nil)
  }
}

/// Which of the host's streams is which: they are told apart by the order the host opens them.
final class HostStreams: Sendable {
  let control = OneShot<any Channel>()
  let stdout = OneShot<any Channel>()
  let stderr = OneShot<any Channel>()
  private let opened = Mutex(0)

  func route(_ channel: any Channel, broker: MuxBroker) throws {
    let index = self.opened.withLock { count in
      defer { count += 1 }
      return count
    }
    switch index {
    case 0:
      // Held until the control server's reader is in place.
      try channel.syncOptions?.setOption(ChannelOptions.autoRead, value: false)
      self.control.fulfil(channel)
    case 1:
      self.stdout.fulfil(channel)
    case 2:
      self.stderr.fulfil(channel)
    default:
      try broker.takeInbound(channel)
    }
  }
}
