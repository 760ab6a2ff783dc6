import GRPCCore
import NIOCore
import NIOHPACK
import Testing

@testable import GoPluginTransport

/// gRPC's framing and header mapping, byte for byte, as the plugin transports put them on the
/// wire; the transports themselves are exercised end to end by every host and interop test.
@Suite("gRPC over HTTP/2: framing and headers")
struct GRPCWireTests {
  private func framed(_ payload: [UInt8]) -> ByteBuffer {
    PluginBytes(payload).framed(allocator: ByteBufferAllocator())
  }

  @Test(
    "a timeout is sent as at most eight digits in the finest unit that holds it, rounded up",
    arguments: [
      (Duration.zero, "0n"),
      (.nanoseconds(-5), "0n"),
      (.seconds(-1), "0n"),
      (.nanoseconds(1), "1n"),
      (.nanoseconds(99_999_999), "99999999n"),
      (.milliseconds(100), "100000u"),
      (.nanoseconds(100_000_001), "100001u"),
      (.seconds(30), "30000000u"),
      (.seconds(600), "600000m"),
      (.seconds(3600 * 24 * 100), "8640000S"),
      (.seconds(60 * 99_999_999 + 1), "1666667H"),
      (.seconds(Int64.max), "99999999H"),
    ])
  func timeoutHeader(timeout: Duration, expected: String) {
    #expect(GRPCWire.timeoutHeader(timeout) == expected)
  }

  @Test("a message is framed as flag 0, a big-endian length, then the bytes")
  func framing() {
    let buffer = self.framed([7, 8, 9])
    #expect(Array(buffer.readableBytesView) == [0, 0, 0, 0, 3, 7, 8, 9])
    #expect(Array(self.framed([]).readableBytesView) == [0, 0, 0, 0, 0])
  }

  @Test("a serializer's bytes go out behind their prefix without being copied")
  func framingInPlace() {
    var bytes = PluginBytes(repeating: 0, count: 64 << 10)
    // What a serializer does with the buffer it asked for.
    bytes.withUnsafeMutableBytes { $0[0] = 9 }
    let framed = bytes.framed(allocator: ByteBufferAllocator())
    let payloadAddress = bytes.withUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
    let framedAddress = framed.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
    #expect(framedAddress + UInt(PluginBytes.prefixLength) == payloadAddress, "the message was copied")
    #expect(Array(framed.readableBytesView.prefix(6)) == [0, 0, 1, 0, 0, 9])
    #expect(framed.readableBytes == PluginBytes.prefixLength + (64 << 10))
    #expect(bytes.count == 64 << 10, "the prefix is not part of the message")
  }

  @Test("bytes without a prefix in front of them (a received message) are framed by a copy")
  func framingReceived() throws {
    var reader = GRPCWire.MessageReader(maximumLength: 1 << 20)
    reader.append(ByteBuffer(bytes: [0, 0, 0, 0, 2, 5, 6, 0, 0, 0, 0, 1, 7]))
    let first = try #require(try reader.next())
    let second = try #require(try reader.next())
    #expect(Array(first.framed(allocator: ByteBufferAllocator()).readableBytesView) == [0, 0, 0, 0, 2, 5, 6])
    #expect(Array(second.framed(allocator: ByteBufferAllocator()).readableBytesView) == [0, 0, 0, 0, 1, 7])
    #expect(first == PluginBytes([5, 6]), "equality compares the message, never the prefix")
  }

  @Test("messages are cut out of DATA however the frames split them")
  func reassembly() throws {
    let messages: [[UInt8]] = [[1], [], Array(repeating: 2, count: 70_000), [3, 4]]
    var stream = ByteBuffer()
    for message in messages {
      var framed = self.framed(message)
      stream.writeBuffer(&framed)
    }
    for split in [1, 2, 5, 6, 4096, stream.readableBytes] {
      var reader = GRPCWire.MessageReader(maximumLength: 1 << 20)
      var received: [[UInt8]] = []
      var remaining = stream
      while remaining.readableBytes > 0 {
        reader.append(remaining.readSlice(length: min(split, remaining.readableBytes))!)
        while let message = try reader.next() { received.append(Array(message.buffer.readableBytesView)) }
      }
      #expect(received == messages, "frames of \(split) bytes")
      #expect(!reader.hasPartialMessage)
    }
  }

