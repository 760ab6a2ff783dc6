import Foundation
import GoPluginTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A plugin directory: the Swift, Go and Python KV plugins, the Go net/rpc plugin, and files
/// that are not plugins.
private struct PluginDirectory {
  let root: String
  var plugins: String { self.root + "/plugins" }
  var cache: String { self.root + "/cache.json" }
  /// Every start of a counted file appends a line here.
  var launches: String { self.root + "/launches" }
  /// The pid of the script that prints junk and then hangs.
  var hangingPid: String { self.root + "/hanging.pid" }
  /// The pid of the script that says nothing and hangs.
  var silentPid: String { self.root + "/silent.pid" }

  init() throws {
    self.root =
      FileManager.default.temporaryDirectory.appendingPathComponent(
        "goplugin-list-\(UInt32.random(in: 0...UInt32.max))"
      ).path
    try FileManager.default.createDirectory(atPath: self.root + "/plugins", withIntermediateDirectories: true)
  }

  func remove() { try? FileManager.default.removeItem(atPath: self.root) }

  func path(_ name: String) -> String { self.plugins + "/" + name }

  func copy(_ source: String, as name: String) throws {
    try FileManager.default.copyItem(atPath: source, toPath: self.path(name))
  }

  func write(_ name: String, _ text: String, mode: Int = 0o755) throws {
    try Data(text.utf8).write(to: URL(fileURLWithPath: self.path(name)))
    try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: self.path(name))
  }

  /// The full set, with the Swift plugin behind a script that counts its starts.
  func fill() async throws {
    try self.write(
      "swift-kv",
      "#!/bin/sh\necho swift-kv >> '\(self.launches)'\nexec '\(try BuildProducts.path("kv-plugin"))' \"$@\"\n")
    try self.copy(try await GoPeers.path("go-kv-plugin"), as: "go-kv")
    try self.copy(try await GoPeers.path("go-netrpc-plugin"), as: "go-netrpc")
    try self.copy(try await GoPeers.path("python-kv-plugin"), as: "python-kv")
    try self.write(
      "junk.sh",
      "#!/bin/sh\necho junk.sh >> '\(self.launches)'\necho $$ > '\(self.hangingPid)'\necho 'hello, I am not a plugin'\nexec sleep 60\n"
    )
    try self.write(
      "silent.sh", "#!/bin/sh\necho silent.sh >> '\(self.launches)'\necho $$ > '\(self.silentPid)'\nexec sleep 60\n")
    try self.write("exits.sh", "#!/bin/sh\necho exits.sh >> '\(self.launches)'\nexit 3\n")
    try self.write("README", "not a plugin\n", mode: 0o644)
    try self.write(".swift-kv.tmp1234", "#!/bin/sh\necho dot >> '\(self.launches)'\nexit 1\n")
    try FileManager.default.createDirectory(atPath: self.path("subdir"), withIntermediateDirectories: false)
  }

  var launchCount: Int {
    ((try? String(contentsOfFile: self.launches, encoding: .utf8)) ?? "").split(separator: "\n").count
  }

  func list(_ extra: [String] = []) async throws -> [String: [String: Any]] {
    let run = try await CLIRun.run(
      ["list", "--json", "--cookie", kvCookie, "--timeout", "5", "--cache", self.cache] + extra + [self.plugins])
    try #require(run.status == 0, "\(run.stderr)")
    let array = try #require(
      try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [[String: Any]], "\(run.stdout)")
    return Dictionary(uniqueKeysWithValues: array.map { ((($0["path"] as? String) ?? "?"), $0) })
  }

  static func sha256(_ path: String) async throws -> String {
    let run = try await CLIRun.run("/usr/bin/sha256sum", [path])
    return String(run.stdout.prefix { $0 != " " })
  }
}

