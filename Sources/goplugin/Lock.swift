import ArgumentParser
import GoPlugin

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct Lock: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Write the lock file of the usable plugins in a directory: plugin name → SHA-256.",
    discussion: """
      Every executable in DIR is described as `goplugin list` does (cached by digest); the \
      usable ones are locked under their file names, in PluginLockFile's format, which a host's \
      PluginTrust reads. Plugins locked before but no longer usable or present are removed.

        goplugin lock --cookie BASIC_PLUGIN=hello ./plugins    # writes ./plugins/goplugin.lock
      """
  )

  /// The lock file `goplugin lock DIR` writes, and `goplugin list DIR` compares with.
  static let defaultName = "goplugin.lock"

  /// The files goplugin keeps in a plugin directory, which are not plugins.
  static func ownFiles(_ directories: [String]) -> Set<String> {
    Set(directories.map { ($0.hasSuffix("/") ? String($0.dropLast()) : $0) + "/" + Self.defaultName })
  }

  @OptionGroup var describe: DescribeOptions

  @Option(help: ArgumentHelp("The lock file to write (default: DIR/goplugin.lock).", valueName: "FILE"))
  var lock: String?

  func validate() throws {
    guard self.describe.directories.count == 1 else {
      throw ValidationError("goplugin lock takes one directory (got \(self.describe.directories.count)).")
    }
  }

  func run() async throws {
    let directory = self.describe.directories[0]
    let path = self.lock ?? Self.ownFiles([directory]).first!
    let entries = try await self.describe.describeAll(excluding: [path])
    do {
      let lockFile = try PluginLockFile(path: path)
      var usable: Set<String> = []
      for entry in entries where entry.usable {
        guard let hex = entry.sha256 else { continue }
        try lockFile.record(entry.name, digest: try PluginChecksum(.sha256, hex: hex))
        usable.insert(entry.name)
        print("locked \(entry.name) sha256:\(hex)")
      }
      for name in lockFile.digests.keys.sorted() where !usable.contains(name) {
        try lockFile.remove(name)
        print("removed \(name)")
      }
    } catch {
      throw CLIError(code: .unreadable, message: error.message)
    }
    for entry in entries where !entry.usable {
      print("skipped \(entry.path): \(entry.reason ?? "?")")
    }
  }
}
