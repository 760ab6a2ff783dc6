import GoPluginPlatform

/// Finds plugin executables in directories, as go-plugin's `Discover` does, and says why every
/// other file it saw is not one.
///
/// A scan lists each directory once (not recursively) and looks at every entry whose name
/// matches ``glob`` (a shell pattern, `fnmatch(3)`) and, when the host chose one, its
/// ``naming`` convention:
///
/// - names starting with a dot are skipped without a word: editors, and atomic replacements
///   such as ``PluginLockFile``'s, write such files beside the plugins;
/// - an executable file (or a link to one) is a ``DiscoveredPlugin``;
/// - a directory, a file nobody may execute, a link to nothing, or a directory that cannot be
///   read is a ``DiscoveryIssue`` with its reason. Nothing is fatal: one bad entry never hides
///   the others.
///
/// Whether an executable is really a plugin is only known by launching it; a scan launches
/// nothing.
///
/// ```swift
/// let discovery = PluginDiscovery(
///   directories: ["/usr/lib/myapp/plugins"],
///   naming: PluginNamingConvention(prefix: "myapp-plugin-")
/// )
/// let scan = discovery.scan()
/// for plugin in scan.plugins { print(plugin.name, plugin.version ?? "-", plugin.path) }
/// for issue in scan.issues { print("skipped \(issue.path): \(issue.reason)") }
/// ```
public struct PluginDiscovery: Sendable, Hashable {
  /// The directories scanned, in order.
  public var directories: [String]
  /// The shell pattern an entry's name must match, as go-plugin's `Discover(glob, dir)`.
  public var glob: String
  /// The host's naming convention, if any: entries whose names do not follow it are ignored
  /// (like names the glob does not match), and it gives each plugin its name and version.
  public var naming: PluginNamingConvention?

  public init(directories: [String], glob: String = "*", naming: PluginNamingConvention? = nil) {
    self.directories = directories
    self.glob = glob
    self.naming = naming
  }

  /// What one scan found.
  public struct Result: Sendable, Hashable {
    /// The plugin executables, sorted by path.
    public var plugins: [DiscoveredPlugin]
    /// The entries that are not plugin executables, with why, sorted by path.
    public var issues: [DiscoveryIssue]

    public init(plugins: [DiscoveredPlugin] = [], issues: [DiscoveryIssue] = []) {
      self.plugins = plugins
      self.issues = issues
    }
  }

  /// Lists the directories now. It reads the file system only: nothing is launched or opened.
  public func scan() -> Result {
    var result = Result()
    for directory in self.directories {
      self.scan(directory, into: &result)
    }
    result.plugins.sort { $0.path < $1.path }
    result.issues.sort { $0.path < $1.path }
    return result
  }

  private func scan(_ directory: String, into result: inout Result) {
    guard let handle = opendir(directory) else {
      result.issues.append(DiscoveryIssue(path: directory, reason: .unreadableDirectory(Self.errorText(errno))))
      return
    }
    defer { closedir(handle) }
    let base = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
    while let entry = readdir(handle) {
      let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
        String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
      }
      guard !name.hasPrefix("."), fnmatch(self.glob, name, 0) == 0 else { continue }
      var pluginName = name
      var version: String?
      if let naming = self.naming {
        guard let match = naming.match(name) else { continue }
        (pluginName, version) = match
      }
      let path = "\(base)/\(name)"
      if let reason = Self.problem(path) {
        result.issues.append(DiscoveryIssue(path: path, reason: reason))
      } else {
        result.plugins.append(DiscoveredPlugin(path: path, name: pluginName, version: version))
      }
    }
  }

  /// Why `path` cannot be run as a plugin, or `nil` when it can. Links are followed: a link to
  /// an executable is a plugin, as it would be for `exec`.
  static func problem(_ path: String) -> DiscoveryIssue.Reason? {
    // A directory passes access(X_OK) (it may be entered) but cannot be run.
    if let directory = opendir(path) {
      closedir(directory)
      return .directory
    }
    guard access(path, F_OK) == 0 else {
      // The entry was listed, so a missing target means a link to nothing (or a file removed
      // since; either way there is nothing to run).
      return errno == ENOENT ? .brokenSymbolicLink : .unreadable(Self.errorText(errno))
    }
    guard access(path, X_OK) == 0 else {
      return errno == EACCES ? .notExecutable : .unreadable(Self.errorText(errno))
    }
    return nil
  }

  private static func errorText(_ code: Int32) -> String {
    String(cString: strerror(code))
  }
}

