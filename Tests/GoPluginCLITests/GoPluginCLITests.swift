import Foundation
import GoPluginTesting
import Testing

/// One run of the built `goplugin` executable.
struct CLIRun {
  var status: Int32
  var stdout: String
  var stderr: String

  /// The JSON object `--json` printed.
  func json() throws -> [String: Any] {
    let object = try JSONSerialization.jsonObject(with: Data(self.stdout.utf8))
    return try #require(object as? [String: Any], "not a JSON object: \(self.stdout)")
  }

  /// Runs `executable` (a built product unless it holds a `/`) with `arguments` to its end.
  static func run(_ arguments: [String], environment: [String: String] = [:]) async throws -> CLIRun {
    try await self.run("goplugin", arguments, environment: environment)
  }

  static func run(
    _ executable: String, _ arguments: [String], environment: [String: String] = [:]
  ) async throws -> CLIRun {
    let path = executable.contains("/") ? executable : try BuildProducts.path(executable)
    let run = try await ExternalProgram.run(path, arguments: arguments, environment: environment)
    return CLIRun(status: run.status, stdout: run.outputText, stderr: run.errorText)
  }
}

/// The KV example's handshake (`HandshakeConfiguration.kv`), which the interop peers share.
let kvCookie = "BASIC_PLUGIN=hello"

@Suite("goplugin inspect", .timeLimit(.minutes(5)))
struct InspectTests {
  @Test("reports the Swift kv-plugin's handshake, health, services and timings as JSON")
  func swiftPluginJSON() async throws {
    let plugin = try BuildProducts.path("kv-plugin")
    let run = try await CLIRun.run(["inspect", "--cookie", kvCookie, "--json", plugin])
    #expect(run.status == 0, "\(run.stderr)")
    let report = try run.json()
    #expect(report["protocol"] as? String == "grpc")
    #expect(report["negotiatedVersion"] as? Int == 1)
    #expect(report["offeredVersions"] as? [Int] == [1])
    #expect(report["coreProtocolVersion"] as? Int == 1)
    #expect(report["network"] as? String == "unix")
    #expect(report["command"] as? [String] == [plugin])
    let pid = try #require(report["pid"] as? Int)
    #expect(pid > 0)
    let address = try #require(report["address"] as? String)
    #expect(report["handshake"] as? String == "1|1|unix|\(address)|grpc|")
    #expect((report["tls"] as? [String: Any])?["mode"] as? String == "none")
    // Swift plugins serve no reflection; the health service names what there is.
    #expect(report["reflection"] as? String == "unavailable")
    #expect(report["reflectionError"] == nil)
    #expect((report["services"] as? [String])?.contains("plugin") == true)
    let health = try #require(report["health"] as? [String: Any])
    #expect(health["service"] as? String == "plugin")
    #expect(health["status"] as? String == "SERVING")
    #expect(try #require(report["startMilliseconds"] as? Double) > 0)
    #expect(try #require(report["shutdownMilliseconds"] as? Double) >= 0)
    let exit = try #require(report["exit"] as? [String: Any])
    #expect(exit["status"] as? String == "exited")
    #expect(exit["code"] as? Int == 0)
    #expect(exit["reason"] as? String == "stopped")
  }

  @Test("prints the same as text by default; the command may follow --")
  func swiftPluginText() async throws {
    let run = try await CLIRun.run([
      "inspect", "--magic-cookie-key", "BASIC_PLUGIN", "--magic-cookie-value", "hello", "--",
      try BuildProducts.path("kv-plugin"),
    ])
    #expect(run.status == 0, "\(run.stderr)")
    for expected in [
      "handshake:", "|grpc|", "protocol:", "grpc", "tls:", "none", "reflection:", "unavailable", "health:",
      "plugin: SERVING", "start:", "shutdown:", "exited with status 0 (stopped)",
    ] {
      #expect(run.stdout.contains(expected), "no \"\(expected)\" in:\n\(run.stdout)")
    }
  }

  @Test("over AutoMTLS, shows the plugin's certificate")
  func swiftPluginAutoMTLS() async throws {
    let run = try await CLIRun.run([
      "inspect", "--cookie", kvCookie, "--auto-mtls", "--json", try BuildProducts.path("kv-plugin"),
    ])
    #expect(run.status == 0, "\(run.stderr)")
    let report = try run.json()
    let tls = try #require(report["tls"] as? [String: Any])
    #expect(tls["mode"] as? String == "AutoMTLS")
    let certificate = try #require(tls["serverCertificate"] as? [String: Any])
    let fingerprint = try #require(certificate["sha256"] as? String)
    #expect(fingerprint.split(separator: ":").count == 32)
    #expect(certificate["subject"] is String)
    #expect((report["health"] as? [String: Any])?["status"] as? String == "SERVING")
    // The certificate travels in the handshake's sixth field.
    #expect((report["handshake"] as? String)?.hasSuffix("|grpc|") == false)
  }

  @Test("offers every version given with --versions")
  func versions() async throws {
    let run = try await CLIRun.run([
      "inspect", "--cookie", kvCookie, "--versions", "3,1,2", "--json", try BuildProducts.path("kv-plugin"),
    ])
    #expect(run.status == 0, "\(run.stderr)")
    let report = try run.json()
    #expect(report["offeredVersions"] as? [Int] == [1, 2, 3])
    #expect(report["negotiatedVersion"] as? Int == 1)
  }

