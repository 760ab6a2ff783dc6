import Foundation
import GRPCCore
import GoPluginTesting
import KVInterface
import Logging
import Testing

@testable import GoPlugin

#if canImport(Glibc)
import Glibc
#endif

/// A unix socket of this user that belongs to nobody under test, as an agent's or a bus's
/// would: bound, not listening, so that a host that dials it is refused at once.
final class DecoySocket {
  let directory: URL
  let path: String
  private let descriptor: Int32

  init() throws {
    self.directory = FileManager.default.temporaryDirectory
      .appendingPathComponent("goplugin-decoy-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
    self.path = self.directory.appendingPathComponent("victim.sock").path
    self.descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { buffer in
      buffer.copyBytes(from: self.path.utf8)
    }
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(self.descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
      }
    }
    guard bound == 0 else { throw POSIXError(.EADDRINUSE) }
  }

  var exists: Bool {
    var info = stat()
    return lstat(self.path, &info) == 0 && info.st_mode & S_IFMT == S_IFSOCK
  }

  deinit {
    close(self.descriptor)
    try? FileManager.default.removeItem(at: self.directory)
  }
}

@Suite("The host removes only what it created", .timeLimit(.minutes(2)))
struct OwnFilesTests {
  @Test(
    "a socket a plugin merely names in its handshake survives",
    arguments: [
      // Accepted: the host dials it, is refused, fails the start and stops the plugin.
      ("1|1|unix|DECOY|grpc|", PluginError.Code.connectionFailed),
      ("1|1|unix|DECOY|netrpc|", .unsupportedProtocol),
      ("1|7|unix|DECOY|grpc|", .incompatibleAppVersion),
      ("2|1|unix|DECOY|grpc|", .incompatibleCoreVersion),
      // The system would read the path up to the NUL: the decoy itself.
      ("1|1|unix|DECOY\\0garbage|grpc|", .malformedHandshake),
    ])
  func decoySurvives(_ template: String, _ code: PluginError.Code) async throws {
    let decoy = try DecoySocket()
    var configuration = try fixture("print", template.replacingOccurrences(of: "DECOY", with: decoy.path))
    configuration.gracefulStopTimeout = .milliseconds(300)
    var failure: PluginError?
    do {
      try await withPluginClient(configuration) { _ in }
    } catch let error as PluginError {
      failure = error
    }
    #expect(failure?.code == code)
    #expect(decoy.exists, "the host removed a socket it did not create")
  }

  @Test("an address with a NUL byte is refused with a clear error")
  func nulAddress() async throws {
    let (error, exit) = try await failedStart(try fixture("print", "1|1|unix|/tmp/a.sock\\0b|grpc|"))
    #expect(error.code == .malformedHandshake)
    #expect(error.message == "invalid plugin address \"/tmp/a.sock\\0b\": it contains a NUL byte")
    #expect(error.description.contains("fixture-plugin"))
    #expect(exit.reason == .killed)
  }

  @Test("a plugin's TMPDIR is its private socket directory, removed with it")
  func privateTemporaryDirectory() async throws {
    var socket = ""
    let temporary = try await withPluginClient(try fixture(environment: ["TMPDIR": "/somewhere/else"])) { client in
      socket = try await client.info.address
      return String(decoding: try await client.dispense("kv", as: KVPlugin.self).get("env:TMPDIR"), as: UTF8.self)
    }
    #expect(temporary == (socket as NSString).deletingLastPathComponent)
    #expect((temporary as NSString).lastPathComponent.hasPrefix("plugin-dir-"))
    #expect(!FileManager.default.fileExists(atPath: temporary))
  }
}

