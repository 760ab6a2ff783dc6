import CounterInterface
import Crypto
import Foundation
import GRPCCore
import GoPlugin
import GoPluginProtos
import GoPluginTesting
import KVInterface
import Logging
import StreamingInterface
import SwiftProtobuf
import Synchronization
import Testing

/// `withInProcessPlugin` on the examples: each plugin's services and typed client, exercised
/// together in this process, broker included, with nothing launched.
@Suite("In-process plugins")
struct InProcessTests {
  @Test("the KV plugin stores what its client puts, and counts an upload")
  func kv() async throws {
    try await withInProcessPlugin(KVPlugin(serving: MemoryKV()), name: "kv") { kv, _ in
      try await kv.put("greeting", value: Array("hello".utf8))
      #expect(try await kv.get("greeting") == Array("hello".utf8))
      #expect(try await kv.upload([[1, 2, 3], [4, 5]]) == UploadCount(bytes: 5, chunks: 2))
    }
  }

  @Test("the counter plugin adds through a helper the host serves on the broker")
  func counterCallsBack() async throws {
    let helper = RecordingAddHelper()
    try await withInProcessPlugin(CounterPlugin(serving: MemoryCounter()), name: "counter") { counter, _ in
      try await counter.put("n", adding: 3, using: helper)
      try await counter.put("n", adding: 4, using: helper)
      #expect(try await counter.get("n") == 7)
    }
    // The sums were done on the host's side of the broker, not by the plugin.
    #expect(helper.calls.withLock { $0 } == [[0, 3], [3, 4]])
  }

  @Test("the streaming plugin fetches a file over a brokered connection")
  func streamsAFile() async throws {
    let bytes = (0..<(300 << 10)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("in-process-\(UUID().uuidString)")
    try Data(bytes).write(to: file)
    defer { try? FileManager.default.removeItem(at: file) }
    let received = try await withInProcessPlugin(StreamingPlugin(), name: "streaming") { sender, _ in
      try await sender.send(file: file, chunkSize: 64 << 10)
    }
    #expect(received.bytes == Int64(bytes.count))
    #expect(received.chunks == 5)
    #expect(received.sha256 == Array(SHA256.hash(data: bytes)))
  }

  @Test("the private socket directory is removed with whatever is left in it")
  func socketDirectoryRemoved() throws {
    let pair = try InProcessPluginPair(maxMessageSize: 1 << 20, logger: Logger(label: "in-process-test"))
    var isDirectory: ObjCBool = false
    #expect(FileManager.default.fileExists(atPath: pair.socketDirectory, isDirectory: &isDirectory))
    #expect(isDirectory.boolValue)
    // Standing in for the socket of a brokered server that did not clean up after itself.
    try Data().write(to: URL(fileURLWithPath: pair.socketDirectory).appendingPathComponent("plugin-stale"))
    pair.finish()
    #expect(!FileManager.default.fileExists(atPath: pair.socketDirectory))
  }

  @Test("the plugin side serves go-plugin's core services too")
  func coreServices() async throws {
    let status = try await withInProcessPlugin(KVPlugin(serving: MemoryKV())) { _, connection in
      try await Grpc_Health_V1_Health.Client(wrapping: connection.grpcClient).check(.with { $0.service = "plugin" })
        .status
    }
    #expect(status == .serving)
  }

  @Test("a server stream carries its messages, and a reader that stops early ends the call")
  func serverStream() async throws {
    let first = try await withInProcessPlugin(KVPlugin(serving: MemoryKV())) { _, connection in
      // Watch stays open until the plugin stops; leaving after one message must not hang.
      let health = Grpc_Health_V1_Health.Client(wrapping: connection.grpcClient)
      return try await health.watch(.with { $0.service = "plugin" }) { response in
        var messages = response.messages.makeAsyncIterator()
        return try await messages.next()?.status
      }
    }
    #expect(first == .serving)
  }

  @Test("what the body throws reaches the caller, after everything has stopped")
  func bodyThrows() async throws {
    struct Expected: Error {}
    await #expect(throws: Expected.self) {
      try await withInProcessPlugin(KVPlugin(serving: MemoryKV())) { kv, _ in
        try await kv.put("k", value: [1])
        throw Expected()
      }
    }
  }

  @Test("a plugin whose services cannot be made fails with its own error")
  func servicesFail() async throws {
    let error = await #expect(throws: PluginError.self) {
      try await withInProcessPlugin(KVPlugin(), name: "empty") { _, _ in }
    }
    #expect(error?.code == .invalidConfiguration)
    #expect(error?.message == "KVPlugin empty has no store to serve")
  }
}

/// An AddHelper that remembers what it was asked.
private final class RecordingAddHelper: AddHelper {
  let calls = Mutex<[[Int64]]>([])

  func sum(_ a: Int64, _ b: Int64) async throws -> Int64 {
    self.calls.withLock { $0.append([a, b]) }
    return a + b
  }
}
