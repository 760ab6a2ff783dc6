import Foundation
import GoPluginTesting
import KVInterface
import Logging
import Synchronization
import Testing

@testable import GoPlugin

/// Collects what a sink receives.
private final class Collected: Sendable {
  private let bytes = Mutex<[UInt8]>([])
  var value: [UInt8] { self.bytes.withLock { $0 } }
  var text: String { String(decoding: self.value, as: UTF8.self) }
  var output: PluginOutput { .handler { chunk in self.bytes.withLock { $0 += chunk } } }
}

@Suite("Stdio forwarding", .timeLimit(.minutes(2)))
struct StdioTests {
  @Test(
    "what a plugin prints after the handshake reaches the host's sinks; its log stays a log", arguments: [false, true])
  func forwarded(multiplexed: Bool) async throws {
    let (stdout, stderr) = (Collected(), Collected())
    var configuration = try fixture()
    configuration.syncStdout = stdout.output
    configuration.syncStderr = stderr.output
    configuration.multiplexBroker = multiplexed
    let capture = LogCapture()
    try await withPluginClient(configuration, logger: capture.logger(level: .trace)) { client in
      try await client.dispense("kv", as: KVPlugin.self).put("stdio", value: Array("hello".utf8))
    }
    // Stopping waits for the last bytes, so nothing is lost at exit.
    #expect(stdout.text == "stdout: hello\n")
    #expect(stderr.text == "stderr: hello\n")
    // The plugin's hclog lines went to the real stderr, parsed into records, not to the sink.
    #expect(!stderr.text.contains("@level"))
    #expect(
      capture.records.contains { $0.message == "stdio written" && $0.level == .info && $0.metadata["plugin"] != nil })
  }

  @Test("binary output arrives byte for byte, none lost when the plugin stops right after")
  func binaryAndComplete() async throws {
    let stdout = Collected()
    var configuration = try fixture()
    configuration.syncStdout = stdout.output
    let count = 3 * 1024 * 1024 + 17
    try await withPluginClient(configuration) { client in
      try await client.dispense("kv", as: KVPlugin.self).put("stdio-bytes", value: Array(String(count).utf8))
    }
    let received = stdout.value
    #expect(received.count == count)
    // Not #expect(received == expected): on failure the test library would diff 3 MiB for hours.
    let same = received == repeated((0..<256).map { UInt8($0) }, count: count)
    #expect(same)
  }

  @Test("by default forwarded output is dropped and the plugin still stops cleanly")
  func discardedByDefault() async throws {
    let client = PluginClient(configuration: try fixture())
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await client.run() }
      try await client.dispense("kv", as: KVPlugin.self).put("stdio-bytes", value: Array("1000000".utf8))
      await client.kill()
    }
    #expect(await client.exit.reason == .stopped)
  }
}