@Suite("A plugin's exit is recorded as what it was", .timeLimit(.minutes(3)))
struct ExitRecordTests {
  @Test("a plugin killed with SIGKILL mid-call exited unexpectedly, every time, and no Shutdown is waited out")
  func killedMidCall() async throws {
    for _ in 0..<50 {
      let capture = LogCapture()
      let client = PluginClient(configuration: try fixture(), logger: capture.logger)
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await client.run() }
        let pid = try await client.info.pid
        let kv = try await client.dispense("kv", as: KVPlugin.self)
        try await kv.put("k", value: [1])
        await withTaskGroup(of: Void.self) { calls in
          for _ in 0..<3 {
            calls.addTask {
              do {
                while true { _ = try await kv.get("k") }
              } catch {}
            }
          }
          // Whichever the client sees first ends the wait: a call failing on the closed
          // connection, or the exit itself. The test is about the exit's reason, not the calls.
          calls.addTask { _ = await client.exit }
          #expect(kill(pid, SIGKILL) == 0)
          // As a caller would: the first failed call (or the exit) stops the client, racing the
          // client's own view of the exit.
          await calls.next()
          await client.kill()
          calls.cancelAll()
        }
        try await group.waitForAll()
      }
      let exit = await client.exit
      #expect(exit == PluginExit(status: .signalled(SIGKILL), reason: .exitedUnexpectedly))
      let records = capture.records
      // A Shutdown may have been sent in the instant before the exit showed (the connection
      // closes a moment before the process becomes a zombie); it is never waited out.
      #expect(!records.contains { $0.message == "error asking the plugin to shut down" })
      #expect(!records.contains { $0.message == "plugin failed to exit gracefully" })
      #expect(records.contains { $0.message == "plugin process exited" && $0.level == .info })
    }
  }

  @Test("a plugin asked to stop is recorded as stopped, one killed for lingering as killed")
  func askedFor() async throws {
    let capture = LogCapture()
    let client = PluginClient(configuration: try fixture(), logger: capture.logger)
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await client.run() }
      _ = try await client.info
      await client.kill()
      try await group.waitForAll()
    }
    #expect(await client.exit == PluginExit(status: .exited(0), reason: .stopped))
    #expect(capture.records.contains { $0.message == "asking the plugin to shut down" })

    var lingering = try fixture("ignore-shutdown")
    lingering.gracefulStopTimeout = .milliseconds(200)
    let stubborn = PluginClient(configuration: lingering)
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await stubborn.run() }
      _ = try await stubborn.info
      await stubborn.kill()
      try await group.waitForAll()
    }
    #expect(await stubborn.exit == PluginExit(status: .signalled(SIGKILL), reason: .killed))
  }
}

@Suite("Plugin stderr is bounded", .timeLimit(.minutes(2)))
struct StderrLimitTests {
  @Test("a line past the limit arrives in pieces, each marked and no longer than the limit")
  func longLine() async throws {
    let capture = LogCapture()
    let length = 8 << 20
    var configuration = try fixture("long-stderr", String(length))
    configuration.logLineLimit = 64 * 1024
    try await withPluginClient(configuration, logger: capture.logger) { client in
      try await client.dispense("kv", as: KVPlugin.self).put("k", value: [1])
    }
    // The plugin's own log lines follow the long one on the same line; it ends at exit.
    let pieces = capture.records.filter { $0.metadata["partial"] == "true" }
    #expect(pieces.count >= length / (64 * 1024))
    #expect(pieces.allSatisfy { $0.message.utf8.count <= 64 * 1024 && $0.level == .debug })
    let text = pieces.flatMap(\.message.utf8)
    #expect(text.prefix(while: { $0 == UInt8(ascii: "x") }).count == length)
  }

  @Test("the limit must leave room for a line")
  func invalidLimit() async throws {
    var configuration = try fixture()
    configuration.logLineLimit = 0
    let (error, _) = try await failedStart(configuration)
    #expect(error.code == .invalidConfiguration)
  }
}

@Suite("Start errors carry the plugin's last stderr lines", .timeLimit(.minutes(2)))
struct StartErrorTailTests {
  @Test("a wrong cookie: the plugin's explanation is in the error")
  func wrongCookie() async throws {
    var configuration = try fixture()
    configuration.handshake = HandshakeConfiguration(
      protocolVersion: 1,
      magicCookieKey: configuration.handshake.magicCookieKey,
      magicCookieValue: "not-the-cookie"
    )
    let (error, exit) = try await failedStart(configuration)
    #expect(error.code == .exitedBeforeHandshake)
    #expect(
      error.message.hasPrefix("Unrecognized remote plugin message: \nFailed to read any lines from plugin's stdout"))
    #expect(error.description.contains("This binary is a plugin. These are not meant to be executed directly."))
    #expect(exit.status == .exited(1))
  }

  @Test("the tail is bounded: the last lines of a chatty plugin, not all of them")
  func boundedTail() {
    var tail = OutputTail(lines: 10, bytes: 4096)
    for index in 0..<100 { tail.append(Array("line \(index)".utf8)) }
    #expect(tail.contents == (90..<100).map { "line \($0)" })
    tail.append([UInt8](repeating: UInt8(ascii: "y"), count: 10_000))
    #expect(tail.contents.count == 1)
    #expect(tail.contents.first?.utf8.count == 4096)
  }
}