/// A naming convention for plugin executables, which the host chooses: `<prefix><name>`, with
/// an optional version suffix `_v<version>` (as Terraform names its providers:
/// `terraform-provider-aws_v5.1.0`).
public struct PluginNamingConvention: Sendable, Hashable {
  /// What every plugin's file name starts with, such as `myapp-plugin-`.
  public var prefix: String
  /// Whether a version suffix `_v<version>` is split off the name (it then need not be there).
  public var versionSuffix: Bool

  public init(prefix: String, versionSuffix: Bool = true) {
    self.prefix = prefix
    self.versionSuffix = versionSuffix
  }

  /// The plugin's name and version, when `fileName` follows the convention. A version starts
  /// with a digit and holds letters, digits, `.`, `-` and `+` (`1.2.0`, `2.0.0-rc1`).
  public func match(_ fileName: String) -> (name: String, version: String?)? {
    guard fileName.hasPrefix(self.prefix) else { return nil }
    var name = Substring(fileName.dropFirst(self.prefix.count))
    var version: String?
    if self.versionSuffix, let marker = Self.lastVersionMarker(in: name) {
      let candidate = name[name.index(marker, offsetBy: 2)...]
      let allowed = { (c: Character) in c.isASCII && (c.isLetter || c.isNumber || "._-+".contains(c)) }
      if let first = candidate.first, first.isASCII, first.isNumber, candidate.allSatisfy(allowed) {
        version = String(candidate)
        name = name[..<marker]
      }
    }
    guard !name.isEmpty else { return nil }
    return (String(name), version)
  }

  /// Where the last `_v` in `name` starts.
  private static func lastVersionMarker(in name: Substring) -> Substring.Index? {
    var index = name.endIndex
    while index > name.startIndex {
      index = name.index(before: index)
      if name[index] == "_", name[name.index(after: index)...].hasPrefix("v") { return index }
    }
    return nil
  }
}

/// A plugin executable a scan found.
public struct DiscoveredPlugin: Sendable, Hashable {
  /// The executable's path: the scanned directory joined with the file's name.
  public var path: String
  /// The plugin's name: its file name, or what the naming convention says.
  public var name: String
  /// The version in its file name, when the naming convention has one and the name carries it.
  public var version: String?

  public init(path: String, name: String, version: String? = nil) {
    self.path = path
    self.name = name
    self.version = version
  }
}

/// An entry a scan found that is not a plugin executable.
public struct DiscoveryIssue: Sendable, Hashable, CustomStringConvertible {
  /// Why an entry is not a plugin executable.
  public enum Reason: Sendable, Hashable, CustomStringConvertible {
    /// A directory (or a link to one).
    case directory
    /// A file nobody may execute, such as a README or a plugin that lost its mode bits.
    case notExecutable
    /// A symbolic link whose target does not exist.
    case brokenSymbolicLink
    /// The file could not be looked at, with the system's reason.
    case unreadable(String)
    /// A scanned directory could not be listed, with the system's reason.
    case unreadableDirectory(String)

    public var description: String {
      switch self {
      case .directory: "is a directory"
      case .notExecutable: "is not executable"
      case .brokenSymbolicLink: "is a symbolic link to nothing"
      case .unreadable(let reason): "cannot be read: \(reason)"
      case .unreadableDirectory(let reason): "directory cannot be listed: \(reason)"
      }
    }
  }

  public var path: String
  public var reason: Reason

  public init(path: String, reason: Reason) {
    self.path = path
    self.reason = reason
  }

  public var description: String { "\(self.path) \(self.reason)" }
}
