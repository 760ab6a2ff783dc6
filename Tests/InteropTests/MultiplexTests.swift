import Foundation
import GoPluginTesting
import KVInterface
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import GoPlugin

/// What go-mux-host prints (Tests/Interop/README.md).
struct GoMuxHostReport: Decodable {
  var mux: Bool?
  var handshake: String?
  var get: String?
  var uploadBytes: Int?
  var uploadChunks: Int?
  var calls: Int?
  var callsPerSecond: Double?
  var streamBytes: Int?
  var streamMiBPerSecond: Double?
  var value: Int64?
  var sums: Int?
  var stdout: String?
  var stderr: String?
  var graceful: Bool?
  var exitCode: Int?
  var error: String?
}

/// What go-yamux-peer prints.
struct YamuxPeerReport: Decodable {
  var streams: Int?
  var bytes: Int?
  var mismatches: Int?
  var pings: Int?
  var goAway: Bool?
  var error: String?
}

/// go-plugin 1.0.1 has no multiplexing, so the Go side of these tests is hashicorp/yamux and
/// grpc-go driven by hand as go-plugin ≥ 1.6 drives them (Tests/Interop: go-mux-host), and
/// hashicorp/yamux on its own (go-yamux-peer).
@Suite("Multiplexing against hashicorp/yamux and grpc-go", .timeLimit(.minutes(5)))
struct MultiplexInteropTests {
  func muxHost(_ plugin: String, _ arguments: [String]) async throws -> (GoMuxHostReport, String) {
    let result = try await Peers.run(try await Peers.path("go-mux-host"), ["-plugin", plugin] + arguments)
    let report = try JSONDecoder().decode(GoMuxHostReport.self, from: Data(result.stdout.utf8))
    return (report, result.stderr)
  }

  @Test("a multiplexing Go host calls the Swift kv-plugin over yamux streams")
  func kv() async throws {
    let (report, log) = try await self.muxHost(
      try BuildProducts.path("kv-plugin"), ["-mode", "kv", "-calls", "200", "-stream-bytes", "\(8 << 20)"])
    #expect(report.error == nil, "\(log)")
    #expect(report.mux == true)
    #expect(report.handshake?.hasSuffix("|grpc||true") == true)
    #expect(report.get == "hello from go")
    #expect(report.uploadBytes == 6000 && report.uploadChunks == 3)
    #expect(report.streamBytes == 8 << 20)
    #expect(report.graceful == true && report.exitCode == 0)
  }

  @Test("the Swift counter-plugin calls back into a multiplexing Go host after a knock")
  func counter() async throws {
    let (report, log) = try await self.muxHost(try BuildProducts.path("counter-plugin"), ["-mode", "counter"])
    #expect(report.error == nil, "\(log)")
    #expect(report.value == 42)
    #expect(report.sums == 3)
    #expect(log.contains("knock for id 3"))
    #expect(report.graceful == true)
  }

  @Test("a Go host reads what a Swift plugin prints, through GRPCStdio", arguments: [false, true])
  func stdio(multiplexed: Bool) async throws {
    let plugin = "\(try BuildProducts.path("fixture-plugin")) serve"
    let (report, log) = try await self.muxHost(plugin, ["-mode", "stdio"] + (multiplexed ? [] : ["-no-mux"]))
    #expect(report.error == nil, "\(log)")
    #expect(report.stdout == "stdout: hello\n")
    #expect(report.stderr == "stderr: hello\n")
  }

  @Test("a Go host that never reads stdio does not block a plugin that floods stdout")
  func unreadStdio() async throws {
    let result = try await Peers.run(
      try await Peers.path("go-kv-host"),
      ["-plugin", "\(try BuildProducts.path("fixture-plugin")) serve"],
      environment: ["FIXTURE_STDOUT_FLOOD": "\(8 << 20)"]
    )
    let report = try JSONDecoder().decode(GoHostReport.self, from: Data(result.stdout.utf8))
    #expect(report.error == nil, "\(result.stderr)")
    #expect(report.get == "hello from go")
    #expect(report.graceful == true)
  }

  @Test("a Swift host asking a go-plugin 1.0.1 plugin to multiplex gets go-plugin's refusal")
  func oldPluginRefuses() async throws {
    // go-plugin 1.0.1 plugins make their socket in TMPDIR; refused and killed, they leave it.
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
      "goplugin-refused-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    var configuration = PluginClientConfiguration(
      command: PluginCommand(try await Peers.path("go-kv-plugin"), environment: ["TMPDIR": directory.path]),
      handshake: .kv,
      plugins: ["kv": KVPlugin()]
    )
    configuration.multiplexBroker = true
    configuration.standardInput = .none
    let error = await #expect(throws: PluginError.self) {
      try await withPluginClient(configuration) { _ in }
    }
    #expect(error?.code == .multiplexingNotSupported)
    #expect(
      error?.message.hasPrefix("client requested gRPC broker multiplexing but plugin does not support the feature")
        == true)
    #expect(
      try FileManager.default.contentsOfDirectory(atPath: directory.path) == [],
      "the refused plugin's socket is left behind")
  }
}

