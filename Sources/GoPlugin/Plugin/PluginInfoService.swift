import GRPCCore
import GoPluginProtos
import SwiftProtobuf

extension PluginServeConfiguration {
  /// What a plugin tells hosts about itself, beyond what its handshake shows: served by every
  /// Swift gRPC plugin through swift-go-plugin's info service, so that a host (or
  /// `goplugin list`) can show a person what a directory of plugins holds without knowing each
  /// plugin's interface.
  ///
  /// ```swift
  /// var configuration = PluginServeConfiguration(handshake: .kv, plugins: ["kv": KVPlugin(serving: store)])
  /// configuration.info = .init(version: "1.4.0", description: "A key-value store on local files.")
  /// ```
  public struct Info: Sendable, Hashable {
    /// The plugin's name; by default its executable's file name, which is also how plugin
    /// directories and lock files name it.
    public var name: String
    /// The plugin's own version (not a protocol version), such as `1.4.0`.
    public var version: String?
    /// One or a few sentences for a person choosing plugins.
    public var description: String?
    /// Free-form facts the plugin's author chooses to publish (a homepage, a licence…).
    public var metadata: [String: String]

    public init(
      name: String? = nil,
      version: String? = nil,
      description: String? = nil,
      metadata: [String: String] = [:]
    ) {
      self.name = name ?? Self.executableName
      self.version = version
      self.description = description
      self.metadata = metadata
    }

    /// The file name this process was started from.
    static var executableName: String {
      let path = CommandLine.arguments.first ?? ""
      let name = path.split(separator: "/").last.map(String.init) ?? path
      return name.isEmpty ? "plugin" : name
    }
  }
}

/// `goplugin.info.v1.PluginInfo`: swift-go-plugin's own addition to go-plugin's protocol. The
/// answer is fixed for the life of the process, so it is built once.
struct InfoService: Goplugin_Info_V1_PluginInfo.SimpleServiceProtocol {
  let response: Goplugin_Info_V1_DescribeResponse

  init(_ info: PluginServeConfiguration.Info, versionedPlugins: [Int: PluginSet]) {
    self.response = Goplugin_Info_V1_DescribeResponse.with { response in
      response.name = info.name
      response.version = info.version ?? ""
      response.description_p = info.description ?? ""
      response.metadata = info.metadata
      response.versions = versionedPlugins.sorted { $0.key < $1.key }.map { version, plugins in
        Goplugin_Info_V1_OfferedVersion.with {
          $0.version = Int64(version)
          $0.protocol = plugins.servedProtocol.rawValue
          $0.plugins = plugins.plugins.keys.sorted()
        }
      }
      response.build = Goplugin_Info_V1_BuildInfo.with {
        $0.libraryVersion = GoPluginRuntime.libraryVersion
        $0.swiftVersion = BuildInfo.swiftVersion ?? ""
        $0.os = BuildInfo.operatingSystem
        $0.arch = BuildInfo.architecture
      }
    }
  }

  func describe(
    request: Goplugin_Info_V1_DescribeRequest,
    context: ServerContext
  ) async throws -> Goplugin_Info_V1_DescribeResponse {
    self.response
  }
}

/// What the plugin was built with and for, known when it was compiled.
enum BuildInfo {
  /// The compiler's language version, to the minor version, as far as this source knows them.
  static var swiftVersion: String? {
    #if compiler(>=6.4)
    return "6.4 or later"
    #elseif compiler(>=6.3)
    return "6.3"
    #elseif compiler(>=6.2)
    return "6.2"
    #elseif compiler(>=6.1)
    return "6.1"
    #elseif compiler(>=6.0)
    return "6.0"
    #else
    return nil
    #endif
  }

  /// Named as Go's GOOS names them, which go-plugin's users know.
  static var operatingSystem: String {
    #if os(Linux)
    return "linux"
    #elseif os(macOS)
    return "darwin"
    #elseif os(Windows)
    return "windows"
    #elseif os(FreeBSD)
    return "freebsd"
    #elseif os(OpenBSD)
    return "openbsd"
    #elseif os(Android)
    return "android"
    #else
    return "unknown"
    #endif
  }

  static var architecture: String {
    #if arch(x86_64)
    return "x86_64"
    #elseif arch(arm64)
    return "arm64"
    #elseif arch(i386)
    return "i386"
    #elseif arch(arm)
    return "arm"
    #elseif arch(riscv64)
    return "riscv64"
    #elseif arch(powerpc64le)
    return "powerpc64le"
    #elseif arch(s390x)
    return "s390x"
    #else
    return "unknown"
    #endif
  }
}
