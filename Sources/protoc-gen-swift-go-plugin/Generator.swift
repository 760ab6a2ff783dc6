// protoc-gen-swift-go-plugin: the third generator GoPluginProtoGenerator runs, beside
// protoc-gen-swift and protoc-gen-grpc-swift-2, whose output it builds on. For each service it
// writes `<Service>.PluginClient`, a client with the generated client's methods whose unary
// calls go through a plugin connection's `PluginCaller`, and a default
// `registerDirectMethods(with:)` on the service protocol, which a service type adopts by
// conforming to `PluginDirectService`. Options, as protoc passes them
// (`--swift-go-plugin_opt=Visibility=Public,...`): Visibility, FileNaming, UseAccessLevelOnImports,
// Client and Server, as protoc-gen-grpc-swift-2 takes them.
import SwiftProtobuf
import SwiftProtobufPluginLibrary

@main
struct GoPluginGenerator: CodeGenerator {
  var supportedFeatures: [Google_Protobuf_Compiler_CodeGeneratorResponse.Feature] {
    [.proto3Optional, .supportsEditions]
  }

  var supportedEditionRange: ClosedRange<Google_Protobuf_Edition> {
    Google_Protobuf_Edition.proto2...Google_Protobuf_Edition.edition2024
  }

  var projectURL: String? { "https://github.com/swift-go-plugin/swift-go-plugin" }

  func generate(
    files: [FileDescriptor],
    parameter: any CodeGeneratorParameter,
    protoCompilerContext: any ProtoCompilerContext,
    generatorOutputs: any GeneratorOutputs
  ) throws {
    let options = try Options(parameter.parsedPairs)
    for file in files {
      let source = SourceFile(file: file, options: options).render()
      try generatorOutputs.add(fileName: options.fileNaming.outputName(for: file.name), contents: source)
    }
  }
}

struct Options {
  enum FileNaming: String {
    case fullPath = "FullPath"
    case pathToUnderscores = "PathToUnderscores"
    case dropPath = "DropPath"

    /// `a/b/c.proto` as `a/b/c`, `a_b_c` or `c`, then `.goplugin.swift`: the names the other
    /// two generators give their files, with a part of our own.
    func outputName(for protoName: String) -> String {
      var stem = Substring(protoName)
      if stem.hasSuffix(".proto") { stem = stem.dropLast(".proto".count) }
      let name: String =
        switch self {
        case .fullPath: String(stem)
        case .pathToUnderscores: String(stem).replacing("/", with: "_")
        case .dropPath: String(stem.split(separator: "/").last ?? stem)
        }
      return name + ".goplugin.swift"
    }
  }

  var visibility = "internal"
  var fileNaming = FileNaming.fullPath
  var accessLevelOnImports = false
  var clients = true
  var servers = true

  init(_ pairs: [(key: String, value: String)]) throws {
    for (key, value) in pairs {
      switch key {
      case "Visibility":
        guard ["internal", "public", "package"].contains(value.lowercased()) else {
          throw GeneratorError("Visibility=\(value): expected Internal, Public or Package")
        }
        self.visibility = value.lowercased()
      case "FileNaming":
        guard let naming = FileNaming(rawValue: value) else {
          throw GeneratorError("FileNaming=\(value): expected FullPath, PathToUnderscores or DropPath")
        }
        self.fileNaming = naming
      case "UseAccessLevelOnImports": self.accessLevelOnImports = try Self.bool(key, value)
      case "Client": self.clients = try Self.bool(key, value)
      case "Server": self.servers = try Self.bool(key, value)
      default: throw GeneratorError("unknown option \(key)")
      }
    }
  }

  private static func bool(_ key: String, _ value: String) throws -> Bool {
    switch value.lowercased() {
    case "true": return true
    case "false": return false
    default: throw GeneratorError("\(key)=\(value): expected true or false")
    }
  }
}

struct GeneratorError: Error, CustomStringConvertible {
  var description: String

  init(_ description: String) {
    self.description = "protoc-gen-swift-go-plugin: " + description
  }
}

/// The names protoc-gen-grpc-swift-2 gives a service and its methods, which the code here must
/// refer to exactly.
struct ServiceNames {
  let namespace: String
  let methods: [Method]

  struct Method {
    let typeName: String
    let functionName: String
    let input: String
    let output: String
    let clientStreaming: Bool
    let serverStreaming: Bool

    var isUnary: Bool { !self.clientStreaming && !self.serverStreaming }
  }

  init(_ service: ServiceDescriptor, file: FileDescriptor, namer: SwiftProtobufNamer) {
    self.namespace = namer.typePrefix(forFile: file) + service.name
    self.methods = service.methods.map { method in
      Method(
        typeName: method.name,
        functionName: Self.lowerCamelCase(method.name),
        input: namer.fullName(message: method.inputType),
        output: namer.fullName(message: method.outputType),
        clientStreaming: method.clientStreaming,
        serverStreaming: method.serverStreaming
      )
    }
  }

  /// The method's function name: its leading capitals lowered, except the one that starts the
  /// next word ("GetKV" is getKV, "URLFetch" is urlFetch, "HTTP" is http).
  static func lowerCamelCase(_ name: String) -> String {
    guard let firstLower = name.firstIndex(where: \.isLowercase) else { return name.lowercased() }
    if firstLower == name.startIndex { return name }
    let lastCapital = name.index(before: firstLower)
    if lastCapital == name.startIndex { return name[..<firstLower].lowercased() + name[firstLower...] }
    return name[..<lastCapital].lowercased() + name[lastCapital...]
  }
}
