import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The digests a host has accepted for its plugins, kept in a file: plugin name → SHA-256.
///
/// The file is small JSON, meant to be read and reviewed (and committed, for a host whose
/// plugins ship with it):
///
/// ```json
/// {
///   "plugins" : {
///     "kv" : {
///       "sha256" : "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
///     }
///   },
///   "version" : 1
/// }
/// ```
///
/// `version` is 1; names are the hosts' plugin names (``PluginTrust`` uses the executable's file
/// name unless told otherwise); digests are lowercase hex. The file is replaced atomically (a
/// temporary file beside it, then a rename), so a reader never sees half of it. A missing file
/// is an empty lock.
///
/// The lock is read when it is opened and kept in memory; ``reload()`` reads it again, for a
/// host that lets another program (`goplugin lock`) update it. Writers in other processes are
/// not coordinated with: the last one to rename wins.
public final class PluginLockFile: Sendable {
  /// What to do with a plugin the lock does not name. A plugin whose digest differs from the
  /// one locked is always refused, until the host records the new digest.
  public enum Policy: Sendable, Hashable {
    /// Refuse it: only locked plugins run.
    case refuse
    /// Record its digest and accept it; from then on, it must keep that digest.
    case trustOnFirstUse
  }

  /// How a plugin passed the lock.
  public enum Outcome: Sendable, Hashable {
    /// The lock names it with this digest.
    case matched
    /// The lock did not name it; its digest is now recorded (``Policy/trustOnFirstUse``).
    case recorded
  }

  /// Where the lock is kept.
  public let path: String
  /// What happens to plugins the lock does not name.
  public let policy: Policy
  private let entries: Mutex<[String: PluginChecksum]>

  /// Opens the lock file at `path` (which need not exist yet).
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/invalidConfiguration`` when the file
  ///   exists but cannot be read or is not a lock file.
  public init(path: String, policy: Policy = .refuse) throws(PluginError) {
    self.path = path
    self.policy = policy
    self.entries = Mutex(try Self.read(path))
  }

  /// Every locked plugin and its digest.
  public var digests: [String: PluginChecksum] {
    self.entries.withLock { $0 }
  }

  /// The digest locked for `name`, if any.
  public func digest(for name: String) -> PluginChecksum? {
    self.entries.withLock { $0[name] }
  }

  /// Locks `name` to `digest` (a SHA-256), replacing what was locked: how a host accepts an
  /// upgraded plugin. The file is written before this returns.
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/invalidConfiguration`` when the digest is
  ///   not SHA-256 or the file cannot be written (the lock in memory is then unchanged).
  public func record(_ name: String, digest: PluginChecksum) throws(PluginError) {
    guard digest.algorithm == .sha256 else {
      throw PluginError(
        code: .invalidConfiguration, message: "lock file \(self.path) holds SHA-256 digests, not \(digest)")
    }
    try self.update { $0[name] = digest }
  }

  /// Forgets `name`: with ``Policy/refuse`` it will not run again until recorded.
  public func remove(_ name: String) throws(PluginError) {
    try self.update { $0[name] = nil }
  }

  /// Reads the file again, replacing what is in memory.
  public func reload() throws(PluginError) {
    let fresh = try Self.read(self.path)
    self.entries.withLock { $0 = fresh }
  }

  /// Checks a plugin's digest against the lock, recording it under ``Policy/trustOnFirstUse``.
  ///
  /// - Parameters:
  ///   - name: the plugin's name in the lock.
  ///   - digest: its SHA-256, computed from the descriptor that will be executed.
  ///   - pluginPath: the file, for the error.
  /// - Throws: ``PluginError`` with ``PluginError/Code/untrustedPlugin`` and a
  ///   ``PluginTrustRefusal`` cause (``PluginTrustRefusal/changed(name:lockFile:expected:found:)``
  ///   or ``PluginTrustRefusal/notLocked(name:lockFile:found:)``) when it is refused.
  public func check(name: String, digest: PluginChecksum, pluginPath: String) throws(PluginError) -> Outcome {
    let refusal: PluginTrustRefusal
    switch self.digest(for: name) {
    case let expected? where expected.matches(digest):
      return .matched
    case let expected?:
      refusal = .changed(name: name, lockFile: self.path, expected: expected, found: digest)
    case nil where self.policy == .trustOnFirstUse:
      // Recorded under the lock, so that two first uses at once cannot record two digests.
      var raced: PluginChecksum?
      try self.update { entries in
        if let existing = entries[name] {
          raced = existing
        } else {
          entries[name] = digest
        }
      }
      guard let raced else { return .recorded }
      if raced.matches(digest) { return .matched }
      refusal = .changed(name: name, lockFile: self.path, expected: raced, found: digest)
    case nil:
      refusal = .notLocked(name: name, lockFile: self.path, found: digest)
    }
    throw refusal.error(pluginPath: pluginPath)
  }

  /// Changes the entries and writes the file, keeping the old entries if the write fails.
  private func update(_ change: (inout [String: PluginChecksum]) -> Void) throws(PluginError) {
    try self.entries.withLock { (entries: inout [String: PluginChecksum]) throws(PluginError) in
      var changed = entries
      change(&changed)
      if changed == entries { return }
      try TrustFiles.writeAtomically(try Self.encode(changed), to: self.path, what: "lock file")
      entries = changed
    }
  }

  private struct Document: Codable {
    struct Plugin: Codable {
      var sha256: String
    }

    var version: Int
    var plugins: [String: Plugin]
  }

  private static func read(_ path: String) throws(PluginError) -> [String: PluginChecksum] {
    guard let bytes = try TrustFiles.readSmallFileIfPresent(path, limit: 64 << 20, what: "lock file") else {
      return [:]
    }
    let document: Document
    do {
      document = try JSONDecoder().decode(Document.self, from: Data(bytes))
    } catch {
      throw PluginError(code: .invalidConfiguration, message: "lock file \(path) is not a plugin lock file: \(error)")
    }
    guard document.version == 1 else {
      throw PluginError(
        code: .invalidConfiguration, message: "lock file \(path) has version \(document.version), not 1")
    }
    var entries: [String: PluginChecksum] = [:]
    for (name, plugin) in document.plugins {
      do {
        entries[name] = try PluginChecksum(.sha256, hex: plugin.sha256)
      } catch {
        throw PluginError(
          code: .invalidConfiguration, message: "lock file \(path), plugin \"\(name)\": \(error.message)")
      }
    }
    return entries
  }

  private static func encode(_ entries: [String: PluginChecksum]) throws(PluginError) -> [UInt8] {
    let document = Document(
      version: 1,
      plugins: entries.mapValues { Document.Plugin(sha256: String($0.description.dropFirst("sha256:".count))) }
    )
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    do {
      return Array(try encoder.encode(document)) + [UInt8(ascii: "\n")]
    } catch {
      throw PluginError(code: .invalidConfiguration, message: "cannot encode lock file: \(error)")
    }
  }
}
