import Foundation
import GoPluginTesting
import KVInterface
import Testing

@testable import GoPlugin

#if canImport(Glibc)
import Glibc
#endif

/// A scratch directory with keys made, and files signed, by the real `ssh-keygen`.
struct SigningDirectory {
  let url: URL

  init() throws {
    self.url = FileManager.default.temporaryDirectory.appendingPathComponent(
      "goplugin-trust-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: self.url, withIntermediateDirectories: true)
  }

  func remove() { try? FileManager.default.removeItem(at: self.url) }

  func path(_ name: String) -> String { self.url.appendingPathComponent(name).path }

  /// A "plugin" of `size` bytes that differ from one another, larger than one read of the hasher.
  @discardableResult
  func writePlugin(_ name: String, size: Int = 200_000, seed: UInt8 = 7) throws -> String {
    var bytes = [UInt8](repeating: 0, count: size)
    var state = UInt32(seed) &+ 1
    for index in bytes.indices {
      state = state &* 1_664_525 &+ 1_013_904_223
      bytes[index] = UInt8(truncatingIfNeeded: state >> 24)
    }
    try Data(bytes).write(to: URL(fileURLWithPath: self.path(name)))
    return self.path(name)
  }

  /// Flips one bit of the byte at `offset`, in place.
  func changeOneByte(_ path: String, at offset: Int = 150_000) throws {
    var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
    bytes[offset] ^= 0x01
    try bytes.write(to: URL(fileURLWithPath: path))
  }

  /// A new key pair `name` and `name.pub`, made by `ssh-keygen -t type [-b bits]`.
  func makeKey(_ name: String, type: String, bits: Int? = nil) async throws -> SSHPublicKey {
    let arguments =
      ["-q", "-t", type] + (bits.map { ["-b", String($0)] } ?? []) + ["-N", "", "-C", name, "-f", self.path(name)]
    let run = try await ExternalProgram.run("ssh-keygen", arguments: arguments)
    #expect(run.status == 0, "ssh-keygen: \(run.errorText)")
    return try SSHPublicKey(openSSH: String(contentsOfFile: self.path(name) + ".pub", encoding: .utf8))
  }

  /// `ssh-keygen -Y sign -n namespace -f key file`, which writes `file.sig` (and does not
  /// replace one that exists).
  func sign(_ file: String, key: String, namespace: String = "goplugin", hash: String? = nil) async throws {
    try? FileManager.default.removeItem(atPath: file + ".sig")
    let arguments =
      ["-Y", "sign", "-n", namespace, "-f", self.path(key)] + (hash.map { ["-O", "hashalg=\($0)"] } ?? []) + [file]
    let run = try await ExternalProgram.run("ssh-keygen", arguments: arguments)
    try #require(run.status == 0, "ssh-keygen -Y sign: \(run.errorText)")
  }

  /// The fingerprint `ssh-keygen -l` prints for a public key file.
  func fingerprint(_ key: String) async throws -> String {
    let run = try await ExternalProgram.run("ssh-keygen", arguments: ["-l", "-f", self.path(key) + ".pub"])
    return try #require(run.outputText.split(separator: " ").dropFirst().first.map(String.init))
  }

  /// An allowed-signers file of `lines`, parsed.
  func allowedSigners(_ lines: [String]) throws -> AllowedSigners {
    let path = self.path("allowed_signers")
    try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: path))
    return try AllowedSigners(contentsOf: path)
  }

  /// `PRINCIPAL [OPTIONS] KEYTYPE BASE64` for the key `name`.
  func signerLine(_ name: String, principal: String = "dev@example.com", options: String? = nil) throws -> String {
    let key = try String(contentsOfFile: self.path(name) + ".pub", encoding: .utf8).trimmingCharacters(
      in: .whitespacesAndNewlines)
    return [principal, options, key].compactMap { $0 }.joined(separator: " ")
  }
}

/// The refusal behind a trust error, which every refusal carries.
func refusal(_ error: PluginError) throws -> PluginTrustRefusal {
  #expect(error.code == .untrustedPlugin, "\(error)")
  return try #require(error.cause as? PluginTrustRefusal, "\(error)")
}

