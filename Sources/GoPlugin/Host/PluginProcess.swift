import GoPluginPlatform
import Logging
import Synchronization

/// How a plugin process ended.
public struct PluginExit: Sendable, Hashable, CustomStringConvertible {
  /// What the operating system reported when the process was reaped.
  public enum Status: Sendable, Hashable {
    case exited(Int32)
    case signalled(Int32)
  }

  /// Why the process ended, as far as the host knows.
  public enum Reason: Sendable, Hashable {
    /// It exited after the host asked it to shut down.
    case stopped
    /// The host killed it: it did not exit in time, or its start failed.
    case killed
    /// It exited without being asked: it crashed, or its `main` returned.
    case exitedUnexpectedly
    /// It never ran: the executable could not be launched.
    case launchFailed
    /// It never ran: the client was stopped before it launched the plugin.
    case notStarted
    /// It still runs: the host let go of it with ``PluginClient/detach()``, for another host
    /// to reattach to.
    case detached
  }

  /// The wait status, or `nil` if the process never ran, still runs (detached), or was not this
  /// process's child (reattached).
  public var status: Status?
  /// Why it ended.
  public var reason: Reason

  /// An exit, for comparing with what ``PluginClient/exit`` reports.
  public init(status: Status?, reason: Reason) {
    self.status = status
    self.reason = reason
  }

  public var description: String {
    switch self.status {
    case .exited(let code)?: "exited with status \(code) (\(self.reason))"
    case .signalled(let signal)?: "terminated by signal \(signal) (\(self.reason))"
    case nil where self.reason == .detached: "still running, detached from this host"
    // A reattached plugin is not this process's child: its parent learns the status.
    case nil where [.stopped, .killed, .exitedUnexpectedly].contains(self.reason): "ended (\(self.reason))"
    case nil: "never ran (\(self.reason))"
    }
  }
}

/// One plugin child process, alive for the duration of ``run()``: it spawns the process, hands
/// out the first stdout line, drains stdout, logs stderr and records the exit.
///
/// The process is forked from a thread of its own, which follows it (its output, its exit) and
/// ends when it has been reaped. On Linux the child gets SIGKILL when that thread ends
/// (`PR_SET_PDEATHSIG`): so when the host dies, even by SIGKILL, and never while the plugin is
/// healthy, as it would if the fork came from one of Swift concurrency's threads, which end
/// when they have been idle for a while. The child leads a process group of its own: a
/// terminal's Ctrl-C reaches the host only (which then stops its plugins), and whatever the
/// plugin started is killed with it when it ends.
final class PluginProcess: Sendable {
  enum FirstLine: Sendable {
    case line(String)
    /// stdout ended before a line arrived.
    case closed
    case launchFailed(any Error)
  }

  let executablePath: String
  private let argumentZero: String
  private let arguments: [String]
  private let environment: [String: String]
  private let workingDirectory: String?
  private let standardInput: PluginClientConfiguration.StandardInput
  private let diesWithHost: Bool
  private let logger: Logger

  /// The first stdout line; fulfilled once, however the stream ends.
  let firstLine = OneShot<FirstLine>()
  /// The process's pid, once it runs.
  let launched = OneShot<Int32?>()
  /// The wait status, once the process has been reaped (`nil` if it never ran).
  let terminated = OneShot<PluginExit.Status?>()

  /// What the host has done to end the process.
  enum Ending: Sendable {
    case none
    case askedToStop
    case killed
  }

  private enum Life {
    case starting
    /// Launched and not reaped yet: its pid and group are still its own, and can be signalled.
    case running(ChildProcess)
    /// Reaped, or never launched.
    case ended
  }

  /// The exit bookkeeping, behind one lock: whether the process still runs, and what the host
  /// has done to end it. The host's acts are recorded under the same lock that checks whether
  /// the process has already exited, so an exit is put down to the host only when the host
  /// acted first; and the process is reaped under it, so no signal can reach a reused pid.
  private struct State {
    var life = Life.starting
    var ending = Ending.none
  }

  private let state = Mutex(State())
  private let logLineLimit: Int
  private let standardErrorTail = Mutex(OutputTail(lines: 10, bytes: 4096))

  /// How long, after the exit, what is left in the pipes is read: a process that escaped the
  /// plugin's group may hold them open indefinitely.
  static let drainTime = Duration.milliseconds(250)

  /// - Parameter diesWithHost: whether the process gets SIGKILL when the host dies; `false`
  ///   for a plugin started to be detached and reattached to later. It leads a process group
  ///   of its own either way.
  init(
    executablePath: String,
    argumentZero: String,
    arguments: [String],
    environment: [String: String],
    workingDirectory: String?,
    standardInput: PluginClientConfiguration.StandardInput,
    logLineLimit: Int,
    logger: Logger,
    diesWithHost: Bool = true
  ) {
    self.logLineLimit = logLineLimit
    self.executablePath = executablePath
    self.argumentZero = argumentZero
    self.arguments = arguments
    self.environment = environment
    self.workingDirectory = workingDirectory
    self.standardInput = standardInput
    self.diesWithHost = diesWithHost
    self.logger = logger
  }

