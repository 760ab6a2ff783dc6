import GRPCCore
import Synchronization

/// The transport under a supervisor's typed clients: each call goes to the plugin process that
/// is running when the call starts, over that process's own connection.
///
/// Nothing is retried: a call refused because the plugin is down fails with
/// ``PluginError/Code/unavailable`` before anything is sent, and a call whose plugin exits
/// while it runs fails with ``PluginError/Code/exitedDuringCall`` (the plugin may have acted
/// on it: a retried Put could run twice).
struct SupervisedTransport: ClientTransport {
  typealias Bytes = PluginBytes

  let machine: PluginSupervisor.Machine
  let waitForReady: Duration?
  private let shutdown = OneShot<Void>()

  /// How long a failed call waits for its plugin's exit to be known, to tell a crash from a
  /// connection error: the connection breaks as the process dies, and the reaping follows.
  static let exitSettleTime: Duration = .seconds(2)

  init(machine: PluginSupervisor.Machine, waitForReady: Duration?) {
    self.machine = machine
    self.waitForReady = waitForReady
  }

  var retryThrottle: RetryThrottle? { nil }

  /// Each plugin process's connection is run by its own client; this one only has to last
  /// until the supervised clients shut down.
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
    guard let route = await self.machine.route(waitingUpTo: self.waitForReady ?? .zero) else {
      throw self.machine.unavailable()
    }
    guard case .grpc(let wire) = route.session.wire else {
      throw route.client.error(
        .unsupportedProtocol, "a supervisor routes gRPC calls; this plugin serves net/rpc", pid: route.session.info.pid)
    }
    let failure = FailureFlag()
    let result: Result<T, any Error>
    do {
      result = .success(
        try await wire.transport.withStream(descriptor: descriptor, options: options) { stream, context in
          let watched = RPCStream(
            descriptor: stream.descriptor,
            inbound: RPCAsyncSequence(wrapping: FailureNotingSequence(base: stream.inbound, flag: failure)),
            outbound: stream.outbound
          )
          return try await closure(watched, context)
        }
      )
    } catch {
      if !(error is CancellationError) { failure.set() }
      result = .failure(error)
    }
    // A call that failed as its plugin died fails with the plugin's exit, whatever the
    // connection said about it.
    if failure.isSet, !Task.isCancelled, let exit = await route.client.exit(within: Self.exitSettleTime) {
      throw PluginError(
        code: .exitedDuringCall,
        message: "the plugin exited during the call to \(descriptor): \(exit)",
        pluginPath: self.machine.pluginPath,
        pid: route.session.info.pid
      )
    }
    return try result.get()
  }
}

/// Set when a call's response stream broke, as it does when the plugin's connection goes.
private final class FailureFlag: Sendable {
  private let value = Atomic(false)
  func set() { self.value.store(true, ordering: .relaxed) }
  var isSet: Bool { self.value.load(ordering: .relaxed) }
}

/// The responses of a call, noting a failure that a dying plugin would cause.
private struct FailureNotingSequence: AsyncSequence, Sendable {
  typealias Element = RPCResponsePart<PluginBytes>
  let base: RPCAsyncSequence<RPCResponsePart<PluginBytes>, any Error>
  let flag: FailureFlag

  struct AsyncIterator: AsyncIteratorProtocol {
    var base: RPCAsyncSequence<RPCResponsePart<PluginBytes>, any Error>.AsyncIterator
    let flag: FailureFlag

    mutating func next() async throws -> RPCResponsePart<PluginBytes>? {
      do {
        let part = try await self.base.next()
        if case .status(let status, _)? = part, status.code == .unavailable {
          self.flag.set()
        }
        return part
      } catch {
        if !(error is CancellationError) { self.flag.set() }
        throw error
      }
    }
  }

  func makeAsyncIterator() -> AsyncIterator {
    AsyncIterator(base: self.base.makeAsyncIterator(), flag: self.flag)
  }
}