func expectRefused(_ trust: PluginTrust, _ path: String, name: String? = nil) throws -> PluginError {
  do {
    let trusted = try trust.check(path: path, name: name)
    Issue.record("\(path) was trusted: \(trusted)")
    throw CancellationError()
  } catch let error as PluginError {
    #expect(error.pluginPath == path)
    #expect(error.message.contains(path), "the message does not name the file: \(error.message)")
    return error
  }
}

@Suite("Plugin signatures (OpenSSH SSHSIG)", .timeLimit(.minutes(2)))
struct PluginSignatureTests {
  @Test(
    "signatures made by ssh-keygen verify, and fail once one byte of the plugin changes",
    arguments: [("ed25519", nil), ("ecdsa", 256), ("ecdsa", 384), ("ecdsa", 521)] as [(String, Int?)]
  )
  func realSignatures(_ type: String, _ bits: Int?) async throws {
    let directory = try SigningDirectory()
    defer { directory.remove() }
    let key = try await directory.makeKey("key", type: type, bits: bits)
    let plugin = try directory.writePlugin("plugin")
    try await directory.sign(plugin, key: "key")
    let signers = try directory.allowedSigners([
      "# the team's keys", "",
      try directory.signerLine("key", principal: "alice@example.com", options: "namespaces=\"goplugin,file\""),
    ])
    let trust = PluginTrust(signatures: PluginSignatureRequirement(allowedSigners: signers))

    let trusted = try trust.check(path: plugin)
    let signer = try #require(trusted.signer)
    #expect(signer.principals == "alice@example.com")
    #expect(signer.key == key)
    #expect(signer.key.fingerprint == (try await directory.fingerprint("key")))
    #expect(trusted.sha256 == (try PluginChecksum(ofFile: plugin)))
    #expect(trusted.name == "plugin")

    try directory.changeOneByte(plugin)
    let error = try expectRefused(trust, plugin)
    guard case .badSignature(let fingerprint, let found) = try refusal(error) else {
      Issue.record("not a bad signature: \(error)")
      return
    }
    #expect(fingerprint == key.fingerprint)
    #expect(found == (try PluginChecksum(ofFile: plugin)))
    #expect(error.message.contains(key.fingerprint))
  }

  @Test("a signature hashed with SHA-256 instead of the default SHA-512 verifies")
  func sha256Signature() async throws {
    let directory = try SigningDirectory()
    defer { directory.remove() }
    _ = try await directory.makeKey("key", type: "ed25519")
    let plugin = try directory.writePlugin("plugin")
    try await directory.sign(plugin, key: "key", hash: "sha256")
    let signature = try SSHSignature(armored: String(contentsOfFile: plugin + ".sig", encoding: .utf8))
    #expect(signature.hashAlgorithm == .sha256)
    let trust = PluginTrust(
      signatures: PluginSignatureRequirement(
        allowedSigners: try directory.allowedSigners([try directory.signerLine("key")]))
    )
    #expect(try trust.check(path: plugin).signer?.principals == "dev@example.com")
  }

  @Test("a signature by a key that is not in the allowed signers is refused, naming the key")
  func unknownKey() async throws {
    let directory = try SigningDirectory()
    defer { directory.remove() }
    _ = try await directory.makeKey("trusted", type: "ed25519")
    let stranger = try await directory.makeKey("stranger", type: "ecdsa", bits: 256)
    let plugin = try directory.writePlugin("plugin")
    try await directory.sign(plugin, key: "stranger")
    let trust = PluginTrust(
      signatures: PluginSignatureRequirement(
        allowedSigners: try directory.allowedSigners([try directory.signerLine("trusted")]))
    )
    let error = try expectRefused(trust, plugin)
    #expect(try refusal(error) == .signerNotAllowed(fingerprint: stranger.fingerprint, rejection: .notListed))
    #expect(error.message.contains(stranger.fingerprint))
    #expect(error.message.contains("not in the allowed signers"))
  }