  /// Sends SIGKILL to the process and its group, if it has not exited yet, and records that the
  /// host killed it. Callable from any task or thread.
  func kill() {
    self.state.withLock { state in
      switch state.life {
      case .starting:
        state.ending = .killed
      case .running(let child):
        guard !child.hasExited() else { return }
        state.ending = .killed
        child.send(SIGKILL, toGroup: true)
      case .ended:
        break
      }
    }
  }

  /// Records that the host is about to ask the process to shut down. `false` when it has exited
  /// already (or is being killed): there is nobody left to ask, and its exit stays its own.
  func beginStop() -> Bool {
    self.state.withLock { state in
      guard case .running(let child) = state.life, !child.hasExited(), state.ending != .killed else {
        return false
      }
      state.ending = .askedToStop
      return true
    }
  }

  /// Why the process ended, given how it ended: by the host's doing only if the host acted
  /// before it exited.
  func reason(for status: PluginExit.Status?) -> PluginExit.Reason {
    switch self.state.withLock({ $0.ending }) {
    case .none: return .exitedUnexpectedly
    case .killed: return .killed
    case .askedToStop:
      // Asked to stop, a plugin exits by itself; a SIGKILL the host did not send came from
      // someone else, whatever the host asked for in the meantime.
      return status == .signalled(SIGKILL) ? .exitedUnexpectedly : .stopped
    }
  }

  /// The plugin's last lines on stderr, oldest first: what a plugin that fails to start says
  /// about why.
  var lastStandardErrorLines: [String] {
    self.standardErrorTail.withLock { $0.contents }
  }

  /// Runs the process to its end. Never throws: every outcome is reported through
  /// ``firstLine``, ``launched`` and ``terminated``. Cancelling it kills the process.
  func run() async {
    await withTaskCancellationHandler {
      // The thread that forks the child must live exactly as long as the child: this one.
      await DedicatedThread.run { self.launchAndFollow() }
    } onCancel: {
      self.kill()
    }
  }

  /// On the process's own thread: launches it, follows it to its end and reaps it.
  private func launchAndFollow() {
    let launch = ChildProcess.Launch(
      path: self.executablePath,
      // The plugin sees its own name as argv[0], even when launched through a descriptor.
      arguments: [self.argumentZero] + self.arguments,
      environment: self.environment,
      workingDirectory: self.workingDirectory,
      standardInput: self.standardInputDescriptor,
      newProcessGroup: true,
      diesWithParent: self.diesWithHost
    )
    let child: ChildProcess
    switch ChildProcess.spawn(launch) {
    case .success(let spawned):
      child = spawned
    case .failure(let error):
      self.state.withLock { $0.life = .ended }
      self.firstLine.fulfil(.launchFailed(error.cause))
      self.launched.fulfil(nil)
      self.terminated.fulfil(nil)
      return
    }
    self.state.withLock { state in
      state.life = .running(child)
      // Killed while it was being launched (its task cancelled): it goes now.
      if state.ending == .killed { child.send(SIGKILL, toGroup: true) }
    }
    self.launched.fulfil(child.pid)

    var pidLogger = self.logger
    pidLogger[metadataKey: "pid"] = "\(child.pid)"
    var output = PluginProcessOutput(
      firstLine: self.firstLine,
      logLineLimit: self.logLineLimit,
      logger: pidLogger,
      keepStandardErrorLine: { line in self.standardErrorTail.withLock { $0.append(line) } }
    )
    var streams = child.streams
    child.follow(&streams) { output.handle($0) }
    // The plugin has exited; what it started in its group goes with it (its leader is a zombie
    // until reaped below, so the group cannot be anyone else's).
    child.send(SIGKILL, toGroup: true)
    child.drain(&streams, for: Self.drainTime) { output.handle($0) }

    let termination = self.state.withLock { state in
      defer { state.life = .ended }
      return child.reap()
    }
    child.close()
    // nil only if something else in the host reaped it (a waitpid(-1)), and took the status.
    let status: PluginExit.Status? =
      switch termination {
      case .exited(let code)?: .exited(code)
      case .signalled(let signal)?: .signalled(signal)
      case nil: nil
      }
    self.firstLine.fulfil(.closed)
    self.terminated.fulfil(status)
  }

  private var standardInputDescriptor: Int32 {
    // A host without a standard input (closed fd 0, as under some CI runners) cannot pass it on.
    if self.standardInput == .inherit, fcntl(0, F_GETFD) != -1 {
      return 0
    }
    return Self.devNull
  }

  /// Opened once and kept: every plugin that takes no input shares it.
  private static let devNull: Int32 = open("/dev/null", O_RDONLY | O_CLOEXEC)
}
