import Foundation
import GRPCCore
import GoPlugin
import KVInterface
import Logging
import ServiceLifecycle
import Synchronization

// Plugins for the supervision and health tests: one that crashes every so many calls, one that
// declares itself NOT_SERVING, and one that serves as one service of a ServiceGroup.

/// A memory KV that exits the process with status 3 on every `every`-th call (counting puts and
/// gets), saying so on stderr first: a plugin that crashes under load.
final class CrashingKV: KV {
  let memory = MemoryKV()
  let every: Int
  let calls = Atomic(0)

  init(every: Int) {
    self.every = every
  }

  private func count() {
    let call = self.calls.add(1, ordering: .relaxed).newValue
    if call % self.every == 0 {
      // Through the log, which stays on the real stderr: what the process writes to fd 2 after
      // the handshake is forwarded over GRPCStdio instead.
      Logger(label: "fixture") { HCLogHandler(label: $0) }.error("crashing at call \(call)")
      exit(3)
    }
  }

  func get(_ key: String) async throws -> [UInt8] {
    self.count()
    if key == "pid" { return Array(String(getpid()).utf8) }
    return try await self.memory.get(key)
  }

  func put(_ key: String, value: [UInt8]) async throws {
    self.count()
    try await self.memory.put(key, value: value)
  }

  func upload(_ chunks: [[UInt8]]) async throws -> UploadCount { try await self.memory.upload(chunks) }
}

/// Serves a KV that crashes the process on every `every`-th call.
func serveCrashing(every: Int) async {
  await PluginServer.serve(
    PluginServeConfiguration(handshake: .kv, plugins: ["kv": KVPlugin(serving: CrashingKV(every: max(every, 1)))]))
}

/// A memory KV where a put of the key "not-serving" switches the plugin as a whole to
/// NOT_SERVING, and "serving" back.
final class DrainingKV: KV {
  let memory = MemoryKV()
  let health: PluginHealth

  init(health: PluginHealth) {
    self.health = health
  }

  func get(_ key: String) async throws -> [UInt8] {
    if key == "pid" { return Array(String(getpid()).utf8) }
    return try await self.memory.get(key)
  }

  func put(_ key: String, value: [UInt8]) async throws {
    switch key {
    case "not-serving": self.health.setStatus(.notServing)
    case "serving": self.health.setStatus(.serving)
    case "kv-not-serving": self.health.setStatus(.notServing, forService: "kvbench.KV")
    default: break
    }
    try await self.memory.put(key, value: value)
  }

  func upload(_ chunks: [[UInt8]]) async throws -> UploadCount { try await self.memory.upload(chunks) }
}

/// Serves a KV whose health the plugin sets itself: NOT_SERVING after a put of "not-serving",
/// or by itself `FIXTURE_NOT_SERVING_AFTER_MS` milliseconds after it started, when set.
func serveDraining() async {
  let health = PluginHealth()
  var configuration = PluginServeConfiguration(
    handshake: .kv, plugins: ["kv": KVPlugin(serving: DrainingKV(health: health))])
  configuration.health = health
  await withTaskGroup(of: Void.self) { group in
    if let delay = ProcessInfo.processInfo.environment["FIXTURE_NOT_SERVING_AFTER_MS"].flatMap(Int.init) {
      group.addTask {
        try? await Task.sleep(for: .milliseconds(delay))
        health.setStatus(.notServing)
      }
    }
    await PluginServer.serve(configuration)
    group.cancelAll()
  }
}

/// Another service of the plugin process: it runs until the group shuts down gracefully, and
/// says so on stderr, which the host keeps.
struct CompanionService: Service {
  func run() async throws {
    try? await gracefulShutdown()
    FileHandle.standardError.write(Data("companion service stopped gracefully\n".utf8))
  }
}

/// Serves KV as one service of a ServiceGroup beside a companion: the host's Shutdown ends the
/// plugin server, which shuts the group down gracefully; nothing calls exit().
func serveInServiceGroup() async {
  let configuration = PluginServeConfiguration(handshake: .kv, plugins: ["kv": KVPlugin(serving: MemoryKV())])
  let group = ServiceGroup(
    configuration: ServiceGroupConfiguration(
      services: [
        .init(service: PluginServerService(configuration), successTerminationBehavior: .gracefullyShutdownGroup),
        .init(service: CompanionService()),
      ],
      logger: Logger(label: "fixture") { HCLogHandler(label: $0) }
    )
  )
  do {
    try await group.run()
    FileHandle.standardError.write(Data("service group ended\n".utf8))
  } catch {
    FileHandle.standardError.write(Data("service group failed: \(error)\n".utf8))
    exit(1)
  }
}

/// Host mode, for the closing measurements: supervises the plugin at `path` (which must crash
/// every few KV calls: this fixture's `crash-every` mode, or the Go KV plugin with
/// KV_CRASH_EVERY) with no restart delay, calls it until it has crashed `rounds` times, and
/// prints the median time from sending the call that crashed it to the host knowing it exited
/// (the call's exitedDuringCall error), and to the restarted plugin answering a call.
func measureRestarts(rounds: Int, path: String, arguments: [String]) async {
  var client = PluginClientConfiguration(
    command: PluginCommand(path, arguments: arguments), handshake: .kv, plugins: ["kv": KVPlugin()])
  client.standardInput = .none
  var configuration = PluginSupervisor.Configuration(client: client)
  configuration.restart = .init(initialDelay: .zero, jitter: 0, maximumRestarts: rounds + 5)
  configuration.healthCheck = nil
  configuration.waitForReady = .seconds(30)
  var logger = Logger(label: "measure")
  logger.logLevel = .critical
  let supervisor = PluginSupervisor(configuration: configuration, logger: logger)
  var noticed: [Duration] = []
  var answered: [Duration] = []
  do {
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await supervisor.run() }
      let kv = try await supervisor.dispense("kv", as: KVPlugin.self)
      var call = 0
      while noticed.count < rounds {
        call += 1
        let sent = ContinuousClock.now
        do {
          try await kv.put("k\(call)", value: [1])
        } catch let error as PluginError where error.code == .exitedDuringCall {
          noticed.append(ContinuousClock.now - sent)
          // Waits for the restarted plugin, then is answered by it.
          try await kv.put("after\(call)", value: [1])
          answered.append(ContinuousClock.now - sent)
        }
      }
      supervisor.beginGracefulShutdown()
      try await group.waitForAll()
    }
  } catch {
    FileHandle.standardError.write(Data("measurement failed: \(error)\n".utf8))
    exit(1)
  }
  func median(_ values: [Duration]) -> String {
    let sorted = values.sorted()
    let middle = sorted[sorted.count / 2]
    return String(
      format: "%.1f ms", Double(middle.components.attoseconds) / 1e15 + Double(middle.components.seconds) * 1000)
  }
  print(
    "\(path.split(separator: "/").last ?? ""): \(rounds) crashes, crash to noticed: median \(median(noticed)), "
      + "crash to answering again: median \(median(answered))")
}
