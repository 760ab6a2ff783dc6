#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Finding the protoc to run. A path someone chose (the configuration, then `PROTOC_PATH`) must
/// be right: falling back silently would build with a protoc nobody asked for. Without one, the
/// usual places are searched: `PATH`, then where Debian, a source install and Homebrew put it,
/// for builds whose `PATH` is minimal (Xcode's, a CI runner's).
enum Protoc {
  static let installHint =
    "install protoc: `apt-get install protobuf-compiler` (Debian, Ubuntu) or `brew install protobuf` (macOS), "
    + "or name one with PROTOC_PATH or \"protocPath\" in \(Configuration.fileName)"

  /// - Parameters:
  ///   - protocPathVariable: `PROTOC_PATH` of the build, empty when unset.
  ///   - searchPath: `PATH` of the build.
  static func locate(
    configuration: Configuration, targetDirectory: URL, protocPathVariable: String, searchPath: String
  ) throws -> URL {
    if let chosen = configuration.protocPath {
      let url = URL(filePath: chosen, relativeTo: targetDirectory).standardizedFileURL
      return try self.checked(url, namedBy: "\"protocPath\" in \(targetDirectory.path)/\(Configuration.fileName)")
    }
    if !protocPathVariable.isEmpty {
      return try self.checked(URL(filePath: protocPathVariable), namedBy: "PROTOC_PATH")
    }
    let searchPath = searchPath.split(separator: ":").map(String.init)
    let usual = ["/usr/bin", "/usr/local/bin", "/opt/homebrew/bin"]
    for directory in searchPath + usual where !directory.isEmpty {
      let candidate = URL(filePath: directory).appending(path: "protoc")
      if FileManager.default.isExecutableFile(atPath: candidate.path) {
        return candidate
      }
    }
    throw GeneratorError(
      "GoPluginProtoGenerator needs protoc, and found none in PATH, /usr/bin, /usr/local/bin or /opt/homebrew/bin: "
        + self.installHint
    )
  }

  private static func checked(_ url: URL, namedBy setting: String) throws -> URL {
    guard FileManager.default.isExecutableFile(atPath: url.path) else {
      throw GeneratorError(
        "GoPluginProtoGenerator: protoc \(url.path), named by \(setting), is not an executable file; "
          + self.installHint
      )
    }
    return url
  }
}

/// The folders protoc resolves `import` lines from.
enum ImportPaths {
  /// Where Debian's `libprotobuf-dev` puts the well-known types (google/protobuf/*.proto).
  static let systemInclude = URL(filePath: "/usr/include")

  /// The target's folder first (generated file names are relative to it), then the configured
  /// folders, then the system's well-known types when they are installed.
  static func resolve(configuration: Configuration, targetDirectory: URL) -> [URL] {
    var paths = [targetDirectory]
    paths += configuration.importPaths.map { URL(filePath: $0, relativeTo: targetDirectory).standardizedFileURL }
    let wellKnown = self.systemInclude.appending(path: "google/protobuf")
    if FileManager.default.fileExists(atPath: wellKnown.path) {
      paths.append(self.systemInclude)
    }
    return paths
  }

  /// Fails before protoc runs when a file imports a well-known type that no import path holds:
  /// protoc would only say "File not found", and not that a package is missing.
  static func checkWellKnownTypes(of protos: [URL], importPaths: [URL], protoc: URL) throws {
    // protoc also looks beside itself, in ../include, as Homebrew and release archives lay out.
    let searched =
      importPaths + [protoc.resolvingSymlinksInPath().deletingLastPathComponent().appending(path: "../include")]
    for proto in protos {
      guard let text = try? String(contentsOf: proto, encoding: .utf8) else { continue }
      for imported in self.wellKnownImports(in: text) {
        let found = searched.contains { FileManager.default.fileExists(atPath: $0.appending(path: imported).path) }
        guard found else {
          throw GeneratorError(
            "\(proto.lastPathComponent) imports \(imported), a well-known type that none of the import paths has: "
              + "install them with `apt-get install libprotobuf-dev` (Debian, Ubuntu; protobuf-compiler does not "
              + "include them) or `brew install protobuf` (macOS), or add their folder to \"importPaths\" in "
              + Configuration.fileName
          )
        }
      }
    }
  }

  private static func wellKnownImports(in text: String) -> [String] {
    text.split(separator: "\n").compactMap { line in
      let words = line.drop(while: \.isWhitespace)
      guard words.hasPrefix("import "), let open = words.firstIndex(of: "\"") else { return nil }
      let rest = words[words.index(after: open)...]
      guard let close = rest.firstIndex(of: "\"") else { return nil }
      let path = String(rest[..<close])
      return path.hasPrefix("google/protobuf/") ? path : nil
    }
  }
}