  @Test("a signature made for another namespace is refused")
  func wrongNamespace() async throws {
    let directory = try SigningDirectory()
    defer { directory.remove() }
    _ = try await directory.makeKey("key", type: "ed25519")
    let plugin = try directory.writePlugin("plugin")
    try await directory.sign(plugin, key: "key", namespace: "file")
    let signers = try directory.allowedSigners([try directory.signerLine("key")])
    let trust = PluginTrust(signatures: PluginSignatureRequirement(allowedSigners: signers))
    let error = try expectRefused(trust, plugin)
    #expect(try refusal(error) == .wrongNamespace(expected: "goplugin", found: "file"))
    // The same signature passes a host that asks for that namespace.
    let fileTrust = PluginTrust(signatures: PluginSignatureRequirement(allowedSigners: signers, namespace: "file"))
    #expect(try fileTrust.check(path: plugin).signer != nil)
  }

  @Test("the allowed-signers options: namespaces, valid-after, valid-before, cert-authority")
  func signerOptions() async throws {
    let directory = try SigningDirectory()
    defer { directory.remove() }
    let key = try await directory.makeKey("key", type: "ecdsa", bits: 384)
    let plugin = try directory.writePlugin("plugin")
    try await directory.sign(plugin, key: "key")
    func check(_ options: String, at time: Int64? = nil) throws -> PluginTrustRefusal? {
      let signers = try directory.allowedSigners([try directory.signerLine("key", options: options)])
      let trust = PluginTrust(
        signatures: PluginSignatureRequirement(allowedSigners: signers, verificationTime: time)
      )
      do {
        _ = try trust.check(path: plugin)
        return nil
      } catch {
        return try refusal(error)
      }
    }
    let fingerprint = key.fingerprint
    #expect(
      try check("namespaces=\"git,file\"")
        == .signerNotAllowed(fingerprint: fingerprint, rejection: .namespaceNotAllowed(patterns: "git,file")))
    #expect(try check("namespaces=\"go*\"") == nil)
    #expect(try check("namespaces=\"*,!goplugin\"") != nil)
    // 2020-01-01T00:00:00Z is 1577836800.
    #expect(
      try check("valid-after=\"20200101Z\"", at: 1_577_836_799)
        == .signerNotAllowed(fingerprint: fingerprint, rejection: .notYetValid(validAfter: 1_577_836_800)))
    #expect(try check("valid-after=\"20200101Z\"", at: 1_577_836_800) == nil)
    #expect(
      try check("valid-before=\"202001010000Z\"", at: 1_577_836_800)
        == .signerNotAllowed(fingerprint: fingerprint, rejection: .expired(validBefore: 1_577_836_800)))
    #expect(try check("valid-before=\"20200101000001Z\",namespaces=\"goplugin\"", at: 1_577_836_800) == nil)
    #expect(
      try check("cert-authority") == .signerNotAllowed(fingerprint: fingerprint, rejection: .certificateAuthorityOnly))
  }

  @Test("a missing, malformed or unsupported signature is a typed refusal, never a crash")
  func malformedSignatures() async throws {
    let directory = try SigningDirectory()
    defer { directory.remove() }
    _ = try await directory.makeKey("key", type: "ed25519")
    let plugin = try directory.writePlugin("plugin")
    let trust = PluginTrust(
      signatures: PluginSignatureRequirement(
        allowedSigners: try directory.allowedSigners([try directory.signerLine("key")]))
    )
    #expect(try refusal(try expectRefused(trust, plugin)) == .unsigned(signatureFile: plugin + ".sig"))

    try await directory.sign(plugin, key: "key")
    let good = try String(contentsOfFile: plugin + ".sig", encoding: .utf8)
    let lines = good.split(separator: "\n").map(String.init)
    let body = lines.dropFirst().dropLast().joined()
    let blob = try #require(Data(base64Encoded: body))
    func armor(_ bytes: Data) -> String {
      "-----BEGIN SSH SIGNATURE-----\n\(bytes.base64EncodedString(options: .lineLength64Characters))\n-----END SSH SIGNATURE-----\n"
    }
    var wrongMagic = blob
    wrongMagic[0] = UInt8(ascii: "X")
    var wrongVersion = blob
    wrongVersion[9] = 2
    for (text, reason) in [
      ("", "no -----BEGIN SSH SIGNATURE-----"),
      ("not a signature\n", "no -----BEGIN SSH SIGNATURE-----"),
      ("-----BEGIN SSH SIGNATURE-----\n%%%\n-----END SSH SIGNATURE-----\n", "not base64"),
      (armor(blob.prefix(40)), "truncated"),
      (armor(blob.prefix(blob.count - 1)), "truncated"),
      (armor(blob + Data([0])), "trailing bytes"),
      (armor(wrongMagic), "no SSHSIG magic"),
      (armor(wrongVersion), "unsupported SSHSIG version 2"),
    ] {
      try Data(text.utf8).write(to: URL(fileURLWithPath: plugin + ".sig"))
      let error = try expectRefused(trust, plugin)
      guard case .malformedSignature(let found) = try refusal(error) else {
        Issue.record("not a malformed signature: \(error)")
        continue
      }
      #expect(found.contains(reason), "\(found)")
      #expect(error.message.contains(plugin + ".sig"))
    }

    // An RSA key signs, but its signatures are not verified: refused with that reason.
    let rsa = try await directory.makeKey("rsa", type: "rsa", bits: 2048)
    try await directory.sign(plugin, key: "rsa")
    let rsaTrust = PluginTrust(
      signatures: PluginSignatureRequirement(
        allowedSigners: try directory.allowedSigners([try directory.signerLine("rsa")]))
    )
    #expect(
      try refusal(try expectRefused(rsaTrust, plugin))
        == .unsupportedKey(fingerprint: rsa.fingerprint, keyType: "ssh-rsa"))
  }

  @Test("an allowed-signers file with a bad line is a configuration error naming the file and line")
  func badAllowedSigners() async throws {
    let directory = try SigningDirectory()
    defer { directory.remove() }
    _ = try await directory.makeKey("key", type: "ed25519")
    let good = try directory.signerLine("key")
    let base64 = good.split(separator: " ")[2]
    for (line, reason) in [
      ("alice@example.com", "no key after the principals"),
      ("alice@example.com ssh-ed25519", "no base64 key"),
      ("alice@example.com ssh-ed25519 !!!!", "not base64"),
      ("alice@example.com ecdsa-sha2-nistp256 \(base64)", "labelled ecdsa-sha2-nistp256 but is a ssh-ed25519 key"),
      ("alice@example.com no-touch-required ssh-ed25519 \(base64)", "unsupported option no-touch-required"),
      ("alice@example.com valid-after=\"yesterday\" ssh-ed25519 \(base64)", "is not YYYYMMDD"),
      ("alice@example.com namespaces=\"goplugin ssh-ed25519 \(base64)", "unterminated quote"),
    ] {
      #expect {
        _ = try directory.allowedSigners([good, line])
      } throws: { error in
        let error = try #require(error as? PluginError)
        return error.code == .invalidConfiguration && error.message.contains(directory.path("allowed_signers") + ":2: ")
          && error.message.contains(reason)
      }
    }
    // Quoted principals, tabs, a comment after the key and CRLF line ends are all OpenSSH's format.
    let signers = try AllowedSigners(
      parsing: "\"a b@example.com\"\t\(good.split(separator: " ").dropFirst().joined(separator: " ")) my laptop\r\n")
    #expect(signers.entries.map(\.principals) == ["a b@example.com"])
  }
}