// MARK: - The yamux session against hashicorp/yamux

/// Echoes a stream back to its sender and half-closes when the sender does.
private final class Echo: YamuxStreamDelegate {
  func stream(_ stream: YamuxStream, didReceive data: ByteBuffer) {
    stream.write(data)
    stream.consumed(data.readableBytes)
  }
  func streamDidReceiveEnd(_ stream: YamuxStream) { stream.close() }
  func streamDidTerminate(_ stream: YamuxStream) {}
  func streamWritabilityChanged(_ stream: YamuxStream) {}
}

/// Collects a stream's bytes until the peer's FIN.
private final class Collector: YamuxStreamDelegate {
  var bytes: [UInt8] = []
  let done: OneShot<[UInt8]?>
  init(done: OneShot<[UInt8]?>) { self.done = done }
  func stream(_ stream: YamuxStream, didReceive data: ByteBuffer) {
    self.bytes += data.readableBytesView
    stream.consumed(data.readableBytes)
  }
  func streamDidReceiveEnd(_ stream: YamuxStream) { self.done.fulfil(self.bytes) }
  func streamDidTerminate(_ stream: YamuxStream) { self.done.fulfil(nil) }
  func streamWritabilityChanged(_ stream: YamuxStream) {}
}

/// go-yamux-peer's pattern: byte i of stream s is (i * 31 + s) % 251.
private func pattern(stream: Int, count: Int) -> [UInt8] {
  repeated((0..<251).map { UInt8(($0 * 31 + stream) % 251) }, count: count)
}

@Suite("The yamux session against hashicorp/yamux", .timeLimit(.minutes(3)))
struct YamuxInteropTests {
  static let logger = Logger(label: "yamux-interop")

  /// A unix socket path in a fresh private directory.
  static func socketPath() throws -> (String, URL) {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
      "yamux-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return (directory.appendingPathComponent("s").path, directory)
  }

