#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The optional `go-plugin-proto.json` beside a target's sources. Every key may be left out, and
/// so may the file: a target whose types stay inside its module needs none.
///
/// ```json
/// {
///   "visibility": "public",
///   "protocPath": "/opt/protobuf/bin/protoc",
///   "importPaths": ["../../Protos"],
///   "clients": true,
///   "servers": true,
///   "directCalls": true,
///   "useAccessLevelOnImports": true
/// }
/// ```
struct Configuration: Decodable {
  static let fileName = "go-plugin-proto.json"

  /// Who may use the generated types. `internal` unless the target is an interface module
  /// that a host and a plugin both import, which needs `public` (or `package`, within one
  /// package).
  var visibility: Visibility = .internal
  /// A protoc to use instead of the one found on the machine; relative to the target's folder.
  var protocPath: String?
  /// More folders to resolve `import` lines from, relative to the target's folder; the target's
  /// folder itself always comes first.
  var importPaths: [String] = []
  /// Whether to generate the host's client stub and the plugin's service protocols. A target
  /// for one side only can drop the other.
  var clients: Bool?
  var servers: Bool?
  /// Whether to generate the direct call path too (protoc-gen-swift-go-plugin): a
  /// `PluginClient` per service and the methods a plugin's server answers itself. Its code
  /// imports GoPlugin, so a target that does not depend on GoPlugin sets this to false.
  var directCalls: Bool?
  /// Whether generated imports carry an access level (`public import SwiftProtobuf`), which
  /// targets built with `InternalImportsByDefault` need for public generated types.
  var useAccessLevelOnImports: Bool?

  enum Visibility: String, Decodable {
    case `internal`, `public`, `package`

    /// The spelling protoc-gen-swift and protoc-gen-grpc-swift-2 accept.
    var protocOption: String {
      switch self {
      case .internal: "Internal"
      case .public: "Public"
      case .package: "Package"
      }
    }
  }

  private enum CodingKeys: String, CodingKey {
    case visibility, protocPath, importPaths, clients, servers, directCalls, useAccessLevelOnImports
  }

  init() {}

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    if let raw = try container.decodeIfPresent(String.self, forKey: .visibility) {
      guard let visibility = Visibility(rawValue: raw.lowercased()) else {
        throw GeneratorError(
          "\(Self.fileName): visibility \"\(raw)\" is not one of \"internal\", \"public\" or \"package\"")
      }
      self.visibility = visibility
    }
    self.protocPath = try container.decodeIfPresent(String.self, forKey: .protocPath)
    self.importPaths = try container.decodeIfPresent([String].self, forKey: .importPaths) ?? []
    self.clients = try container.decodeIfPresent(Bool.self, forKey: .clients)
    self.servers = try container.decodeIfPresent(Bool.self, forKey: .servers)
    self.directCalls = try container.decodeIfPresent(Bool.self, forKey: .directCalls)
    self.useAccessLevelOnImports = try container.decodeIfPresent(Bool.self, forKey: .useAccessLevelOnImports)
  }

  /// The configuration in `file`, or the defaults when there is no such file.
  static func load(from file: URL) throws -> Configuration {
    guard FileManager.default.fileExists(atPath: file.path) else { return Configuration() }
    do {
      return try JSONDecoder().decode(Configuration.self, from: Data(contentsOf: file))
    } catch let error as GeneratorError {
      throw error
    } catch {
      throw GeneratorError("\(file.path) is not a valid \(Self.fileName): \(error)")
    }
  }
}
