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
      return HostRun(lines: lines, status: .exited(0), plugins: pids, stillRunning: stillRunning)
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

/// Processes that are not this process's children, followed to their end through pidfds, opened
/// while the processes run so that a pid reused later is never mistaken for them. (The same as
/// in GoPluginTests/OrphanTests.swift.)
final class ProcessWatch: Sendable {
  private struct Watched: Sendable {
    var pid: Int32
    var descriptor: Int32
  }

  private let watched: [Watched]

  init(_ pids: [Int32]) {
    // A pid without a pidfd (ESRCH) has gone already.
    self.watched = pids.map { Watched(pid: $0, descriptor: goplugin_pidfd_open($0)) }
  }

  deinit {
    for watched in self.watched where watched.descriptor >= 0 { close(watched.descriptor) }
  }

  /// The pids still running once `limit` has passed, or as soon as none is. A zombie counts as
  /// gone: it runs nothing, and only its parent (init, for an orphan) can reap it.
  func running(after limit: Duration) async -> [Int32] {
    let watched = self.watched
    return await DedicatedThread.run {
      let deadline = ContinuousClock.now + limit
      var left = watched.filter { $0.descriptor >= 0 }
      repeat {
        let remaining = max(deadline - ContinuousClock.now, .zero)
        var descriptors = left.map { pollfd(fd: $0.descriptor, events: Int16(POLLIN), revents: 0) }
        let timeout = Int32(min(remaining / .milliseconds(1), 60_000).rounded(.up))
        guard poll(&descriptors, nfds_t(descriptors.count), timeout) >= 0 || errno == EINTR else { break }
        left = zip(left, descriptors).filter { $0.1.revents == 0 }.map(\.0)
      } while !left.isEmpty && ContinuousClock.now < deadline
      return left.map(\.pid)
    }
  }
}
