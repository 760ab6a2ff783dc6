import Foundation
import GoPluginSpawn
import GoPluginTesting
import Subprocess
import SystemPackage
import Testing

@testable import GoPlugin

#if canImport(Glibc)
import Glibc
#endif

/// A host process (Tests/Fixtures/orphan-host) running a Swift, a Go and a Python plugin is
/// killed or asked to stop; its plugins must not outlive it, whatever their language.
@Suite("No orphans, in Swift, Go and Python", .timeLimit(.minutes(5)))
struct OrphanInteropTests {
  /// What a host run left: its output lines, how it ended, its plugins' pids, and which of
  /// them were still running once it had been ended.
  struct HostRun {
    var lines: [String]
    var status: TerminationStatus
    var plugins: [Int32]
    var stillRunning: [Int32]
    var host: Int32 = 0
  }

  /// Starts orphan-host with the three plugins, in a process group of its own as a shell would
  /// start it; once all three have started, ends it with `end` (given its pid), and looks for
  /// its plugins `limit` later (or as soon as all are gone).
  func runHost(limit: Duration, end: @escaping (Int32) -> Void) async throws -> HostRun {
    let plugins = [
      try BuildProducts.path("kv-plugin"),
      try await Peers.path("go-kv-plugin"),
      try await Peers.path("python-kv-plugin"),
    ]
    var options = PlatformOptions()
    options.processGroupID = 0
    let result = try await Subprocess.run(
      .path(FilePath(try BuildProducts.path("orphan-host"))),
      arguments: Arguments(plugins),
      platformOptions: options,
      input: .none,
      output: .sequence,
      error: .discarded
    ) { execution in
      var lines: [String] = []
      var splitter = LineSplitter()
      var chunks = execution.standardOutput.makeAsyncIterator()
      func started() -> Bool { lines.filter { $0.hasPrefix("pid ") || $0.hasPrefix("failed ") }.count == plugins.count }
      while !started(), let chunk = try await chunks.next() {
        lines += chunk.withUnsafeBytes { splitter.feed($0) }.map { String(decoding: $0.bytes, as: UTF8.self) }
      }
      let pids = lines.filter { $0.hasPrefix("pid ") }.compactMap {
        $0.split(separator: " ").last.flatMap { Int32($0) }
      }
      // Watched from before the end, so that no pid reused afterwards can be mistaken for a plugin.
      let watch = ProcessWatch(pids)
      end(execution.processIdentifier.value)
      let stillRunning = await watch.running(after: limit)
      while let chunk = try await chunks.next() {
        lines += chunk.withUnsafeBytes { splitter.feed($0) }.map { String(decoding: $0.bytes, as: UTF8.self) }
      }
      return HostRun(
        lines: lines, status: .exited(0), plugins: pids, stillRunning: stillRunning,
        host: execution.processIdentifier.value)
    }
    var run = result.closureResult
    run.status = result.terminationStatus
    #expect(run.plugins.count == plugins.count, "\(run.lines)")
    return run
  }

  @Test("a host killed with SIGKILL takes its plugins with it within a second")
  func killed() async throws {
    let run = try await self.runHost(limit: .seconds(1)) { host in kill(host, SIGKILL) }
    #expect(run.status == .signaled(SIGKILL))
    #expect(run.stillRunning == [], "\(run.lines)")

    // The killed host could not remove its plugins' directories (the Go plugin's socket is
    // still in its own); the next host to launch a plugin removes them. Other tests' hosts,
    // running beside this one, may be that next host: the directories are not counted here.
    let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    func left() throws -> [String] {
      try FileManager.default.contentsOfDirectory(atPath: base).filter { $0.hasPrefix("plugin-dir-\(run.host)-") }
    }
    _ = try await self.runHost(limit: .seconds(30)) { host in kill(host, SIGTERM) }
    #expect(try left() == [])
  }

  @Test("a host sent SIGTERM stops its plugins gracefully, then ends by the signal")
  func terminated() async throws {
    let run = try await self.runHost(limit: .seconds(30)) { host in kill(host, SIGTERM) }
    #expect(run.status == .signaled(SIGTERM))
    #expect(run.stillRunning == [])
    // Each plugin answered the host's Shutdown and exited by itself, before the host ended.
    for index in run.plugins.indices {
      #expect(run.lines.contains("exit \(index) exited with status 0 (stopped)"), "\(run.lines)")
    }
  }

  @Test("Ctrl-C, SIGINT to the host's process group, reaches the host only, which stops its plugins gracefully")
  func interrupted() async throws {
    let run = try await self.runHost(limit: .seconds(30)) { host in kill(-host, SIGINT) }
    #expect(run.status == .signaled(SIGINT))
    #expect(run.stillRunning == [])
    for index in run.plugins.indices {
      #expect(run.lines.contains("exit \(index) exited with status 0 (stopped)"), "\(run.lines)")
    }
  }
}
