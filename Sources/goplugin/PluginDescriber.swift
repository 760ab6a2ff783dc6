import GoPlugin
import Logging

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What one launch of a plugin showed, or why it is not a usable plugin: what `goplugin list`
/// prints for a file, and what the description cache keeps.
struct PluginDescription: Codable, Hashable {
  /// Whether the plugin completed its handshake and its health check said SERVING.
  var usable: Bool
  /// Why it is not usable.
  var reason: String?
  /// `grpc` or `netrpc`.
  var `protocol`: String?
  var coreProtocolVersion: Int?
  /// The application protocol version the plugin chose among those offered.
  var negotiatedVersion: Int?
  /// Whether the plugin sent a certificate in its handshake (it speaks AutoMTLS; only asked
  /// with `--auto-mtls`).
  var autoMTLS: Bool?
  /// Whether the connection is multiplexed (yamux).
  var multiplexed: Bool?
  /// `available` when the services came from gRPC server reflection.
  var reflection: String?
  /// The services reflection lists; else what the health service knows; for net/rpc, its
  /// control services.
  var services: [String]?
  var health: InspectionReport.Health?

  static func unusable(_ reason: String) -> PluginDescription {
    PluginDescription(usable: false, reason: reason)
  }

  init(usable: Bool, reason: String? = nil) {
    self.usable = usable
    self.reason = reason
  }

  init(_ report: InspectionReport) {
    let serving = report.health.status == "SERVING"
    self.usable = serving
    if !serving {
      self.reason =
        "health check of \(report.health.service) failed: \(report.health.status ?? report.health.error ?? "?")"
    }
    self.protocol = report.protocol
    self.coreProtocolVersion = report.coreProtocolVersion
    self.negotiatedVersion = report.negotiatedVersion
    self.autoMTLS = report.tls.serverCertificate != nil
    self.multiplexed = report.multiplexed
    self.reflection = report.reflection
    self.services = report.services
    self.health = report.health
  }
}

/// Describes plugin files by launching each once (`goplugin inspect`'s ``Inspector``), and
/// remembers the descriptions in a JSON file keyed by the file's SHA-256 and the launch options,
/// so that an unchanged file is never launched twice.
///
/// A file that is not a plugin is remembered too, with its reason: its bytes decide what it
/// does when launched. `--refresh` forgets what is remembered.
final class PluginDescriber {
  /// How every file is launched: its handshake and offered versions are part of the cache key.
  struct Launch {
    var handshake: HandshakeConfiguration
    var versions: [Int]
    var timeout: Double
    var autoMTLS: Bool
    var verbose: Bool

    /// What, beside the file's bytes, decides what a launch shows.
    var cacheKey: String {
      "\(self.handshake.magicCookieKey)=\(self.handshake.magicCookieValue);protocol=\(self.handshake.protocolVersion);"
        + "versions=\(self.versions.map(String.init).joined(separator: ","));autoMTLS=\(self.autoMTLS)"
    }
  }

  private struct CacheFile: Codable {
    var version: Int
    /// `<sha256 hex> <launch key>` → description.
    var descriptions: [String: PluginDescription]
  }

  let launch: Launch
  let cachePath: String?
  private var cache: [String: PluginDescription]
  private var changed = false

  init(launch: Launch, cachePath: String?, refresh: Bool) throws(CLIError) {
    self.launch = launch
    self.cachePath = cachePath
    self.cache = [:]
    guard let cachePath, !refresh, FileManager.default.fileExists(atPath: cachePath) else { return }
    do {
      let data = try Data(contentsOf: URL(filePath: cachePath))
      let file = try JSONDecoder().decode(CacheFile.self, from: data)
      if file.version == 1 { self.cache = file.descriptions }
    } catch {
      // A cache is only a cache: an unreadable one is replaced, not obeyed.
      self.changed = true
    }
  }

  /// The description of the plugin at `path`, whose digest is `sha256`, and whether it came
  /// from the cache.
  func describe(path: String, sha256: PluginChecksum) async -> (PluginDescription, cached: Bool) {
    let key = "\(sha256.hex) \(self.launch.cacheKey)"
    if let known = self.cache[key] { return (known, true) }
    let description = await self.launchAndDescribe(path)
    self.cache[key] = description
    self.changed = true
    return (description, false)
  }

  private func launchAndDescribe(_ path: String) async -> PluginDescription {
    let recorder = PluginLogRecorder()
    let inspector = Inspector(
      configuration: Inspect.inspectionConfiguration(
        command: PluginCommand(path),
        handshake: self.launch.handshake,
        versions: self.launch.versions,
        timeout: self.launch.timeout,
        autoMTLS: self.launch.autoMTLS
      ),
      callTimeout: .milliseconds(Int64(self.launch.timeout * 1000)),
      recorder: recorder,
      logger: recorder.logger(displayLevel: self.launch.verbose ? .debug : .critical)
    )
    do {
      return PluginDescription(try await inspector.inspect())
    } catch let error as CLIError {
      // One line: the failure and, where there is one, its usual cause.
      var reason = Self.withoutPid(String(error.message.prefix { $0 != "\n" }))
      if let code = error.pluginErrorCode { reason = "\(code): \(reason)" }
      if let hint = error.hint { reason += " (\(hint))" }
      return .unusable(reason)
    } catch {
      return .unusable("\(error)")
    }
  }

  /// `text` without the `, pid N` of the process that failed: the reason is cached, and that
  /// process is long gone when it is read again.
  static func withoutPid(_ text: String) -> String {
    guard let marker = text.firstRange(of: ", pid ") else { return text }
    let rest = text[marker.upperBound...]
    let digits = rest.prefix { $0.isASCII && $0.isNumber }
    guard !digits.isEmpty else { return text }
    return String(text[..<marker.lowerBound]) + String(rest.dropFirst(digits.count))
  }

  /// Writes the cache file if anything was added.
  func save() throws(CLIError) {
    guard self.changed, let cachePath = self.cachePath else { return }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    do {
      let directory = URL(filePath: cachePath).deletingLastPathComponent()
      try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
      let data = try encoder.encode(CacheFile(version: 1, descriptions: self.cache))
      try data.write(to: URL(filePath: cachePath), options: .atomic)
    } catch {
      throw CLIError(code: .unreadable, message: "cannot write the description cache \(cachePath): \(error)")
    }
  }

  /// `$XDG_CACHE_HOME/goplugin/descriptions.json`, else under `~/.cache`.
  static var defaultCachePath: String? {
    let environment = ProcessInfo.processInfo.environment
    if let base = environment["XDG_CACHE_HOME"], !base.isEmpty { return base + "/goplugin/descriptions.json" }
    if let home = environment["HOME"], !home.isEmpty { return home + "/.cache/goplugin/descriptions.json" }
    return nil
  }
}

extension PluginChecksum {
  /// The digest in lowercase hex, without the algorithm.
  var hex: String {
    String(self.description.drop { $0 != ":" }.dropFirst())
  }
}
