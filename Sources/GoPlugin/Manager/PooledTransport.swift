import GRPCCore

/// The transport under a pool's typed clients: each call goes to the ready instance with the
/// fewest calls in flight when the call starts, over that instance's own connection, and counts
/// as in flight on it until its stream ends, which is what lets a draining instance know when
/// it may stop.
///
/// Nothing is retried, as with ``SupervisedTransport``: a call refused because no instance is
/// ready fails with ``PluginError/Code/unavailable`` before anything is sent, and a call whose
/// instance exits while it runs fails with ``PluginError/Code/exitedDuringCall``.
struct PooledTransport: ClientTransport {
  typealias Bytes = PluginBytes

  let machine: PluginPool.Machine
  let waitForReady: Duration?
  private let shutdown = OneShot<Void>()

  init(machine: PluginPool.Machine, waitForReady: Duration?) {
    self.machine = machine
    self.waitForReady = waitForReady
  }

  var retryThrottle: RetryThrottle? { nil }

  /// Each instance's connection is run by its own client; this one only has to last until the
  /// pool's clients shut down.
  func connect() async throws {
    _ = await self.shutdown.wait()
  }

  func beginGracefulShutdown() {
    self.shutdown.fulfil(())
  }

  func config(forMethod descriptor: MethodDescriptor) -> MethodConfig? { nil }

  func withStream<T: Sendable>(
    descriptor: MethodDescriptor,
    options: CallOptions,
    _ closure: (RPCStream<Inbound, Outbound>, ClientContext) async throws -> T
  ) async throws -> T {
    guard let lease = await self.machine.lease(waitingUpTo: self.waitForReady ?? .zero) else {
      throw self.machine.unavailable()
    }
    defer { self.machine.release(lease) }
    return try await lease.route.withStream(
      descriptor: descriptor, options: options, pluginPath: lease.route.client.configuration.command.executable,
      router: "a pool", onBroken: { self.machine.suspect(lease) }, closure)
  }
}
