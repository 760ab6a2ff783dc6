import Foundation
import Testing

/// The Go peers of Tests/Interop, built by Tests/Interop/build.sh into `$GOPLUGIN_INTEROP_DIR`
/// (default `.build/interop`) as the interop tests find them, and beside them
/// `go-reflection-kv-plugin` from `go/reflection-kv-plugin.go`.
enum GoPeers {
  static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

  struct BuildFailure: Error, CustomStringConvertible {
    var description: String
  }

  /// Builds once per run, for whichever test asks first; tests asking meanwhile wait for it.
  private actor Builds {
    private var peers: Result<String, any Error>?
    private var reflectionPlugin: Result<String, any Error>?

    func peersDirectory() async throws -> String {
      if let peers { return try peers.get() }
      let result = await Self.capture {
        let output =
          ProcessInfo.processInfo.environment["GOPLUGIN_INTEROP_DIR"]
          ?? GoPeers.repository.appendingPathComponent(".build/interop").path
        let build = try await CLIRun.run(
          GoPeers.repository.appendingPathComponent("Tests/Interop/build.sh").path, [output])
        guard build.status == 0 else {
          throw BuildFailure(description: "Tests/Interop/build.sh failed: \(build.stderr)")
        }
        return output
      }
      self.peers = self.peers ?? result
      return try result.get()
    }

    private static func capture(_ body: () async throws -> String) async -> Result<String, any Error> {
      do { return .success(try await body()) } catch { return .failure(error) }
    }

    /// go-plugin 1.0.1 registers no reflection service, so this one adds it.
    func reflectionPluginPath() async throws -> String {
      if let reflectionPlugin { return try reflectionPlugin.get() }
      let output = try await self.peersDirectory()
      let result = await Self.capture {
        let source = GoPeers.repository.appendingPathComponent("Tests/GoPluginCLITests/go/reflection-kv-plugin.go").path
        let executable = URL(fileURLWithPath: output).appendingPathComponent("go-reflection-kv-plugin").path
        // The GOPATH build.sh builds in: its generated kvbench code, the interop packages, Debian's.
        var environment = [
          "GO111MODULE": "off",
          "GOPATH": "\(output)/gopath:\(GoPeers.repository.path)/Tests/Interop/go:/usr/share/gocode",
          "GOFLAGS": "",
        ]
        if ProcessInfo.processInfo.environment["HOME"] == nil {
          environment["GOCACHE"] = "\(output)/go-cache"
        }
        let build = try await CLIRun.run(
          "/usr/bin/env", ["go", "build", "-o", executable, source], environment: environment)
        guard build.status == 0 else {
          throw BuildFailure(description: "go build \(source) failed: \(build.stderr)")
        }
        return executable
      }
      self.reflectionPlugin = self.reflectionPlugin ?? result
      return try result.get()
    }
  }

  private static let builds = Builds()

  static func path(_ name: String) async throws -> String {
    if name == "go-reflection-kv-plugin" { return try await builds.reflectionPluginPath() }
    return try URL(fileURLWithPath: await builds.peersDirectory()).appendingPathComponent(name).path
  }
}

@Suite("goplugin inspect with go-plugin 1.0.1 plugins", .timeLimit(.minutes(10)))
struct GoPluginInspectTests {
  @Test("lists a Go plugin's services through server reflection")
  func reflection() async throws {
    let run = try await CLIRun.run([
      "inspect", "--cookie", kvCookie, "--json", try await GoPeers.path("go-reflection-kv-plugin"),
    ])
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
  func noReflection() async throws {
    let run = try await CLIRun.run(["inspect", "--cookie", kvCookie, "--json", try await GoPeers.path("go-kv-plugin")])
    #expect(run.status == 0, "\(run.stderr)")
    let report = try run.json()
    #expect(report["reflection"] as? String == "unavailable")
    #expect(report["reflectionError"] == nil)
    #expect(report["services"] as? [String] == ["plugin"])
    #expect((report["health"] as? [String: Any])?["status"] as? String == "SERVING")
  }

  @Test("shows the certificate a Go plugin makes for AutoMTLS")
  func autoMTLS() async throws {
    let run = try await CLIRun.run([
      "inspect", "--cookie", kvCookie, "--auto-mtls", "--json", try await GoPeers.path("go-reflection-kv-plugin"),
    ])
    #expect(run.status == 0, "\(run.stderr)")
    let report = try run.json()
    let tls = try #require(report["tls"] as? [String: Any])
    #expect(tls["mode"] as? String == "AutoMTLS")
    let certificate = try #require(tls["serverCertificate"] as? [String: Any])
    // go-plugin's generated certificates are issued to "localhost".
    #expect((certificate["subject"] as? String)?.contains("localhost") == true, "\(certificate)")
    #expect(report["reflection"] as? String == "available")
  }

  @Test("describes a Go net/rpc plugin: its protocol, and Control.Ping as its health", arguments: [false, true])
  func netRPC(autoMTLS: Bool) async throws {
    let run = try await CLIRun.run(
      ["inspect", "--cookie", kvCookie, "--json", try await GoPeers.path("go-netrpc-plugin")]
        + (autoMTLS ? ["--auto-mtls"] : []))
    #expect(run.status == 0, "\(run.stderr)")
    let report = try run.json()
    #expect(report["protocol"] as? String == "netrpc")
    #expect(report["services"] as? [String] == ["Control", "Dispenser"])
    let health = try #require(report["health"] as? [String: Any])
    #expect(health["service"] as? String == "Control.Ping" && health["status"] as? String == "SERVING")
    #expect((report["exit"] as? [String: Any])?["reason"] as? String == "stopped")
  }

  @Test("a Go plugin given the wrong cookie explains itself")
  func badCookie() async throws {
    let run = try await CLIRun.run([
      "inspect", "--cookie", "BASIC_PLUGIN=nope", "--json", try await GoPeers.path("go-kv-plugin"),
    ])
    #expect(run.status == 1)
    let error = try #require(run.json()["error"] as? [String: Any])
    #expect(error["code"] as? String == "startFailed")
    #expect(
      (error["pluginStderr"] as? [String])?.contains { $0.contains("This binary is a plugin") } == true, "\(error)")
  }
}