  @Test("a half-arrived message is held back, not delivered")
  func partial() throws {
    var reader = GRPCWire.MessageReader(maximumLength: 100)
    var framed = self.framed([1, 2, 3, 4])
    reader.append(framed.readSlice(length: 6)!)
    #expect(try reader.next() == nil)
    #expect(reader.hasPartialMessage)
    reader.append(framed)
    #expect(try reader.next().map { Array($0.buffer.readableBytesView) } == [1, 2, 3, 4])
  }

  @Test("compressed and oversized messages are refused with gRPC's codes")
  func refused() {
    var reader = GRPCWire.MessageReader(maximumLength: 100)
    reader.append(ByteBuffer(bytes: [1, 0, 0, 0, 1, 42]))
    #expect(throws: RPCError.self) { try reader.next() }
    do {
      _ = try reader.next()
    } catch {
      #expect(error.code == .internalError)
    }

    var small = GRPCWire.MessageReader(maximumLength: 4)
    small.append(self.framed([1, 2, 3, 4, 5]))
    do {
      _ = try small.next()
      Issue.record("a 5-byte message passed a 4-byte limit")
    } catch {
      #expect(error.code == .resourceExhausted)
    }
  }

  @Test("grpc-message is percent-encoded as gRPC says, and decoded back")
  func percentEncoding() {
    let text = "100% done: naïve\ttab"
    let encoded = GRPCWire.percentEncoded(text)
    #expect(encoded == "100%25 done: na%C3%AFve%09tab")
    #expect(GRPCWire.percentDecoded(encoded) == text)
  }

  @Test("metadata: binary keys as unpadded base64, padded accepted, reserved keys left to gRPC")
  func metadata() {
    var metadata: Metadata = ["x-id": "7", "content-type": "text/plain", "te": "gzip"]
    metadata.addBinary([0xFF, 0x00], forKey: "x-blob-bin")
    var headers = HPACKHeaders()
    GRPCWire.append(metadata, to: &headers)
    #expect(headers.first(name: "x-id") == "7")
    #expect(headers.first(name: "x-blob-bin") == "/wA")
    #expect(!headers.contains(name: "content-type") && !headers.contains(name: "te"))

    let back = GRPCWire.metadata(from: [":path": "/a/b", "x-blob-bin": "/wA=", "x-id": "7"])
    #expect(Array(back[binaryValues: "x-blob-bin"]) == [[0xFF, 0x00]])
    #expect(Array(back[stringValues: "x-id"]) == ["7"])
    #expect(Array(back[stringValues: ":path"]).isEmpty)
  }

  @Test("trailers carry the status; trailers without one are an error of their own")
  func trailers() {
    var headers = HPACKHeaders()
    GRPCWire.trailers(Status(code: .notFound, message: "no key \"k\""), ["x-trace": "1"], into: &headers)
    #expect(headers.first(name: "grpc-status") == "5")
    let (status, metadata) = GRPCWire.status(fromTrailers: headers)
    #expect(status == Status(code: .notFound, message: "no key \"k\""))
    #expect(Array(metadata[stringValues: "x-trace"]) == ["1"])
    #expect(Array(metadata[stringValues: "grpc-status"]).isEmpty)

    #expect(GRPCWire.status(fromTrailers: [":status": "200"]).0.code == .unknown)
    #expect(GRPCWire.status(httpStatus: "503").code == .unavailable)
  }

  @Test("method paths map to descriptors and back; malformed ones do not")
  func paths() {
    let descriptor = MethodDescriptor(fullyQualifiedService: "plugin.GRPCBroker", method: "StartStream")
    #expect(GRPCWire.path(of: descriptor) == "/plugin.GRPCBroker/StartStream")
    #expect(GRPCWire.descriptor(path: "/plugin.GRPCBroker/StartStream") == descriptor)
    for bad in ["", "/", "//", "/a", "/a/", "a/b", "/a/b/c"] {
      #expect(GRPCWire.descriptor(path: bad) == nil, "\(bad)")
    }
  }

  @Test("a request's grpc-timeout stays with the transport; the rest reaches the handler")
  func requestTimeoutNotHandedOn() {
    let headers: HPACKHeaders = [
      ":path": "/kvbench.KV/Get", "content-type": "application/grpc", "grpc-timeout": "599996m",
      "x-trace": "abc",
    ]
    let metadata = GRPCWire.requestMetadata(from: headers)
    #expect(Array(metadata[stringValues: "grpc-timeout"]).isEmpty)
    #expect(Array(metadata[stringValues: "x-trace"]) == ["abc"])
  }
}
