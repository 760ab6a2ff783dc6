import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Descriptions by file digest, so that a file described once is never launched again to be
/// described while its bytes do not change: in memory, and in a JSON file when given a path
/// (which ``save()`` replaces atomically).
///
/// A file that is not a plugin is remembered too, with its reason: its bytes decide what it
/// does when launched. The key is the digest and what else decides what a launch shows (the
/// handshake and versions offered, AutoMTLS), so describers launching differently share a cache
/// without mixing their answers.
///
/// One cache may be shared by describers running at once. Two processes writing the same file
/// are not coordinated with: the last to save wins, and either's content is a valid cache.
public final class PluginDescriptionCache: Sendable {
  /// The JSON file; `nil` for a cache in memory only.
  public let path: String?

  private struct State {
    var descriptions: [String: PluginDescription]
    var changed: Bool
  }

  /// The file's form. A version other than the current one is ignored (described again).
  private struct Document: Codable {
    var version: Int
    /// `<sha256 hex> <launch key>` → description.
    var descriptions: [String: PluginDescription]
  }

  private static let version = 2
  /// Far above any real cache (a description is well under a kilobyte).
  private static let sizeLimit = 256 << 20

  private let state: Mutex<State>

  /// A cache in memory, read from `path` first when given one.
  ///
  /// A missing file is an empty cache. An unreadable or foreign one is also empty, and is
  /// replaced at the next ``save()``: a cache is only a cache, never a reason to fail.
  public init(path: String? = nil) {
    self.path = path
    var state = State(descriptions: [:], changed: false)
    if let path {
      do {
        if let bytes = try TrustFiles.readSmallFileIfPresent(path, limit: Self.sizeLimit, what: "description cache") {
          let document = try JSONDecoder().decode(Document.self, from: Data(bytes))
          if document.version == Self.version {
            state.descriptions = document.descriptions
          } else {
            state.changed = true
          }
        }
      } catch {
        state.changed = true
      }
    }
    self.state = Mutex(state)
  }

  /// How many descriptions the cache holds.
  public var count: Int {
    self.state.withLock { $0.descriptions.count }
  }

  /// Forgets every description, so that every file is launched again (`goplugin list --refresh`).
  public func removeAll() {
    self.state.withLock { state in
      state.changed = state.changed || !state.descriptions.isEmpty
      state.descriptions.removeAll()
    }
  }

  func description(forKey key: String) -> PluginDescription? {
    self.state.withLock { $0.descriptions[key] }
  }

  func store(_ description: PluginDescription, forKey key: String) {
    var stored = description
    stored.cached = false
    self.state.withLock { state in
      state.descriptions[key] = stored
      state.changed = true
    }
  }

  /// Writes the file, if there is one and anything changed since it was read or last saved:
  /// a temporary file beside it (its name starts with a dot, which discovery skips), then a
  /// rename, so that a reader never sees half of it.
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/invalidConfiguration`` when the file or
  ///   its directory cannot be written.
  public func save() throws(PluginError) {
    guard let path else { return }
    let snapshot: [String: PluginDescription]? = self.state.withLock { state in
      state.changed ? state.descriptions : nil
    }
    guard let snapshot else { return }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let bytes: [UInt8]
    do {
      bytes = Array(try encoder.encode(Document(version: Self.version, descriptions: snapshot)))
    } catch {
      throw PluginError(code: .invalidConfiguration, message: "cannot encode the description cache \(path): \(error)")
    }
    if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
      let directory = String(path[..<slash])
      do {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
      } catch {
        throw PluginError(
          code: .invalidConfiguration, message: "cannot create the description cache's directory \(directory): \(error)"
        )
      }
    }
    try TrustFiles.writeAtomically(bytes, to: path, what: "description cache")
    self.state.withLock { state in
      // What was added while writing is written next time.
      if state.descriptions == snapshot { state.changed = false }
    }
  }
}
