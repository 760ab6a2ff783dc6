// Turns the .proto files of a target into Swift at build time, with the protoc already installed
// on the machine. grpc-swift-protobuf's own build plugin compiles protoc from C++ first, which
// costs a cold build about a quarter of an hour on two cores; a plugin interface should cost a
// .proto file, not that.
//
// This plugin only names the files: SwiftPM reuses a plugin's commands until the target's list
// of files, the plugin or the environment changes, so nothing here may depend on what a file
// says or on what is installed. Reading go-plugin-proto.json, finding protoc and checking
// imports happen when the command runs (goplugin-protoc), which the build reruns whenever a
// proto file or the configuration changes, and after every failure.
import Foundation
import PackagePlugin

@main
struct GoPluginProtoGenerator: BuildToolPlugin {
  func createBuildCommands(context: PluginContext, target: any Target) async throws -> [Command] {
    guard let target = target as? SwiftSourceModuleTarget else {
      throw GeneratorError("GoPluginProtoGenerator applies to Swift targets only, and \(target.name) is not one")
    }
    let protos = target.sourceFiles(withSuffix: ".proto").map(\.url).sorted { $0.path < $1.path }
    guard !protos.isEmpty else { return [] }

    let root = target.directoryURL.standardizedFileURL
    let driver = try context.tool(named: "goplugin-protoc").url
    let swiftGenerator = try context.tool(named: "protoc-gen-swift").url
    let grpcGenerator = try context.tool(named: "protoc-gen-grpc-swift-2").url
    let goPluginGenerator = try context.tool(named: "protoc-gen-swift-go-plugin").url
    let configurationFile = root.appending(path: "go-plugin-proto.json")
    // Any proto of the target may be imported by another, and the configuration applies to
    // all of them: each command depends on every one.
    var inputs = protos + [driver, swiftGenerator, grpcGenerator, goPluginGenerator]
    if FileManager.default.fileExists(atPath: configurationFile.path) {
      inputs.append(configurationFile)
    }
    // Where to look for protoc, as this build's environment says; the environment is part of
    // what SwiftPM keys its reuse of these commands on, so a change reaches the next build.
    let environment = ProcessInfo.processInfo.environment
    let output = context.pluginWorkDirectoryURL

    return try protos.map { proto in
      let relative = try Self.path(of: proto, under: root)
      // protoc's PathToUnderscores naming: a/b/c.proto becomes a_b_c, so that two files called
      // c.proto in different folders of one target do not both become c.pb.swift.
      let stem = String(relative.dropLast(".proto".count)).replacing("/", with: "_")
      return .buildCommand(
        displayName: "Generating Swift for \(relative)",
        executable: driver,
        arguments: [
          "--target-directory", root.path, "--proto", relative, "--output", output.path,
          "--protoc-gen-swift", swiftGenerator.path, "--protoc-gen-grpc-swift-2", grpcGenerator.path,
          "--protoc-gen-swift-go-plugin", goPluginGenerator.path,
          "--protoc-path-variable", environment["PROTOC_PATH"] ?? "", "--search-path", environment["PATH"] ?? "",
        ],
        inputFiles: inputs,
        outputFiles: [
          output.appending(path: "\(stem).pb.swift"), output.appending(path: "\(stem).grpc.swift"),
          output.appending(path: "\(stem).goplugin.swift"),
        ]
      )
    }
  }

  /// `file`'s path relative to `root`, which is how protoc names it, and so how the generated
  /// files are named.
  private static func path(of file: URL, under root: URL) throws -> String {
    let filePath = file.standardizedFileURL.path
    let rootPath = root.path.hasSuffix("/") ? root.path : root.path + "/"
    guard filePath.hasPrefix(rootPath) else {
      throw GeneratorError("\(filePath) is not inside its target's folder \(rootPath)")
    }
    return String(filePath.dropFirst(rootPath.count))
  }
}

struct GeneratorError: Error, CustomStringConvertible {
  var description: String

  init(_ description: String) {
    self.description = description
  }
}
