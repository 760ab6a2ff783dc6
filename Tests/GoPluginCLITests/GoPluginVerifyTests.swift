import Foundation
import GoPluginTesting
import Testing

/// Keys and signatures made by the real `ssh-keygen`, in a scratch directory.
private struct Signing {
  let directory: String

  init() throws {
    self.directory =
      FileManager.default.temporaryDirectory.appendingPathComponent(
        "goplugin-verify-\(UInt32.random(in: 0...UInt32.max))"
      ).path
    try FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true)
  }

  func remove() { try? FileManager.default.removeItem(atPath: self.directory) }

  func path(_ name: String) -> String { self.directory + "/" + name }

  func ssh(_ arguments: [String]) async throws -> ExternalProgram.Result {
    let run = try await ExternalProgram.run("ssh-keygen", arguments: arguments)
    try #require(run.status == 0, "ssh-keygen \(arguments): \(run.errorText)")
    return run
  }

  /// A key pair; returns its fingerprint as `ssh-keygen -l` prints it.
  func makeKey(_ name: String, type: String, bits: Int? = nil) async throws -> String {
    _ = try await self.ssh(
      ["-q", "-t", type] + (bits.map { ["-b", String($0)] } ?? []) + ["-N", "", "-f", self.path(name)])
    let listing = try await self.ssh(["-l", "-f", self.path(name) + ".pub"])
    return try #require(listing.outputText.split(separator: " ").dropFirst().first.map(String.init))
  }

  func sign(_ file: String, key: String, namespace: String = "goplugin") async throws {
    try? FileManager.default.removeItem(atPath: file + ".sig")
    _ = try await self.ssh(["-Y", "sign", "-n", namespace, "-f", self.path(key), file])
  }

  /// A file `name` of distinct bytes.
  func writeFile(_ name: String, seed: UInt8) throws -> String {
    let bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 * 7 + Int(seed)) }
    try Data(bytes).write(to: URL(fileURLWithPath: self.path(name)))
    return self.path(name)
  }

  /// `allowed_signers` with a line per (principal, key).
  func allowedSigners(_ signers: [(String, String)]) throws -> String {
    var text = "# who may sign plugins\n"
    for (principal, key) in signers {
      text +=
        "\(principal) namespaces=\"goplugin,other\" "
        + (try String(contentsOfFile: self.path(key) + ".pub", encoding: .utf8))
    }
    try Data(text.utf8).write(to: URL(fileURLWithPath: self.path("allowed_signers")))
    return self.path("allowed_signers")
  }
}

