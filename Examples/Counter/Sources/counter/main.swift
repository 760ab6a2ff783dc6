// The counter example host: launches a counter plugin (the Swift one next to this program, or
// any other with --plugin), and serves it an AddHelper through the broker for every put.
import ArgumentParser
import CounterInterface
import GoPlugin
import Logging
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

@main
struct CounterCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "counter",
    abstract: "Add to a counter in a plugin, which calls back into this host to add."
  )

  @Option(help: "The plugin's command line (default: the counter-plugin next to this program).")
  var plugin: String?

  @Flag(name: .customLong("auto-mtls"), help: "Secure the connections with go-plugin's automatic mutual TLS.")
  var autoMTLS = false
  @Flag(
    name: .customLong("multiplex"),
    help: "Carry brokered connections as yamux streams of the one connection (GRPCBrokerMultiplex).")
  var multiplex = false

  @Argument(help: "The amounts to add to the counter \"hits\".")
  var amounts: [Int64] = [1, 2, 39]

  func validate() throws {
    if let plugin = self.plugin {
      // Refused here, a bad command line is a usage error rather than a failed run.
      do {
        _ = try PluginCommand(commandLine: plugin).resolvedExecutable()
      } catch {
        throw ValidationError("--plugin: \(error.message)")
      }
    }
    // The plugin's counter starts at 0 and the host does the sums: a total past Int64 would
    // overflow in the middle of a run.
    var total: Int64 = 0
    for amount in self.amounts {
      let (sum, overflow) = total.addingReportingOverflow(amount)
      guard !overflow else { throw ValidationError("The amounts add up to more than a 64-bit counter holds.") }
      total = sum
    }
  }

  func run() async throws {
    var logger = Logger(label: "counter")
    logger.logLevel = .warning
    let command = try self.plugin.map { try PluginCommand(commandLine: $0) } ?? .besideThisProgram("counter-plugin")
    var configuration = PluginClientConfiguration(
      command: command, handshake: .counter, plugins: ["counter": CounterPlugin()])
    if self.autoMTLS { configuration.tls = .autoMTLS }
    configuration.multiplexBroker = self.multiplex
    let helper = CountingAddHelper()
    try await withPluginClient(configuration, logger: logger) { client in
      let counter = try await client.dispense("counter", as: CounterPlugin.self)
      let start = ContinuousClock.now
      for amount in self.amounts {
        try await counter.put("hits", adding: amount, using: helper)
        print("put \(amount): the plugin asked this host to add (\(helper.last))")
      }
      // Each put serves a new broker ID and waits for the plugin to dial it and call back.
      let perPut = (ContinuousClock.now - start) / max(self.amounts.count, 1)
      print("hits = \(try await counter.get("hits")), with \(helper.calls) sums done by the host")
      print("each put, with its brokered call back: \(Self.milliseconds(perPut))")
    }
  }

  /// A duration as milliseconds with two decimals, such as `1.25 ms`. By hand, because
  /// Duration's formatting styles live in FoundationInternationalization, with ICU.
  static func milliseconds(_ duration: Duration) -> String {
    let (seconds, attoseconds) = duration.components
    let hundredths = seconds * 100_000 + (attoseconds + 5_000_000_000_000) / 10_000_000_000_000
    let fraction = hundredths % 100
    return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction) ms"
  }
}

// Ctrl-C or SIGTERM stops the plugin gracefully, then ends the host by that signal. The command
// runs inside the handling, so that the error of a call the stop cut short is not reported.
extension CounterCommand {
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

/// Adds, and remembers what it was asked.
final class CountingAddHelper: AddHelper {
  private let state = Mutex<(calls: Int, last: String)>((0, ""))

  var calls: Int { self.state.withLock { $0.calls } }
  var last: String { self.state.withLock { $0.last } }

  struct Overflow: Error, CustomStringConvertible {
    var a: Int64
    var b: Int64
    var description: String { "\(a) + \(b) does not fit in 64 bits" }
  }

  func sum(_ a: Int64, _ b: Int64) async throws -> Int64 {
    // The operands come from the plugin: a sum that overflows is its error, not this host's crash.
    let (sum, overflow) = a.addingReportingOverflow(b)
    if overflow { throw Overflow(a: a, b: b) }
    self.state.withLock { $0 = ($0.calls + 1, "\(a) + \(b) = \(sum)") }
    return sum
  }
}
