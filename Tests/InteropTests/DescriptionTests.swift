import Foundation
import GoPluginTesting
import KVInterface
import Testing

@testable import GoPlugin

#if canImport(Glibc)
import Glibc
#endif

/// A directory of plugins for the describer, in which every Swift plugin sits behind a script
/// that counts its starts and records its pid.
private struct DescribedDirectory {
  let root: String
  var plugins: String { self.root + "/plugins" }
  var cacheFile: String { self.root + "/cache/descriptions.json" }
  var launches: String { self.root + "/launches" }

  init() throws {
    self.root =
      FileManager.default.temporaryDirectory.appendingPathComponent(
        "goplugin-describe-\(UInt32.random(in: 0...UInt32.max))"
      ).path
    try FileManager.default.createDirectory(atPath: self.plugins, withIntermediateDirectories: true)
  }

  func remove() { try? FileManager.default.removeItem(atPath: self.root) }

  func path(_ name: String) -> String { self.plugins + "/" + name }

  /// A script named `name` that records its start (name and pid) and execs `executable`.
  func counted(_ name: String, _ executable: String, arguments: [String] = []) throws {
    let quoted = ([executable] + arguments).map { "'\($0)'" }.joined(separator: " ")
    let text = "#!/bin/sh\necho \"\(name) $$\" >> '\(self.launches)'\nexec \(quoted) \"$@\"\n"
    try Data(text.utf8).write(to: URL(fileURLWithPath: self.path(name)))
    try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: self.path(name))
  }

  func copy(_ source: String, as name: String) throws {
    try FileManager.default.copyItem(atPath: source, toPath: self.path(name))
  }

  /// Every recorded start: the script's name and its pid (the plugin's, after the exec).
  var started: [(name: String, pid: Int32)] {
    ((try? String(contentsOfFile: self.launches, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { line in
      let fields = line.split(separator: " ")
      guard fields.count == 2, let pid = Int32(fields[1]) else { return nil }
      return (String(fields[0]), pid)
    }
  }

  func describer(cache: PluginDescriptionCache?) -> PluginDescriber {
    // Every plugin here shares the KV cookie; 3 is the negotiated fixture's gRPC version.
    PluginDescriber(handshake: .kv, versions: [1, 3], timeout: .seconds(30), cache: cache)
  }

  func scan() -> PluginDiscovery.Result {
    PluginDiscovery(directories: [self.plugins]).scan()
  }
}

@Suite("Plugin descriptions", .timeLimit(.minutes(10)))
struct DescriptionTests {
  @Test("Swift plugins describe themselves through the info service; Go and Python ones are described without it")
  func describeMixedDirectory() async throws {
    let directory = try DescribedDirectory()
    defer { directory.remove() }
    try directory.counted("kv", try BuildProducts.path("kv-plugin"))
    try directory.counted("negotiated", try BuildProducts.path("fixture-plugin"), arguments: ["serve-negotiated"])
    try directory.counted("counter", try BuildProducts.path("counter-plugin"))
    try directory.copy(try await Peers.path("go-kv-plugin"), as: "go-kv")
    try directory.copy(try await Peers.path("python-kv-plugin"), as: "python-kv")

    let descriptions = await directory.describer(cache: nil).describe(directory.scan())
    let byName = Dictionary(uniqueKeysWithValues: descriptions.map { (($0.path as NSString).lastPathComponent, $0) })
    #expect(byName.keys.sorted() == ["counter", "go-kv", "kv", "negotiated", "python-kv"])
    for description in descriptions {
      #expect(description.usable, "\(description.path): \(description.reason ?? "?")")
      #expect(description.protocol == "grpc", "\(description.path)")
      #expect(description.cached == false)
      #expect(description.health?.status == "SERVING")
    }

    // The KV example: named after its executable, with the version and words it configured.
    let kv = try #require(byName["kv"]?.info, "the KV plugin served no info")
    #expect(kv.name == "kv-plugin")
    #expect(kv.version == GoPluginRuntime.libraryVersion)
    #expect(kv.description?.contains("KV example") == true)
    #expect(kv.versions == [.init(version: 1, protocol: "grpc", plugins: ["kv"])])
    #expect(kv.metadata["example"] == "KV")
    let build = try #require(kv.build)
    #expect(build.libraryVersion == GoPluginRuntime.libraryVersion)
    #expect(build.swiftVersion?.isEmpty == false)
    #expect(build.os == "linux")
    #expect(!build.arch.isEmpty && build.arch != "unknown")
    let services = try #require(byName["kv"]?.services)
    #expect(services.contains("kvbench.KV"))
    #expect(!services.contains("goplugin.info.v1.PluginInfo"), "the info service is the protocol's, not the plugin's")

    // Two versions over two protocols: every version is offered, with what it is served over.
    let negotiated = try #require(byName["negotiated"])
    #expect(negotiated.negotiatedVersion == 3)
    let offers = try #require(negotiated.info)
    #expect(offers.name == "fixture-plugin")
    #expect(offers.version == "3.1.4")
    #expect(
      offers.versions == [
        .init(version: 2, protocol: "netrpc", plugins: ["callback", "greeter", "kv"]),
        .init(version: 3, protocol: "grpc", plugins: ["kv"]),
      ])
    #expect(offers.metadata == ["fixture": "negotiated"])
    #expect(byName["counter"]?.info?.versions.first?.plugins == ["counter"])

    // Go and Python plugins have no info service: described all the same, without it.
    for name in ["go-kv", "python-kv"] {
      let description = try #require(byName[name])
      #expect(description.info == nil, "\(name)")
      #expect(description.negotiatedVersion == 1)
      #expect(description.services?.isEmpty == false, "\(name)")
    }

    // Every plugin the describer started is gone.
    #expect(directory.started.count == 3)
    for (name, pid) in directory.started {
      #expect(kill(pid, 0) != 0 && errno == ESRCH, "\(name) (pid \(pid)) is still running")
    }

    // The JSON form keeps the info whole, under "info".
    let json = try JSONEncoder().encode(byName["negotiated"])
    let object = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
    #expect((object["info"] as? [String: Any])?["version"] as? String == "3.1.4")
    #expect(object["cached"] == nil)
    #expect(try JSONDecoder().decode(PluginDescription.self, from: json) == byName["negotiated"])
  }

  @Test("a directory described twice launches nothing the second time; a changed byte is described again")
  func cacheLaunchesNothingTwice() async throws {
    let directory = try DescribedDirectory()
    defer { directory.remove() }
    let kvPlugin = try BuildProducts.path("kv-plugin")
    for index in 1...5 {
      // Each script differs by its name, so each has a digest of its own.
      try directory.counted("kv-\(index)", kvPlugin)
    }
    try directory.counted("exits", "/bin/false")
    try directory.copy(try await Peers.path("go-kv-plugin"), as: "go-kv")
    try Data("not a plugin\n".utf8).write(to: URL(fileURLWithPath: directory.path("README")))

    let cache = PluginDescriptionCache(path: directory.cacheFile)
    let first = await directory.describer(cache: cache).describe(directory.scan())
    #expect(first.count == 8)
    #expect(first.filter(\.usable).count == 6, "\(first.map { "\($0.path): \($0.reason ?? "ok")" })")
    #expect(first.allSatisfy { !$0.cached })
    #expect(directory.started.count == 6)
    #expect(first.first { $0.path.hasSuffix("/exits") }?.reason?.contains("exitedBeforeHandshake") == true)
    #expect(first.first { $0.path.hasSuffix("/README") }?.reason == "is not executable")

    // The file is written by save(), atomically: no temporary file is left beside it.
    #expect(!FileManager.default.fileExists(atPath: directory.cacheFile))
    try cache.save()
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory.root + "/cache") == ["descriptions.json"])

    // A new cache read from the file, as another process would: nothing is launched.
    let reread = PluginDescriptionCache(path: directory.cacheFile)
    #expect(reread.count == 7)
    let second = await directory.describer(cache: reread).describe(directory.scan())
    #expect(directory.started.count == 6, "a cached plugin was launched: \(directory.started)")
    #expect(second.filter { $0.sha256 != nil && !$0.path.hasSuffix("/README") }.allSatisfy { $0.cached })
    for (before, after) in zip(first, second) {
      var after = after
      after.cached = false
      #expect(before == after)
    }

    // One byte changed: that file, and only it, is launched again.
    let changed = directory.path("kv-3")
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: changed))
    try handle.seekToEnd()
    try handle.write(contentsOf: Data("#\n".utf8))
    try handle.close()
    let third = await directory.describer(cache: reread).describe(directory.scan())
    #expect(directory.started.count == 7)
    #expect(directory.started.last?.name == "kv-3")
    #expect(third.first { $0.path == changed }?.cached == false)
    #expect(third.first { $0.path == changed }?.usable == true)
    #expect(third.filter { $0.path.contains("/kv-") && $0.path != changed }.allSatisfy { $0.cached })
  }
}
