import GRPCCore
import GoPluginPlatform
import GoPluginProtos
import Logging
import NIOSSL
import SwiftProtobuf
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension PluginClient {
  func launchAndServe() async throws(PluginError) {
    let configuration = self.configuration
    try configuration.validate()
    if let reattach = configuration.reattach {
      try await self.reattachAndServe(reattach)
      return
    }
    let executable = try configuration.command.resolvedExecutable()
    // Opened and checked before anything else happens, and kept open until the plugin is gone.
    var verified: VerifiedExecutable?
    if configuration.checksum != nil || configuration.trust != nil {
      let trust = configuration.trust
      verified = try VerifiedExecutable(path: executable, checksum: configuration.checksum) {
        descriptor throws(PluginError) in
        _ = try trust?.check(descriptor: descriptor, path: executable, name: configuration.trustedName)
      }
    }
    defer { withExtendedLifetime(verified) {} }
    var certificate: AutoMTLSCertificate?
    if case .autoMTLS? = configuration.tls?.mode {
      do {
        certificate = try AutoMTLSCertificate.generate()
      } catch {
        var failure = self.error(.invalidConfiguration, "failed to generate client certificate: \(error)")
        failure.cause = error
        throw failure
      }
    }
    let socketDirectory = try SocketDirectory.makeForPlugin(
      in: SocketDirectory.hostBase(environment: ProcessInfo.processInfo.environment),
      keptForReattach: configuration.keepsPluginRunning,
      group: configuration.unixSocketGroup
    )
    var keepSocketDirectory = false
    defer { if !keepSocketDirectory { SocketDirectory.removeTree(socketDirectory) } }

    // A plugin kept for another host must not get the parent-death signal.
    let process = PluginProcess(
      executablePath: verified?.launchPath ?? executable,
      argumentZero: executable,
      arguments: configuration.command.arguments,
      environment: self.childEnvironment(socketDirectory: socketDirectory, clientCertificate: certificate?.pem),
      workingDirectory: configuration.command.workingDirectory,
      standardInput: configuration.standardInput,
      logLineLimit: configuration.logLineLimit,
      logger: self.logger,
      diesWithHost: !configuration.keepsPluginRunning
    )
    self.transition(.launched(process))

    let outcome: Result<SessionEnd, PluginError> = await withTaskGroup(of: Void.self) { group in
      group.addTask { await process.run() }
      let result = await self.connectAndServe(
        process: process,
        executable: executable,
        certificate: certificate,
        socketDirectory: socketDirectory,
        group: &group
      )
      if case .success(.detached) = result {
        // Let go of, the plugin keeps running; it is still this process's child, reaped when
        // it ends. Cancelling this task still kills it.
        await group.waitForAll()
      } else {
        // Whatever happened, the process is gone and reaped when the group ends.
        group.cancelAll()
      }
      return result
    }
    if case .detached = try outcome.get() {
      // The plugin's socket lives in this directory, and outlives the host with it.
      keepSocketDirectory = true
    }
  }

  /// How a session that started ended.
  enum SessionEnd {
    /// The plugin was stopped, killed, or exited by itself.
    case ended
    /// The host let go of the plugin, which keeps running.
    case detached
  }

  /// Everything between launch and reap; the process task runs beside it in `group`.
  func connectAndServe(
    process: PluginProcess,
    executable: String,
    certificate: AutoMTLSCertificate?,
    socketDirectory: String,
    group: inout TaskGroup<Void>
  ) async -> Result<SessionEnd, PluginError> {
    guard let pid = await process.launched.valueIgnoringCancellation() else {
      let status = await process.terminated.valueIgnoringCancellation()
      self.transition(.exited(PluginExit(status: status, reason: .launchFailed)))
      if case .launchFailed(let reason)? = process.firstLine.current {
        var failure = self.error(.launchFailed, "could not launch \(executable): \(reason)")
        failure.cause = reason
        return .failure(failure)
      }
      return .failure(self.error(.launchFailed, "could not launch \(executable)"))
    }
    self.logger.debug("plugin started", metadata: ["path": "\(executable)", "pid": "\(pid)"])

    let line: HandshakeLine
    let security: ConnectionSecurity
    do throws(PluginError) {
      line = try await self.handshake(process).get()
      security = try ConnectionSecurity.host(
        tls: self.configuration.tls,
        serverCertificate: line.serverCertificate,
        ownCertificate: certificate,
        logger: self.logger
      )
    } catch {
      // A refused plugin's socket, if it made one, is in its private directory, removed with it.
      await self.killAndReap(process)
      return .failure(Self.withStandardErrorTail(error, of: process).about(path: executable, pid: pid))
    }

    let info = PluginInfo(
      pid: pid,
      negotiatedVersion: line.appVersion,
      protocol: line.protocol,
      network: line.network,
      address: line.address,
      serverCertificate: line.serverCertificate
    )
    return await self.serve(
      process,
      info: info,
      plugins: self.configuration.versionedPlugins[line.appVersion] ?? PluginSet(),
      security: security,
      path: executable,
      socketDirectory: socketDirectory,
      group: &group
    )
  }

  /// The session with a running plugin, launched or reattached: connects to it, hands out
  /// clients, and ends it when the host stops it, lets go of it, or it exits. The process's
  /// own task runs beside it in `group`.
  func serve(
    _ process: some PluginProcessHandle,
    info handshakeInfo: PluginInfo,
    plugins: PluginSet,
    security: ConnectionSecurity,
    path: String?,
    socketDirectory: String,
    group: inout TaskGroup<Void>
  ) async -> Result<SessionEnd, PluginError> {
    if handshakeInfo.protocol == .netRPC {
      return await self.serveNetRPC(
        process, info: handshakeInfo, plugins: plugins, security: security, path: path, group: &group)
    }
    let pid = handshakeInfo.pid
    let transport: PluginClientTransport
    var multiplexer: Multiplexer?
    defer { multiplexer?.close() }
    // Every step throws a PluginError, so each failure keeps the code its step gave it.
    do throws(PluginError) {
      if self.configuration.multiplexBroker {
        // Multiplexed, the gRPC connection is the session's first stream.
        let mux = Multiplexer(logger: self.logger)
        multiplexer = mux
        try await mux.connect(
          network: handshakeInfo.network,
          address: handshakeInfo.address,
          connectTimeout: self.configuration.startTimeout
        )
        transport = mux.clientTransport(
          maxMessageSize: self.configuration.maxMessageSize,
          tls: security.client,
          serverHostname: security.serverHostname,
          peerName: "the plugin",
          setupTimeout: self.configuration.startTimeout,
          onConnect: { [connections] in connections.increment() }
        )
      } else {
        transport = try Transports.client(
          network: handshakeInfo.network,
          address: handshakeInfo.address,
          maxMessageSize: self.configuration.maxMessageSize,
          tls: security.client,
          serverHostname: security.serverHostname,
          setupTimeout: self.configuration.startTimeout,
          onConnect: { [connections] in connections.increment() }
        )
      }
    } catch {
      await self.abandonAfterFailedStart(process)
      return .failure(error.about(path: path, pid: pid))
    }
    let grpcClient = GRPCClient(transport: PluginTransport(transport))
    group.addTask {
      do {
        try await grpcClient.runConnections()
      } catch {
        self.logger.debug("plugin connection ended", metadata: ["error": "\(error)"])
      }
    }
    // Started means able to take calls: a plugin whose address accepts and then closes, speaks
    // something else or stays silent fails the start here, within the start timeout, instead
    // of hanging its first call.
    do {
      try await transport.establish()
    } catch {
      grpcClient.beginGracefulShutdown()
      await self.abandonAfterFailedStart(process)
      return .failure(error.about(path: path, pid: pid))
    }

    var info = handshakeInfo
    info.multiplexed = multiplexer != nil
    self.logger.debug("using plugin", metadata: ["version": "\(info.negotiatedVersion)", "address": "\(info.address)"])
    let broker = GRPCBroker(
      socketDirectory: socketDirectory,
      environment: [:],
      security: security,
      maxMessageSize: self.configuration.maxMessageSize,
      multiplexer: multiplexer,
      setupTimeout: self.configuration.startTimeout,
      logger: self.logger
    )
    let transportForCalls = PluginTransport(transport)
    self.transition(
      .started(
        Session(
          info: info, plugins: plugins,
          wire: .grpc(GRPCWire(grpcClient: grpcClient, broker: broker, transport: transportForCalls)))))

    // The session: the broker and stdio streams stay open until the plugin is stopped or exits,
    // or the host lets go of it. Those streams ending (a plugin without a broker, a dropped
    // connection) ends nothing.
    let end = await withTaskGroup(of: Void.self) { stdio -> SessionEnd in
      // Stdio outlives the stop request: a plugin flushes what it still holds as it shuts
      // down, and the stream ends by itself once the plugin has gone.
      stdio.addTask { await self.drainStdio(grpcClient) }
      await withTaskGroup(of: Void.self) { session in
        session.addTask { await self.holdBrokerStream(grpcClient, broker: broker) }
        await withTaskGroup(of: Void.self) { race in
          race.addTask { _ = await self.wait(until: .stopOrDetachRequested) }
          race.addTask { _ = await process.terminated.wait() }
          await race.next()
          race.cancelAll()
        }
        session.cancelAll()
      }
      // Brokered servers stop and dials fail before the plugin is asked to shut down.
      broker.close()
      // A detach asked for before any stop lets go; a cancelled run, or a stop, stops.
      if self.phase.detachRequested, !Task.isCancelled, process.terminated.current == nil {
        grpcClient.beginGracefulShutdown()
        process.release()
        stdio.cancelAll()
        self.logger.debug("detached from the plugin, which keeps running")
        self.transition(.exited(PluginExit(status: nil, reason: .detached)))
        return .detached
      }
      await self.stop(process, grpcClient: grpcClient)
      // The process is gone; whatever it sent is in the socket buffers and drains at once.
      stdio.addTask { try? await Task.sleep(for: Self.stdioDrainTime) }
      await stdio.next()
      stdio.cancelAll()
      return .ended
    }
    // Multiplexed, the session's connection and stream channels close on the event loop; the
    // host returns only once they have (the deferred close then has nothing left to do).
    await multiplexer?.closeAndWait()
    // A plugin that vanished without removing its socket (killed, crashed) left it in its private
    // directory, which goes with it; a path the plugin merely named is never unlinked.
    return .success(end)
  }

  /// The first stdout line, parsed and validated, raced against the start timeout and a stop
  /// request.
  func handshake(_ process: PluginProcess) async -> Result<HandshakeLine, PluginError> {
    let firstLine = await self.waitForFirstLine(process, timeout: self.configuration.startTimeout)
    return Result { () throws(PluginError) -> HandshakeLine in
      switch firstLine {
      case .line(let text)?:
        return try HandshakeLine.parse(text, expecting: self.expectations)
      case .closed?, .launchFailed?:
        return try HandshakeLine.parse(nil, expecting: self.expectations)
      case nil:
        if self.phase.stopRequested || Task.isCancelled {
          throw PluginError(code: .notRunning, message: "the plugin was stopped before it finished starting")
        }
        throw PluginError(code: .startTimeout, message: "timeout while waiting for plugin to start")
      }
    }
  }

  /// Ends a session and records how the plugin ended, exactly once: a plugin still running is
  /// asked to shut down and killed if it lingers past the grace period (or at once, if this
  /// task was cancelled); one that already exited, reaped or not, is asked nothing and its
  /// exit is recorded as its own.
  func stop(_ process: some PluginProcessHandle, grpcClient: GRPCClient<PluginTransport>) async {
    await self.stop(
      process,
      request: { deadline in await self.requestShutdown(grpcClient, deadline: deadline) },
      afterRequest: { grpcClient.beginGracefulShutdown() }
    )
  }

  /// ``stop(_:grpcClient:)`` for any protocol: `request` asks the plugin to shut down by the
  /// deadline (nil when it was cancelled), `afterRequest` lets go of the connection.
  func stop(
    _ process: some PluginProcessHandle,
    request: @escaping @Sendable (ContinuousClock.Instant) async -> ShutdownOutcome?,
    afterRequest: () -> Void
  ) async {
    let timeout = self.configuration.gracefulStopTimeout
    var exitDeadline = ContinuousClock.now + timeout
    if !Task.isCancelled && process.beginStop() {
      self.logger.debug("asking the plugin to shut down")
      // A plugin that answered gets the whole timeout to exit, counted from its answer, as a
      // go-plugin host gives it; one that did not answer in time has used it up.
      if await self.shutDown(process: process, deadline: exitDeadline, request: request) == .answered {
        exitDeadline = ContinuousClock.now + timeout
      }
    }
    afterRequest()

    if !Task.isCancelled, let status = await process.terminated.wait(timeout: exitDeadline - ContinuousClock.now) {
      self.recordExit(of: process, status: status)
      return
    }
    if !Task.isCancelled {
      self.logger.warning("plugin failed to exit gracefully")
    }
    await self.killAndReap(process)
  }

  var expectations: HandshakeLine.Expectations {
    HandshakeLine.Expectations(
      versions: Array(self.configuration.versionedPlugins.keys),
      allowedProtocols: self.configuration.allowedProtocols,
      multiplexingRequested: self.configuration.multiplexBroker
    )
  }

  func waitForFirstLine(_ process: PluginProcess, timeout: Duration) async -> PluginProcess.FirstLine? {
    await withTaskGroup(of: PluginProcess.FirstLine?.self) { group in
      group.addTask { await process.firstLine.wait(timeout: timeout) }
      group.addTask {
        _ = await self.wait(until: .stopRequested)
        return nil
      }
      let first = await group.next() ?? nil
      group.cancelAll()
      return first
    }
  }

  /// A plugin this host launched and could not use is killed; one it reattached to is left as
  /// it was: it may serve another host, and a failed reattach must never kill (go-plugin 1.0.1
  /// killed the pid, by then perhaps another process's).
  func abandonAfterFailedStart(_ process: some PluginProcessHandle) async {
    if process is ReattachedProcess {
      process.release()
    } else {
      await self.killAndReap(process)
    }
  }

  func killAndReap(_ process: some PluginProcessHandle) async {
    process.kill()
    let status = await process.terminated.valueIgnoringCancellation()
    self.recordExit(of: process, status: status)
  }

  /// Records the exit with the reason the process's own bookkeeping gives: the host's doing
  /// only if the host acted before the process exited.
  func recordExit(of process: some PluginProcessHandle, status: PluginExit.Status?) {
    let exit = PluginExit(status: status, reason: process.reason(for: status))
    guard self.transition(.exited(exit)) else { return }
    if exit.reason == .exitedUnexpectedly {
      self.logger.info("plugin process exited", metadata: ["exit": "\(exit)"])
    } else {
      self.logger.debug("plugin exited", metadata: ["exit": "\(exit)"])
    }
  }

  /// A start error with what the plugin last wrote to stderr: a plugin that refuses to start
  /// (a wrong cookie, say) explains itself there, and the reason belongs in the error. Only
  /// for a plugin that gave no handshake: one the host refused said nothing wrong.
  static func withStandardErrorTail(_ error: PluginError, of process: some PluginProcessHandle) -> PluginError {
    guard [.exitedBeforeHandshake, .malformedHandshake, .startTimeout].contains(error.code) else { return error }
    let lines = process.lastStandardErrorLines
    guard !lines.isEmpty else { return error }
    var error = error
    error.message += "\n\n" + PluginError.standardErrorHeading + "\n" + lines.joined(separator: "\n")
    return error
  }

  enum ShutdownOutcome {
    /// The plugin took the request.
    case answered
    /// The process ended first: it was already on its way out (killed, crashed), and its
    /// answer is not worth waiting for.
    case exited
    /// No answer within the deadline, or an error.
    case noAnswer
  }

  /// `GRPCController.Shutdown`, bounded in time and by the process's end: a plugin that died
  /// just before the request cannot answer it, and its connection may not say so at once.
  func shutDown(
    process: some PluginProcessHandle,
    deadline: ContinuousClock.Instant,
    request: @escaping @Sendable (ContinuousClock.Instant) async -> ShutdownOutcome?
  ) async -> ShutdownOutcome {
    await withTaskGroup(of: ShutdownOutcome?.self) { group in
      group.addTask { await request(deadline) }
      group.addTask { await process.terminated.wait() == nil ? nil : .exited }
      defer { group.cancelAll() }
      while let outcome = await group.next() {
        if let outcome { return outcome }
      }
      return .noAnswer
    }
  }

  /// A Go plugin stops its server before it answers, so UNAVAILABLE is the usual answer, and a
  /// success.
  private func requestShutdown(
    _ grpcClient: GRPCClient<PluginTransport>,
    deadline: ContinuousClock.Instant
  ) async -> ShutdownOutcome? {
    let controller = Plugin_GRPCController.Client(wrapping: grpcClient)
    var options = CallOptions.defaults
    options.timeout = max(deadline - ContinuousClock.now, .milliseconds(1))
    do {
      _ = try await controller.shutdown(Plugin_Empty(), options: options)
      return .answered
    } catch let error as RPCError where error.code == .unavailable {
      // The plugin closed the connection on its way out.
      return .answered
    } catch {
      // Cancelled, the process ended first and this call's failure says nothing.
      guard !Task.isCancelled else { return nil }
      self.logger.debug("error asking the plugin to shut down", metadata: ["error": "\(error)"])
      return .noAnswer
    }
  }
}

extension PluginError {
  /// The line that introduces, at the end of a start error's ``message``, what the plugin last
  /// wrote to stderr (at most 10 lines and 4 KiB): for a plugin that gave no handshake, its own
  /// explanation.
  public static let standardErrorHeading = "The plugin's last lines on stderr:"
}
