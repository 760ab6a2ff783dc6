import GRPCCore
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import Testing

@testable import GoPluginTransport

/// The streams a server connection was handed, in the order the client opened them.
private final class Opened {
  var streams: [GRPCStream] = []
}

/// A gRPC connection handler on an embedded channel, without NIOHTTP2Handler beneath it: the
/// test plays the peer's HTTP/2 frames in and reads the handler's frames out, one line each.
private final class Harness {
  static let streamWindow = 1000
  static let connectionWindow = 100_000

  let channel = EmbeddedChannel()
  let handler: GRPCConnectionHandler
  let opened = Opened()

  init(server: Bool) throws {
    let opened = self.opened
    self.handler = GRPCConnectionHandler(
      role: server ? .server(onStream: { stream, _, _ in opened.streams.append(stream) }) : .client,
      channel: self.channel,
      maxMessageSize: 1 << 20,
      streamWindow: Self.streamWindow,
      connectionWindow: Self.connectionWindow,
      peer: "the test peer"
    )
    try self.channel.pipeline.syncOperations.addHandler(self.handler)
    try self.channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
    // Opening a connection lifts its window from HTTP/2's 64 KiB to what this side advertised.
    try self.expectWritten(["WINDOW_UPDATE 0 +\(Self.connectionWindow - 65_535)"])
  }

  func receive(_ payload: HTTP2Frame.FramePayload, on stream: Int) throws {
    try self.channel.writeInbound(HTTP2Frame(streamID: HTTP2StreamID(stream), payload: payload))
    self.channel.pipeline.fireChannelReadComplete()
  }

  func receiveHeaders(on stream: Int, endStream: Bool = false) throws {
    try self.receive(.headers(.init(headers: Self.headers, endStream: endStream)), on: stream)
  }

  func receiveData(_ bytes: ByteBuffer, on stream: Int, endStream: Bool = false) throws {
    try self.receive(.data(.init(data: .byteBuffer(bytes), endStream: endStream)), on: stream)
  }

  /// What the handler wrote once the event loop has run what it scheduled (its flush).
  func written() throws -> [String] {
    self.channel.embeddedEventLoop.run()
    var frames: [String] = []
    while let frame = try self.channel.readOutbound(as: HTTP2Frame.self) { frames.append(Self.describe(frame)) }
    return frames
  }

  func expectWritten(_ expected: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
    let frames = try self.written()
    #expect(frames == expected, sourceLocation: sourceLocation)
  }

  /// A client stream with its request headers sent.
  func openClientStream(endStream: Bool = false) throws -> GRPCStream {
    let stream = self.handler.makeClientStream()
    try stream.send(headers: Self.headers, endStream: endStream)
    return stream
  }

  static let headers: HPACKHeaders = [":method": "POST", ":path": "/kv.KV/Get", "content-type": "application/grpc"]

  /// gRPC messages of the given sizes, framed, in one buffer.
  static func messages(_ sizes: Int...) -> ByteBuffer {
    var all = ByteBuffer()
    for size in sizes {
      var framed = PluginBytes(repeating: 7, count: size).framed(allocator: ByteBufferAllocator())
      all.writeBuffer(&framed)
    }
    return all
  }

  static func name(_ code: HTTP2ErrorCode) -> String {
    switch code {
    case .noError: "NO_ERROR"
    case .cancel: "CANCEL"
    case .protocolError: "PROTOCOL_ERROR"
    default: "\(code.networkCode)"
    }
  }

  static func describe(_ frame: HTTP2Frame) -> String {
    let id = Int(frame.streamID)
    switch frame.payload {
    case .headers(let headers): return "HEADERS \(id)\(headers.endStream ? " END" : "")"
    case .data(let data):
      guard case .byteBuffer(let buffer) = data.data else { return "DATA \(id) (file)" }
      return "DATA \(id) \(buffer.readableBytes)\(data.endStream ? " END" : "")"
    case .rstStream(let code): return "RST_STREAM \(id) \(Self.name(code))"
    case .goAway(let last, let code, _): return "GOAWAY last=\(Int(last)) \(Self.name(code))"
    case .windowUpdate(let increment): return "WINDOW_UPDATE \(id) +\(increment)"
    default: return "\(frame.payload) on \(id)"
    }
  }
}

/// Reads what `stream` has delivered, through its end; only for a stream whose end has arrived,
/// since a reader waits for more otherwise.
private func readToEnd(_ stream: GRPCStream) async -> (parts: [String], error: RPCError?) {
  var parts: [String] = []
  do {
    while let part = try await stream.inbox.next() {
      switch part {
      case .headers(_, let endStream): parts.append(endStream ? "trailers" : "headers")
      case .message(let bytes, _): parts.append("message \(bytes.count)")
      }
    }
    return (parts, nil)
  } catch {
    return (parts, error as? RPCError)
  }
}

@Suite("gRPC connection handler on an embedded channel")
struct GRPCConnectionHandlerTests {
  // MARK: DATA with END_STREAM held back

