import GRPCCore
import GoPluginProtos
public import Logging

/// Describes plugin files by launching each once: the handshake, the health check, the info
/// service Swift plugins serve, and gRPC reflection where a plugin serves it; then the plugin is
/// stopped and reaped, whatever happened.
///
/// A launch is the only way to know what a file is, and it costs a process start; with a
/// ``PluginDescriptionCache``, a file whose digest was described before (by this process or,
/// through the cache file, an earlier one) is not launched again.
///
/// ```swift
/// let cache = PluginDescriptionCache(path: cacheDirectory + "/descriptions.json")
/// let describer = PluginDescriber(handshake: .kv, versions: [1, 2], cache: cache)
/// let scan = PluginDiscovery(directories: ["/usr/lib/myapp/plugins"]).scan()
/// for description in await describer.describe(scan) {
///   print(description.path, description.usable ? description.info?.version ?? "-" : description.reason ?? "?")
/// }
/// try cache.save()
/// ```
///
/// Describing never fails: a file that cannot be read, does not start, or is not healthy is
/// described as not usable, with the reason.
public struct PluginDescriber: Sendable {
  /// The handshake every file is launched with.
  public var handshake: HandshakeConfiguration
  /// The application protocol versions offered; the plugin chooses the highest it knows.
  public var versions: [Int]
  /// How long a plugin may take to start, and each call to it.
  public var timeout: Duration
  /// Whether plugins are launched with AutoMTLS, so that ``PluginDescription/autoMTLS`` tells
  /// which speak it.
  public var autoMTLS: Bool
  /// Where descriptions are remembered; `nil` launches every file every time.
  public var cache: PluginDescriptionCache?
  /// How many plugins a directory's description launches at once: their start-up is mostly
  /// waiting, so a few at a time describe a directory several times faster.
  public var concurrentLaunches: Int
  /// Receives the host's log and each plugin's stderr, as a ``PluginClient``'s logger does.
  public var logger: Logger

  /// - Parameters:
  ///   - versions: the application protocol versions to offer; the handshake's protocol
  ///     version when `nil`.
  ///   - logger: by default, nothing is logged: a description's reason says what failed.
  public init(
    handshake: HandshakeConfiguration,
    versions: [Int]? = nil,
    timeout: Duration = .seconds(10),
    autoMTLS: Bool = false,
    cache: PluginDescriptionCache? = nil,
    concurrentLaunches: Int = 4,
    logger: Logger? = nil
  ) {
    self.handshake = handshake
    self.versions = versions ?? [handshake.protocolVersion]
    self.timeout = timeout
    self.autoMTLS = autoMTLS
    self.cache = cache
    self.concurrentLaunches = concurrentLaunches
    self.logger = logger ?? Logger(label: "goplugin.describer") { _ in SwiftLogNoOpLogHandler() }
  }

  /// What, beside a file's bytes, decides what a launch shows: part of the cache key.
  var launchKey: String {
    "\(self.handshake.magicCookieKey)=\(self.handshake.magicCookieValue);protocol=\(self.handshake.protocolVersion);"
      + "versions=\(self.versions.map(String.init).joined(separator: ","));autoMTLS=\(self.autoMTLS)"
  }

  /// Every file a scan saw, described: the plugins (launched unless cached, a few at a time)
  /// and the entries that are not plugins, with the scan's reason. Sorted by path.
  public func describe(_ scan: PluginDiscovery.Result) async -> [PluginDescription] {
    var descriptions = scan.issues.map { issue in
      var description = PluginDescription(path: issue.path, unusable: issue.reason.description)
      // A file that lost its mode bits still has bytes worth naming.
      if issue.reason == .notExecutable { description.sha256 = try? PluginChecksum(ofFile: issue.path).hex }
      return description
    }
    let paths = scan.plugins.map(\.path)
    await withTaskGroup(of: PluginDescription.self) { group in
      var next = 0
      for _ in 0..<min(max(self.concurrentLaunches, 1), paths.count) {
        let path = paths[next]
        next += 1
        group.addTask { await self.describe(path: path) }
      }
      while let description = await group.next() {
        descriptions.append(description)
        if next < paths.count {
          let path = paths[next]
          next += 1
          group.addTask { await self.describe(path: path) }
        }
      }
    }
    return descriptions.sorted { $0.path < $1.path }
  }

  /// The plugin a scan found, described.
  public func describe(_ plugin: DiscoveredPlugin) async -> PluginDescription {
    await self.describe(path: plugin.path)
  }

  /// The executable at `path`, described: from the cache when its digest was described
  /// before, else by launching it once.
  ///
  /// The launch is pinned to the digest just read (``PluginClientConfiguration/checksum``), so
  /// a file replaced in between is refused rather than described under the old digest.
  public func describe(path: String) async -> PluginDescription {
    let digest: PluginChecksum
    do {
      digest = try PluginChecksum(ofFile: path)
    } catch {
      return PluginDescription(path: path, unusable: "cannot be read: \(error.message)")
    }
    let key = "\(digest.hex) \(self.launchKey)"
    if var known = self.cache?.description(forKey: key) {
      known.path = path
      known.sha256 = digest.hex
      known.cached = true
      return known
    }
    let description: PluginDescription
    do {
      let inspection = try await self.inspect(PluginCommand(path), checksum: digest)
      description = PluginDescription(path: path, sha256: digest.hex, inspection: inspection)
    } catch {
      // The file changed between the digest and the launch: what it is now is not known.
      if error.code == .checksumMismatch {
        return PluginDescription(path: path, sha256: digest.hex, unusable: "changed while it was described")
      }
      // Not a plugin, or a broken one: its bytes decide that, so it is remembered as well.
      description = PluginDescription(path: path, sha256: digest.hex, unusable: Self.reason(error))
    }
    self.cache?.store(description, forKey: key)
    return description
  }

