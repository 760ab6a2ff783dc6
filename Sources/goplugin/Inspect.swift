import ArgumentParser
import GoPlugin
import Logging

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct Inspect: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Launch a go-plugin plugin, report its handshake, services and health, and stop it.",
    discussion: """
      The plugin command comes last, after goplugin's own options (a `--` before it is \
      optional); everything after it is passed to the plugin. A single argument with spaces \
      that names no file is split like a shell command line.

        goplugin inspect --cookie BASIC_PLUGIN=hello ./kv-plugin
        goplugin inspect --cookie K=V --versions 1,2 --json -- ./plugin -flag
      """
  )

  @Option(help: ArgumentHelp("The magic cookie the plugin checks, as KEY=VALUE.", valueName: "KEY=VALUE"))
  var cookie: String?

  @Option(
    help: ArgumentHelp("The magic cookie's key (with --magic-cookie-value, instead of --cookie).", valueName: "KEY"))
  var magicCookieKey: String?

  @Option(help: ArgumentHelp("The magic cookie's value.", valueName: "VALUE"))
  var magicCookieValue: String?

  @Option(
    help:
      "The handshake's protocol version (go-plugin's HandshakeConfig.ProtocolVersion); offered when --versions is not given."
  )
  var protocolVersion: Int = 1

  @Option(
    help: ArgumentHelp("The application protocol versions to offer, comma-separated.", valueName: "1,2,3"),
    transform: Inspect.parseVersions
  )
  var versions: [Int]?

  @Flag(name: .customLong("auto-mtls"), help: "Secure the connection with go-plugin's automatic mutual TLS.")
  var autoMTLS = false

  @Option(
    help: ArgumentHelp("How long to wait for the handshake, and for each call to the plugin.", valueName: "SECONDS"))
  var timeout: Double = 10

  @Flag(name: .shortAndLong, help: "Print the plugin's and the host's debug log to stderr.")
  var verbose = false

  @OptionGroup var output: OutputOptions

  @Argument(
    parsing: .captureForPassthrough,
    help: ArgumentHelp("The plugin's executable and its arguments.", valueName: "command")
  )
  var command: [String] = []

  /// The plugin command without the `--` that may separate it from goplugin's options.
  private var commandWords: [String] {
    self.command.first == "--" ? Array(self.command.dropFirst()) : self.command
  }

  func validate() throws {
    // Parsing stops at the first word it does not know, which then starts the plugin command;
    // one that looks like an option is a mistake (or a request for help) unless `--` came first.
    if let first = self.command.first, first != "--", first.hasPrefix("-") {
      if ["-h", "--help", "-help"].contains(first) { throw CleanExit.helpRequest(Self.self) }
      throw ValidationError(
        "Unknown option '\(first)'. goplugin's options come before the plugin command; put `--` before a command that starts with '-'."
      )
    }
    _ = try self.handshake()
    guard !self.commandWords.isEmpty else {
      throw ValidationError("Missing the plugin command, e.g. `goplugin inspect --cookie KEY=VALUE ./my-plugin`.")
    }
    guard self.protocolVersion > 0 else {
      throw ValidationError("--protocol-version must be a positive integer (got \(self.protocolVersion)).")
    }
    guard self.timeout.isFinite, self.timeout > 0, self.timeout <= 86_400 else {
      throw ValidationError("--timeout must be a number of seconds greater than 0 (got \(self.timeout)).")
    }
  }

  func run() async throws {
    try await self.output.reportingFailures {
      let recorder = PluginLogRecorder()
      let inspector = Inspector(
        describer: try self.describer(logger: recorder.logger(displayLevel: self.verbose ? .debug : .warning)),
        command: try self.pluginCommand(),
        recorder: recorder
      )
      let report = try await inspector.inspect()
      try self.output.emit(report) { report.text }
    }
  }

  /// `inspect` launches the plugin as `list` does: through the library's describer.
  func describer(logger: Logger) throws -> PluginDescriber {
    let handshake = try self.handshake()
    return PluginDescriber(
      handshake: handshake,
      versions: self.versions ?? [handshake.protocolVersion],
      timeout: .milliseconds(Int64(self.timeout * 1000)),
      autoMTLS: self.autoMTLS,
      logger: logger
    )
  }

  private func pluginCommand() throws -> PluginCommand {
    let words = self.commandWords
    if words.count == 1, words[0].contains(where: \.isWhitespace), !FileManager.default.fileExists(atPath: words[0]) {
      do {
        return try PluginCommand(commandLine: words[0])
      } catch {
        throw ValidationError(error.message)
      }
    }
    return PluginCommand(words[0], arguments: Array(words.dropFirst()))
  }

  private func handshake() throws -> HandshakeConfiguration {
    let key: String
    let value: String
    switch (self.cookie, self.magicCookieKey, self.magicCookieValue) {
    case (let cookie?, nil, nil):
      (key, value) = try Self.splitCookie(cookie)
    case (nil, let cookieKey?, let cookieValue?):
      key = cookieKey
      value = cookieValue
    case (nil, nil, nil):
      throw ValidationError(
        "Missing the magic cookie: --cookie KEY=VALUE (the plugin's HandshakeConfig.MagicCookieKey and MagicCookieValue)."
      )
    case (nil, _, _):
      throw ValidationError("--magic-cookie-key and --magic-cookie-value go together.")
    case (_?, _, _):
      throw ValidationError(
        "Give the cookie either as --cookie KEY=VALUE or as --magic-cookie-key and --magic-cookie-value, not both.")
    }
    return try Self.handshake(key: key, value: value, protocolVersion: self.protocolVersion)
  }

  /// `--cookie KEY=VALUE`'s two halves.
  static func splitCookie(_ cookie: String) throws -> (key: String, value: String) {
    guard let equals = cookie.firstIndex(of: "="), equals != cookie.startIndex else {
      throw ValidationError("--cookie takes KEY=VALUE, such as BASIC_PLUGIN=hello (got \"\(cookie)\").")
    }
    return (String(cookie[..<equals]), String(cookie[cookie.index(after: equals)...]))
  }

  static func handshake(key: String, value: String, protocolVersion: Int) throws -> HandshakeConfiguration {
    guard !key.isEmpty, !value.isEmpty else {
      throw ValidationError("The magic cookie needs a key and a value, neither empty.")
    }
    guard !key.contains("=") else {
      throw ValidationError("The magic cookie's key is an environment variable name and cannot contain \"=\".")
    }
    return HandshakeConfiguration(protocolVersion: protocolVersion, magicCookieKey: key, magicCookieValue: value)
  }

  static func parseVersions(_ text: String) throws -> [Int] {
    // Blanks around a version are forgiven, newlines are not: a list of versions is one line.
    let isBlank = { (character: Character) in character.isWhitespace && !character.isNewline }
    let fields = text.split(separator: ",", omittingEmptySubsequences: false).map { field in
      var field = field.drop(while: isBlank)
      while let last = field.last, isBlank(last) { field = field.dropLast() }
      return field
    }
    var versions: [Int] = []
    for field in fields {
      guard let version = Int(field), version > 0 else {
        throw ValidationError(
          "versions are positive integers separated by commas, such as 1,2,3; \"\(field)\" is not one")
      }
      if !versions.contains(version) { versions.append(version) }
    }
    return versions
  }
}
