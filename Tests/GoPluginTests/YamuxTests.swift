import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import GoPlugin

/// Records what a stream delivers; consumes at once unless told not to, like a fast reader.
private final class Recorder: YamuxStreamDelegate {
  var received: [UInt8] = []
  var ended = false
  var terminated = false
  var writabilityChanges: [Bool] = []
  var consumes = true

  func stream(_ stream: YamuxStream, didReceive data: ByteBuffer) {
    self.received += data.readableBytesView
    if self.consumes { stream.consumed(data.readableBytes) }
  }
  func streamDidReceiveEnd(_ stream: YamuxStream) { self.ended = true }
  func streamDidTerminate(_ stream: YamuxStream) { self.terminated = true }
  func streamWritabilityChanged(_ stream: YamuxStream) { self.writabilityChanges.append(stream.isWritable) }
}

/// A yamux session on an embedded channel: bytes in, bytes out, no sockets. The byte
/// sequences are spec §5's header layout written out by hand, so they check the encoding
/// independently of the encoder.
private final class Harness {
  let channel: EmbeddedChannel
  let session: YamuxSession
  var accepted: [(YamuxStream, Recorder)] = []

  init(role: YamuxSession.Role, configuration: YamuxSession.Configuration = .init(keepAliveInterval: nil)) throws {
    self.session = YamuxSession(role: role, configuration: configuration, logger: Logger(label: "yamux-test"))
    self.channel = EmbeddedChannel()
    try self.channel.pipeline.syncOperations.addHandlers(
      ByteToMessageHandler(YamuxFrameDecoder(maxPayload: configuration.maxStreamWindow)),
      self.session
    )
    self.session.onInboundStream = { [unowned self] stream in
      let recorder = Recorder()
      stream.delegate = recorder
      self.accepted.append((stream, recorder))
    }
    try self.channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
  }

  /// Feeds raw bytes in as one read.
  func receive(_ bytes: [UInt8]) throws {
    try self.channel.writeInbound(ByteBuffer(bytes: bytes))
    self.channel.pipeline.fireChannelReadComplete()
  }

  /// Everything written since the last call, as one byte array.
  func sent() throws -> [UInt8] {
    var bytes: [UInt8] = []
    while let buffer = try self.channel.readOutbound(as: ByteBuffer.self) {
      bytes += buffer.readableBytesView
    }
    return bytes
  }

  /// The frames written since the last call, decoded.
  func sentFrames() throws -> [YamuxFrame] {
    var buffer = ByteBuffer(bytes: try self.sent())
    var decoder = YamuxFrameDecoder(maxPayload: .max)
    var frames: [YamuxFrame] = []
    while let frame = try decoder.decode(buffer: &buffer) { frames.append(frame) }
    #expect(buffer.readableBytes == 0)
    return frames
  }
}

/// A header as spec §5 lays it out: version, type, flags (u16), stream ID (u32), length (u32).
private func header(_ type: UInt8, _ flags: UInt16, _ stream: UInt32, _ length: UInt32) -> [UInt8] {
  var bytes: [UInt8] = [0, type, UInt8(flags >> 8), UInt8(flags & 0xff)]
  for value in [stream, length] {
    bytes += [UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff)]
  }
  return bytes
}

private let data: UInt8 = 0
private let windowUpdate: UInt8 = 1
private let ping: UInt8 = 2
private let goAway: UInt8 = 3
private let syn: UInt16 = 1
private let ack: UInt16 = 2
private let fin: UInt16 = 4
private let rst: UInt16 = 8

@Suite("yamux framing and sessions")
struct YamuxTests {
  @Test("a client opens odd stream IDs and a server even ones, each with a SYN window update")
  func openingStreams() throws {
    let client = try Harness(role: .client)
    let first = try client.session.openStream()
    let second = try client.session.openStream()
    #expect([first.id, second.id] == [1, 3])
    #expect(try client.sent() == header(windowUpdate, syn, 1, 0) + header(windowUpdate, syn, 3, 0))

    let server = try Harness(role: .server)
    #expect(try server.session.openStream().id == 2)
    #expect(try server.sent() == header(windowUpdate, syn, 2, 0))
  }

  @Test("a stream the peer opens is acknowledged at once and its data delivered in order")
  func acceptingStreams() throws {
    let server = try Harness(role: .server)
    // Go sends data right behind the SYN, before any ACK.
    try server.receive(header(windowUpdate, syn, 1, 0) + header(data, 0, 1, 5) + Array("hello".utf8))
    #expect(try server.sent() == header(windowUpdate, ack, 1, 0))
    #expect(server.accepted.count == 1)
    #expect(server.accepted.first?.0.id == 1)
    #expect(server.accepted.first?.1.received == Array("hello".utf8))
  }