@Suite("Plugin lock file", .timeLimit(.minutes(2)))
struct PluginLockFileTests {
  @Test("refuse: an unknown plugin is refused, a locked one passes, one byte changed is refused")
  func refusePolicy() throws {
    let directory = try SigningDirectory()
    defer { directory.remove() }
    let plugin = try directory.writePlugin("kv")
    let digest = try PluginChecksum(ofFile: plugin)
    let lockPath = directory.path("plugins.lock")
    let lock = try PluginLockFile(path: lockPath, policy: .refuse)
    let trust = PluginTrust(lockFile: lock)

    #expect(try refusal(try expectRefused(trust, plugin)) == .notLocked(name: "kv", lockFile: lockPath, found: digest))
    #expect(!FileManager.default.fileExists(atPath: lockPath), "refusing must not write the lock")

    try lock.record("kv", digest: digest)
    let trusted = try trust.check(path: plugin)
    #expect(trusted.lock == .matched)
    #expect(trusted.sha256 == digest)

    try directory.changeOneByte(plugin)
    let changed = try PluginChecksum(ofFile: plugin)
    let error = try expectRefused(trust, plugin)
    #expect(try refusal(error) == .changed(name: "kv", lockFile: lockPath, expected: digest, found: changed))
    #expect(error.message.contains("expects \(digest)"))
    #expect(error.message.contains("found \(changed)"))

    // The host accepts the upgrade by recording it; the old digest is then refused.
    try lock.record("kv", digest: changed)
    #expect(try trust.check(path: plugin).lock == .matched)
  }