@Suite("goplugin list and lock", .timeLimit(.minutes(10)))
struct GoPluginListTests {
  @Test("lists every file with its description or why it is not usable; a second list launches nothing")
  func listDirectory() async throws {
    let directory = try PluginDirectory()
    defer { directory.remove() }
    try await directory.fill()

    let files = try await directory.list()
    #expect(files.count == 9, "\(files.keys.sorted())")
    #expect(files[directory.path(".swift-kv.tmp1234")] == nil)

    for (name, protocolName, health) in [
      ("swift-kv", "grpc", "plugin"), ("go-kv", "grpc", "plugin"), ("python-kv", "grpc", "plugin"),
      ("go-netrpc", "netrpc", "Control.Ping"),
    ] {
      let file = try #require(files[directory.path(name)], "\(name) is not listed")
      #expect(file["usable"] as? Bool == true, "\(name): \(file)")
      #expect(file["reason"] == nil, "\(name): \(file)")
      #expect(file["name"] as? String == name)
      #expect(file["protocol"] as? String == protocolName, "\(name)")
      #expect(file["negotiatedVersion"] as? Int == 1)
      #expect(file["coreProtocolVersion"] as? Int == 1)
      #expect(file["autoMTLS"] as? Bool == false)
      #expect(file["multiplexed"] as? Bool == false)
      #expect(file["cached"] as? Bool == false)
      #expect(file["lock"] == nil)
      #expect(file["sha256"] as? String == (try await PluginDirectory.sha256(directory.path(name))))
      let checked = try #require(file["health"] as? [String: Any])
      #expect(checked["service"] as? String == health)
      #expect(checked["status"] as? String == "SERVING")
    }
    #expect((files[directory.path("swift-kv")]?["services"] as? [String])?.contains("kvbench.KV") == true)
    #expect(files[directory.path("go-netrpc")]?["services"] as? [String] == ["Control", "Dispenser"])

    // The Swift plugin describes itself through the info service; the others have none.
    let info = try #require(files[directory.path("swift-kv")]?["info"] as? [String: Any], "no info for swift-kv")
    #expect(info["name"] as? String == "kv-plugin")
    #expect((info["description"] as? String)?.contains("KV example") == true)
    let offers = try #require(info["versions"] as? [[String: Any]])
    #expect(offers.count == 1)
    #expect(offers.first?["version"] as? Int == 1)
    #expect(offers.first?["protocol"] as? String == "grpc")
    #expect(offers.first?["plugins"] as? [String] == ["kv"])
    #expect((info["build"] as? [String: Any])?["os"] as? String == "linux")
    #expect((info["metadata"] as? [String: String])?["example"] == "KV")
    for name in ["go-kv", "python-kv", "go-netrpc"] {
      #expect(files[directory.path(name)]?["info"] == nil, "\(name)")
    }

    for (name, reason) in [
      ("junk.sh", "malformedHandshake"), ("exits.sh", "exitedBeforeHandshake"), ("silent.sh", "startTimeout"),
      ("README", "is not executable"),
      ("subdir", "is a directory"),
    ] {
      let file = try #require(files[directory.path(name)], "\(name) is not listed")
      #expect(file["usable"] as? Bool == false, "\(name)")
      #expect((file["reason"] as? String)?.contains(reason) == true, "\(name): \(file)")
      #expect(file["protocol"] == nil)
      // Reasons are cached: they name no process that is gone by the next list.
      #expect((file["reason"] as? String)?.contains("pid") == false, "\(name): \(file)")
    }
    #expect(
      files[directory.path("README")]?["sha256"] as? String
        == (try await PluginDirectory.sha256(directory.path("README"))))
    #expect(files[directory.path("subdir")]?["sha256"] == nil)

    // The scripts that printed junk or nothing and hung were stopped with everything else.
    for pidFile in [directory.hangingPid, directory.silentPid] {
      let pidText = try String(contentsOfFile: pidFile, encoding: .utf8)
      let pid = try #require(Int32(pidText.trimmingCharacters(in: .whitespacesAndNewlines)))
      #expect(kill(pid, 0) != 0 && errno == ESRCH, "the hanging non-plugin \(pid) is still running")
    }
    #expect(directory.launchCount == 4)