  /// Launches `command` once, asks it everything a description holds, times each step, and
  /// stops it. Nothing is cached.
  ///
  /// - Throws: ``PluginError``: the plugin's failure to start (as ``PluginClient/info``
  ///   throws it), or ``PluginError/Code/unavailable`` when it started but could not be talked
  ///   to. The process is stopped and reaped either way.
  public func inspect(_ command: PluginCommand) async throws(PluginError) -> PluginInspection {
    try await self.inspect(command, checksum: nil)
  }

  private func inspect(
    _ command: PluginCommand, checksum: PluginChecksum?
  ) async throws(PluginError)
    -> PluginInspection
  {
    let configuration = self.clientConfiguration(command, checksum: checksum)
    let client = PluginClient(configuration: configuration, logger: self.logger)
    let clock = ContinuousClock()
    do {
      return try await withThrowingTaskGroup(of: Void.self) { group in
        let launchedAt = clock.now
        group.addTask { try await client.run() }
        // A failure to start: `run()` fails with the same error, which the group drops.
        let info = try await client.info
        let startDuration = clock.now - launchedAt

        let findings: Findings
        do {
          findings = try await self.probe(client, info: info)
        } catch {
          await client.kill()
          throw PluginError(
            code: .unavailable, message: "could not inspect the plugin: \(error)", pluginPath: command.executable,
            pid: info.pid, cause: error)
        }
        let stoppingAt = clock.now
        await client.kill()
        let shutdownDuration = clock.now - stoppingAt
        let exit = await client.exit
        try await group.waitForAll()

        let line = HandshakeLine(
          appVersion: info.negotiatedVersion, network: info.network, address: info.address, protocol: info.protocol,
          serverCertificate: info.serverCertificate)
        return PluginInspection(
          plugin: info,
          coreProtocolVersion: line.coreVersion,
          offeredVersions: configuration.versionedPlugins.keys.sorted(),
          health: findings.health,
          services: findings.services,
          reflection: findings.reflection,
          reflectionError: findings.reflectionError,
          info: findings.info,
          startDuration: startDuration,
          shutdownDuration: shutdownDuration,
          exit: exit
        )
      }
    } catch let error as PluginError {
      throw error
    } catch {
      throw PluginError(code: .unavailable, message: "could not inspect the plugin: \(error)", cause: error)
    }
  }

  /// How a plugin is launched to be described: every protocol allowed (a legacy net/rpc
  /// plugin is worth describing too), no terminal to read from.
  func clientConfiguration(_ command: PluginCommand, checksum: PluginChecksum?) -> PluginClientConfiguration {
    var configuration = PluginClientConfiguration(
      command: command,
      handshake: self.handshake,
      versionedPlugins: Dictionary(
        self.versions.map { ($0, PluginSet([DescriptionProbe.name: DescriptionProbe()])) },
        uniquingKeysWith: { first, _ in first }
      )
    )
    configuration.startTimeout = self.timeout
    configuration.standardInput = .none
    configuration.allowedProtocols = [.grpc, .netRPC]
    configuration.checksum = checksum
    if self.autoMTLS { configuration.tls = .autoMTLS }
    return configuration
  }

  /// One line: the failure's code and message, without the pid of a process that is gone by
  /// the time a cached reason is read, and the usual cause where there is one.
  static func reason(_ error: PluginError) -> String {
    var reason = "\(error.code): " + Self.withoutPid(String(error.message.prefix { $0 != "\n" }))
    switch error.code {
    case .exitedBeforeHandshake:
      reason += " (a plugin that exits before its handshake usually rejected the magic cookie or could not run)"
    case .incompatibleAppVersion:
      reason += " (it offers none of the versions the host offered)"
    case .startTimeout:
      reason += " (is it a go-plugin plugin? a slow one may need a longer timeout)"
    case .malformedHandshake:
      reason += " (the plugin printed something else than a handshake first on stdout)"
    case .invalidServerCertificate:
      reason += " (the plugin does not do AutoMTLS)"
    default:
      break
    }
    return reason
  }

  /// `text` without the `, pid N` of the process that failed.
  static func withoutPid(_ text: String) -> String {
    guard let marker = text.firstRange(of: ", pid ") else { return text }
    let rest = text[marker.upperBound...]
    let digits = rest.prefix { $0.isASCII && $0.isNumber }
    guard !digits.isEmpty else { return text }
    return String(text[..<marker.lowerBound]) + String(rest.dropFirst(digits.count))
  }
}

extension PluginChecksum {
  /// The digest in lowercase hex, without the algorithm: how descriptions and lock files
  /// write it.
  public var hex: String {
    String(self.description.drop { $0 != ":" }.dropFirst())
  }
}
