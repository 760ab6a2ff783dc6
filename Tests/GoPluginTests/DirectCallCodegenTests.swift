import Foundation
import GoPluginTesting
import Testing

/// protoc-gen-swift-go-plugin, run by the installed protoc as GoPluginProtoGenerator runs it.
/// What its code does is tested where it is compiled: the KV example (committed) and the
/// GreeterProto example (generated at build time).
@Suite("protoc-gen-swift-go-plugin")
struct DirectCallCodegenTests {
  private static let kinds = """
    syntax = "proto3";
    package kinds.v1;
    message A { string text = 1; }
    message B { int64 number = 1; }
    service Kinds {
      rpc GetURLFetch(A) returns (B);
      rpc Upload(stream A) returns (B);
      rpc Watch(A) returns (stream B);
      rpc Chat(stream A) returns (stream B);
    }
    """

  /// Runs protoc with the built generator on `proto` and `options`, then `body` with protoc's
  /// result and the folder it wrote into (removed afterwards).
  private func runProtoc<T>(
    _ proto: String, options: [String], _ body: (ExternalProgram.Result, URL) throws -> T
  ) async throws -> T {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("codegen-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    try Data(proto.utf8).write(to: directory.appendingPathComponent("kinds.proto"))
    let generator = try BuildProducts.path("protoc-gen-swift-go-plugin")
    let result = try await ExternalProgram.run(
      "protoc",
      arguments: ["--proto_path=\(directory.path)", "--plugin=protoc-gen-swift-go-plugin=\(generator)"]
        + options.map { "--swift-go-plugin_opt=\($0)" }
        + ["--swift-go-plugin_out=\(directory.path)", directory.appendingPathComponent("kinds.proto").path]
    )
    return try body(result, directory)
  }

  /// The generated file for `proto`, run with `options`.
  private func generate(_ proto: String, options: [String]) async throws -> (name: String, text: String) {
    try await self.runProtoc(proto, options: options) { result, directory in
      #expect(result.status == 0, "protoc: \(result.errorText)")
      let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".swift") }
      let name = try #require(names.first, "no Swift file generated")
      return (name, try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8))
    }
  }

  @Test("unary methods go through the caller and the method table; streams through the gRPC client")
  func methodKinds() async throws {
    let (name, text) = try await self.generate(Self.kinds, options: ["Visibility=Public"])
    #expect(name == "kinds.goplugin.swift")
    #expect(text.contains("extension Kinds_V1_Kinds {"))
    #expect(text.contains("public struct PluginClient: ClientProtocol {"))
    // grpc-swift's function names: leading capitals lowered up to the next word.
    #expect(text.contains("public func getURLFetch<Result>("))
    #expect(text.contains("try await self.caller.unary("))
    #expect(text.contains("try await self.caller.grpcClient.clientStreaming("))
    #expect(text.contains("try await self.caller.grpcClient.serverStreaming("))
    #expect(text.contains("try await self.caller.grpcClient.bidirectionalStreaming("))
    #expect(text.contains("extension Kinds_V1_Kinds.ServiceProtocol {"))
    // Only the unary method is answered directly.
    #expect(text.components(separatedBy: "table.registerUnary(").count == 2)
    #expect(text.contains("try await self.getURLFetch(request: request, context: context)"))
    #expect(text.contains("public import GoPlugin") == false, "imports carry no access level unless asked")
  }

  @Test("visibility, access levels on imports, one side only, and a file without services")
  func options() async throws {
    let package = try await self.generate(
      Self.kinds, options: ["Visibility=Package", "UseAccessLevelOnImports=true", "Client=false"])
    #expect(package.text.contains("package import GoPlugin"))
    #expect(package.text.contains("internal import GRPCProtobuf"))
    #expect(package.text.contains("package func registerDirectMethods(with table: inout PluginMethodTable)"))
    #expect(!package.text.contains("PluginClient"))

    let hostOnly = try await self.generate(Self.kinds, options: ["Server=false", "FileNaming=DropPath"])
    #expect(hostOnly.text.contains("internal struct PluginClient"))
    #expect(!hostOnly.text.contains("registerDirectMethods"))
    #expect(!hostOnly.text.contains("GRPCProtobuf"))

    let messages = try await self.generate("syntax = \"proto3\";\nmessage M { int32 x = 1; }\n", options: [])
    #expect(messages.text.contains("has no services to generate for"))
    #expect(!messages.text.contains("import"))
  }

  @Test("a bad option is an error that names it")
  func badOption() async throws {
    let result = try await self.runProtoc(Self.kinds, options: ["Visibility=Open"]) { result, _ in result }
    #expect(result.status != 0)
    #expect(result.errorText.contains("Visibility=Open"))
  }
}
