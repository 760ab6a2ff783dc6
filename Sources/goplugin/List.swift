import ArgumentParser
import GoPlugin
import Logging

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The options `list` and `lock` share: how each file is launched and where descriptions are
/// remembered.
struct DescribeOptions: ParsableArguments {
  @Option(help: ArgumentHelp("The magic cookie the plugins check, as KEY=VALUE.", valueName: "KEY=VALUE"))
  var cookie: String

  @Option(help: "The handshake's protocol version; offered when --versions is not given.")
  var protocolVersion: Int = 1

  @Option(
    help: ArgumentHelp("The application protocol versions to offer, comma-separated.", valueName: "1,2,3"),
    transform: Inspect.parseVersions
  )
  var versions: [Int]?

  @Flag(name: .customLong("auto-mtls"), help: "Launch the plugins with go-plugin's automatic mutual TLS.")
  var autoMTLS = false

  @Option(help: ArgumentHelp("How long to wait for each plugin's handshake and calls.", valueName: "SECONDS"))
  var timeout: Double = 10

  @Option(
    help: ArgumentHelp(
      "The description cache (default: $XDG_CACHE_HOME/goplugin/descriptions.json, or ~/.cache/…).",
      valueName: "FILE"),
    completion: .file()
  )
  var cache: String?

  @Flag(help: "Launch every plugin again instead of using the descriptions cached for its digest.")
  var refresh = false

  @Flag(name: .shortAndLong, help: "Print the plugins' and the host's debug log to stderr.")
  var verbose = false

  @Argument(help: ArgumentHelp("The directories to scan.", valueName: "DIR"), completion: .directory)
  var directories: [String] = []

  func validate() throws {
    _ = try self.describer(cache: nil)
    guard !self.directories.isEmpty else { throw ValidationError("Missing the directories to scan.") }
    guard self.timeout.isFinite, self.timeout > 0, self.timeout <= 86_400 else {
      throw ValidationError("--timeout must be a number of seconds greater than 0 (got \(self.timeout)).")
    }
  }

  func describer(cache: PluginDescriptionCache?) throws -> PluginDescriber {
    guard self.protocolVersion > 0 else {
      throw ValidationError("--protocol-version must be a positive integer (got \(self.protocolVersion)).")
    }
    let (key, value) = try Inspect.splitCookie(self.cookie)
    let handshake = try Inspect.handshake(key: key, value: value, protocolVersion: self.protocolVersion)
    let recorder = PluginLogRecorder()
    return PluginDescriber(
      handshake: handshake,
      versions: self.versions ?? [handshake.protocolVersion],
      timeout: .milliseconds(Int64(self.timeout * 1000)),
      autoMTLS: self.autoMTLS,
      cache: cache,
      logger: self.verbose ? recorder.logger(displayLevel: .debug) : nil
    )
  }

  /// Every file in the directories, described by the library's ``PluginDescriber`` (cached by
  /// digest); `excluding` the files goplugin keeps there.
  func describeAll(excluding: Set<String>) async throws -> [ListEntry] {
    let cache = PluginDescriptionCache(path: self.cache ?? Self.defaultCachePath)
    if self.refresh { cache.removeAll() }
    let describer = try self.describer(cache: cache)
    var scan = PluginDiscovery(directories: self.directories).scan()
    scan.plugins.removeAll { excluding.contains($0.path) }
    scan.issues.removeAll { excluding.contains($0.path) }
    let names = Dictionary(scan.plugins.map { ($0.path, $0.name) }, uniquingKeysWith: { first, _ in first })
    let entries = await describer.describe(scan).map { description in
      var entry = ListEntry(name: names[description.path] ?? Self.fileName(description.path), description: description)
      entry.wasDescribed = names[description.path] != nil
      return entry
    }
    do {
      try cache.save()
    } catch {
      throw CLIError(code: .unreadable, message: error.message)
    }
    return entries
  }

  /// `$XDG_CACHE_HOME/goplugin/descriptions.json`, else under `~/.cache`.
  static var defaultCachePath: String? {
    let environment = ProcessInfo.processInfo.environment
    if let base = environment["XDG_CACHE_HOME"], !base.isEmpty { return base + "/goplugin/descriptions.json" }
    if let home = environment["HOME"], !home.isEmpty { return home + "/.cache/goplugin/descriptions.json" }
    return nil
  }

