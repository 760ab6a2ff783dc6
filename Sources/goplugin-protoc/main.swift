// The command GoPluginProtoGenerator runs for each .proto file: reads the target's
// go-plugin-proto.json, finds protoc, checks the file's well-known imports, then becomes protoc
// with protoc-gen-swift, protoc-gen-grpc-swift-2 and protoc-gen-swift-go-plugin as its plugins. Doing this when the build
// runs, not when SwiftPM plans it, is what lets an edited configuration, an edited import or a
// newly installed protoc reach the next build: SwiftPM replans a plugin's commands only when
// the target's list of files or the environment changes.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Why no code could be generated, in words that say what to do about it.
struct GeneratorError: Error, CustomStringConvertible {
  var description: String

  init(_ description: String) {
    self.description = description
  }
}

/// The arguments GoPluginProtoGenerator passes, by name.
struct Arguments {
  var targetDirectory: URL
  var proto: String
  var output: URL
  var swiftGenerator: String
  var grpcGenerator: String
  var goPluginGenerator: String
  var protocPathVariable: String
  var searchPath: String

  init(_ arguments: [String]) throws {
    var values: [String: String] = [:]
    var remaining = arguments[...]
    while let name = remaining.popFirst() {
      guard name.hasPrefix("--"), let value = remaining.popFirst() else {
        throw GeneratorError("goplugin-protoc: unexpected argument \(name); GoPluginProtoGenerator runs this")
      }
      values[String(name.dropFirst(2))] = value
    }
    func value(_ name: String) throws -> String {
      guard let value = values[name] else { throw GeneratorError("goplugin-protoc: --\(name) is missing") }
      return value
    }
    self.targetDirectory = URL(filePath: try value("target-directory"))
    self.proto = try value("proto")
    self.output = URL(filePath: try value("output"))
    self.swiftGenerator = try value("protoc-gen-swift")
    self.grpcGenerator = try value("protoc-gen-grpc-swift-2")
    self.goPluginGenerator = try value("protoc-gen-swift-go-plugin")
    self.protocPathVariable = values["protoc-path-variable"] ?? ""
    self.searchPath = values["search-path"] ?? ""
  }
}

/// protoc's command line for `arguments`, and the files to write in place of those it does not
/// generate (SwiftPM expects every output the plugin named).
func protocCommand(
  _ arguments: Arguments, configuration: Configuration, importPaths: [URL]
) -> (arguments: [String], placeholders: [(URL, String)]) {
  let stem = String(arguments.proto.dropLast(".proto".count)).replacing("/", with: "_")
  let options = [
    "Visibility=\(configuration.visibility.protocOption)", "FileNaming=PathToUnderscores",
    "UseAccessLevelOnImports=\(configuration.useAccessLevelOnImports ?? true)",
  ]
  var command = importPaths.map { "--proto_path=\($0.path)" }
  command += ["--plugin=protoc-gen-swift=\(arguments.swiftGenerator)"]
  command += options.map { "--swift_opt=\($0)" } + ["--swift_out=\(arguments.output.path)"]
  let clients = configuration.clients ?? true
  let servers = configuration.servers ?? true
  var placeholders: [(URL, String)] = []
  let noGRPC = "\"clients\" and \"servers\" are false in go-plugin-proto.json"
  if clients || servers {
    command += ["--plugin=protoc-gen-grpc-swift-2=\(arguments.grpcGenerator)"]
    command += (options + ["Client=\(clients)", "Server=\(servers)"]).map { "--grpc-swift-2_opt=\($0)" }
    command += ["--grpc-swift-2_out=\(arguments.output.path)"]
  } else {
    placeholders.append((arguments.output.appending(path: "\(stem).grpc.swift"), noGRPC))
  }
  if (clients || servers) && configuration.directCalls ?? true {
    command += ["--plugin=protoc-gen-swift-go-plugin=\(arguments.goPluginGenerator)"]
    command += (options + ["Client=\(clients)", "Server=\(servers)"]).map { "--swift-go-plugin_opt=\($0)" }
    command += ["--swift-go-plugin_out=\(arguments.output.path)"]
  } else {
    let why = clients || servers ? "\"directCalls\" is false in go-plugin-proto.json" : noGRPC
    placeholders.append((arguments.output.appending(path: "\(stem).goplugin.swift"), why))
  }
  return (command + [arguments.proto], placeholders)
}

func fail(_ message: String) -> Never {
  let line = Array("error: \(message)\n".utf8)
  _ = line.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count) }
  exit(1)
}

do {
  let arguments = try Arguments(Array(CommandLine.arguments.dropFirst()))
  let root = arguments.targetDirectory
  let configuration = try Configuration.load(from: root.appending(path: Configuration.fileName))
  let protoc = try Protoc.locate(
    configuration: configuration, targetDirectory: root, protocPathVariable: arguments.protocPathVariable,
    searchPath: arguments.searchPath)
  let importPaths = ImportPaths.resolve(configuration: configuration, targetDirectory: root)
  try ImportPaths.checkWellKnownTypes(
    of: [root.appending(path: arguments.proto)], importPaths: importPaths, protoc: protoc)

  let (command, placeholders) = protocCommand(arguments, configuration: configuration, importPaths: importPaths)
  for (placeholder, why) in placeholders {
    try Data("// \(arguments.proto): nothing generated here (\(why))\n".utf8).write(to: placeholder)
  }
  // protoc resolves the proto's name against the import paths, the first of which is this.
  guard chdir(root.path) == 0 else { fail("cannot enter \(root.path): errno \(errno)") }
  let argv = ([protoc.path] + command).map { strdup($0) } + [nil]
  execv(protoc.path, argv)
  fail("cannot run \(protoc.path): errno \(errno)")
} catch let error as GeneratorError {
  fail(error.description)
} catch {
  fail("goplugin-protoc: \(error)")
}
