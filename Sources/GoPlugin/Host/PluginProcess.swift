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
  }

  /// The wait status, or `nil` if the process never ran.
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

  private struct Signaller: Sendable {
    var descriptor: Int32
    var send: @Sendable (Signal) -> Void
  }

  private let signaller = Mutex<Signaller?>(nil)

  init(
    executablePath: String,
    argumentZero: String,
    arguments: [String],
    environment: [String: String],
    workingDirectory: String?,
    standardInput: PluginClientConfiguration.StandardInput,
    logger: Logger
  ) {
    self.executablePath = executablePath
    self.argumentZero = argumentZero
    self.arguments = arguments
    self.environment = environment
    self.workingDirectory = workingDirectory
    self.standardInput = standardInput
    self.logger = logger
  }

  /// Sends SIGKILL, if the process has not been reaped yet.
  func kill() {
    self.signaller.withLock { $0?.send(.kill) }
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
      let result = try await Subprocess.run(
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
          group.addTask { await Self.logStandardError(execution.standardError, to: stderrLogger) }
        }
      }
      self.disarm()
      let status: PluginExit.Status =
        switch result.terminationStatus {
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

  /// Makes ``kill()`` work for this execution.
  ///
  /// Subprocess reaps the child and closes its pidfd before `run` returns, and a pidfd number
  /// closed there can be reused by the next plugin's launch; a late kill through it would hit
  /// the wrong process. So the signaller keeps a pidfd of its own, open until it is disarmed,
  /// and signals only while that pidfd says the process has not exited (so not been reaped,
  /// so its pid cannot have been reused).
  private func arm<I, O, E>(_ execution: Execution<I, O, E>) {
    let pid = execution.processIdentifier.value
    #if os(Linux)
    let descriptor = execution.processIdentifier.processDescriptor
    let ownDescriptor = descriptor >= 0 ? fcntl(descriptor, F_DUPFD_CLOEXEC, 0) : -1
    if ownDescriptor >= 0 {
      self.signaller.withLock { signaller in
        signaller = Signaller(descriptor: ownDescriptor) { signal in
          var exited = pollfd(fd: ownDescriptor, events: Int16(POLLIN), revents: 0)
          if poll(&exited, 1, 0) == 0 { Glibc.kill(pid, signal.rawValue) }
        }
      }
      return
    }
    #endif
    self.signaller.withLock { signaller in
      signaller = Signaller(descriptor: -1) { signal in try? execution.send(signal: signal) }
    }
  }

  private func disarm() {
    self.signaller.withLock { signaller in
      if let descriptor = signaller?.descriptor, descriptor >= 0 { close(descriptor) }
      signaller = nil
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
          self.firstLine.fulfil(.line(String(decoding: first, as: UTF8.self)))
          while try await chunks.next() != nil {}
          return
        }
      }
      // Like Go's scanner, a last line without a newline still counts at end of stream.
      if let rest = splitter.finish() {
        self.firstLine.fulfil(.line(String(decoding: rest, as: UTF8.self)))
      } else {
        self.firstLine.fulfil(.closed)
      }
    } catch {
      self.firstLine.fulfil(.closed)
      self.logger.debug("error reading plugin stdout", metadata: ["error": "\(error)"])
    }
  }

  private static func logStandardError(_ output: SubprocessOutputSequence, to logger: Logger) async {
    var splitter = LineSplitter()
    var parser = PluginLogParser()
    func emit(_ line: [UInt8]) {
      var record = parser.parse(line)
      // Who logged it is the host's to say; a plugin's fields of the same names do not override.
      record.metadata["plugin"] = nil
      record.metadata["pid"] = nil
      logger.log(level: record.level, "\(record.message)", metadata: record.metadata)
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
