// The streaming example host: offers a file to the plugin through the broker and reports how
// fast it arrived and whether it arrived whole.
import ArgumentParser
import Crypto
import GoPlugin
import Logging
import StreamingInterface

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

@main
struct StreamFile: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "stream-file",
    abstract: "Move a file to a plugin over a brokered connection, and time it."
  )

  @Option(help: "The plugin's command line (default: the streaming-plugin next to this program).")
  var plugin: String?

  @Option(help: "Without a file: the size in MiB of a file made up for the run.")
  var size = 256

  @Flag(name: .customLong("auto-mtls"), help: "Secure the connections with go-plugin's automatic mutual TLS.")
  var autoMTLS = false
  @Flag(
    name: .customLong("multiplex"),
    help: "Carry brokered connections as yamux streams of the one connection (GRPCBrokerMultiplex).")
  var multiplex = false

  @Argument(help: "The file to send.")
  var file: String?

  func validate() throws {
    if let plugin = self.plugin {
      // Refused here, a bad command line is a usage error rather than a failed run.
      do {
        _ = try PluginCommand(commandLine: plugin).resolvedExecutable()
      } catch {
        throw ValidationError("--plugin: \(error.message)")
      }
    }
    guard (1...65_536).contains(self.size) else {
      throw ValidationError("--size must be between 1 and 65536 MiB (got \(self.size)).")
    }
    if let file {
      // FoundationEssentials reports a directory in a Bool, Apple's Foundation in an ObjCBool.
      #if canImport(FoundationEssentials)
      var isDirectory = false
      let exists = FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory)
      #else
      var directory: ObjCBool = false
      let exists = FileManager.default.fileExists(atPath: file, isDirectory: &directory)
      let isDirectory = directory.boolValue
      #endif
      guard exists else { throw ValidationError("No such file: \(file)") }
      guard !isDirectory else { throw ValidationError("\(file) is a directory, not a file to send.") }
      guard FileManager.default.isReadableFile(atPath: file) else { throw ValidationError("\(file) cannot be read.") }
    }
  }

  func run() async throws {
    let url: URL
    var madeUp: URL?
    if let file {
      url = URL(fileURLWithPath: file)
    } else {
      url = FileManager.default.temporaryDirectory.appendingPathComponent(
        "stream-file-\(ProcessInfo.processInfo.processIdentifier)")
      madeUp = url
    }
    // Removed however the run ends, also when making it failed half-way (a full disk).
    defer { madeUp.map { try? FileManager.default.removeItem(at: $0) } }
    if madeUp != nil { try Self.makeFile(at: url, mebibytes: self.size) }

    var logger = Logger(label: "stream-file")
    logger.logLevel = .warning
    let command = try self.plugin.map { try PluginCommand(commandLine: $0) } ?? .besideThisProgram("streaming-plugin")
    var configuration = PluginClientConfiguration(
      command: command, handshake: .streaming, plugins: ["streaming": StreamingPlugin()])
    if self.autoMTLS { configuration.tls = .autoMTLS }
    configuration.multiplexBroker = self.multiplex
    let expected = try Self.sha256(of: url)

    let (received, elapsed) = try await withPluginClient(configuration, logger: logger) { client in
      let sender = try await client.dispense("streaming", as: StreamingPlugin.self)
      let start = ContinuousClock.now
      let received = try await sender.send(file: url)
      return (received, ContinuousClock.now - start)
    }
    // An empty file arrives in no time; a rate is not worth a division by zero.
    let seconds = max(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18, 1e-9)
    let mebibytes = Double(received.bytes) / 1_048_576
    print("sent:     \(url.path)")
    print(
      "received: \(received.bytes) bytes in \(received.chunks) chunks, sha256 \(received.sha256 == expected ? "matches" : "DIFFERS")"
    )
    print("speed:    \(Int(mebibytes / seconds)) MiB/s (\(Int(seconds * 1000)) ms)")
    if received.sha256 != expected { throw ExitCode.failure }
  }

  static func makeFile(at url: URL, mebibytes: Int) throws {
    let file = try LocalFile(creating: url.path)
    var generator = SystemRandomNumberGenerator()
    let block = Data((0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) })
    for _ in 0..<mebibytes { try file.writeAll(block) }
  }

  static func sha256(of url: URL) throws -> [UInt8] {
    let file = try LocalFile(reading: url.path)
    var hash = SHA256()
    while case let data = try file.readChunk(upTo: 1 << 20), !data.isEmpty { hash.update(data: data) }
    return Array(hash.finalize())
  }

}

// Ctrl-C or SIGTERM stops the plugin gracefully, then ends the host by that signal. The command
// runs inside the handling, so that the error of a call the stop cut short is not reported.
extension StreamFile {
  static func main() async {
    do {
      try await withPluginHostSignalHandling {
        var command = try parseAsRoot()
        if var command = command as? any AsyncParsableCommand { try await command.run() } else { try command.run() }
      }
    } catch {
      exit(withError: error)
    }
  }
}
