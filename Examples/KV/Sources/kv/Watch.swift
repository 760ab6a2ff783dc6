// kv watch DIR [--json]: hosts every KV plugin in a directory with a PluginManager, calls each
// online one steadily, and prints one line per event; on SIGINT (or SIGTERM) it stops every
// plugin and prints how many calls were made and how many failed.
import ArgumentParser
import GoPlugin
import KVInterface
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

struct Watch: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Host every KV plugin in DIR, call each one steadily, and print what happens to them.",
    discussion: """
      Every executable in DIR is a KV plugin named after its file (names starting with a dot are \
      ignored: copy a new version in under such a name, then mv it into place). Plugins are \
      started when they appear, swapped without a failed call when their file changes, and \
      stopped when it goes. Each online plugin gets a Put and a Get every --interval ms.

      With --json every line is one object: {"event":"online"|"offline"|"swapped"|"restarted"|\
      "unhealthy"|"refused","plugin":NAME,"pid":N,"reason":…}. An upgrade whose new file does not \
      start or is not healthy is an "unhealthy" event whose pid is the old process, which keeps \
      serving, and whose reason says why. On SIGINT every plugin is stopped and the last line is \
      {"event":"summary","calls":N,"failed":M}; calls the loop stops making to a plugin being \
      taken offline are not counted.
      """
  )

  @Argument(help: "The directory of plugins to host.") var directory: String
  @Flag(help: "Print one JSON object per line.") var json = false
  @Flag(name: .shortAndLong, help: "Log the plugins' and the manager's debug output to stderr.") var verbose = false
  @Option(help: "Milliseconds between one plugin's Put+Get rounds.") var interval = 25
  @Option(help: "How many processes of each plugin serve its calls.") var instances = 1
  @Option(help: "Poll the directory every this many milliseconds instead of watching it with inotify.")
  var poll: Int?
  @Option(
    help:
      "A lock file (plugin name → SHA-256, as `goplugin lock` writes): a plugin not in it, or whose file changed, is refused."
  )
  var lock: String?
  @Flag(help: "With --lock: record unknown plugins in the lock file (trust on first use) instead of refusing them.")
  var trustOnFirstUse = false
  @Option(
    help: "An OpenSSH allowed-signers file: only plugins with a PLUGIN.sig by one of its keys (namespace goplugin) run."
  )
  var allowedSigners: String?

  func validate() throws {
    guard self.interval >= 1 else { throw ValidationError("--interval must be at least 1 ms (got \(self.interval)).") }
    guard self.instances >= 1 else { throw ValidationError("--instances must be at least 1 (got \(self.instances)).") }
    if let poll = self.poll, poll < 1 { throw ValidationError("--poll must be at least 1 ms (got \(poll)).") }
    if self.trustOnFirstUse && self.lock == nil { throw ValidationError("--trust-on-first-use needs --lock FILE.") }
  }

  func run() async throws {
    var logger = Logger(label: "kv")
    logger.logLevel = self.verbose ? .debug : .error
    var configuration = PluginManager.Configuration(
      discovery: PluginDiscovery(directories: [self.directory]),
      template: PluginClientConfiguration(command: PluginCommand(""), handshake: .kv, plugins: ["kv": KVPlugin()])
    )
    configuration.instances = self.instances
    configuration.drainTimeout = .seconds(10)
    if let poll = self.poll { configuration.watch = .polling(.milliseconds(poll)) }
    configuration.trust = try self.trust()
    let manager = PluginManager(configuration: configuration, logger: logger)
    let events = manager.events()
    let tally = Tally()
    let group = ServiceGroup(services: [manager], gracefulShutdownSignals: [.sigint, .sigterm], logger: logger)
    try await withThrowingTaskGroup(of: Void.self) { top in
      top.addTask { try await group.run() }
      top.addTask { await self.follow(events, of: manager, tally: tally) }
      try await top.waitForAll()
    }
    let (calls, failed) = (tally.calls.load(ordering: .relaxed), tally.failed.load(ordering: .relaxed))
    if self.json {
      Self.emit(#"{"event":"summary","calls":\#(calls),"failed":\#(failed)}"#)
    } else {
      Self.emit("summary: \(calls) calls, \(failed) failed")
    }
  }

  /// The trust `--lock` and `--allowed-signers` ask for; `nil` when neither does. A file that
  /// cannot be read stops the command before any plugin runs.
  private func trust() throws -> PluginTrust? {
    guard self.lock != nil || self.allowedSigners != nil else { return nil }
    var trust = PluginTrust()
    do {
      if let lock = self.lock {
        trust.lockFile = try PluginLockFile(path: lock, policy: self.trustOnFirstUse ? .trustOnFirstUse : .refuse)
      }
      if let allowedSigners = self.allowedSigners {
        trust.signatures = PluginSignatureRequirement(allowedSigners: try AllowedSigners(contentsOf: allowedSigners))
      }
    } catch {
      throw ValidationError(error.message)
    }
    return trust
  }

  /// Prints every event and keeps one caller per online plugin, until the manager has stopped.
  private func follow(_ events: AsyncStream<PluginManager.Event>, of manager: PluginManager, tally: Tally) async {
    await withTaskGroup(of: Void.self) { callers in
      for await event in events {
        if let line = self.line(for: event) { Self.emit(line) }
        guard case .online(let name, _, _) = event else { continue }
        // A plugin back online after going offline is a new pool: its caller is a new one too.
        let generation = tally.generations.withLock { generations in
          generations[name, default: 0] += 1
          return generations[name]!
        }
        callers.addTask {
          await self.call(name, manager: manager, tally: tally) {
            tally.generations.withLock { $0[name] } == generation
          }
        }
      }
    }
  }

  /// A Put and a Get every interval while the plugin is online. A call that fails while the
  /// plugin is still serving is a failure; one refused because the plugin is being taken
  /// offline is a call the loop meant to stop making, and is not counted.
  private func call(
    _ name: String, manager: PluginManager, tally: Tally, isCurrent: @escaping @Sendable () -> Bool
  ) async {
    let kv: KVClient
    do {
      kv = try await manager.dispense(plugin: name, "kv", as: KVPlugin.self)
    } catch {
      return
    }
    let serving = { @Sendable in isCurrent() && manager.status(name)?.state.isServing == true }
    var round = 0
    while !Task.isCancelled && serving() {
      round += 1
      let value = Array("\(name)-\(round)".utf8)
      for step in 0..<2 {
        do {
          if step == 0 {
            try await kv.put("watch", value: value)
          } else {
            // Not compared with what was put: each process keeps its own memory, and the Get
            // may reach another one than the Put (another instance, or the new file of a swap).
            _ = try await kv.get("watch")
          }
          tally.calls.add(1, ordering: .relaxed)
        } catch {
          // A call cut short because kv watch itself is stopping (its task was cancelled) is
          // not the plugin's failure; a direct call notices the cancellation at once.
          guard serving(), !Task.isCancelled else { return }
          tally.calls.add(1, ordering: .relaxed)
          tally.failed.add(1, ordering: .relaxed)
          Self.complain("kv watch: a call to \(name) failed: \(error)")
        }
      }
      try? await Task.sleep(for: .milliseconds(self.interval))
    }
  }

  /// The line printed for `event`; `nil` for the events that are not printed (draining).
  func line(for event: PluginManager.Event) -> String? {
    switch event {
    case .online(let name, let pid, let digest):
      return self.json
        ? Self.object(["event": "online", "plugin": name, "pid": pid, "digest": "\(digest)"])
        : "online     \(name) pid \(pid) \(digest)"
    case .offline(let name, let reason):
      return self.json
        ? Self.object(["event": "offline", "plugin": name, "reason": "\(reason)"])
        : "offline    \(name): \(reason)"
    case .swapped(let name, let oldPID, let newPID):
      return self.json
        ? Self.object(["event": "swapped", "plugin": name, "pid": newPID, "oldPid": oldPID])
        : "swapped    \(name) pid \(oldPID) -> \(newPID)"
    case .upgradeFailed(let name, let pid, let error):
      let reason = "upgrade failed, pid \(pid) keeps serving: \(error)"
      return self.json
        ? Self.object(["event": "unhealthy", "plugin": name, "pid": pid, "reason": reason])
        : "unhealthy  \(name) pid \(pid): \(reason)"
    case .restarted(let name, let pid):
      return self.json
        ? Self.object(["event": "restarted", "plugin": name, "pid": pid])
        : "restarted  \(name) pid \(pid)"
    case .unhealthy(let name, let pid, let error):
      return self.json
        ? Self.object(["event": "unhealthy", "plugin": name, "pid": pid, "reason": "\(error)"])
        : "unhealthy  \(name) pid \(pid): \(error)"
    case .refused(let name, let error):
      return self.json
        ? Self.object(["event": "refused", "plugin": name, "reason": "\(error)"])
        : "refused    \(name): \(error)"
    case .draining:
      return nil
    }
  }

  /// One JSON object, its keys in the order the contract lists them (event, plugin, pid,
  /// reason), then the others.
  static func object(_ fields: [String: any Sendable]) -> String {
    let order = ["event", "plugin", "pid", "reason"]
    let keys = order.filter { fields[$0] != nil } + fields.keys.filter { !order.contains($0) }.sorted()
    let members = keys.map { key -> String in
      let value: String
      switch fields[key] {
      case let number as Int32: value = String(number)
      case let text as String: value = self.quoted(text)
      default: value = "null"
      }
      return "\(self.quoted(key)):\(value)"
    }
    return "{" + members.joined(separator: ",") + "}"
  }

  static func quoted(_ text: String) -> String {
    var result = "\""
    for scalar in text.unicodeScalars {
      switch scalar {
      case "\"": result += "\\\""
      case "\\": result += "\\\\"
      case "\n": result += "\\n"
      case "\r": result += "\\r"
      case "\t": result += "\\t"
      case _ where scalar.value < 0x20:
        let hex = String(scalar.value, radix: 16)
        result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
      default: result.unicodeScalars.append(scalar)
      }
    }
    return result + "\""
  }

  /// Writes a line to stdout at once: a script reading the output through a pipe waits on it.
  static func emit(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    Self.writeAll(1, bytes)
  }

  static func complain(_ line: String) {
    Self.writeAll(2, Array((line + "\n").utf8))
  }

  private static func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) {
    bytes.withUnsafeBytes { buffer in
      var offset = 0
      while offset < buffer.count {
        let written = write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
        if written < 0 {
          if errno == EINTR { continue }
          return
        }
        offset += written
      }
    }
  }
}

/// The calls made and the calls that failed, across every plugin.
final class Tally: Sendable {
  let calls = Atomic(0)
  let failed = Atomic(0)
  /// How often each plugin came online: a caller calls while its generation is the latest.
  let generations = Mutex<[String: Int]>([:])
}
