/// A failure the CLI reports to a person (on stderr) or a script (as JSON); exit status 1.
struct CLIError: Error, Encodable, CustomStringConvertible {
  /// What failed, for a script to switch on.
  struct Code: RawRepresentable, Hashable, Sendable, Encodable {
    var rawValue: String

    /// The file to hash does not exist.
    static let fileNotFound = Code(rawValue: "fileNotFound")
    /// The file to hash is a directory.
    static let isDirectory = Code(rawValue: "isDirectory")
    /// The file to hash could not be opened or read.
    static let unreadable = Code(rawValue: "unreadable")
    /// The plugin could not be launched or did not complete its handshake.
    static let startFailed = Code(rawValue: "startFailed")
    /// The plugin started but could not be talked to.
    static let inspectionFailed = Code(rawValue: "inspectionFailed")
  }

  var code: Code
  var message: String
  /// The `PluginError` code behind a failure to start, such as `exitedBeforeHandshake`.
  var pluginErrorCode: String?
  /// What the plugin wrote to stderr before it failed, oldest first.
  var pluginStderr: [String]?
  /// What to check next, when there is an obvious suspect.
  var hint: String?

  var description: String {
    var text = self.message
    if let pluginStderr, !pluginStderr.isEmpty {
      text += "\nplugin stderr:\n" + pluginStderr.map { "  " + $0 }.joined(separator: "\n")
    }
    if let hint { text += "\nhint: " + hint }
    return text
  }
}
