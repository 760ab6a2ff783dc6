import ArgumentParser
import GoPlugin

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
    _ = try self.launch()
    guard !self.directories.isEmpty else { throw ValidationError("Missing the directories to scan.") }
    guard self.timeout.isFinite, self.timeout > 0, self.timeout <= 86_400 else {
      throw ValidationError("--timeout must be a number of seconds greater than 0 (got \(self.timeout)).")
    }
  }

  func launch() throws -> PluginDescriber.Launch {
    guard self.protocolVersion > 0 else {
      throw ValidationError("--protocol-version must be a positive integer (got \(self.protocolVersion)).")
    }
    let (key, value) = try Inspect.splitCookie(self.cookie)
    let handshake = try Inspect.handshake(key: key, value: value, protocolVersion: self.protocolVersion)
    return PluginDescriber.Launch(
      handshake: handshake,
      versions: self.versions ?? [handshake.protocolVersion],
      timeout: self.timeout,
      autoMTLS: self.autoMTLS,
      verbose: self.verbose
    )
  }

  /// Every file in the directories, described; `excluding` the files goplugin keeps there.
  func describeAll(excluding: Set<String>) async throws -> [ListEntry] {
    let describer = try PluginDescriber(
      launch: try self.launch(), cachePath: self.cache ?? PluginDescriber.defaultCachePath, refresh: self.refresh)
    let scan = PluginDiscovery(directories: self.directories).scan()
    var entries: [ListEntry] = []
    for issue in scan.issues where !excluding.contains(issue.path) {
      var entry = ListEntry(path: issue.path, name: Self.fileName(issue.path))
      entry.reason = issue.reason.description
      if issue.reason == .notExecutable { entry.sha256 = try? PluginChecksum(ofFile: issue.path).hex }
      entries.append(entry)
    }
    for plugin in scan.plugins where !excluding.contains(plugin.path) {
      var entry = ListEntry(path: plugin.path, name: plugin.name)
      do {
        let digest = try PluginChecksum(ofFile: plugin.path)
        entry.sha256 = digest.hex
        let (description, cached) = await describer.describe(path: plugin.path, sha256: digest)
        entry.description = description
        entry.cached = cached
      } catch {
        entry.reason = "cannot be read: \(error.message)"
      }
      entries.append(entry)
    }
    try describer.save()
    return entries.sorted { $0.path < $1.path }
  }

  static func fileName(_ path: String) -> String {
    path.lastIndex(of: "/").map { String(path[path.index(after: $0)...]) } ?? path
  }
}

/// One file in `goplugin list`: its description flattened into the object.
struct ListEntry: Encodable {
  var path: String
  /// The plugin's name: its file name, under which the lock file knows it.
  var name: String
  var sha256: String?
  var description: PluginDescription?
  /// Why the file is not usable when it was not even launched.
  var reason: String?
  /// Whether the description came from the cache (nothing was launched).
  var cached: Bool?
  /// `matched`, `changed` or `unknown`, against the lock file, for every executable.
  var lock: String?

  var usable: Bool { self.description?.usable ?? false }

  init(path: String, name: String) {
    self.path = path
    self.name = name
  }

  private enum Key: String, CodingKey {
    case path, name, sha256, usable, reason, cached, lock
  }

  func encode(to encoder: any Encoder) throws {
    try self.description?.encode(to: encoder)
    var container = encoder.container(keyedBy: Key.self)
    try container.encode(self.path, forKey: .path)
    try container.encode(self.name, forKey: .name)
    try container.encode(self.usable, forKey: .usable)
    try container.encodeIfPresent(self.sha256, forKey: .sha256)
    try container.encodeIfPresent(self.reason ?? self.description?.reason, forKey: .reason)
    try container.encodeIfPresent(self.cached, forKey: .cached)
    try container.encodeIfPresent(self.lock, forKey: .lock)
  }

  /// The human form: one line.
  var text: String {
    var line = "\(self.path): "
    if let description, description.usable {
      line += "\(description.protocol ?? "?") v\(description.negotiatedVersion ?? 0)"
      if description.autoMTLS == true { line += ", AutoMTLS" }
      if let services = description.services, !services.isEmpty {
        line += ", services: " + services.joined(separator: " ")
      }
    } else {
      line += "not usable: \(self.reason ?? self.description?.reason ?? "?")"
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
      for index in entries.indices where entries[index].description != nil {
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
