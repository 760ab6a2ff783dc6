// The KV example host: launches a KV plugin (the Swift one next to this executable unless
// --plugin names another, in any language) and calls it; or, with --reattach '<json>' (or
// PLUGIN_REATTACH), attaches to a running one, such as `kv-plugin --debug`, and leaves it
// running (`stop` stops it).
import ArgumentParser
import GoPlugin
import KVInterface
import Logging

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

@main
struct KVCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "kv",
    abstract: "Put and get values through a go-plugin KV plugin.",
    subcommands: [Put.self, Get.self, Demo.self, Bench.self, Stop.self, Watch.self]
  )

  @OptionGroup var options: PluginOptions
}

// Ctrl-C or SIGTERM stops the plugin gracefully, then ends the host by that signal. The command
// runs inside the handling, so that the error of a call the stop cut short is not reported.
// `watch` is a service group that handles the signals itself: it stops its plugins, prints its
// summary and exits 0.
extension KVCommand {
  static func main() async {
    do {
      if let watch = try parseAsRoot() as? Watch {
        try await watch.run()
        return
      }
      try await withPluginHostSignalHandling {
        var command = try parseAsRoot()
        if var command = command as? any AsyncParsableCommand { try await command.run() } else { try command.run() }
      }
    } catch {
      exit(withError: error)
    }
  }
}

struct PluginOptions: ParsableArguments {
  @Option(help: "The plugin's command line (default: the kv-plugin next to this program).")
  var plugin: String?

  @Flag(name: .shortAndLong, help: "Log the plugin's and the host's debug output to stderr.")
  var verbose = false

  @Flag(name: .customLong("auto-mtls"), help: "Secure the connection with go-plugin's automatic mutual TLS.")
  var autoMTLS = false
  @Flag(
    name: .customLong("multiplex"),
    help: "Carry brokered connections as yamux streams of the one connection (GRPCBrokerMultiplex).")
  var multiplex = false

  @Option(
    help: ArgumentHelp(
      "Attach to the running plugin this reattach JSON describes instead of launching one, and leave it running.",
      discussion: "Without it, the PLUGIN_REATTACH environment variable is read. kv-plugin --debug prints it."))
  var reattach: String?

  /// The plugin to attach to: --reattach, else PLUGIN_REATTACH.
  var reattachConfiguration: PluginReattachConfiguration? {
    get throws {
      let environment = ProcessInfo.processInfo.environment[PluginReattachConfiguration.environmentKey]
      guard let json = self.reattach ?? environment.flatMap({ $0.isEmpty ? nil : $0 }) else { return nil }
      return try PluginReattachConfiguration(json: json)
    }
  }

  func validate() throws {
    do {
      if try self.reattachConfiguration != nil, self.plugin != nil {
        throw ValidationError("--reattach attaches to a running plugin; --plugin launches one: give one of them")
      }
    } catch let error as PluginError {
      throw ValidationError("--reattach: \(error.message)")
    }
    if let plugin = self.plugin {
      // Refused here, a bad command line is a usage error rather than a failed run.
      do {
        _ = try PluginCommand(commandLine: plugin).resolvedExecutable()
      } catch {
        throw ValidationError("--plugin: \(error.message)")
      }
    }
  }

  func withKV<Result: Sendable>(_ body: (PluginClient, KVClient) async throws -> Result) async throws -> Result {
    var logger = Logger(label: "kv")
    logger.logLevel = self.verbose ? .debug : .warning
    let configuration = try self.configuration()
    return try await withPluginClient(configuration, logger: logger) { client in
      let result = try await body(client, try await client.dispense("kv", as: KVPlugin.self))
      // A plugin this host did not launch is left running for the next one.
      if configuration.reattach != nil { await client.detach() }
      return result
    }
  }

  func configuration() throws -> PluginClientConfiguration {
    var configuration: PluginClientConfiguration
    if let reattach = try self.reattachConfiguration {
      configuration = PluginClientConfiguration(reattachingTo: reattach, handshake: .kv, plugins: ["kv": KVPlugin()])
    } else {
      let command = try self.plugin.map { try PluginCommand(commandLine: $0) } ?? .besideThisProgram("kv-plugin")
      configuration = PluginClientConfiguration(command: command, handshake: .kv, plugins: ["kv": KVPlugin()])
    }
    if self.autoMTLS { configuration.tls = .autoMTLS }
    configuration.multiplexBroker = self.multiplex
    return configuration
  }

}

struct Put: AsyncParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Store VALUE under KEY.")
  @ParentCommand var kv: KVCommand
  @Argument var key: String
  @Argument var value: String

  func run() async throws {
    try await self.kv.options.withKV { _, kv in try await kv.put(self.key, value: Array(self.value.utf8)) }
  }
}

