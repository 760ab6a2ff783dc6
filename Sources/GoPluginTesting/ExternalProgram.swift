import Subprocess
import SystemPackage

/// Runs another program to its end from a test: a Go host driving your plugin, a build step,
/// a tool whose output the test checks.
///
/// Foundation's `Process.waitUntilExit()` and `FileHandle.readDataToEndOfFile()` block the thread
/// they run on. In an `async` test that thread belongs to Swift concurrency's pool, which has
/// one thread per core; a couple of such waits stall every other test in the process, and the
/// plugins those tests run then miss their deadlines. This waits without holding a thread.
///
/// ```swift
/// let run = try await ExternalProgram.run("/path/to/go-host", arguments: ["-plugin", plugin])
/// #expect(run.status == 0, "\(run.errorText)")
/// ```
public enum ExternalProgram {
  /// What a program left behind.
  public struct Result: Sendable, Hashable {
    /// The exit status, or 128 plus the signal's number when a signal ended it, as shells report it.
    public var status: Int32
    /// Everything it wrote to standard output.
    public var output: [UInt8]
    /// Everything it wrote to standard error.
    public var errorOutput: [UInt8]

    /// Standard output as UTF-8 text.
    public var outputText: String { String(decoding: self.output, as: UTF8.self) }
    /// Standard error as UTF-8 text.
    public var errorText: String { String(decoding: self.errorOutput, as: UTF8.self) }
  }

  /// How much of each stream is kept; a program that writes more fails the run.
  public static let outputLimit = 256 << 20

  /// Runs `executable` with `arguments` and no standard input, and collects both output streams.
  ///
  /// - Parameters:
  ///   - executable: a path, or a name looked up in `PATH`.
  ///   - environment: variables set on top of this process's environment, or on top of nothing
  ///     when `inheritEnvironment` is `false`.
  /// - Throws: when the program cannot be started, or writes more than ``outputLimit`` bytes to
  ///   either stream.
  public static func run(
    _ executable: String,
    arguments: [String] = [],
    environment: [String: String] = [:],
    inheritEnvironment: Bool = true
  ) async throws -> Result {
    var variables: [Environment.Key: String?] = [:]
    for (key, value) in environment {
      guard let key = Environment.Key(rawValue: key) else { continue }
      variables[key] = value
    }
    let base: Environment = inheritEnvironment ? .inherit : .custom([:])
    let run = try await Subprocess.run(
      executable.contains("/") ? .path(FilePath(executable)) : .name(executable),
      arguments: Arguments(arguments),
      environment: base.updating(variables),
      input: .none,
      output: .bytes(limit: self.outputLimit),
      error: .bytes(limit: self.outputLimit)
    )
    let status: Int32 =
      switch run.terminationStatus {
      case .exited(let code): Int32(code)
      case .signaled(let signal): 128 + Int32(signal)
      }
    return Result(status: status, output: run.standardOutput, errorOutput: run.standardError)
  }
}
