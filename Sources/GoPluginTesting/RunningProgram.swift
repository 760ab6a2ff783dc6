import Subprocess
import Synchronization
import SystemPackage

/// A program that a test keeps running while it works with it: a plugin in debug mode, say,
/// whose first line on stdout tells how to reach it.
public struct RunningProgram: Sendable {
  /// Its process ID.
  public var pid: Int32
  /// The first line it wrote to standard output, without the newline.
  public var firstLine: String
  let outputEnded: Latch<Void>

  /// Waits until the program has exited: until its standard output is closed, which happens
  /// when it exits, unless it closed it itself. The program is reaped only once the closure
  /// given to ``ExternalProgram/withRunning(_:arguments:environment:_:)`` returns, and until
  /// then it is a zombie, which `kill(pid, 0)` (and go-plugin 1.0.1's reattach, polling that)
  /// still finds alive.
  public func waitForExit() async {
    _ = await self.outputEnded.wait()
  }
}

/// A value set once and awaited by any number of tasks; a cancelled waiter gets `nil`.
final class Latch<Value: Sendable>: Sendable {
  private struct State {
    var value: Value?
    var waiters: [Int: CheckedContinuation<Value?, Never>] = [:]
    var next = 0
  }

  private let state = Mutex(State())

  func set(_ value: Value) {
    let waiters = self.state.withLock { state -> [CheckedContinuation<Value?, Never>] in
      guard state.value == nil else { return [] }
      state.value = value
      defer { state.waiters = [:] }
      return Array(state.waiters.values)
    }
    for waiter in waiters { waiter.resume(returning: value) }
  }

  func wait() async -> Value? {
    let id = self.state.withLock { state in
      defer { state.next += 1 }
      return state.next
    }
    return await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<Value?, Never>) in
        let now: Value?? = self.state.withLock { state in
          if let value = state.value { return .some(value) }
          if Task.isCancelled { return .some(nil) }
          state.waiters[id] = continuation
          return .none
        }
        if let now { continuation.resume(returning: now) }
      }
    } onCancel: {
      self.state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: nil)
    }
  }
}

extension ExternalProgram {
  /// What a program started with ``withRunning(_:arguments:environment:_:)`` left behind.
  public struct Ending<Value: Sendable>: Sendable {
    /// What the closure returned.
    public var value: Value
    /// The exit status, or 128 plus the signal's number when a signal ended it.
    public var status: Int32
    /// Everything it wrote to standard error.
    public var errorOutput: [UInt8]
    /// Standard error as UTF-8 text.
    public var errorText: String { String(decoding: self.errorOutput, as: UTF8.self) }
  }

  /// Starts `executable`, waits for the first line of its standard output, and runs `body`
  /// with it while the program runs. When `body` is done (returns or throws), a program that
  /// still runs gets SIGTERM; this returns once it has exited and been reaped.
  ///
  /// Standard output after the first line is read and dropped; standard error is collected.
  ///
  /// ```swift
  /// let run = try await ExternalProgram.withRunning(plugin, arguments: ["--debug"]) { program in
  ///   let reattach = try PluginReattachConfiguration(json: program.firstLine)
  ///   …
  /// }
  /// ```
  ///
  /// - Throws: when the program cannot be started, when its standard output ends before a
  ///   line, or what `body` throws.
  public static func withRunning<Value: Sendable>(
    _ executable: String,
    arguments: [String] = [],
    environment: [String: String] = [:],
    _ body: (RunningProgram) async throws -> Value
  ) async throws -> Ending<Value> {
    var variables: [Environment.Key: String?] = [:]
    for (key, value) in environment {
      guard let key = Environment.Key(rawValue: key) else { continue }
      variables[key] = value
    }
    let errors = CollectedBytes()
    let run = try await Subprocess.run(
      executable.contains("/") ? .path(FilePath(executable)) : .name(executable),
      arguments: Arguments(arguments),
      environment: Environment.inherit.updating(variables),
      input: .none,
      output: .sequence,
      error: .sequence
    ) { execution in
      try await withThrowingTaskGroup(of: Void.self) { group in
        // Read to its end, so that the program never blocks on a full stderr pipe.
        group.addTask {
          for try await chunk in execution.standardError {
            let bytes = chunk.withUnsafeBytes { Array($0) }
            errors.bytes.withLock { $0 += bytes }
          }
        }
        defer {
          // Whatever the body did, the program ends with this call.
          try? execution.send(signal: .terminate)
        }
        // Read to its end, which is when the program exits, so that it never blocks on a
        // full stdout pipe either.
        let firstLine = Latch<String?>()
        let outputEnded = Latch<Void>()
        group.addTask {
          defer {
            firstLine.set(nil)
            outputEnded.set(())
          }
          var line: [UInt8] = []
          var complete = false
          for try await chunk in execution.standardOutput where !complete {
            for byte in chunk.withUnsafeBytes({ Array($0) }) {
              if byte == UInt8(ascii: "\n") {
                complete = true
                firstLine.set(String(decoding: line, as: UTF8.self))
                break
              }
              line.append(byte)
            }
          }
        }
        guard let line = await firstLine.wait() ?? nil else {
          throw ProgramError(message: "\(executable) wrote no line on standard output")
        }
        let program = RunningProgram(pid: execution.processIdentifier.value, firstLine: line, outputEnded: outputEnded)
        return try await body(program)
      }
    }
    let status: Int32 =
      switch run.terminationStatus {
      case .exited(let code): Int32(code)
      case .signaled(let signal): 128 + Int32(signal)
      }
    return Ending(value: run.closureResult, status: status, errorOutput: errors.bytes.withLock { $0 })
  }

  /// Shared between the reader task and the caller, as a Mutex cannot be.
  final class CollectedBytes: Sendable {
    let bytes = Mutex<[UInt8]>([])
  }

  struct ProgramError: Error, CustomStringConvertible {
    var message: String
    var description: String { self.message }
  }
}