  @Test("a request's last message carries END_STREAM: one DATA frame, not a message and an empty frame")
  func endStreamRidesOnTheLastMessage() throws {
    let harness = try Harness(server: false)
    let stream = try harness.openClientStream()
    _ = try stream.send(message: PluginBytes(repeating: 1, count: 10))
    try stream.sendEnd()
    try harness.expectWritten(["HEADERS 1", "DATA 1 15 END"])
  }

  @Test("a message held in one turn goes out at its flush; the end follows in an empty frame")
  func heldDataIsReleasedAtTheFlush() throws {
    let harness = try Harness(server: false)
    let stream = try harness.openClientStream()
    _ = try stream.send(message: PluginBytes(repeating: 1, count: 10))
    try harness.expectWritten(["HEADERS 1", "DATA 1 15"])
    try stream.sendEnd()
    try harness.expectWritten(["DATA 1 0 END"])
  }

  @Test("of messages written in one turn only the last waits, and they keep their order")
  func onlyTheLastMessageIsHeld() throws {
    let harness = try Harness(server: false)
    let stream = try harness.openClientStream()
    for size in [1, 2, 3] { _ = try stream.send(message: PluginBytes(repeating: 1, count: size)) }
    try stream.sendEnd()
    try harness.expectWritten(["HEADERS 1", "DATA 1 6", "DATA 1 7", "DATA 1 8 END"])
  }

  @Test("a reset drops the held message and fails its write")
  func resetDropsHeldData() throws {
    let harness = try Harness(server: false)
    let stream = try harness.openClientStream()
    _ = try stream.send(message: PluginBytes(repeating: 1, count: 10))
    stream.reset(.cancel)
    try harness.expectWritten(["HEADERS 1", "RST_STREAM 1 CANCEL"])
    #expect(throws: RPCError.self) { _ = try stream.send(message: PluginBytes(repeating: 1, count: 1)) }
  }

  // MARK: RST_STREAM after the response

  @Test("a reset with NO_ERROR after the response's end leaves the response standing")
  func resetAfterResponse() async throws {
    let harness = try Harness(server: false)
    let stream = try harness.openClientStream()
    try harness.receiveHeaders(on: 1)
    try harness.receiveData(Harness.messages(20), on: 1)
    try harness.receiveHeaders(on: 1, endStream: true)
    // grpc-go resets every stream it has answered before the request ended.
    try harness.receive(.rstStream(.noError), on: 1)
    let (parts, error) = await readToEnd(stream)
    #expect(parts == ["headers", "message 20", "trailers"])
    #expect(error == nil)
    // The stream is gone from the connection, and nothing answers the reset.
    try harness.expectWritten(["HEADERS 1"])
    #expect(throws: RPCError.self) { _ = try stream.send(message: PluginBytes(repeating: 1, count: 1)) }
  }

  @Test(
    "a reset before the response's end fails the call with the reset's meaning",
    arguments: [
      (HTTP2ErrorCode.noError, RPCError.Code.internalError),
      (.cancel, .cancelled),
      (.refusedStream, .unavailable),
      (.enhanceYourCalm, .resourceExhausted),
    ])
  func resetBeforeTheEnd(code: HTTP2ErrorCode, expected: RPCError.Code) async throws {
    let harness = try Harness(server: false)
    let stream = try harness.openClientStream()
    try harness.receiveHeaders(on: 1)
    try harness.receiveData(Harness.messages(20), on: 1)
    try harness.receive(.rstStream(code), on: 1)
    // What the reader had not taken yet is dropped with the call: a reset response is no answer.
    let (parts, error) = await readToEnd(stream)
    #expect(parts.isEmpty)
    #expect(error?.code == expected)
  }

  // MARK: Window credit

  @Test("a stream's window is given back as its reader takes messages, not as they arrive")
  func streamCreditOnDelivery() async throws {
    let harness = try Harness(server: true)
    try harness.receiveHeaders(on: 1)
    let stream = try #require(harness.opened.streams.first)
    // Three messages of 205 bytes on the wire: 615 in all, past half the 1000-byte window.
    try harness.receiveData(Harness.messages(200, 200, 200), on: 1)
    try harness.expectWritten([])
    for _ in 0..<3 { _ = try await stream.inbox.next() }  // the headers, then two messages
    try harness.expectWritten([])
    _ = try await stream.inbox.next()
    try harness.expectWritten(["WINDOW_UPDATE 1 +615"])
  }

