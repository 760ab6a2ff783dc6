import GoPluginPlatform
import SystemPackage

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The program a host launches as a plugin.
public struct PluginCommand: Sendable, Hashable {
  /// A path to the executable, or a bare name looked up in `PATH`.
  public var executable: String
  /// The arguments after the executable.
  public var arguments: [String]
  /// Variables set for the plugin on top of the inherited environment. go-plugin's own
  /// variables are set after these and win.
  public var environment: [String: String]
  /// The plugin's working directory; the host's when `nil`.
  public var workingDirectory: String?

  /// A command from an executable and its arguments.
  public init(
    _ executable: String,
    arguments: [String] = [],
    environment: [String: String] = [:],
    workingDirectory: String? = nil
  ) {
    self.executable = executable
    self.arguments = arguments
    self.environment = environment
    self.workingDirectory = workingDirectory
  }

  /// Splits a command line into words as a POSIX shell would for plain words, single and
  /// double quotes and backslashes; it expands nothing. Useful for a `--plugin "cmd args"`
  /// option.
  public init(commandLine: String) throws(PluginError) {
    var words: [String] = []
    var word = ""
    var inWord = false
    var quote: Character?
    var escaped = false
    for character in commandLine {
      if escaped {
        word.append(character)
        escaped = false
        continue
      }
      switch (quote, character) {
      case (nil, "\\"), ("\"", "\\"):
        escaped = true
        inWord = true
      case (nil, "'"), (nil, "\""):
        quote = character
        inWord = true
      case (let open?, let close) where open == close:
        quote = nil
      case (nil, let blank) where blank.isWhitespace:
        if inWord { words.append(word) }
        word = ""
        inWord = false
      default:
        word.append(character)
        inWord = true
      }
    }
    guard quote == nil, !escaped else {
      throw PluginError(
        code: .invalidConfiguration, message: "unterminated quote or escape in plugin command line: \(commandLine)")
    }
    if inWord { words.append(word) }
    guard let first = words.first else {
      throw PluginError(code: .invalidConfiguration, message: "empty plugin command line")
    }
    self.init(first, arguments: Array(words.dropFirst()))
  }
}

extension PluginCommand {
  /// The directory of the running program, with symbolic links resolved where the platform
  /// says where the program really is.
  public static var programDirectory: String {
    let program =
      (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    return URL(fileURLWithPath: program).deletingLastPathComponent().path
  }

  /// The executable `name` in the running program's directory: how a host finds the plugins
  /// that ship with it.
  public static func besideThisProgram(_ name: String, arguments: [String] = []) -> PluginCommand {
    PluginCommand(URL(fileURLWithPath: Self.programDirectory).appendingPathComponent(name).path, arguments: arguments)
  }
}

extension PluginCommand {
  /// The path a launch would run: ``executable`` itself when it contains a `/`, otherwise the
  /// first match in the plugin's `PATH` (its ``environment``'s, else this process's), as the
  /// plugin's own environment would find it.
  ///
  /// A host calls it before launching; a command-line tool can call it to refuse a bad
  /// `--plugin` as a usage error before anything starts.
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/launchFailed`` if there is no such file,
  ///   it is a directory, or this process may not run it.
  public func resolvedExecutable() throws(PluginError) -> String {
    if self.executable.contains("/") {
      try Self.checkRunnable(self.executable)
      return self.executable
    }
    let searchPath = self.environment["PATH"] ?? ProcessInfo.processInfo.environment["PATH"]
    for directory in (searchPath ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") {
      let candidate = "\(directory)/\(self.executable)"
      if (try? Self.checkRunnable(candidate)) != nil { return candidate }
    }
    throw PluginError(
      code: .launchFailed,
      message: "\(self.executable) was not found in PATH",
      pluginPath: self.executable
    )
  }

  private static func checkRunnable(_ path: String) throws(PluginError) {
    guard access(path, X_OK) == 0 else {
      let code = errno
      throw PluginError(
        code: .launchFailed,
        message: "\(path) is not an executable file: \(String(cString: strerror(code)))",
        pluginPath: path,
        cause: Errno(rawValue: code)
      )
    }
    // A directory passes access(X_OK) but cannot be run.
    if let directory = opendir(path) {
      closedir(directory)
      throw PluginError(
        code: .launchFailed,
        message: "\(path) is not an executable file: it is a directory",
        pluginPath: path,
        cause: Errno.isDirectory
      )
    }
  }
}