  @Test("a frame split across reads, and a full-window frame, arrive whole")
  func framesAcrossReads() throws {
    let server = try Harness(role: .server)
    let payload = (0..<Int(YamuxSession.initialWindow)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
    let bytes = header(windowUpdate, syn, 1, 0) + header(data, 0, 1, UInt32(payload.count)) + payload
    for start in stride(from: 0, to: bytes.count, by: 5000) {
      try server.receive(Array(bytes[start..<min(start + 5000, bytes.count)]))
    }
    #expect(server.accepted.first?.1.received == payload)
  }

  @Test("the receive window reopens once half of it is consumed, not before")
  func receiveWindowUpdates() throws {
    let server = try Harness(role: .server)
    try server.receive(header(windowUpdate, syn, 1, 0))
    _ = try server.sent()
    let recorder = try #require(server.accepted.first?.1)
    recorder.consumes = false
    let chunk = [UInt8](repeating: 1, count: 100 * 1024)
    try server.receive(header(data, 0, 1, UInt32(chunk.count)) + chunk)
    let stream = try #require(server.accepted.first?.0)
    stream.consumed(100 * 1024)
    #expect(try server.sent() == [])  // 100 KiB owed: less than half of 256 KiB
    try server.receive(header(data, 0, 1, UInt32(chunk.count)) + chunk)
    stream.consumed(100 * 1024)
    #expect(try server.sent() == header(windowUpdate, 0, 1, 200 * 1024))
  }

  @Test("data beyond the window is a protocol error: go-away, and the connection closes")
  func windowExceeded() throws {
    let server = try Harness(role: .server)
    try server.receive(header(windowUpdate, syn, 1, 0))
    _ = try server.sent()
    server.accepted.first?.1.consumes = false
    let chunk = [UInt8](repeating: 2, count: 200 * 1024)
    try server.receive(header(data, 0, 1, UInt32(chunk.count)) + chunk)
    try server.receive(header(data, 0, 1, UInt32(chunk.count)) + chunk)
    #expect(try server.sent() == header(goAway, 0, 0, 1))
    #expect(!server.channel.isActive)
    #expect(server.accepted.first?.1.terminated == true)
  }

  @Test("a frame longer than any window is refused before it is buffered")
  func oversizedFrame() throws {
    let server = try Harness(role: .server)
    try server.receive(header(data, 0, 1, 300 * 1024))
    #expect(try server.sent() == header(goAway, 0, 0, 1))
    #expect(!server.channel.isActive)
  }

  @Test("sending stops at the peer's window, in frames of at most 64 KiB, and resumes on an update")
  func sendWindow() throws {
    let client = try Harness(role: .client)
    let stream = try client.session.openStream()
    let recorder = Recorder()
    stream.delegate = recorder
    _ = try client.sent()
    let total = 300 * 1024
    stream.write(ByteBuffer(bytes: (0..<total).map { UInt8(truncatingIfNeeded: $0) }))
    let first = try client.sentFrames()
    #expect(first.allSatisfy { $0.kind == .data && $0.streamID == 1 && $0.length <= 64 * 1024 })
    #expect(first.reduce(0) { $0 + Int($1.length) } == 256 * 1024)

    try client.receive(header(windowUpdate, 0, 1, 64 * 1024))
    let rest = try client.sentFrames()
    #expect(rest.reduce(0) { $0 + Int($1.length) } == total - 256 * 1024)
    let bytes = (first + rest).flatMap { Array($0.payload!.readableBytesView) }
    #expect(bytes == (0..<total).map { UInt8(truncatingIfNeeded: $0) })
  }

  @Test("a writer is told to pause while too much is queued, and to resume")
  func writability() throws {
    let client = try Harness(role: .client)
    let stream = try client.session.openStream()
    let recorder = Recorder()
    stream.delegate = recorder
    // 256 KiB leave at once; the next 256 KiB wait for the window.
    stream.write(ByteBuffer(repeating: 3, count: 512 * 1024))
    #expect(!stream.isWritable)
    #expect(recorder.writabilityChanges == [false])
    try client.receive(header(windowUpdate, 0, 1, 256 * 1024))
    #expect(stream.isWritable)
    #expect(recorder.writabilityChanges == [false, true])
  }

  @Test("close sends FIN after the queued data; the peer's FIN ends the stream for reading")
  func halfClose() throws {
    let client = try Harness(role: .client)
    let stream = try client.session.openStream()
    let recorder = Recorder()
    stream.delegate = recorder
    _ = try client.sent()
    stream.write(ByteBuffer(bytes: Array("bye".utf8)))
    stream.close()
    #expect(try client.sent() == header(data, 0, 1, 3) + Array("bye".utf8) + header(windowUpdate, fin, 1, 0))
    #expect(client.session.openStreamCount == 1)
    try client.receive(header(data, ack | fin, 1, 2) + Array("ok".utf8))
    #expect(recorder.received == Array("ok".utf8))
    #expect(recorder.ended)
    #expect(client.session.openStreamCount == 0)
  }

  @Test("a reset from the peer ends the stream; a local reset sends RST")
  func resets() throws {
    let client = try Harness(role: .client)
    let first = try client.session.openStream()
    let recorder = Recorder()
    first.delegate = recorder
    try client.receive(header(windowUpdate, rst, 1, 0))
    #expect(recorder.terminated)
    #expect(client.session.openStreamCount == 0)
    let second = try client.session.openStream()
    _ = try client.sent()
    second.reset()
    #expect(try client.sent() == header(windowUpdate, rst, 3, 0))
    // Frames for a stream already gone are dropped, as hashicorp/yamux drops them.
    try client.receive(header(data, 0, 3, 2) + [1, 2])
    #expect(try client.sent() == [])
    #expect(client.channel.isActive)
  }

  @Test("pings are answered with the same ID, and our pings complete on the answer")
  func pings() throws {
    let server = try Harness(role: .server)
    try server.receive(header(ping, syn, 0, 0xDEAD_BEEF))
    #expect(try server.sent() == header(ping, ack, 0, 0xDEAD_BEEF))

    let answered = try server.session.ping()
    #expect(try server.sent() == header(ping, syn, 0, 1))
    try server.receive(header(ping, ack, 0, 1))
    try answered.wait()
  }

  @Test("keep-alive pings go out on schedule, and an unanswered one ends the session")
  func keepAlive() throws {
    let configuration = YamuxSession.Configuration(keepAliveInterval: .seconds(30), keepAliveTimeout: .seconds(10))
    let server = try Harness(role: .server, configuration: configuration)
    let loop = try #require(server.channel.eventLoop as? EmbeddedEventLoop)
    loop.advanceTime(by: .seconds(30))
    #expect(try server.sent() == header(ping, syn, 0, 1))
    try server.receive(header(ping, ack, 0, 1))
    loop.advanceTime(by: .seconds(30))
    #expect(try server.sent() == header(ping, syn, 0, 2))
    loop.advanceTime(by: .seconds(9))
    #expect(server.channel.isActive)
    loop.advanceTime(by: .seconds(1))
    #expect(!server.channel.isActive)
  }

  @Test("after the peer's normal go-away no stream opens; open ones carry on")
  func goAwayReceived() throws {
    let client = try Harness(role: .client)
    let open = try client.session.openStream()
    let recorder = Recorder()
    open.delegate = recorder
    try client.receive(header(goAway, 0, 0, 0))
    #expect(throws: YamuxSession.SessionError.goAwayReceived) { try client.session.openStream() }
    try client.receive(header(data, ack, 1, 2) + [7, 8])
    #expect(recorder.received == [7, 8])
    #expect(client.channel.isActive)
    // A go-away for an error ends the session.
    try client.receive(header(goAway, 0, 0, 2))
    #expect(!client.channel.isActive)
    #expect(recorder.terminated)
  }

  @Test("after our go-away the peer's new streams are refused with RST")
  func goAwaySent() throws {
    let server = try Harness(role: .server)
    server.session.goAway()
    #expect(try server.sent() == header(goAway, 0, 0, 0))
    try server.receive(header(windowUpdate, syn, 1, 0))
    #expect(try server.sent() == header(windowUpdate, rst, 1, 0))
    #expect(server.accepted.isEmpty)
  }

  @Test("a duplicate SYN, a bad version or an unknown type is a protocol error")
  func protocolErrors() throws {
    for bad in [
      header(windowUpdate, syn, 1, 0) + header(windowUpdate, syn, 1, 0),
      [1] + header(ping, syn, 0, 1).dropFirst(),
      header(9, 0, 0, 0),
    ] {
      let server = try Harness(role: .server)
      try server.receive(bad)
      #expect(try server.sent().suffix(12) == header(goAway, 0, 0, 1)[...])
      #expect(!server.channel.isActive)
    }
  }

  @Test("a larger window is granted with the SYN and honoured by the peer's sender")
  func largerWindow() throws {
    let configuration = YamuxSession.Configuration(maxStreamWindow: 1024 * 1024, keepAliveInterval: nil)
    let client = try Harness(role: .client, configuration: configuration)
    _ = try client.session.openStream()
    #expect(try client.sent() == header(windowUpdate, syn, 1, 768 * 1024))
    // The peer may now send 1 MiB without an update.
    let chunk = [UInt8](repeating: 4, count: 256 * 1024)
    for _ in 0..<4 { try client.receive(header(data, 0, 1, UInt32(chunk.count)) + chunk) }
    #expect(client.channel.isActive)
  }
}