struct Get: AsyncParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Print the value stored under KEY.")
  @ParentCommand var kv: KVCommand
  @Argument var key: String

  func run() async throws {
    let value = try await self.kv.options.withKV { _, kv in try await kv.get(self.key) }
    print(String(decoding: value, as: UTF8.self))
  }
}

struct Demo: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Put, get and upload in one session, and say what happened.")
  @ParentCommand var kv: KVCommand

  func run() async throws {
    let clock = ContinuousClock()
    let launchedAt = clock.now
    var stoppedClient: PluginClient?
    try await self.kv.options.withKV { client, kv in
      stoppedClient = client
      let info = try await client.info
      if let reattach = client.configuration.reattach {
        print("plugin:     reattached to pid \(reattach.pid)")
      } else {
        print("plugin:     \(client.configuration.command.executable) (pid \(info.pid))")
      }
      let security = info.serverCertificate == nil ? "plaintext" : "AutoMTLS"
      print(
        "handshake:  protocol \(info.protocol), version \(info.negotiatedVersion), \(info.network) \(info.address), \(security)"
      )
      print("multiplex:  \(info.multiplexed ? "on: brokered connections are yamux streams of this one" : "off")")
      try await kv.put("greeting", value: Array("hello from swift-go-plugin".utf8))
      let value = try await kv.get("greeting")
      print("put/get:    greeting = \"\(String(decoding: value, as: UTF8.self))\"")
      let started = client.configuration.reattach == nil ? "launch" : "reattaching"
      print("first call: \(Bench.milliseconds(clock.now - launchedAt)) ms after \(started)")
      let chunks = (1...4).map { [UInt8](repeating: UInt8($0), count: 16 * 1024 * $0) }
      let count = try await kv.upload(chunks)
      print(
        "upload:     sent \(chunks.count) chunks, \(chunks.reduce(0) { $0 + $1.count }) bytes; plugin counted \(count.chunks) chunks, \(count.bytes) bytes"
      )
      try await client.ping()
      print("health:     SERVING")
    }
    if let stoppedClient {
      let exit = await stoppedClient.exit
      print(exit.reason == .detached ? "detached:   \(exit)" : "stopped:    \(exit)")
    }
  }
}

struct Stop: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Stop the running plugin that --reattach (or PLUGIN_REATTACH) names.")
  @ParentCommand var kv: KVCommand

  func validate() throws {
    guard try self.kv.options.reattachConfiguration != nil else {
      throw ValidationError("stop needs --reattach '<json>' (or PLUGIN_REATTACH): the plugin to stop")
    }
  }

  func run() async throws {
    var logger = Logger(label: "kv")
    logger.logLevel = self.kv.options.verbose ? .debug : .warning
    var stopped: PluginClient?
    // The end of the scope stops the plugin: Shutdown, then SIGKILL through its pidfd if it lingers.
    try await withPluginClient(try self.kv.options.configuration(), logger: logger) { client in
      stopped = client
      _ = try await client.info
    }
    if let stopped {
      print("stopped: \(await stopped.exit)")
    }
  }
}

struct Bench: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Time the start to the first call, and sequential Get calls on one connection."
  )
  @ParentCommand var kv: KVCommand
  @Option(help: "How many sequential Get calls to time.") var calls = 10_000
  @Option(help: "How many launches to time for the first call.") var launches = 10

  func validate() throws {
    guard self.calls >= 1 else { throw ValidationError("--calls must be at least 1 (got \(self.calls)).") }
    guard self.launches >= 1 else { throw ValidationError("--launches must be at least 1 (got \(self.launches)).") }
  }

  func run() async throws {
    let clock = ContinuousClock()
    var firstCalls: [Duration] = []
    for _ in 0..<self.launches {
      let start = clock.now
      try await self.kv.options.withKV { _, kv in
        _ = try await kv.get("warm-up")
        firstCalls.append(clock.now - start)
      }
    }
    let perSecond = try await self.kv.options.withKV { _, kv in
      try await kv.put("k", value: Array(repeating: 7, count: 16))
      for _ in 0..<1000 { _ = try await kv.get("k") }
      let start = clock.now
      for _ in 0..<self.calls { _ = try await kv.get("k") }
      // A clock too coarse to see the calls must not make an infinite rate.
      return Double(self.calls) / max(Self.seconds(clock.now - start), 1e-9)
    }
    let median = firstCalls.sorted()[firstCalls.count / 2]
    print("start to first call: \(Self.milliseconds(median)) ms (median of \(self.launches))")
    print("sequential Get:      \(Int(perSecond)) calls/s (\(self.calls) calls, one connection)")
  }

  static func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
  }

  static func milliseconds(_ duration: Duration) -> Double {
    (seconds(duration) * 10_000).rounded() / 10
  }
}
