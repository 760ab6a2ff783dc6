// goplugin: a command-line tool for go-plugin plugins in any language. `inspect` launches one
// and reports what its handshake and its gRPC server say; `checksum` prints the digest a host
// pins a plugin executable to; `verify` checks plugins' OpenSSH signatures; `list` describes
// every file of plugin directories (cached by digest) and `lock` writes their lock file.
import ArgumentParser
import GoPlugin

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

@main
struct GoPluginCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "goplugin",
    abstract: "Inspect, list and lock go-plugin plugins, print their checksums and verify their signatures.",
    version: GoPluginRuntime.libraryVersion,
    subcommands: [Inspect.self, List.self, Lock.self, Checksum.self, Verify.self]
  )
}

/// `--json`, shared by the subcommands.
struct OutputOptions: ParsableArguments {
  @Flag(help: "Print one JSON object on stdout instead of text (errors too, as {\"error\": …}).")
  var json = false

  /// Prints `value` as JSON, or its text form.
  func emit<Value: Encodable>(_ value: Value, text: () -> String) throws {
    if self.json {
      print(try Self.encode(value))
    } else {
      print(text())
    }
  }

  /// Runs `body`; with `--json`, a failure becomes an `{"error": …}` object on stdout and exit
  /// status 1, and otherwise ArgumentParser prints it to stderr (also with status 1).
  func reportingFailures(_ body: () async throws -> Void) async throws {
    do {
      try await body()
    } catch let error as CLIError where self.json {
      print(try Self.encode(["error": error]))
      throw ExitCode.failure
    }
  }

  static func encode<Value: Encodable>(_ value: Value) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
  }
}
