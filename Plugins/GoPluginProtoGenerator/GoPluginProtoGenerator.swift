// Turns the .proto files of a target into Swift at build time, with the protoc already installed
// on the machine. grpc-swift-protobuf's own build plugin compiles protoc from C++ first, which
// costs a cold build about a quarter of an hour on two cores; a plugin interface should cost a
// .proto file, not that.
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
    let configurationFile = root.appending(path: Configuration.fileName)
    let configuration: Configuration
    let protoc: URL
    let importPaths: [URL]
    do {
      configuration = try Configuration.load(from: configurationFile)
      let environment = ProcessInfo.processInfo.environment
      protoc = try Protoc.locate(configuration: configuration, targetDirectory: root, environment: environment)
      importPaths = ImportPaths.resolve(configuration: configuration, targetDirectory: root)
      try ImportPaths.checkWellKnownTypes(of: protos, importPaths: importPaths, protoc: protoc)
    } catch let error as GeneratorError {
      return try Self.failing(with: error, protos: protos, root: root, output: context.pluginWorkDirectoryURL)
    }

    let generators = Generators(
      swift: try context.tool(named: "protoc-gen-swift").url,
      grpc: try context.tool(named: "protoc-gen-grpc-swift-2").url
    )
    // A change to any proto of the target may change what another one imports, and a change
    // to the configuration changes every file: each command depends on all of them.
    var dependencies = protos + [generators.swift, generators.grpc, protoc]
    if FileManager.default.fileExists(atPath: configurationFile.path) {
      dependencies.append(configurationFile)
    }
    return try protos.map { proto in
      try Self.command(
        for: proto, root: root, configuration: configuration, protoc: protoc, importPaths: importPaths,
        generators: generators, dependencies: dependencies, output: context.pluginWorkDirectoryURL
      )
    }
  }

  /// Commands that fail with `error` when the target's files are built. SwiftPM runs build
  /// plugins for every target of a root package whatever is being built, so throwing here
  /// would stop `swift build --product kv-plugin` on a machine without protoc, although nothing
  /// it builds needs one; a command fails only a build that needs the generated files.
  private static func failing(with error: GeneratorError, protos: [URL], root: URL, output: URL) throws -> [Command] {
    try protos.map { proto in
      let relative = try ImportPaths.path(of: proto, under: root)
      let stem = Self.outputStem(of: relative)
      return .buildCommand(
        displayName: "Generating Swift for \(relative)",
        executable: URL(filePath: "/bin/sh"),
        arguments: ["-c", "printf 'error: %s\\n' \"$1\" >&2; exit 1", "sh", error.description],
        inputFiles: [proto],
        outputFiles: [output.appending(path: "\(stem).pb.swift"), output.appending(path: "\(stem).grpc.swift")]
      )
    }
  }

  /// What the generated files of the file at `relative` are called, before `.pb.swift` and
  /// `.grpc.swift`: protoc's PathToUnderscores naming, a/b/c.proto becoming a_b_c, so that two
  /// files called c.proto in different folders of one target do not both become c.pb.swift.
  private static func outputStem(of relative: String) -> String {
    String(relative.dropLast(".proto".count)).replacing("/", with: "_")
  }

  /// One protoc run for one file, writing its messages and, unless both are turned off, its
  /// gRPC client and server.
  private static func command(
    for proto: URL, root: URL, configuration: Configuration, protoc: URL, importPaths: [URL],
    generators: Generators, dependencies: [URL], output: URL
  ) throws -> Command {
    let relative = try ImportPaths.path(of: proto, under: root)
    let stem = Self.outputStem(of: relative)
    let visibility = configuration.visibility.protocOption
    let accessLevelOnImports = configuration.useAccessLevelOnImports ?? true
    let common = [
      "Visibility=\(visibility)", "FileNaming=PathToUnderscores", "UseAccessLevelOnImports=\(accessLevelOnImports)",
    ]

    var arguments = importPaths.map { "--proto_path=\($0.path)" }
    arguments += ["--plugin=protoc-gen-swift=\(generators.swift.path)"]
    arguments += common.map { "--swift_opt=\($0)" }
    arguments += ["--swift_out=\(output.path)"]
    var outputs = [output.appending(path: "\(stem).pb.swift")]

    let clients = configuration.clients ?? true
    let servers = configuration.servers ?? true
    if clients || servers {
      arguments += ["--plugin=protoc-gen-grpc-swift-2=\(generators.grpc.path)"]
      arguments += (common + ["Client=\(clients)", "Server=\(servers)"]).map { "--grpc-swift-2_opt=\($0)" }
      arguments += ["--grpc-swift-2_out=\(output.path)"]
      outputs.append(output.appending(path: "\(stem).grpc.swift"))
    }
    arguments.append(relative)

    return .buildCommand(
      displayName: "Generating Swift for \(relative) with \(protoc.path)",
      executable: protoc,
      arguments: arguments,
      inputFiles: dependencies,
      outputFiles: outputs
    )
  }
}

private struct Generators {
  var swift: URL
  var grpc: URL
}

/// Why no code could be generated, in words that say what to do about it.
struct GeneratorError: Error, CustomStringConvertible {
  var description: String

  init(_ description: String) {
    self.description = description
  }
}