  @Test("a wrong cookie fails with the plugin's own explanation and a hint")
  func badCookie() async throws {
    let plugin = try BuildProducts.path("kv-plugin")
    let json = try await CLIRun.run(["inspect", "--cookie", "BASIC_PLUGIN=wrong", "--json", plugin])
    #expect(json.status == 1)
    let error = try #require(json.json()["error"] as? [String: Any])
    #expect(error["code"] as? String == "startFailed")
    #expect(error["pluginErrorCode"] as? String == "exitedBeforeHandshake")
    #expect((error["pluginStderr"] as? [String])?.contains { $0.contains("This binary is a plugin") } == true)
    #expect((error["hint"] as? String)?.contains("cookie") == true)

    let text = try await CLIRun.run(["inspect", "--cookie", "BASIC_PLUGIN=wrong", plugin])
    #expect(text.status == 1)
    #expect(text.stdout.isEmpty)
    #expect(text.stderr.contains("the plugin did not start"))
    #expect(text.stderr.contains("This binary is a plugin"))
    #expect(text.stderr.contains("hint:"))
  }

  @Test("a plugin that is not there fails clearly")
  func missingPlugin() async throws {
    let run = try await CLIRun.run(["inspect", "--cookie", kvCookie, "/nonexistent/plugin"])
    #expect(run.status == 1)
    #expect(run.stderr.contains("/nonexistent/plugin"))
  }

  @Test(
    "bad options are usage errors",
    arguments: [
      (["inspect", "./plugin"], "Missing the magic cookie"),
      (["inspect", "--cookie", "nocookie", "./plugin"], "KEY=VALUE"),
      (["inspect", "--cookie", "=value", "./plugin"], "KEY=VALUE"),
      (["inspect", "--magic-cookie-key", "K", "./plugin"], "go together"),
      (["inspect", "--cookie", "K=V"], "Missing the plugin command"),
      (["inspect", "--cookie", "K=V", "--versions", "1,x", "./plugin"], "positive integers"),
      (["inspect", "--cookie", "K=V", "--timeout", "0", "./plugin"], "--timeout"),
      (["inspect", "--cookie", "K=V", "--bogus", "./plugin"], "Unknown option '--bogus'"),
    ]
  )
  func usageErrors(arguments: [String], message: String) async throws {
    let run = try await CLIRun.run(arguments)
    #expect(run.status == 64)
    #expect(run.stderr.contains(message), "\(run.stderr)")
  }
}

@Suite("goplugin checksum")
struct ChecksumTests {
  /// What coreutils says, for comparison.
  func coreutils(_ tool: String, _ path: String) async throws -> String {
    let run = try await CLIRun.run("/usr/bin/\(tool)", [path])
    #expect(run.status == 0)
    return String(run.stdout.prefix { $0 != " " })
  }

  @Test("prints the digest as PluginChecksum takes it", arguments: ["sha256", "sha384", "sha512"])
  func digest(algorithm: String) async throws {
    let file = try BuildProducts.path("kv-plugin")
    let expected = try await self.coreutils("\(algorithm)sum", file)
    let run = try await CLIRun.run(["checksum", file, "--algorithm", algorithm, "--json"])
    #expect(run.status == 0, "\(run.stderr)")
    let report = try run.json()
    #expect(report["hex"] as? String == expected)
    #expect(report["algorithm"] as? String == algorithm)
    #expect(report["checksum"] as? String == "\(algorithm):\(expected)")
    #expect(report["swift"] as? String == "try PluginChecksum(.\(algorithm), hex: \"\(expected)\")")

    let text = try await CLIRun.run(["checksum", "--algorithm", algorithm, file])
    #expect(text.status == 0)
    #expect(text.stdout.contains("\(algorithm):\(expected)"))
  }

  @Test("an empty file has the empty digest")
  func emptyFile() async throws {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("goplugin-empty-\(UUID().uuidString)").path
    try Data().write(to: URL(fileURLWithPath: path))
    defer { try? FileManager.default.removeItem(atPath: path) }
    let run = try await CLIRun.run(["checksum", path, "--json"])
    #expect(try run.json()["hex"] as? String == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
  }

  @Test("a missing file or a directory is an error, status 1")
  func badFiles() async throws {
    let missing = try await CLIRun.run(["checksum", "/nonexistent/plugin"])
    #expect(missing.status == 1)
    #expect(missing.stderr.contains("no such file: /nonexistent/plugin"))

    let directory = try await CLIRun.run(["checksum", "/tmp"])
    #expect(directory.status == 1)
    #expect(directory.stderr.contains("/tmp is a directory"))

    let json = try await CLIRun.run(["checksum", "/nonexistent/plugin", "--json"])
    #expect(json.status == 1)
    let error = try #require(json.json()["error"] as? [String: Any])
    #expect(error["code"] as? String == "fileNotFound")
  }

  @Test("an unknown algorithm is a usage error")
  func unknownAlgorithm() async throws {
    let run = try await CLIRun.run(["checksum", "/tmp", "--algorithm", "md5"])
    #expect(run.status == 64)
    #expect(run.stderr.contains("md5"))
  }
}