  static func fileName(_ path: String) -> String {
    path.lastIndex(of: "/").map { String(path[path.index(after: $0)...]) } ?? path
  }
}

/// One file in `goplugin list`: its description, with the plugin's name, whether the
/// description was cached, and how it compares with the lock file.
struct ListEntry: Encodable {
  /// The plugin's name: its file name, under which the lock file knows it.
  var name: String
  var description: PluginDescription
  /// `matched`, `changed` or `unknown`, against the lock file, for every executable.
  var lock: String?

  var path: String { self.description.path }
  var sha256: String? { self.description.sha256 }
  var usable: Bool { self.description.usable }
  var reason: String? { self.description.reason }
  /// Whether the file is an executable the scan found, described by a launch (now or
  /// before): not a directory or a file without the execute bit.
  var wasDescribed = false

  init(name: String, description: PluginDescription) {
    self.name = name
    self.description = description
  }

  private enum Key: String, CodingKey {
    case name, cached, lock
  }

  func encode(to encoder: any Encoder) throws {
    try self.description.encode(to: encoder)
    var container = encoder.container(keyedBy: Key.self)
    try container.encode(self.name, forKey: .name)
    if self.wasDescribed { try container.encode(self.description.cached, forKey: .cached) }
    try container.encodeIfPresent(self.lock, forKey: .lock)
  }

  /// The human form: one line.
  var text: String {
    var line = "\(self.path): "
    if self.description.usable {
      line += "\(self.description.protocol ?? "?") v\(self.description.negotiatedVersion ?? 0)"
      if self.description.autoMTLS == true { line += ", AutoMTLS" }
      if let info = self.description.info {
        line += ", \(info.name)" + (info.version.map { " " + $0 } ?? "")
        if info.versions.count > 1 || info.versions.first?.plugins != [] {
          line += " (offers \(info.offersSummary))"
        }
      }
      if let services = self.description.services, !services.isEmpty {
        line += ", services: " + services.joined(separator: " ")
      }
      if let about = self.description.info?.description { line += " — \(about)" }
    } else {
      line += "not usable: \(self.reason ?? "?")"
    }
    if let lock { line += " [lock: \(lock)]" }
    return line
  }
}

struct List: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Describe every file in plugin directories, or say why it is not a usable plugin.",
    discussion: """
      Every executable is launched once, described (protocol, version, services, health) and \
      stopped; descriptions are cached by the file's SHA-256, so an unchanged file is not \
      launched again. Names starting with a dot are skipped. With a lock file (--lock, or \
      DIR/goplugin.lock when it exists), each executable is marked matched, changed or \
      unknown.

        goplugin list --cookie BASIC_PLUGIN=hello ./plugins
        goplugin list --json --cookie K=V --versions 1,2 ./plugins /opt/plugins
      """
  )

  @OptionGroup var describe: DescribeOptions

  @Option(
    help: ArgumentHelp("The lock file to compare with (default: DIR/goplugin.lock if present).", valueName: "FILE"),
    completion: .file()
  )
  var lock: String?

  @Flag(help: "Print a JSON array of one object per file instead of text.")
  var json = false

  func run() async throws {
    let lockPath =
      self.lock
      ?? self.describe.directories.map { $0 + "/" + Lock.defaultName }.first {
        FileManager.default.fileExists(atPath: $0)
      }
    var entries = try await self.describe.describeAll(
      excluding: Lock.ownFiles(self.describe.directories).union(lockPath.map { [$0] } ?? []))
    if let lockPath {
      let lockFile: PluginLockFile
      do {
        lockFile = try PluginLockFile(path: lockPath)
      } catch {
        throw CLIError(code: .unreadable, message: error.message)
      }
      // Every executable is compared, usable or not: a changed binary may also be a broken one.
      for index in entries.indices where entries[index].wasDescribed {
        guard let hex = entries[index].sha256, let digest = try? PluginChecksum(.sha256, hex: hex) else { continue }
        switch lockFile.digest(for: entries[index].name) {
        case nil: entries[index].lock = "unknown"
        case let locked? where locked == digest: entries[index].lock = "matched"
        case _?: entries[index].lock = "changed"
        }
      }
    }
    if self.json {
      print(try OutputOptions.encode(entries))
    } else {
      for entry in entries { print(entry.text) }
    }
  }
}