  @Test("a message larger than the window is credited as it arrives, so that it can complete")
  func partialMessageIsCreditedAtOnce() async throws {
    let harness = try Harness(server: true)
    try harness.receiveHeaders(on: 1)
    let stream = try #require(harness.opened.streams.first)
    var message = Harness.messages(2995)  // 3000 bytes framed: three times the stream window
    try harness.receiveData(message.readSlice(length: 1000)!, on: 1)
    try harness.expectWritten(["WINDOW_UPDATE 1 +1000"])
    try harness.receiveData(message.readSlice(length: 1000)!, on: 1)
    try harness.expectWritten(["WINDOW_UPDATE 1 +1000"])
    try harness.receiveData(message, on: 1)
    try harness.expectWritten([])
    // Its reader takes it: only the last 1000 bytes were not given back yet.
    _ = try await stream.inbox.next()
    _ = try await stream.inbox.next()
    try harness.expectWritten(["WINDOW_UPDATE 1 +1000"])
  }

  @Test("the connection's window is given back as DATA arrives, whoever reads it")
  func connectionCredit() throws {
    let harness = try Harness(server: true)
    try harness.receiveHeaders(on: 1)
    for _ in 0..<4 { try harness.receiveData(ByteBuffer(repeating: 0, count: 12_000), on: 1) }
    // 48,000 bytes: under half of the 100,000-byte connection window.
    #expect(try harness.written().filter { $0.hasPrefix("WINDOW_UPDATE 0") } == [])
    try harness.receiveData(ByteBuffer(repeating: 0, count: 12_000), on: 1)
    #expect(try harness.written().filter { $0.hasPrefix("WINDOW_UPDATE 0") } == ["WINDOW_UPDATE 0 +60000"])
    // DATA on a stream the handler does not know still counts against the connection.
    for _ in 0..<5 { try harness.receiveData(ByteBuffer(repeating: 0, count: 12_000), on: 9) }
    try harness.expectWritten(["WINDOW_UPDATE 0 +60000"])
  }

  @Test("a stream whose request has ended gives no more credit")
  func noCreditAfterTheEnd() async throws {
    let harness = try Harness(server: true)
    try harness.receiveHeaders(on: 1)
    let stream = try #require(harness.opened.streams.first)
    try harness.receiveData(Harness.messages(995), on: 1, endStream: true)
    _ = try await stream.inbox.next()
    _ = try await stream.inbox.next()
    #expect(try await stream.inbox.next() == nil)
    try harness.expectWritten([])
  }

  // MARK: GOAWAY

  @Test("a client told GOAWAY fails the calls past the last stream, keeps the others, and opens no more")
  func clientReceivesGoAway() async throws {
    let harness = try Harness(server: false)
    let first = try harness.openClientStream()
    let second = try harness.openClientStream()
    let third = try harness.openClientStream()
    try harness.expectWritten(["HEADERS 1", "HEADERS 3", "HEADERS 5"])

    try harness.receive(.goAway(lastStreamID: 3, errorCode: .noError, opaqueData: nil), on: 0)
    #expect(harness.handler.isClosedOrGoingAway)
    let (refusedParts, refused) = await readToEnd(third)
    #expect(refusedParts.isEmpty)
    #expect(refused?.code == .unavailable)
    #expect(refused?.message.contains("going away") == true)
    #expect(throws: RPCError.self) { _ = try harness.openClientStream() }

    // The calls the server took finish normally; the connection closes after the last.
    try harness.receiveHeaders(on: 1, endStream: true)
    try harness.receive(.rstStream(.noError), on: 1)
    #expect(await readToEnd(first).error == nil)
    #expect(harness.channel.isActive)
    try harness.receiveHeaders(on: 3, endStream: true)
    try harness.receive(.rstStream(.noError), on: 3)
    #expect(await readToEnd(second).error == nil)
    try harness.expectWritten(["GOAWAY last=0 NO_ERROR"])
    #expect(!harness.channel.isActive)
  }

  @Test("a draining server sends GOAWAY naming the last stream it took, refuses newer ones, and closes after the last")
  func serverDrains() async throws {
    let harness = try Harness(server: true)
    try harness.receiveHeaders(on: 1)
    try harness.receiveHeaders(on: 3)
    #expect(harness.opened.streams.count == 2)

    harness.handler.drain()
    try harness.expectWritten(["GOAWAY last=3 NO_ERROR"])
    try harness.receiveHeaders(on: 5)
    #expect(harness.opened.streams.count == 2)
    #expect(harness.channel.isActive)

    for id in [1, 3] { try harness.receive(.rstStream(.cancel), on: id) }
    try harness.expectWritten(["GOAWAY last=3 NO_ERROR"])
    #expect(!harness.channel.isActive)
    #expect(await readToEnd(harness.opened.streams[0]).error?.code == .cancelled)
  }

  @Test("a connection that closes fails its open calls with why")
  func connectionClosesUnderCalls() async throws {
    let harness = try Harness(server: false)
    try harness.receive(.settings(.settings([])), on: 0)
    let stream = try harness.openClientStream()
    _ = try harness.written()
    try await harness.channel.close()
    let (parts, error) = await readToEnd(stream)
    #expect(parts.isEmpty)
    #expect(error?.code == .unavailable)
    #expect(error?.message == "the test peer closed the connection")
    #expect(throws: RPCError.self) { _ = try harness.openClientStream() }
  }
}
