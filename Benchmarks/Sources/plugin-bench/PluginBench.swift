import ArgumentParser
import GoPlugin
import Logging

// The Swift host of the cross-language harness: runs the same workloads against any plugin that
// serves kv.proto under the name "kv", and prints one JSON object or a table. It needs no more of
// Foundation than the library does (FoundationEssentials at most), so that its peak RSS and start
// are a host's, not Foundation's and ICU's.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

@main
struct PluginBench: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "plugin-bench",
    abstract: "Benchmark a go-plugin KV plugin (kv.proto) from a Swift host."
  )

  @Option(help: "The plugin's command line, split as a shell would split plain words and quotes.")
  var plugin: String

  @Option(help: "A name for this run, copied into the output.")
  var label = "swift-host"

  @Option(help: "Launches timed from start to the first successful call.")
  var launches = 30

  @Option(help: "Sequential Get calls timed one by one.")
  var calls = 20_000

  @Option(help: "Sequential Get calls made before timing.")
  var warmup = 2_000

  @Option(name: .customLong("concurrent-calls"), help: "Get calls shared among the concurrent callers.")
  var concurrentCalls = 40_000

  @Option(help: "Concurrent callers on the one connection.")
  var callers = 8

  @Option(name: .customLong("bulk-mib"), help: "MiB sent as Puts, and again through one Upload stream.")
  var bulkMiB = 256

  @Option(name: .customLong("chunk-kib"), help: "Size of each Put value and each Upload chunk.")
  var chunkKiB = 64

  @Flag(help: "Ask the plugin to multiplex (go-plugin's GRPCBrokerMultiplex): the connection runs over yamux.")
  var multiplex = false

  @Flag(name: .customLong("auto-mtls"), help: "Secure the connection with AutoMTLS certificates made per launch.")
  var autoMTLS = false

  @Flag(
    name: .customLong("callers-on-connection"),
    help: """
      Run the callers on the connection's call executor (its event loop), as a host that makes \
      many calls in a row may, instead of on Swift's cooperative pool.
      """
  )
  var callersOnConnection = false

  @Flag(
    name: .customLong("through-grpc-client"),
    help: """
      Make every call through grpc-swift's GRPCClient, as hosts did before the direct call \
      path, instead of making unary calls straight on the connection.
      """
  )
  var throughGRPCClient = false

  @Flag(help: "Print one JSON object instead of a table.")
  var json = false

  @Flag(name: .shortAndLong, help: "Log the host's and the plugin's debug output to stderr.")
  var verbose = false

  func validate() throws {
    guard self.launches >= 0, self.calls > 0, self.warmup >= 0, self.concurrentCalls >= 0, self.callers > 0,
      self.bulkMiB >= 0, self.chunkKiB > 0
    else {
      throw ValidationError("counts must not be negative; --calls, --callers and --chunk-kib must be positive")
    }
  }

  func run() async throws {
    var logger = Logger(label: "plugin-bench")
    logger.logLevel = self.verbose ? .debug : .warning
    let parameters = Workloads.Parameters(
      launches: self.launches,
      calls: self.calls,
      warmup: self.warmup,
      concurrentCalls: self.concurrentCalls,
      callers: self.callers,
      bulkBytes: self.bulkMiB * 1024 * 1024,
      chunkBytes: self.chunkKiB * 1024,
      multiplex: self.multiplex,
      autoMTLS: self.autoMTLS,
      callersOnConnectionExecutor: self.callersOnConnection,
      throughGRPCClient: self.throughGRPCClient
    )
    let start = BenchResult(label: self.label, host: "swift", plugin: self.plugin, parameters: parameters)
    let workloads = Workloads(
      command: try PluginCommand(commandLine: self.plugin), parameters: parameters, logger: logger)

    // The workloads race SIGINT and SIGTERM: a signal cancels them, which stops the plugin they
    // run, and the result says so.
    var result = await withTaskGroup(of: BenchResult?.self) { group in
      group.addTask {
        var result = start
        do {
          try await workloads.run(into: &result)
        } catch {
          result.error = String(describing: error)
        }
        return result
      }
      group.addTask {
        guard let signal = await Signals.first(of: [SIGINT, SIGTERM]) else { return nil }
        var result = start
        result.error = "interrupted by signal \(signal)"
        return result
      }
      let first = await group.next() ?? nil
      group.cancelAll()
      return first ?? start
    }
    result.hostPeakRSSKiB = ProcessStats.ownPeakRSSKiB()
    if self.json {
      print(try result.jsonLine())
    } else {
      print(result.table())
    }
    if result.error != nil {
      throw ExitCode.failure
    }
  }
}
