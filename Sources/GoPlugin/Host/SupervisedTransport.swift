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
    return try await route.withStream(
      descriptor: descriptor, options: options, pluginPath: self.machine.pluginPath, router: "a supervisor", closure)
  }
}

extension PluginSupervisor.Route {
  /// Runs one call over this process's connection. A call that fails as the process dies fails
  /// with ``PluginError/Code/exitedDuringCall``, naming the exit, whatever the connection said
  /// about it: the routing transports (a supervisor's, a pool's) tell their callers so alike.
  ///
  /// - Parameters:
  ///   - router: what routes the call, for the error about a net/rpc plugin.
  ///   - onBroken: called when the call failed as a dying plugin's would, before waiting to
  ///     see whether the plugin exited: a pool sends no more calls to the instance meanwhile.
  func withStream<T: Sendable>(
    descriptor: MethodDescriptor,
    options: CallOptions,
    pluginPath: String,
    router: String,
    onBroken: () -> Void = {},
    _ closure: (RPCStream<SupervisedTransport.Inbound, SupervisedTransport.Outbound>, ClientContext) async throws -> T
  ) async throws -> T {
    guard case .grpc(let wire) = self.session.wire else {
      throw self.client.error(
        .unsupportedProtocol, "\(router) routes gRPC calls; this plugin serves net/rpc", pid: self.session.info.pid)
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
    if failure.isSet { onBroken() }
    if failure.isSet, !Task.isCancelled, let exit = await self.client.exit(within: SupervisedTransport.exitSettleTime) {
      throw PluginError(
        code: .exitedDuringCall,
        message: "the plugin exited during the call to \(descriptor): \(exit)",
        pluginPath: pluginPath,
        pid: self.session.info.pid
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
