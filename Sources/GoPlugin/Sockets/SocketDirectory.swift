import GoPluginPlatform
import GoPluginSpawn
import Synchronization
import SystemPackage

/// Where plugin sockets live, and the private directories made for them.
///
/// Every socket either side opens goes through here, so that the rules are written once: which
/// directory a plugin's sockets go to, who may enter a directory made for them, and what may be
/// removed when they are done with.
enum SocketDirectory {
  /// Where a plugin process puts its sockets when nobody named a directory: the host's
  /// `PLUGIN_UNIX_SOCKET_DIR`, else `TMPDIR`, else `/tmp` (spec §2.2).
  static func base(environment: [String: String]) -> String {
    Self.nonEmpty(environment[PluginEnvironment.unixSocketDirectory])
      ?? Self.nonEmpty(environment["TMPDIR"]) ?? "/tmp"
  }

  /// Where a host makes the private directories of the plugins it launches: `TMPDIR`, else
  /// `/tmp`. A host's own `PLUGIN_UNIX_SOCKET_DIR` is for the host as a plugin, not for its
  /// plugins.
  static func hostBase(environment: [String: String]) -> String {
    Self.nonEmpty(environment["TMPDIR"]) ?? "/tmp"
  }

  /// The first part of the name of a directory a host makes for a plugin it launches; the
  /// host's pid follows, so that a later host can tell the directories of a host that died.
  static let hostPrefix = "plugin-dir"

  /// Makes the private directory of one plugin a host launches (or reattaches to), named after
  /// this process. The first call in a process first removes, from `base`, the directories of
  /// this user's hosts that died without removing theirs: a host killed with SIGKILL takes its
  /// plugins with it but cannot clean up after them, and a Go plugin killed so leaves its
  /// socket. A plugin kept for another host (``PluginClientConfiguration/keepsPluginRunning``)
  /// gets a directory without a pid, which no later host removes.
  static func makeForPlugin(in base: String, keptForReattach: Bool, group: String?) throws(PluginError) -> String {
    if !keptForReattach {
      let first = Self.sweptBases.withLock { $0.insert(base).inserted }
      if first { Self.removeAbandoned(in: base) }
    }
    let prefix = keptForReattach ? "plugin-kept" : "\(Self.hostPrefix)-\(getpid())"
    return try Self.makePrivate(in: base, prefix: prefix, group: group)
  }

  private static let sweptBases = Mutex<Set<String>>([])

  /// Removes the `plugin-dir-<pid>-…` directories in `base` that belong to this user and to a
  /// process that no longer exists. A pid that was given to another process since keeps its
  /// directory until that process ends too; nothing else is touched.
  static func removeAbandoned(in base: String) {
    var abandoned: [String] = []
    if let directory = opendir(base) {
      defer { closedir(directory) }
      let own = getpid()
      while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
          String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        guard name.hasPrefix(Self.hostPrefix + "-") else { continue }
        let rest = name.dropFirst(Self.hostPrefix.count + 1)
        guard let dash = rest.firstIndex(of: "-"), let pid = Int32(rest[..<dash]), pid > 0, pid != own else { continue }
        guard kill(pid, 0) != 0, errno == ESRCH else { continue }
        abandoned.append("\(base)/\(name)")
      }
    }
    for path in abandoned where goplugin_is_own_directory(path) {
      Self.removeTree(path)
    }
  }

  /// Makes a new directory in `base` that only this user (and `group`, when given) can enter.
  ///
  /// - Parameter prefix: the first part of the directory's name; six random characters follow.
  static func makePrivate(in base: String, prefix: String, group: String? = nil) throws(PluginError) -> String {
    var template = Array("\(base)/\(prefix)-XXXXXX".utf8CString)
    let made = template.withUnsafeMutableBufferPointer { buffer in
      mkdtemp(buffer.baseAddress!).map { String(cString: $0) }
    }
    guard let directory = made else {
      let code = errno
      throw PluginError(
        code: .listenFailed,
        message: "could not create a socket directory in \(base): \(String(cString: strerror(code)))",
        cause: Errno(rawValue: code)
      )
    }
    if let group {
      let gid = try SocketListener.groupID(group)
      guard chown(directory, uid_t.max, gid) == 0, chmod(directory, 0o770) == 0 else {
        let reason = String(cString: strerror(errno))
        Self.removeTree(directory)
        throw PluginError(
          code: .invalidConfiguration, message: "could not give \(directory) to group \(group): \(reason)")
      }
    }
    return directory
  }

  /// Removes a directory this process made, with everything in it. Links are removed, never
  /// followed, so nothing outside the directory is touched.
  static func removeTree(_ path: String) {
    if let directory = opendir(path) {
      defer { closedir(directory) }
      while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
          String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        guard name != ".", name != ".." else { continue }
        let child = "\(path)/\(name)"
        // unlink removes a link itself, never its target; only a real directory refuses it
        // (EISDIR on Linux, EPERM elsewhere) and is emptied in turn.
        if unlink(child) != 0, errno == EISDIR || errno == EPERM {
          Self.removeTree(child)
        }
      }
    }
    rmdir(path)
  }

  private static func nonEmpty(_ value: String?) -> String? {
    guard let value, !value.isEmpty else { return nil }
    return value
  }
}
