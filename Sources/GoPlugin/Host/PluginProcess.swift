import GoPluginPlatform
import Logging
import Subprocess
import Synchronization
import SystemPackage

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
    case running(Signaller)
    /// Reaped, or never launched.
    case ended
  }

  /// The exit bookkeeping, behind one lock: whether the process still runs, and what the host
  /// has done to end it. The host's acts are recorded under the same lock that checks whether
  /// the process has already exited, so an exit is put down to the host only when the host
  /// acted first.
  private struct State {
    var life = Life.starting
    var ending = Ending.none
  }

  private struct Signaller: Sendable {
    var descriptor: Int32
    /// Whether the process has exited; it may not have been reaped yet.
    var hasExited: @Sendable () -> Bool
    var send: @Sendable (Signal) -> Void
  }

  private let state = Mutex(State())
  private let logLineLimit: Int
  private let standardErrorTail = Mutex(OutputTail(lines: 10, bytes: 4096))

  init(
    executablePath: String,
    argumentZero: String,
    arguments: [String],
    environment: [String: String],
    workingDirectory: String?,
    standardInput: PluginClientConfiguration.StandardInput,
    logLineLimit: Int,
    logger: Logger
  ) {
    self.logLineLimit = logLineLimit
    self.executablePath = executablePath
    self.argumentZero = argumentZero
    self.arguments = arguments
    self.environment = environment
    self.workingDirectory = workingDirectory
    self.standardInput = standardInput
    self.logger = logger
  }

  /// Sends SIGKILL, if the process has not exited yet, and records that the host killed it.
  func kill() {
    self.state.withLock { state in
      switch state.life {
      case .starting:
        state.ending = .killed
      case .running(let signaller):
        guard !signaller.hasExited() else { return }
        state.ending = .killed
        signaller.send(.kill)
      case .ended:
        break
      }
    }
  }

  /// Records that the host is about to ask the process to shut down. `false` when it has exited
  /// already (or is being killed): there is nobody left to ask, and its exit stays its own.
  func beginStop() -> Bool {
    self.state.withLock { state in
      guard case .running(let signaller) = state.life, !signaller.hasExited(), state.ending != .killed else {
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
  /// ``firstLine``, ``launched`` and ``terminated``.
  func run() async {
    let environment = Environment.custom(
      Dictionary(uniqueKeysWithValues: self.environment.map { (Environment.Key(rawValue: $0.key)!, $0.value) })
    )
    var options = PlatformOptions()
    // If this task is cancelled, the process must not outlive it.
    options.teardownSequence = []
    do {
      let result = try await withTaskCancellationHandler {
        try await self.spawn(environment: environment, options: options)
      } onCancel: {
        // Subprocess kills the process when this task is cancelled; the host asked for that.
        self.kill()
      }
      self.disarm()
      let status: PluginExit.Status =
        switch result {
        case .exited(let code): .exited(code)
        case .signaled(let signal): .signalled(signal)
        }
      self.firstLine.fulfil(.closed)
      self.launched.fulfil(nil)
      self.terminated.fulfil(status)
    } catch {
      self.disarm()
      self.firstLine.fulfil(.launchFailed(error))
      self.launched.fulfil(nil)
      self.terminated.fulfil(nil)
    }
  }

  private func spawn(environment: Environment, options: PlatformOptions) async throws -> TerminationStatus {
    try await Subprocess.run(
      .path(FilePath(self.executablePath)),
      // The plugin sees its own name as argv[0], even when launched through a descriptor.
      arguments: Arguments(executablePathOverride: self.argumentZero, remainingValues: self.arguments),
      environment: environment,
      workingDirectory: self.workingDirectory.map { FilePath($0) },
      platformOptions: options,
      input: self.input,
      output: .sequence,
      error: .sequence
    ) { execution in
      let pid = execution.processIdentifier.value
      self.arm(execution)
      self.launched.fulfil(pid)
      var pidLogger = self.logger
      pidLogger[metadataKey: "pid"] = "\(pid)"
      let stderrLogger = pidLogger
      await withTaskGroup(of: Void.self) { group in
        group.addTask { await self.readStandardOutput(execution.standardOutput) }
        group.addTask { await self.logStandardError(execution.standardError, to: stderrLogger) }
      }
    }.terminationStatus
  }

  /// Makes ``kill()`` and ``beginStop()`` work for this execution.
  ///
  /// Subprocess reaps the child and closes its pidfd before `run` returns, and a pidfd number
  /// closed there can be reused by the next plugin's launch; a late kill through it would hit
  /// the wrong process. So the signaller keeps a pidfd of its own, open until it is disarmed,
  /// and signals only while that pidfd says the process has not exited (so not been reaped,
  /// so its pid cannot have been reused). The same pidfd tells an exit that has happened but
  /// has not been reaped yet.
  private func arm<I, O, E>(_ execution: Execution<I, O, E>) {
    var signaller = Signaller(
      descriptor: -1,
      hasExited: { false },
      send: { signal in try? execution.send(signal: signal) }
    )
    #if os(Linux)
    let pid = execution.processIdentifier.value
    let descriptor = execution.processIdentifier.processDescriptor
    let ownDescriptor = descriptor >= 0 ? fcntl(descriptor, F_DUPFD_CLOEXEC, 0) : -1
    if ownDescriptor >= 0 {
      signaller = Signaller(
        descriptor: ownDescriptor,
        hasExited: {
          var exited = pollfd(fd: ownDescriptor, events: Int16(POLLIN), revents: 0)
          return poll(&exited, 1, 0) != 0
        },
        send: { signal in _ = Glibc.kill(pid, signal.rawValue) }
      )
    }
    #endif
    self.state.withLock { state in
      state.life = .running(signaller)
      // Killed while it was being launched (its task cancelled): it goes now.
      if state.ending == .killed { signaller.send(.kill) }
    }
  }

  private func disarm() {
    self.state.withLock { state in
      if case .running(let signaller) = state.life, signaller.descriptor >= 0 { close(signaller.descriptor) }
      state.life = .ended
    }
  }

  private var input: FileDescriptorInput {
    // A host without a standard input (closed fd 0, as under some CI runners) cannot pass it on.
    if self.standardInput == .inherit, fcntl(0, F_GETFD) != -1 {
      return .currentStandardInput
    }
    return .fileDescriptor(Self.devNull, closeAfterSpawningProcess: false)
  }

  private static let devNull: FileDescriptor = {
    // Opened once and kept: every plugin that takes no input shares it.
    (try? FileDescriptor.open("/dev/null", .readOnly, options: .closeOnExec)) ?? .standardInput
  }()

  /// The first line is the handshake; everything after it is read and dropped, as go-plugin
  /// does, so that a plugin printing to stdout never blocks on a full pipe.
  private func readStandardOutput(_ output: SubprocessOutputSequence) async {
    var splitter = LineSplitter(maximumLineLength: 64 * 1024)
    // The sequence can be iterated once: the handshake and the drain share one iterator.
    var chunks = output.makeAsyncIterator()
    do {
      while let chunk = try await chunks.next() {
        if let first = chunk.withUnsafeBytes({ splitter.feed($0) }).first {
          self.firstLine.fulfil(.line(String(decoding: first.bytes, as: UTF8.self)))
          while try await chunks.next() != nil {}
          return
        }
      }
      // Like Go's scanner, a last line without a newline still counts at end of stream.
      if let rest = splitter.finish() {
        self.firstLine.fulfil(.line(String(decoding: rest.bytes, as: UTF8.self)))
      } else {
        self.firstLine.fulfil(.closed)
      }
    } catch {
      self.firstLine.fulfil(.closed)
      self.logger.debug("error reading plugin stdout", metadata: ["error": "\(error)"])
    }
  }

  /// Logs each stderr line as a record, and keeps the last few for a start error. A line
  /// longer than the limit is logged in pieces, at debug (or error, after a panic), each with
  /// `partial: true`, as go-plugin logs the pieces of a line past its buffer.
  private func logStandardError(_ output: SubprocessOutputSequence, to logger: Logger) async {
    var splitter = LineSplitter(maximumLineLength: self.logLineLimit)
    var parser = PluginLogParser()
    func emit(_ line: LineSplitter.Line) {
      var record = line.isPiece ? parser.parsePiece(line.bytes) : parser.parse(line.bytes)
      // Who logged it is the host's to say; a plugin's fields of the same names do not override.
      record.metadata["plugin"] = nil
      record.metadata["pid"] = nil
      if line.isPiece { record.metadata["partial"] = "true" }
      logger.log(level: record.level, "\(record.message)", metadata: record.metadata)
      self.standardErrorTail.withLock { $0.append(line.bytes) }
    }
    do {
      for try await chunk in output {
        for line in chunk.withUnsafeBytes({ splitter.feed($0) }) { emit(line) }
      }
    } catch {
      logger.debug("error reading plugin stderr", metadata: ["error": "\(error)"])
    }
    if let rest = splitter.finish() { emit(rest) }
  }
}

/// The last lines of an output, bounded in count and bytes.
struct OutputTail: Sendable {
  private(set) var contents: [String] = []
  private var byteCount = 0
  let lines: Int
  let bytes: Int

  init(lines: Int, bytes: Int) {
    self.lines = lines
    self.bytes = bytes
  }

  mutating func append(_ line: [UInt8]) {
    // A long line keeps its end: that is where a message usually says what went wrong.
    let text = String(decoding: line.suffix(self.bytes), as: UTF8.self)
    self.contents.append(text)
    self.byteCount += text.utf8.count
    while self.contents.count > self.lines || (self.byteCount > self.bytes && self.contents.count > 1) {
      self.byteCount -= self.contents.removeFirst().utf8.count
    }
  }
}