  @Test("trust on first use records an unknown plugin, then accepts it and refuses it changed")
  func trustOnFirstUse() throws {
    let directory = try SigningDirectory()
    defer { directory.remove() }
    let plugin = try directory.writePlugin("kv-plugin")
    let digest = try PluginChecksum(ofFile: plugin)
    let lockPath = directory.path("plugins.lock")
    let trust = PluginTrust(lockFile: try PluginLockFile(path: lockPath, policy: .trustOnFirstUse))

    #expect(try trust.check(path: plugin, name: "kv").lock == .recorded)
    #expect(try trust.check(path: plugin, name: "kv").lock == .matched)

    // What was written is the documented format, and another process reading it agrees.
    let json =
      try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: lockPath))) as? [String: Any]
    #expect(json?["version"] as? Int == 1)
    let hex = String(digest.description.dropFirst("sha256:".count))
    #expect(((json?["plugins"] as? [String: Any])?["kv"] as? [String: Any])?["sha256"] as? String == hex)
    let reread = try PluginLockFile(path: lockPath, policy: .refuse)
    #expect(reread.digests == ["kv": digest])
    // No temporary file is left beside it.
    #expect(
      try FileManager.default.contentsOfDirectory(atPath: directory.url.path).sorted() == ["kv-plugin", "plugins.lock"])

    try directory.changeOneByte(plugin, at: 0)
    let error = try expectRefused(trust, plugin, name: "kv")
    guard case .changed(let name, _, let expected, _) = try refusal(error) else {
      Issue.record("not a change: \(error)")
      return
    }
    #expect(name == "kv")
    #expect(expected == digest)
    #expect(try PluginLockFile(path: lockPath).digests == ["kv": digest], "a changed plugin must not be recorded")
  }

  @Test("a lock file that is not one is a configuration error")
  func malformedLockFile() throws {
    let directory = try SigningDirectory()
    defer { directory.remove() }
    let path = directory.path("plugins.lock")
    for (text, reason) in [
      ("not json", "is not a plugin lock file"),
      ("{\"version\": 2, \"plugins\": {}}", "has version 2"),
      ("{\"version\": 1, \"plugins\": {\"kv\": {\"sha256\": \"abc\"}}}", "plugin \"kv\""),
    ] {
      try Data(text.utf8).write(to: URL(fileURLWithPath: path))
      #expect {
        _ = try PluginLockFile(path: path)
      } throws: { error in
        let error = try #require(error as? PluginError)
        return error.code == .invalidConfiguration && error.message.contains(path) && error.message.contains(reason)
      }
    }
  }

  @Test("signatures and the lock together: a bad signature is not recorded on first use")
  func combined() async throws {
    let directory = try SigningDirectory()
    defer { directory.remove() }
    _ = try await directory.makeKey("key", type: "ed25519")
    let plugin = try directory.writePlugin("kv")
    try await directory.sign(plugin, key: "key")
    let lock = try PluginLockFile(path: directory.path("plugins.lock"), policy: .trustOnFirstUse)
    let trust = PluginTrust(
      lockFile: lock,
      signatures: PluginSignatureRequirement(
        allowedSigners: try directory.allowedSigners([try directory.signerLine("key")]))
    )
    try directory.changeOneByte(plugin)
    guard case .badSignature = try refusal(try expectRefused(trust, plugin)) else {
      Issue.record("not refused for its signature")
      return
    }
    #expect(lock.digests.isEmpty)
    try await directory.sign(plugin, key: "key")
    let trusted = try trust.check(path: plugin)
    #expect(trusted.lock == .recorded)
    #expect(trusted.signer?.principals == "dev@example.com")
  }
}

