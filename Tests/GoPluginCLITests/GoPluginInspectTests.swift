import Foundation
import Testing

/// The Go peers of Tests/Interop, built by Tests/Interop/build.sh into `$GOPLUGIN_INTEROP_DIR`
/// (default `.build/interop`) as the interop tests find them, and beside them
/// `go-reflection-kv-plugin` from `go/reflection-kv-plugin.go`.
enum GoPeers {
  static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

  struct BuildFailure: Error, CustomStringConvertible {
    var description: String
  }

  private static let built: Result<String, any Error> = Result(catching: {
    let output = ProcessInfo.processInfo.environment["GOPLUGIN_INTEROP_DIR"]
      ?? repository.appendingPathComponent(".build/interop").path
    let build = try CLIRun.run(repository.appendingPathComponent("Tests/Interop/build.sh").path, [output])
    guard build.status == 0 else {
      throw BuildFailure(description: "Tests/Interop/build.sh failed: \(build.stderr)")
    }
    return output
  })

  /// go-plugin 1.0.1 registers no reflection service, so this one adds it.
  private static let reflectionPlugin: Result<String, any Error> = Result(catching: {
    let output = try built.get()
    let source = repository.appendingPathComponent("Tests/GoPluginCLITests/go/reflection-kv-plugin.go").path
    let executable = URL(fileURLWithPath: output).appendingPathComponent("go-reflection-kv-plugin").path
    // The GOPATH build.sh builds in: its generated kvbench code, the interop packages, Debian's.
    var environment = [
      "GO111MODULE": "off",
      "GOPATH": "\(output)/gopath:\(repository.path)/Tests/Interop/go:/usr/share/gocode",
      "GOFLAGS": "",
    ]
    if ProcessInfo.processInfo.environment["HOME"] == nil {
      environment["GOCACHE"] = "\(output)/go-cache"
    }
    let build = try CLIRun.run("/usr/bin/env", ["go", "build", "-o", executable, source], environment: environment)
    guard build.status == 0 else {
      throw BuildFailure(description: "go build \(source) failed: \(build.stderr)")
    }
    return executable
  })

  static func path(_ name: String) throws -> String {
    if name == "go-reflection-kv-plugin" { return try reflectionPlugin.get() }
    return try URL(fileURLWithPath: built.get()).appendingPathComponent(name).path
  }
}

@Suite("goplugin inspect with go-plugin 1.0.1 plugins", .timeLimit(.minutes(10)))
struct GoPluginInspectTests {
  @Test("lists a Go plugin's services through server reflection")
  func reflection() throws {
    let run = try CLIRun.run(["inspect", "--cookie", kvCookie, "--json", try GoPeers.path("go-reflection-kv-plugin")])
    #expect(run.status == 0, "\(run.stderr)")
    let report = try run.json()
    #expect(report["protocol"] as? String == "grpc")
    #expect(report["negotiatedVersion"] as? Int == 1)
    #expect(report["reflection"] as? String == "available")
    let services = try #require(report["services"] as? [String])
    for service in [
      "kvbench.KV", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection", "plugin.GRPCBroker",
      "plugin.GRPCController",
    ] {
      #expect(services.contains(service), "\(services)")
    }
    #expect((report["health"] as? [String: Any])?["status"] as? String == "SERVING")
    let exit = try #require(report["exit"] as? [String: Any])
    #expect(exit["reason"] as? String == "stopped")
  }

  @Test("falls back to the health service when a Go plugin serves no reflection")
  func noReflection() throws {
    let run = try CLIRun.run(["inspect", "--cookie", kvCookie, "--json", try GoPeers.path("go-kv-plugin")])
    #expect(run.status == 0, "\(run.stderr)")
    let report = try run.json()
    #expect(report["reflection"] as? String == "unavailable")
    #expect(report["reflectionError"] == nil)
    #expect(report["services"] as? [String] == ["plugin"])
    #expect((report["health"] as? [String: Any])?["status"] as? String == "SERVING")
  }

  @Test("shows the certificate a Go plugin makes for AutoMTLS")
  func autoMTLS() throws {
    let run = try CLIRun.run(["inspect", "--cookie", kvCookie, "--auto-mtls", "--json", try GoPeers.path("go-reflection-kv-plugin")])
    #expect(run.status == 0, "\(run.stderr)")
    let report = try run.json()
    let tls = try #require(report["tls"] as? [String: Any])
    #expect(tls["mode"] as? String == "AutoMTLS")
    let certificate = try #require(tls["serverCertificate"] as? [String: Any])
    // go-plugin's generated certificates are issued to "localhost".
    #expect((certificate["subject"] as? String)?.contains("localhost") == true, "\(certificate)")
    #expect(report["reflection"] as? String == "available")
  }

  @Test("a Go plugin given the wrong cookie explains itself")
  func badCookie() throws {
    let run = try CLIRun.run(["inspect", "--cookie", "BASIC_PLUGIN=nope", "--json", try GoPeers.path("go-kv-plugin")])
    #expect(run.status == 1)
    let error = try #require(run.json()["error"] as? [String: Any])
    #expect(error["code"] as? String == "startFailed")
    #expect((error["pluginStderr"] as? [String])?.contains { $0.contains("This binary is a plugin") } == true, "\(error)")
  }
}
