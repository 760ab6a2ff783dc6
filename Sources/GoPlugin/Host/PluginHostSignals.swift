import GoPluginPlatform
public import UnixSignals

/// Runs a host's work, and when the host is asked to stop (SIGTERM, or SIGINT from a terminal's
/// Ctrl-C) stops its plugins gracefully, then ends the process as the signal would have.
///
/// Without it, a signal ends the host at once, and its plugins die with it by the parent-death
/// signal, with no chance to finish what they were doing. With it, on the first signal every
/// running ``PluginClient`` of the process is stopped as ``PluginClient/stopAll()`` stops them
/// (each plugin is asked to shut down, and killed only if it does not exit in time); then `body`
/// is cancelled, and once it has returned the process ends by the same signal, with its
/// default action, so that a shell or a supervisor sees what it expects (status 128 + the
/// signal's number). A second signal while the plugins are being stopped ends the process at
/// once; the plugins then die with it.
///
/// Plugins run in process groups of their own, so a terminal's Ctrl-C, which goes to the
/// host's group, reaches the host only, and the host decides how its plugins stop.
///
/// Wrap a host's entry point in it:
///
/// ```swift
/// @main
/// struct Host {
///   static func main() async throws {
///     try await withPluginHostSignalHandling {
///       try await withPluginClient(configuration) { client in … }
///     }
///   }
/// }
/// ```
///
/// A host that runs its plugins in a `ServiceGroup` leaves signals to the group
/// (`gracefulShutdownSignals`) instead, and calls ``PluginClient/stopAll()`` or stops each
/// client itself when it shuts down.
///
/// - Parameters:
///   - signals: the signals that stop the host; they are handled from before `body` starts.
///   - body: the host's work. If it returns before a signal arrives, its result is returned
///     and the signals get their previous handling back (a signal source made for one of them
///     later in the process, a `ServiceGroup`'s say, then no longer receives it: use this once,
///     around the entry point).
/// - Returns: what `body` returns, if no signal came first; when one does, this does not return.
public func withPluginHostSignalHandling<Result: Sendable, Failure: Error>(
  stoppingPluginsOn signals: [UnixSignal] = [.sigterm, .sigint],
  _ body: @escaping @Sendable () async throws(Failure) -> Result
) async throws(Failure) -> Result {
  let previous = PluginHostSignals.Dispositions(of: signals)
  // Awaited before body starts, so that a signal sent as soon as the host is up is not missed.
  let trapped = await UnixSignalsSequence(trapping: signals)
  let first = OneShot<UnixSignal>()

  let outcome = await withTaskGroup(of: HostOutcome<Result, Failure>?.self) {
    watching -> HostOutcome<Result, Failure>? in
    watching.addTask {
      for await signal in trapped {
        // Asked again while the plugins are being stopped: the host has waited long enough.
        if !first.fulfil(signal) { PluginHostSignals.endProcess(by: signal) }
      }
      return nil
    }
    let outcome = await withTaskGroup(of: HostOutcome<Result, Failure>?.self) {
      running -> HostOutcome<Result, Failure>? in
      running.addTask {
        do throws(Failure) {
          return .finished(.success(try await body()))
        } catch {
          return .finished(.failure(error))
        }
      }
      running.addTask {
        guard let signal = await first.wait() else { return nil }
        await PluginClient.stopAll()
        return .signalled(signal)
      }
      var finished: Swift.Result<Result, Failure>?
      var signalled: UnixSignal?
      while let event = await running.next() {
        switch event {
        case .finished(let result)?:
          // Finished before any signal, the host's work is done. Finished while the plugins are
          // being stopped, the stop goes on, and the process ends when it is done.
          finished = result
          if first.current == nil { running.cancelAll() }
        case .signalled(let signal)?:
          // Every plugin is gone; the host's work is cancelled, and waited for.
          signalled = signal
          running.cancelAll()
        case nil:
          break
        }
      }
      if let signalled { return .signalled(signalled) }
      return finished.map { .finished($0) }
    }
    watching.cancelAll()
    return outcome
  }

  switch outcome {
  case .finished(let result)?:
    previous.restore()
    return try result.get()
  case .signalled(let signal)?:
    PluginHostSignals.endProcess(by: signal)
  case nil:
    // The body's task always reports how it finished.
    preconditionFailure("the host's work ended without a result")
  }
}

/// How the host's work ended: by itself, or by a signal once the plugins were stopped.
private enum HostOutcome<Result: Sendable, Failure: Error>: Sendable {
  case finished(Swift.Result<Result, Failure>)
  case signalled(UnixSignal)
}

enum PluginHostSignals {
  /// How signals were handled before the helper trapped them. libdispatch, under
  /// UnixSignalsSequence, leaves its own handler installed when its signal sources are gone,
  /// and that handler swallows the signal: a program going on after the helper could no longer
  /// be interrupted. Restoring the previous disposition means, on the other hand, that a later
  /// signal source for the same signal in this process no longer gets it (libdispatch does not
  /// install its handler twice), which fails safe: the signal then does what it did before.
  struct Dispositions {
    private var saved: [(signal: Int32, action: sigaction)] = []

    init(of signals: [UnixSignal]) {
      for signal in signals {
        var action = sigaction()
        if sigaction(signal.rawValue, nil, &action) == 0 { self.saved.append((signal.rawValue, action)) }
      }
    }

    func restore() {
      for var saved in self.saved { sigaction(saved.signal, &saved.action, nil) }
    }
  }

  /// Ends the process as `signal`'s default action would, so that its parent sees the signal.
  static func endProcess(by trapped: UnixSignal) -> Never {
    let number = trapped.rawValue
    // The signal is trapped (ignored, or handled for the signal sequence): its default comes back.
    _ = signal(number, SIG_DFL)
    var unblocked = sigset_t()
    sigemptyset(&unblocked)
    sigaddset(&unblocked, number)
    pthread_sigmask(SIG_UNBLOCK, &unblocked, nil)
    raise(number)
    // A signal whose default action does not end a process: end it as a shell would report it.
    exit(128 + number)
  }
}
