import ArgumentParser
import GoPlugin
import GoPluginPlatform

struct Checksum: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Print a plugin executable's digest, as a host's PluginChecksum takes it.",
    discussion: """
      A host that sets `configuration.checksum = try PluginChecksum(.sha256, hex: "…")` refuses \
      to run the executable unless its digest is that one.
      """
  )

  /// The hash functions `PluginChecksum` knows.
  enum Algorithm: String, CaseIterable, ExpressibleByArgument {
    case sha256, sha384, sha512

    var pluginChecksumAlgorithm: PluginChecksum.Algorithm {
      switch self {
      case .sha256: .sha256
      case .sha384: .sha384
      case .sha512: .sha512
      }
    }
  }

  /// What `--json` prints.
  struct Report: Encodable {
    var file: String
    var algorithm: String
    var hex: String
    /// `PluginChecksum`'s description: `ALGORITHM:HEX`.
    var checksum: String
    /// The Swift expression that pins a host to this file.
    var swift: String
  }

  @Argument(help: "The plugin executable (any file) to hash.", completion: .file())
  var file: String

  @Option(help: "The hash function.")
  var algorithm: Algorithm = .sha256

  @OptionGroup var output: OutputOptions

  func run() async throws {
    try await self.output.reportingFailures {
      let digest = try Self.digest(ofFile: self.file, algorithm: self.algorithm)
      let hex = digest.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
      // Built through the initialiser a host uses, so what is printed is what it accepts.
      let checksum = try PluginChecksum(self.algorithm.pluginChecksumAlgorithm, hex: hex)
      let report = Report(
        file: self.file,
        algorithm: self.algorithm.rawValue,
        hex: hex,
        checksum: checksum.description,
        swift: "try PluginChecksum(.\(self.algorithm.rawValue), hex: \"\(hex)\")"
      )
      try self.output.emit(report) {
        """
        file:      \(report.file)
        checksum:  \(report.checksum)
        swift:     configuration.checksum = \(report.swift)
        """
      }
    }
  }

  /// The digest of the regular file at `path`, read once from start to end.
  static func digest(ofFile path: String, algorithm: Algorithm) throws(CLIError) -> [UInt8] {
    var info = stat()
    guard stat(path, &info) == 0 else {
      let code = errno
      if code == ENOENT || code == ENOTDIR {
        throw CLIError(code: .fileNotFound, message: "no such file: \(path)")
      }
      throw CLIError(code: .unreadable, message: "cannot read \(path): \(String(cString: strerror(code)))")
    }
    if info.st_mode & S_IFMT == S_IFDIR {
      throw CLIError(code: .isDirectory, message: "\(path) is a directory, not a plugin executable")
    }
    do {
      return try PluginChecksum(ofFile: path, algorithm: algorithm.pluginChecksumAlgorithm).digest
    } catch {
      throw CLIError(code: .unreadable, message: error.message)
    }
  }
}