@Suite("goplugin verify", .timeLimit(.minutes(3)))
struct VerifyTests {
  @Test("plugins signed by allowed Ed25519 and ECDSA keys verify: one ok line each, exit 0")
  func allSigned() async throws {
    let signing = try Signing()
    defer { signing.remove() }
    let ed25519 = try await signing.makeKey("ed", type: "ed25519")
    let ecdsa = try await signing.makeKey("ec", type: "ecdsa", bits: 384)
    // A real plugin executable, and a second file.
    let plugin = signing.path("kv-plugin")
    try FileManager.default.copyItem(atPath: try BuildProducts.path("kv-plugin"), toPath: plugin)
    let other = try signing.writeFile("other-plugin", seed: 1)
    try await signing.sign(plugin, key: "ed")
    try await signing.sign(other, key: "ec")
    let allowed = try signing.allowedSigners([("alice@example.com", "ed"), ("ci@example.com", "ec")])

    let run = try await CLIRun.run(["verify", "--allowed-signers", allowed, plugin, other])
    #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
    let lines = run.stdout.split(separator: "\n").map(String.init)
    #expect(
      lines == [
        "\(plugin): ok, signed by alice@example.com with ED25519 key \(ed25519)",
        "\(other): ok, signed by ci@example.com with ECDSA key \(ecdsa)",
      ])
  }

  @Test("one unsigned, tampered or foreign-signed plugin makes the exit status 1, each with its reason")
  func refusals() async throws {
    let signing = try Signing()
    defer { signing.remove() }
    _ = try await signing.makeKey("trusted", type: "ecdsa", bits: 256)
    let stranger = try await signing.makeKey("stranger", type: "ed25519")
    let allowed = try signing.allowedSigners([("ci@example.com", "trusted")])
    let good = try signing.writeFile("good", seed: 1)
    let unsigned = try signing.writeFile("unsigned", seed: 2)
    let tampered = try signing.writeFile("tampered", seed: 3)
    let foreign = try signing.writeFile("foreign", seed: 4)
    let malformed = try signing.writeFile("malformed", seed: 5)
    try await signing.sign(good, key: "trusted")
    try await signing.sign(tampered, key: "trusted")
    try await signing.sign(foreign, key: "stranger")
    try Data("-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n".utf8)
      .write(to: URL(fileURLWithPath: malformed + ".sig"))
    var bytes = try Data(contentsOf: URL(fileURLWithPath: tampered))
    bytes[50_000] ^= 0x80
    try bytes.write(to: URL(fileURLWithPath: tampered))

    let run = try await CLIRun.run([
      "verify", "--allowed-signers", allowed, good, unsigned, tampered, foreign, malformed,
    ])
    #expect(run.status == 1, "\(run.stdout)\(run.stderr)")
    let lines = run.stdout.split(separator: "\n").map(String.init)
    try #require(lines.count == 5, "\(run.stdout)")
    #expect(lines[0].hasPrefix("\(good): ok, signed by ci@example.com with ECDSA key SHA256:"))
    #expect(lines[1] == "\(unsigned): refused: not signed: no signature file \(unsigned).sig")
    #expect(lines[2].hasPrefix("\(tampered): refused: the signature by key SHA256:"))
    #expect(lines[2].contains("does not match the file"))
    #expect(
      lines[3]
        == "\(foreign): refused: signed by key \(stranger), which is not allowed: the key is not in the allowed signers"
    )
    #expect(lines[4].hasPrefix("\(malformed): refused: malformed SSH signature: truncated"))
  }

  @Test("--namespace chooses the namespace the signatures must be for")
  func namespace() async throws {
    let signing = try Signing()
    defer { signing.remove() }
    _ = try await signing.makeKey("key", type: "ed25519")
    let allowed = try signing.allowedSigners([("dev@example.com", "key")])
    let plugin = try signing.writeFile("plugin", seed: 9)
    try await signing.sign(plugin, key: "key", namespace: "other")

    let refused = try await CLIRun.run(["verify", "--allowed-signers", allowed, plugin])
    #expect(refused.status == 1)
    #expect(refused.stdout == "\(plugin): refused: the signature is for namespace \"other\", not \"goplugin\"\n")
    let accepted = try await CLIRun.run(["verify", "--allowed-signers", allowed, "--namespace", "other", plugin])
    #expect(accepted.status == 0, "\(accepted.stdout)")
  }

  @Test("bad arguments are usage errors; an unreadable allowed-signers file fails with its name")
  func badArguments() async throws {
    for (arguments, message) in [
      (["verify", "./plugin"], "Missing expected argument '--allowed-signers <FILE>'"),
      (["verify", "--allowed-signers", "/dev/null"], "Missing the plugins to verify"),
      (["verify", "--allowed-signers", "/dev/null", "--namespace", "", "./plugin"], "--namespace must not be empty"),
    ] {
      let run = try await CLIRun.run(arguments)
      #expect(run.status == usageErrorStatus, "\(arguments): \(run.stderr)")
      #expect(run.stderr.contains(message), "\(arguments): \(run.stderr)")
    }
    let run = try await CLIRun.run(["verify", "--allowed-signers", "/nonexistent/allowed_signers", "./plugin"])
    #expect(run.status == 1)
    #expect(run.stdout.isEmpty)
    #expect(run.stderr.contains("/nonexistent/allowed_signers: No such file or directory"), "\(run.stderr)")
  }
}
