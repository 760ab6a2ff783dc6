import Foundation
import GoPlugin
import GoPluginTesting
import Testing

/// What go-reattach-host prints.
struct GoReattachReport: Decodable {
  var pid: Int32?
  var `protocol`: String?
  var get: String?
  var found: Bool?
  var killed: Bool?
  var graceful: Bool?
  var exited: Bool?
  var error: String?
}

@Suite("A go-plugin 1.0.1 host reattaches to a Swift plugin in debug mode", .timeLimit(.minutes(5)))
struct ReattachInteropTests {
  func goHost(_ arguments: [String]) async throws -> (GoReattachReport, ExternalProgram.Result) {
    let run = try await ExternalProgram.run(try await Peers.path("go-reattach-host"), arguments: arguments)
    let report = try JSONDecoder().decode(GoReattachReport.self, from: Data(run.output))
    return (report, run)
  }

  @Test("kv-plugin --debug: the Go host puts and gets and leaves it running, the Swift host reads and stops it")
  func goThenSwift() async throws {
    let run = try await ExternalProgram.withRunning(try BuildProducts.path("kv-plugin"), arguments: ["--debug"]) {
      program in
      let (report, goRun) = try await self.goHost(["-reattach", program.firstLine, "-put", "lang=go", "-get", "lang"])
      #expect(report.error == nil, "\(goRun.errorText)")
      #expect(report.pid == program.pid)
      #expect(report.protocol == "grpc")
      #expect(report.get == "go" && report.found == true)
      #expect(report.killed == false)

      // The Go host has exited; the plugin still holds what it stored.
      let get = try await ExternalProgram.run(
        try BuildProducts.path("kv"), arguments: ["--reattach", program.firstLine, "get", "lang"])
      #expect(get.status == 0, "\(get.errorText)")
      #expect(get.outputText == "go\n")
      let stop = try await ExternalProgram.run(
        try BuildProducts.path("kv"), arguments: ["--reattach", program.firstLine, "stop"])
      #expect(stop.outputText == "stopped: ended (stopped)\n", "\(stop.errorText)")
    }
    // Stopped by the host's Shutdown, not by withRunning's SIGTERM: the Swift plugin exits 0
    // either way, but its log says which.
    #expect(run.status == 0)
    #expect(!run.errorText.contains("stopping on a signal"))
  }

  @Test("the Go host's Kill stops a Swift plugin it reattached to, gracefully")
  func goKills() async throws {
    // go-plugin 1.0.1 polls kill(pid, 0) to see a reattached plugin go, which a zombie
    // answers: the plugin must be reaped while the Go host waits, so the Go host runs outside
    // the closure that keeps the plugin.
    let (lines, announce) = AsyncStream<String>.makeStream()
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask {
        let run = try await ExternalProgram.withRunning(try BuildProducts.path("kv-plugin"), arguments: ["--debug"]) {
          program in
          announce.yield(program.firstLine)
          announce.finish()
          await program.waitForExit()
        }
        #expect(run.status == 0)
        #expect(!run.errorText.contains("stopping on a signal"))
      }
      var iterator = lines.makeAsyncIterator()
      let json = try #require(await iterator.next())
      let put = try await ExternalProgram.run(
        try BuildProducts.path("kv"), arguments: ["--reattach", json, "put", "lang", "swift"])
      #expect(put.status == 0, "\(put.errorText)")
      let (report, goRun) = try await self.goHost(["-get", "lang", "-kill", "-reattach", json])
      #expect(report.error == nil, "\(goRun.errorText)")
      #expect(report.get == "swift")
      // Shutdown answered, and go-plugin's once-a-second pid poll saw the process go in time.
      #expect(report.graceful == true)
      #expect(report.exited == true)
      try await group.waitForAll()
    }
  }
}
