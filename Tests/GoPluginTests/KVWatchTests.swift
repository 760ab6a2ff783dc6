import Foundation
import GoPluginTesting
import Testing

@testable import GoPlugin

/// `kv watch DIR --json` end to end, driven by the README's script (Examples/KV/watch-demo.sh)
/// with the kv and kv-plugin of this build: a directory filled, a plugin upgraded, one broken,
/// the directory emptied, then SIGINT.
@Suite("kv watch: the README's watch demo", .timeLimit(.minutes(5)))
struct KVWatchTests {
  static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

  /// One event line of `kv watch --json`.
  struct Line: Decodable {
    var event: String
    var plugin: String?
    var pid: Int32?
    var oldPid: Int32?
    var reason: String?
    var calls: Int?
    var failed: Int?
  }

  @Test("fill, upgrade, break, empty, SIGINT: the JSON events, the summary with failed 0, exit 0, no process left")
  func demo() async throws {
    _ = try BuildProducts.path("kv")
    _ = try BuildProducts.path("kv-plugin")
    let script = Self.repository.appendingPathComponent("Examples/KV/watch-demo.sh").path
    let run = try await ExternalProgram.run(
      "/bin/bash", arguments: [script],
      environment: ["KV_BIN": BuildProducts.directory, "DEMO_TIMEOUT": "180", "DEMO_PAUSE": "0.5"])
    #expect(run.status == 0, "stdout:\n\(run.outputText)\nstderr:\n\(run.errorText)")

    let lines = try run.outputText.split(separator: "\n")
      .map { $0.trimmingCharacters(in: .whitespaces) }
      .filter { $0.hasPrefix("{") }
      .map { try JSONDecoder().decode(Line.self, from: Data($0.utf8)) }
    func events(_ kind: String, _ plugin: String) -> [Line] {
      lines.filter { $0.event == kind && $0.plugin == plugin }
    }
    let alpha = try #require(events("online", "alpha").first?.pid)
    let beta = try #require(events("online", "beta").first?.pid)
    let swap = try #require(events("swapped", "alpha").first)
    #expect(swap.oldPid == alpha && swap.pid != nil && swap.pid != alpha)
    // The failed upgrade: the old beta, still serving, and why.
    let broken = try #require(events("unhealthy", "beta").first)
    #expect(broken.pid == beta)
    #expect(broken.reason?.contains("keeps serving") == true, "\(broken.reason ?? "")")
    #expect(broken.reason?.contains("/plugins/beta") == true, "the reason names the file: \(broken.reason ?? "")")
    #expect(events("offline", "alpha").first?.reason == "removed")
    #expect(events("offline", "beta").first?.reason == "removed")
    let summary = try #require(lines.last)
    #expect(summary.event == "summary")
    #expect((summary.calls ?? 0) > 0)
    // kv watch says on stderr which call failed and why.
    #expect(summary.failed == 0, "stderr:\n\(run.errorText)")
    // kv watch has exited, having stopped its plugins: none of them runs.
    for pid in [alpha, beta] + [swap.pid].compactMap({ $0 }) {
      #expect(!isAlive(pid), "plugin process \(pid) outlived kv watch")
    }
  }

  @Test("--lock: a plugin the lock file names runs, one it does not name is refused and never started")
  func lockRefuses() async throws {
    let kv = try BuildProducts.path("kv")
    let plugin = try BuildProducts.path("kv-plugin")
    // The same steps as the demo, in a few lines of shell: a lock naming alpha's digest, alpha
    // and an unknown gamma put in place, kv watch until both have their event, then SIGINT.
    let script = #"""
      set -euo pipefail
      work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
      mkdir "$work/plugins"
      printf '{"plugins":{"alpha":{"sha256":"%s"}},"version":1}' "$(sha256sum "$2" | cut -d' ' -f1)" >"$work/lock"
      "$1" watch "$work/plugins" --json --lock "$work/lock" >"$work/events" &
      watcher=$!
      cp "$2" "$work/plugins/.alpha" && mv "$work/plugins/.alpha" "$work/plugins/alpha"
      { cat "$2"; printf x; } >"$work/plugins/.gamma" && chmod +x "$work/plugins/.gamma"
      mv "$work/plugins/.gamma" "$work/plugins/gamma"
      for _ in $(seq 1200); do
        grep -q '"online","plugin":"alpha"' "$work/events" && grep -q '"refused","plugin":"gamma"' "$work/events" && break
        sleep 0.05
      done
      kill -INT "$watcher"
      wait "$watcher"
      cat "$work/events"
      """#
    let run = try await ExternalProgram.run("/bin/bash", arguments: ["-c", script, "lock-test", kv, plugin])
    #expect(run.status == 0, "stdout:\n\(run.outputText)\nstderr:\n\(run.errorText)")
    let lines = try run.outputText.split(separator: "\n").filter { $0.hasPrefix("{") }
      .map { try JSONDecoder().decode(Line.self, from: Data($0.utf8)) }
    #expect(lines.contains { $0.event == "online" && $0.plugin == "alpha" && $0.pid != nil })
    let refused = try #require(lines.first { $0.event == "refused" && $0.plugin == "gamma" })
    #expect(refused.pid == nil, "a refused plugin never runs")
    #expect(refused.reason?.contains("not in the lock file") == true, "\(refused.reason ?? "")")
    #expect(!lines.contains { $0.plugin == "gamma" && $0.event == "online" })
    #expect(lines.last?.event == "summary" && lines.last?.failed == 0, "stderr:\n\(run.errorText)")
  }
}