    // Unchanged files: every description comes from the cache, nothing is launched.
    let again = try await directory.list()
    #expect(directory.launchCount == 4)
    for name in ["swift-kv", "go-kv", "python-kv", "go-netrpc", "junk.sh", "exits.sh", "silent.sh"] {
      #expect(again[directory.path(name)]?["cached"] as? Bool == true, "\(name)")
      #expect(again[directory.path(name)]?["usable"] as? Bool == files[directory.path(name)]?["usable"] as? Bool)
    }
    #expect(
      again[directory.path("swift-kv")]?["services"] as? [String] == files[directory.path("swift-kv")]?["services"]
        as? [String])
    #expect((again[directory.path("swift-kv")]?["info"] as? [String: Any])?["name"] as? String == "kv-plugin")

    // --refresh launches again.
    _ = try await directory.list(["--refresh"])
    #expect(directory.launchCount == 8)
  }

  @Test("lock writes the usable plugins' digests; list then marks a one-byte-changed binary as changed")
  func lockThenList() async throws {
    let directory = try PluginDirectory()
    defer { directory.remove() }
    try directory.copy(try BuildProducts.path("kv-plugin"), as: "kv")
    try directory.copy(try await GoPeers.path("go-kv-plugin"), as: "go-kv")
    try directory.write("exits.sh", "#!/bin/sh\nexit 3\n")

    let lock = try await CLIRun.run(
      ["lock", "--cookie", kvCookie, "--timeout", "5", "--cache", directory.cache, directory.plugins])
    #expect(lock.status == 0, "\(lock.stderr)")
    #expect(lock.stdout.contains("skipped \(directory.path("exits.sh"))"))
    let lockFile =
      try JSONSerialization.jsonObject(
        with: Data(contentsOf: URL(fileURLWithPath: directory.path("goplugin.lock")))) as? [String: Any]
    #expect(lockFile?["version"] as? Int == 1)
    let locked = try #require(lockFile?["plugins"] as? [String: [String: String]])
    #expect(locked.keys.sorted() == ["go-kv", "kv"])
    #expect(locked["kv"]?["sha256"] == (try await PluginDirectory.sha256(directory.path("kv"))))
    #expect(locked["go-kv"]?["sha256"] == (try await PluginDirectory.sha256(directory.path("go-kv"))))

    let matched = try await directory.list()
    #expect(matched.count == 3, "the lock file is not a plugin: \(matched.keys.sorted())")
    #expect(matched[directory.path("kv")]?["lock"] as? String == "matched")
    #expect(matched[directory.path("go-kv")]?["lock"] as? String == "matched")
    #expect(matched[directory.path("exits.sh")]?["lock"] as? String == "unknown")

    // One byte more at the end: the ELF file still runs, but it is not the locked one.
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: directory.path("kv")))
    try handle.seekToEnd()
    try handle.write(contentsOf: Data([0]))
    try handle.close()
    let changed = try await directory.list()
    #expect(changed[directory.path("kv")]?["lock"] as? String == "changed")
    #expect(changed[directory.path("kv")]?["usable"] as? Bool == true)
    #expect(changed[directory.path("kv")]?["cached"] as? Bool == false)
    #expect(changed[directory.path("go-kv")]?["lock"] as? String == "matched")

    let text = try await CLIRun.run(
      ["list", "--cookie", kvCookie, "--cache", directory.cache, directory.plugins])
    #expect(text.stdout.contains("\(directory.path("kv")): grpc v1"))
    #expect(text.stdout.contains("[lock: changed]"))
    // The info service's name defaults to the executable's file name: this copy's is kv.
    #expect(text.stdout.contains("\(directory.path("kv")): grpc v1, kv "), "\(text.stdout)")
    #expect(text.stdout.contains("The KV example"), "\(text.stdout)")
    #expect(text.stdout.contains("(offers v1 grpc: kv)"), "\(text.stdout)")
  }

  @Test(
    "bad arguments are usage errors",
    arguments: [
      (["list", "/tmp"], "--cookie"),
      (["list", "--cookie", "K=V"], "Missing the directories"),
      (["list", "--cookie", "nocookie", "/tmp"], "KEY=VALUE"),
      (["lock", "--cookie", "K=V", "/tmp", "/var"], "one directory"),
    ])
  func usageErrors(arguments: [String], message: String) async throws {
    let run = try await CLIRun.run(arguments)
    #expect(run.status == 64)
    #expect(run.stderr.contains(message), "\(run.stderr)")
  }
}
