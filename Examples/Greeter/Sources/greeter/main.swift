// The net/rpc example host: launches a plugin in the shapes of go-plugin's examples/basic and
// examples/grpc (net/rpc half) — the Swift greeter-plugin next to this program unless --plugin
// names another, such as a Go one — and greets, puts and gets through it.
import ArgumentParser
import GoPlugin
import GreeterInterface
import Logging

@main
struct GreeterCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "greeter",
    abstract: "Call a go-plugin net/rpc plugin: greeter and kv, as in go-plugin's examples.",
    subcommands: [Demo.self, Bench.self]
  )

  @Option(help: "The plugin's command line (default: the greeter-plugin next to this program).")
  var plugin: String?

  @Flag(name: .shortAndLong, help: "Log the plugin's and the host's debug output to stderr.")
  var verbose = false

  @Flag(name: .customLong("auto-mtls"), help: "Secure the connection with go-plugin's automatic mutual TLS.")
  var autoMTLS = false

  func validate() throws {
    if let plugin = self.plugin {
      do {
        _ = try PluginCommand(commandLine: plugin).resolvedExecutable()
      } catch {
        throw ValidationError("--plugin: \(error.message)")
      }
    }
  }

  func withPlugin<Result: Sendable>(_ body: (PluginClient) async throws -> Result) async throws -> Result {
    var logger = Logger(label: "greeter")
    logger.logLevel = self.verbose ? .debug : .warning
    let command = try self.plugin.map { try PluginCommand(commandLine: $0) } ?? .besideThisProgram("greeter-plugin")
    var configuration = PluginClientConfiguration(
      command: command, handshake: .greeter, plugins: .greeterExample(serving: false))
    configuration.allowedProtocols = [.netRPC]
    if self.autoMTLS { configuration.tls = .autoMTLS }
    return try await withPluginClient(configuration, logger: logger, body)
  }
}

struct Demo: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Greet, put a value and get it back in one session, then stop the plugin.")
  @ParentCommand var greeter: GreeterCommand

  func run() async throws {
    let exit = try await self.greeter.withPlugin { client in
      let info = try await client.info
      print("plugin: pid \(info.pid), protocol \(info.protocol), version \(info.negotiatedVersion)")
      let greeter = try await client.dispense("greeter", as: GreeterPlugin.self)
      print("greeting: \(try await greeter.greet())")
      let kv = try await client.dispense("kv", as: KeyValuePlugin.self)
      try await kv.put("hello", Array("world".utf8))
      print("put: hello = world")
      print("get: hello = \(String(decoding: try await kv.get("hello"), as: UTF8.self))")
      await client.kill()
      return await client.exit
    }
    print("stopped: \(exit)")
  }
}

struct Bench: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Time kv Get calls of a 16-byte value (the net/rpc benchmark's workload).")
  @ParentCommand var greeter: GreeterCommand

  @Option(help: "How many Get calls to time.")
  var calls = 10_000

  @Option(help: "How many tasks share the one client; the calls are divided among them.")
  var concurrency = 1

  @Flag(help: "Print one JSON line: calls, concurrency, p50Micros, p99Micros, callsPerSecond.")
  var json = false

  func validate() throws {
    guard self.calls > 0, self.concurrency > 0 else { throw ValidationError("--calls and --concurrency must be > 0") }
  }

  func run() async throws {
    let (calls, concurrency) = (self.calls, self.concurrency)
    let (durations, elapsed) = try await self.greeter.withPlugin { client in
      let kv = try await client.dispense("kv", as: KeyValuePlugin.self)
      try await kv.put("bench", Array(repeating: UInt8(ascii: "v"), count: 16))
      for _ in 0..<min(1000, calls) { _ = try await kv.get("bench") }  // warm-up
      let clock = ContinuousClock()
      let start = clock.now
      let durations = try await withThrowingTaskGroup(of: [Duration].self) { group in
        for worker in 0..<concurrency {
          let share = calls / concurrency + (worker < calls % concurrency ? 1 : 0)
          group.addTask {
            var durations: [Duration] = []
            durations.reserveCapacity(share)
            for _ in 0..<share {
              let begun = clock.now
              _ = try await kv.get("bench")
              durations.append(clock.now - begun)
            }
            return durations
          }
        }
        return try await group.reduce(into: []) { $0 += $1 }
      }
      let elapsed = clock.now - start
      await client.kill()
      return (durations.sorted(), elapsed)
    }
    func micros(_ duration: Duration) -> Double {
      Double(duration.components.seconds) * 1e6 + Double(duration.components.attoseconds) / 1e12
    }
    let p50 = micros(durations[durations.count / 2])
    let p99 = micros(durations[min(durations.count - 1, durations.count * 99 / 100)])
    let perSecond = Double(durations.count) / (micros(elapsed) / 1e6)
    if self.json {
      print(
        #"{"calls":\#(durations.count),"concurrency":\#(concurrency),"p50Micros":\#(p50),"p99Micros":\#(p99),"callsPerSecond":\#(perSecond)}"#
      )
    } else {
      print("calls: \(durations.count), concurrency: \(concurrency)")
      print("p50: \(p50) µs, p99: \(p99) µs, \(Int(perSecond)) calls/s")
    }
  }
}
