import Foundation
import Testing

@testable import GoPlugin

/// A scratch directory of plugin candidates.
private struct CandidateDirectory {
  let path: String

  init() throws {
    self.path =
      FileManager.default.temporaryDirectory.appendingPathComponent(
        "goplugin-discovery-\(UInt32.random(in: 0...UInt32.max))"
      ).path
    try FileManager.default.createDirectory(atPath: self.path, withIntermediateDirectories: true)
  }

  func remove() { try? FileManager.default.removeItem(atPath: self.path) }

  @discardableResult
  func file(_ name: String, executable: Bool) throws -> String {
    let path = self.path + "/" + name
    try Data("#!/bin/sh\nexit 0\n".utf8).write(to: URL(fileURLWithPath: path))
    try FileManager.default.setAttributes([.posixPermissions: executable ? 0o755 : 0o644], ofItemAtPath: path)
    return path
  }
}

@Suite("Plugin discovery")
struct DiscoveryTests {
  @Test("finds executables; reports directories, non-executables and broken links with the reason; skips dot-files")
  func scan() throws {
    let directory = try CandidateDirectory()
    defer { directory.remove() }
    try directory.file("alpha", executable: true)
    try directory.file("README", executable: false)
    try directory.file(".alpha.tmp123", executable: true)
    try directory.file(".hidden-readme", executable: false)
    try FileManager.default.createDirectory(atPath: directory.path + "/subdir", withIntermediateDirectories: false)
    try FileManager.default.createSymbolicLink(
      atPath: directory.path + "/dangling", withDestinationPath: "/nonexistent/x")
    try FileManager.default.createSymbolicLink(atPath: directory.path + "/linked", withDestinationPath: "alpha")

    let result = PluginDiscovery(directories: [directory.path + "/", "/nonexistent/goplugin-dir"]).scan()
    #expect(
      result.plugins == [
        DiscoveredPlugin(path: directory.path + "/alpha", name: "alpha"),
        DiscoveredPlugin(path: directory.path + "/linked", name: "linked"),
      ])
    let reasons = Dictionary(uniqueKeysWithValues: result.issues.map { ($0.path, $0.reason) })
    #expect(reasons.count == 4, "\(result.issues)")
    #expect(reasons[directory.path + "/README"] == .notExecutable)
    #expect(reasons[directory.path + "/subdir"] == .directory)
    #expect(reasons[directory.path + "/dangling"] == .brokenSymbolicLink)
    guard case .unreadableDirectory(let why)? = reasons["/nonexistent/goplugin-dir"] else {
      Issue.record("a missing directory is not reported: \(result.issues)")
      return
    }
    #expect(why.contains("No such file"))
    #expect(result.issues.first { $0.reason == .directory }?.description == directory.path + "/subdir is a directory")
  }

  @Test("the glob and the naming convention choose the candidates; the convention names and versions them")
  func namingConvention() throws {
    let directory = try CandidateDirectory()
    defer { directory.remove() }
    try directory.file("myapp-plugin-kv", executable: true)
    try directory.file("myapp-plugin-cache_v1.2.0", executable: true)
    try directory.file("myapp-plugin-rc_v2.0.0-rc1", executable: true)
    try directory.file("myapp-plugin-odd_vX", executable: true)
    try directory.file("myapp-plugin-", executable: true)
    try directory.file("other-tool", executable: true)
    try directory.file("myapp-plugin-notes", executable: false)

    let convention = PluginNamingConvention(prefix: "myapp-plugin-")
    let result = PluginDiscovery(directories: [directory.path], naming: convention).scan()
    #expect(
      result.plugins.map { [$0.name, $0.version ?? "-"] }.sorted { $0[0] < $1[0] } == [
        ["cache", "1.2.0"], ["kv", "-"], ["odd_vX", "-"], ["rc", "2.0.0-rc1"],
      ])
    #expect(result.issues.map(\.path) == [directory.path + "/myapp-plugin-notes"])

    let noVersions = PluginNamingConvention(prefix: "myapp-plugin-", versionSuffix: false)
    #expect(noVersions.match("myapp-plugin-cache_v1.2.0")?.name == "cache_v1.2.0")

    let globbed = PluginDiscovery(directories: [directory.path], glob: "*_v*").scan()
    #expect(
      globbed.plugins.map(\.name) == ["myapp-plugin-cache_v1.2.0", "myapp-plugin-odd_vX", "myapp-plugin-rc_v2.0.0-rc1"])
  }
}
