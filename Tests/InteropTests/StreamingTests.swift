import Crypto
import Foundation
import GoPluginTesting
import StreamingInterface
import Testing

@testable import GoPlugin

@Suite("Streaming: a file over a brokered connection", .timeLimit(.minutes(5)))
struct StreamingTests {
  @Test("a 16 MiB file arrives whole", arguments: [false, true])
  func transfer(autoMTLS: Bool) async throws {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent(
      "goplugin-stream-\(UInt32.random(in: 0...UInt32.max))")
    defer { try? FileManager.default.removeItem(at: file) }
    // Not a whole number of chunks, so the last one is short.
    // A block of a prime length, so that chunks do not line up with it.
    let block = (0..<65_521).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 13) }
    let bytes = Data(repeated(block, count: (16 << 20) + 12345))
    try bytes.write(to: file)

    var configuration = PluginClientConfiguration(
      command: try BuildProducts.command("streaming-plugin"),
      handshake: .streaming,
      plugins: ["streaming": StreamingPlugin()]
    )
    configuration.standardInput = .none
    if autoMTLS { configuration.tls = .autoMTLS }
    let received = try await withPluginClient(configuration) { client in
      try await client.dispense("streaming", as: StreamingPlugin.self).send(file: file)
    }
    #expect(received.bytes == Int64(bytes.count))
    #expect(received.chunks == Int64((bytes.count + 65535) / 65536))
    #expect(received.sha256 == Array(SHA256.hash(data: bytes)))
  }

  @Test("the stream-file CLI runs the example")
  func cli() async throws {
    let result = try await Peers.run(try BuildProducts.path("stream-file"), ["--size", "8"])
    #expect(result.status == 0, "\(result.stderr)")
    #expect(result.stdout.contains("received: 8388608 bytes in 128 chunks, sha256 matches"))
  }
}