  /// Starts go-yamux-peer and, when it listens, waits until it says so.
  static func peer(_ arguments: [String], listening path: String?) async throws -> (Process, Pipe, Pipe) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try await Peers.path("go-yamux-peer"))
    process.arguments = arguments
    let (stdout, stderr) = (Pipe(), Pipe())
    process.standardOutput = stdout
    process.standardError = stderr
    try process.run()
    if path != nil {
      // The peer prints "listening" once it accepts.
      let line = await onOwnThread {
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
          let byte = stdout.fileHandleForReading.readData(ofLength: 1)
          guard !byte.isEmpty else { break }
          line += byte
        }
        return line
      }
      #expect(String(decoding: line, as: UTF8.self).hasPrefix("listening"))
    }
    return (process, stdout, stderr)
  }

  /// What go-yamux-peer reported once it has exited.
  static func report(_ process: Process, _ stdout: Pipe, _ stderr: Pipe) async throws -> (YamuxPeerReport, String) {
    let (output, log) = await onOwnThread {
      let output = stdout.fileHandleForReading.readDataToEndOfFile()
      let log = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
      process.waitUntilExit()
      return (output, log)
    }
    let json = output.split(separator: UInt8(ascii: "\n")).last ?? Data()
    return (try JSONDecoder().decode(YamuxPeerReport.self, from: Data(json)), log)
  }

  /// Foundation's pipe reads and waits block their thread; on a thread of their own they leave
  /// Swift concurrency's few threads to the tests running beside this one.
  static func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
      Thread { continuation.resume(returning: body()) }.start()
    }
  }

  /// A session on a new connection to `path`, as the given role.
  static func connect(_ path: String, role: YamuxSession.Role) async throws -> (any Channel, NIOLoopBound<YamuxSession>)
  {
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .channelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          let session = YamuxSession(role: role, configuration: .init(), logger: Self.logger)
          session.onInboundStream = { $0.delegate = Echo() }
          try channel.pipeline.syncOperations.addHandlers(
            ByteToMessageHandler(YamuxFrameDecoder(maxPayload: session.configuration.maxStreamWindow)), session)
        }
      }
      .connect(unixDomainSocketPath: path)
      .get()
    let session = try await channel.pipeline.handler(type: YamuxSession.self).map {
      NIOLoopBound($0, eventLoop: channel.eventLoop)
    }.get()
    return (channel, session)
  }

  @Test("streams opened here are echoed by hashicorp/yamux, windows and all", arguments: [1, 8])
  func openHere(streams: Int) async throws {
    let (path, directory) = try Self.socketPath()
    defer { try? FileManager.default.removeItem(at: directory) }
    let peer = try await Self.peer(["-listen", path, "-mode", "echo"], listening: path)
    let (channel, session) = try await Self.connect(path, role: .client)
    let size = 1 << 20  // four windows' worth each way
    var results: [OneShot<[UInt8]?>] = []
    for index in 0..<streams {
      let done = OneShot<[UInt8]?>()
      results.append(done)
      try await channel.eventLoop.submit {
        let stream = try session.value.openStream()
        stream.delegate = Collector(done: done)
        stream.write(ByteBuffer(bytes: pattern(stream: index, count: size)))
        stream.close()
      }.get()
    }
    for (index, done) in results.enumerated() {
      let echoed = await done.wait(timeout: .seconds(60)) ?? nil
      #expect(echoed == pattern(stream: index, count: size), "stream \(index)")
    }
    try await channel.eventLoop.flatSubmit { () -> EventLoopFuture<Void> in
      do { return try session.value.ping() } catch { return channel.eventLoop.makeFailedFuture(error) }
    }.get()
    try await channel.close()
    let (report, log) = try await Self.report(peer.0, peer.1, peer.2)
    #expect(report.error == nil, "\(log)")
    #expect(report.streams == streams)
    #expect(report.bytes == streams * size)
  }

  /// A session served here for one connection from go-yamux-peer.
  static func serve(_ path: String) async throws -> any Channel {
    try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          let session = YamuxSession(role: .server, configuration: .init(), logger: Self.logger)
          session.onInboundStream = { $0.delegate = Echo() }
          try channel.pipeline.syncOperations.addHandlers(
            ByteToMessageHandler(YamuxFrameDecoder(maxPayload: session.configuration.maxStreamWindow)), session)
        }
      }
      .bind(unixDomainSocketPath: path)
      .get()
  }

  @Test("streams hashicorp/yamux opens are echoed back here, byte for byte")
  func openThere() async throws {
    let (path, directory) = try Self.socketPath()
    defer { try? FileManager.default.removeItem(at: directory) }
    let server = try await Self.serve(path)
    let peer = try await Self.peer(
      ["-connect", path, "-mode", "send", "-streams", "8", "-bytes", "\(1 << 20)"], listening: nil)
    let (report, log) = try await Self.report(peer.0, peer.1, peer.2)
    try await server.close()
    #expect(report.error == nil, "\(log)")
    #expect(report.streams == 8)
    #expect(report.bytes == 8 << 20)
    #expect(report.mismatches == 0)
  }

  @Test("hashicorp/yamux's pings are answered")
  func pingsAnswered() async throws {
    let (path, directory) = try Self.socketPath()
    defer { try? FileManager.default.removeItem(at: directory) }
    let server = try await Self.serve(path)
    let peer = try await Self.peer(["-connect", path, "-mode", "ping"], listening: nil)
    let (report, log) = try await Self.report(peer.0, peer.1, peer.2)
    try await server.close()
    #expect(report.error == nil, "\(log)")
    #expect(report.pings == 3)
  }

  @Test("after hashicorp/yamux's go-away no stream opens here, and the open one completes")
  func goAway() async throws {
    let (path, directory) = try Self.socketPath()
    defer { try? FileManager.default.removeItem(at: directory) }
    let peer = try await Self.peer(["-listen", path, "-mode", "goaway"], listening: path)
    let (channel, session) = try await Self.connect(path, role: .client)
    let done = OneShot<[UInt8]?>()
    let stream = try await channel.eventLoop.submit {
      let stream = try session.value.openStream()
      stream.delegate = Collector(done: done)
      stream.write(ByteBuffer(bytes: pattern(stream: 0, count: 100_000)))
      return NIOLoopBound(stream, eventLoop: channel.eventLoop)
    }.get()
    // The go-away follows the first stream; once it is in, opening fails.
    var refused = false
    for _ in 0..<200 where !refused {
      refused = try await channel.eventLoop.submit { session.value.remoteGoAway }.get()
      if !refused { try await Task.sleep(for: .milliseconds(10)) }
    }
    #expect(refused)
    let error = try await channel.eventLoop.submit { () -> YamuxSession.SessionError? in
      do throws(YamuxSession.SessionError) {
        _ = try session.value.openStream()
        return nil
      } catch {
        return error
      }
    }.get()
    #expect(error == .goAwayReceived)
    try await channel.eventLoop.submit { stream.value.close() }.get()
    #expect(await done.wait(timeout: .seconds(30)) ?? nil == pattern(stream: 0, count: 100_000))
    try await channel.close()
    let (report, log) = try await Self.report(peer.0, peer.1, peer.2)
    #expect(report.error == nil, "\(log)")
    #expect(report.goAway == true)
  }
}