@Suite("Trusted launches", .timeLimit(.minutes(2)))
struct TrustedLaunchTests {
  /// A plugin script that leaves a marker when it runs, then becomes the fixture plugin.
  func makeScript(in directory: SigningDirectory) throws -> (script: String, marker: String) {
    let marker = directory.path("ran")
    let script = directory.path("kv")
    let text =
      "#!/bin/sh\n# a comment to tamper with\ntouch '\(marker)'\nexec '\(try BuildProducts.path("fixture-plugin"))' serve\n"
    try Data(text.utf8).write(to: URL(fileURLWithPath: script))
    chmod(script, 0o755)
    return (script, marker)
  }

  @Test("a host with a trust policy runs a trusted plugin and never starts a refused one")
  func launch() async throws {
    let directory = try SigningDirectory()
    defer { directory.remove() }
    let (script, marker) = try makeScript(in: directory)
    _ = try await directory.makeKey("key", type: "ecdsa", bits: 256)
    try await directory.sign(script, key: "key")
    let lock = try PluginLockFile(path: directory.path("plugins.lock"), policy: .trustOnFirstUse)
    var configuration = PluginClientConfiguration(
      command: PluginCommand(script), handshake: .kv, plugins: ["kv": KVPlugin()])
    configuration.standardInput = .none
    configuration.trust = PluginTrust(
      lockFile: lock,
      signatures: PluginSignatureRequirement(
        allowedSigners: try directory.allowedSigners([try directory.signerLine("key")]))
    )
    try await withPluginClient(configuration) { client in
      try await client.dispense("kv", as: KVPlugin.self).put("k", value: [1])
    }
    #expect(FileManager.default.fileExists(atPath: marker))
    #expect(lock.digest(for: "kv") == (try PluginChecksum(ofFile: script)))
    try FileManager.default.removeItem(atPath: marker)

    // One byte changed and signed again: the signature passes, the lock refuses it.
    var bytes = try Data(contentsOf: URL(fileURLWithPath: script))
    let index = try #require(bytes.firstIndex(of: UInt8(ascii: "c")))
    bytes[index] = UInt8(ascii: "C")
    try bytes.write(to: URL(fileURLWithPath: script))
    try await directory.sign(script, key: "key")
    do {
      // Scoped, so that a regression that starts the plugin fails here instead of hanging.
      try await withPluginClient(configuration) { _ in }
      Issue.record("the changed plugin started")
    } catch let error as PluginError {
      guard case .changed(let name, _, _, _) = try refusal(error) else {
        Issue.record("not refused by the lock: \(error)")
        return
      }
      #expect(name == "kv")
    }
    #expect(!FileManager.default.fileExists(atPath: marker), "the refused plugin ran")
  }

  @Test("trust cannot be combined with reattach: a running process has no file to check")
  func reattach() async throws {
    let reattach = PluginReattachConfiguration(protocolVersion: 1, pid: getpid(), network: .unix, address: "/tmp/x")
    var configuration = PluginClientConfiguration(reattachingTo: reattach, handshake: .kv, plugins: ["kv": KVPlugin()])
    configuration.trust = PluginTrust()
    let (error, _) = try await failedStart(configuration)
    #expect(error.code == .invalidConfiguration)
    #expect(error.message.contains("trust cannot be set with reattach"))
  }
}
