import Foundation
import GoPluginTesting
import Testing

/// ArgumentParser's exit status for a usage error (EX_USAGE). A crash ends with a signal, which
/// the run reports as 128 plus its number.
let usageErrorStatus: Int32 = 64

/// Bad arguments to every command of the example hosts and of `goplugin` are usage errors: a
/// message on stderr and status 64, never a crash, and no plugin is launched for them.
@Suite("Bad arguments are usage errors", .timeLimit(.minutes(3)))
struct BadArgumentsTests {
  static let directory = FileManager.default.temporaryDirectory.path
  static let existingFile = #filePath

  @Test(
    "kv",
    arguments: [
      (["bench", "--launches", "0"], "--launches must be at least 1"),
      (["bench", "--launches=-3"], "--launches must be at least 1"),
      (["bench", "--calls", "0"], "--calls must be at least 1"),
      (["bench", "--calls=-1"], "--calls must be at least 1"),
      (["bench", "--launches"], "Missing value for '--launches"),
      (["bench", "--launches", "many"], "many"),
      (["put", "key"], "Missing expected argument '<value>'"),
      (["get"], "Missing expected argument '<key>'"),
      (["--plugin", "", "demo"], "--plugin: empty plugin command line"),
      (["--plugin", "'unterminated", "demo"], "--plugin: unterminated quote"),
      (
        ["--plugin", "/nonexistent/kv-plugin", "get", "k"], "--plugin: /nonexistent/kv-plugin is not an executable file"
      ),
      (["--plugin", directory, "demo"], "is not an executable file"),
    ]
  )
  func kv(_ arguments: [String], _ message: String) async throws {
    try await Self.expectUsageError("kv", arguments, message)
  }

  @Test(
    "counter",
    arguments: [
      (["9223372036854775807", "1"], "more than a 64-bit counter holds"),
      (["--", "-9223372036854775808", "-1"], "more than a 64-bit counter holds"),
      (["one"], "one"),
      (["99999999999999999999"], "99999999999999999999"),
      (["--plugin", "", "1"], "--plugin: empty plugin command line"),
      (["--plugin", "/nonexistent/counter-plugin", "1"], "is not an executable file"),
    ]
  )
  func counter(_ arguments: [String], _ message: String) async throws {
    try await Self.expectUsageError("counter", arguments, message)
  }

  @Test(
    "stream-file",
    arguments: [
      // With a file to send, so that no size is ever made up on disk should the check regress.
      (["--size", "0", existingFile], "--size must be between 1 and 65536 MiB"),
      (["--size=-5", existingFile], "--size must be between 1 and 65536 MiB"),
      (["--size", "99999999", existingFile], "--size must be between 1 and 65536 MiB"),
      (["--size"], "Missing value for '--size"),
      (["/nonexistent/file"], "No such file: /nonexistent/file"),
      ([directory], "is a directory"),
      (["--plugin", "\"", existingFile], "--plugin: unterminated quote"),
    ]
  )
  func streamFile(_ arguments: [String], _ message: String) async throws {
    try await Self.expectUsageError("stream-file", arguments, message)
  }

  @Test(
    "goplugin",
    arguments: [
      (["inspect", "--cookie", "K=V", "--protocol-version", "0", "./plugin"], "--protocol-version must be a positive"),
      (["inspect", "--cookie", "K=V", "--protocol-version=-2", "./plugin"], "--protocol-version must be a positive"),
      (["inspect", "--cookie", "K=V", "--versions", "0", "./plugin"], "positive integers"),
      (["inspect", "--cookie", "K=V", "--versions", "", "./plugin"], "positive integers"),
      (["inspect", "--cookie", "K=V", "--timeout=-1", "./plugin"], "--timeout"),
      (["inspect", "--cookie", "K=V", "--timeout", "nan", "./plugin"], "--timeout"),
      (["inspect", "--cookie"], "Missing value for '--cookie"),
      (["checksum"], "Missing expected argument '<file>'"),
      (["checksum", existingFile, "--algorithm"], "Missing value for '--algorithm"),
      (["frobnicate"], "frobnicate"),
    ]
  )
  func goplugin(_ arguments: [String], _ message: String) async throws {
    try await Self.expectUsageError("goplugin", arguments, message)
  }

  static func expectUsageError(_ program: String, _ arguments: [String], _ message: String) async throws {
    let run = try await CLIRun.run(program, arguments)
    #expect(run.status == usageErrorStatus, "\(program) \(arguments): status \(run.status)\n\(run.stderr)")
    #expect(run.stderr.contains(message), "\(program) \(arguments): \(run.stderr)")
  }
}
