// Micro-benchmarks of swift-go-plugin, run by ordo-one/benchmark:
//   swift package benchmark                     # run and print
//   swift package benchmark thresholds check    # compare with Thresholds/
import Benchmark
import Foundation
import GRPCCore
import GoPlugin
import KVInterface
import Logging
import SwiftProtobuf

// Names have no spaces or slashes: ordo-one/benchmark 1.38.1 writes threshold files with those
// replaced by "_" but looks them up unreplaced, so such a benchmark's thresholds are never found.
let benchmarks: @Sendable () -> Void = {
  // Allowed regressions from the p90 values in Thresholds/. Allocation counts are nearly
  // deterministic and wall-clock time on a shared 2-core machine is not: a tight tolerance for
  // the first, loose ones for the others.
  let thresholds: [BenchmarkMetric: BenchmarkThresholds] = [
    .mallocCountTotal: .init(relative: [.p90: 5]),
    .wallClock: .init(relative: [.p90: 75]),
    .throughput: .init(relative: [.p90: 75]),
  ]
  Benchmark.defaultConfiguration = .init(
    metrics: [.wallClock, .throughput, .mallocCountTotal],
    warmupIterations: 10,
    scalingFactor: .kilo,
    maxDuration: .seconds(2),
    maxIterations: 1_000,
    thresholds: thresholds
  )

  handshakeBenchmarks()
  messageBenchmarks()
  inProcessCallBenchmarks(thresholds: thresholds.filter { $0.key != .throughput })
}

// MARK: - Handshake line

/// `HandshakeLine.encoded`, as a plugin prints it, and `HandshakeLine.parse`, as a host reads
/// and validates it, for a plain line and an AutoMTLS one.
func handshakeBenchmarks() {
  let plain = HandshakeLine(appVersion: 1, network: .unix, address: "/tmp/plugin-dir-11azJx/plugin2955015446")
  // A P-521 certificate is about 600 bytes of DER; its base64 dominates an AutoMTLS line.
  let certificate = (0..<600).map { UInt8(truncatingIfNeeded: $0 &* 31) }
  let secured = HandshakeLine(
    appVersion: 1,
    network: .unix,
    address: "/tmp/plugin-dir-11azJx/plugin2955015446",
    serverCertificate: certificate,
    multiplexingSupported: false
  )
  let expectations = HandshakeLine.Expectations(versions: [1])

  for (name, line) in [("plaintext", plain), ("AutoMTLS", secured)] {
    Benchmark("HandshakeLine.encoded.\(name)") { benchmark in
      for _ in benchmark.scaledIterations {
        blackHole(line.encoded)
      }
    }
    // As it arrives: with its newline.
    let text = line.encoded + "\n"
    Benchmark("HandshakeLine.parse.\(name)") { benchmark in
      for _ in benchmark.scaledIterations {
        blackHole(try HandshakeLine.parse(text, expecting: expectations))
      }
    }
  }
}

// MARK: - Protobuf messages

/// The generated kv.proto messages (public in KVInterface): a 64 KiB Put as the bulk workload
/// sends it, and a 16-byte Get response as the call workloads receive it.
func messageBenchmarks() {
  let put = Kvbench_PutRequest.with {
    $0.key = "bulk"
    $0.value = Data((0..<65_536).map { UInt8(truncatingIfNeeded: $0) })
  }
  let putBytes: [UInt8] = try! put.serializedBytes()
  Benchmark("PutRequest.64KiB.encode") { benchmark in
    for _ in benchmark.scaledIterations {
      let bytes: [UInt8] = try put.serializedBytes()
      blackHole(bytes)
    }
  }
  Benchmark("PutRequest.64KiB.decode") { benchmark in
    for _ in benchmark.scaledIterations {
      blackHole(try Kvbench_PutRequest(serializedBytes: putBytes))
    }
  }

  let get = Kvbench_GetResponse.with { $0.value = Data((0..<16).map { UInt8($0) }) }
  let getBytes: [UInt8] = try! get.serializedBytes()
  Benchmark("GetResponse.16B.encode") { benchmark in
    for _ in benchmark.scaledIterations {
      let bytes: [UInt8] = try get.serializedBytes()
      blackHole(bytes)
    }
  }
  Benchmark("GetResponse.16B.decode") { benchmark in
    for _ in benchmark.scaledIterations {
      blackHole(try Kvbench_GetResponse(serializedBytes: getBytes))
    }
  }
}

// MARK: - In-process call

/// A unary Get through the whole gRPC path without a process boundary: the plugin side is
/// `PluginServer.run` in this process (the library's own server transport, its core services
/// and the KV service over a MemoryKV), listening on a unix socket; the host side is a
/// `KVClient` over that socket.
///
/// `InProcess.unary.*` take grpc-swift's path on both sides (the client's executor, the
/// server's router: what every call took before the direct call path); `InProcess.direct.*`
/// take the direct path on both sides (`PluginCaller`, the server's method table).
///
/// Every iteration serves a fresh plugin, warms the connection with 100 calls, and measures 1000
/// sequential calls; the results are shown per call (scaling factor 1000).
func inProcessCallBenchmarks(thresholds: [BenchmarkMetric: BenchmarkThresholds]) {
  // No throughput metric here: an iteration takes about a second, so it would read 1/s.
  let configuration = Benchmark.Configuration(
    metrics: [.wallClock, .mallocCountTotal],
    warmupIterations: 1,
    scalingFactor: .kilo,
    maxDuration: .seconds(15),
    maxIterations: 10,
    thresholds: thresholds
  )
  for (path, direct) in [("unary", false), ("direct", true)] {
    Benchmark("InProcess.\(path).Get", configuration: configuration) { benchmark in
      try await InProcessPlugin.withKV(direct: direct) { kv in
        for _ in 0..<100 { _ = try await kv.get("k") }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
          blackHole(try await kv.get("k"))
        }
        benchmark.stopMeasurement()
      }
    }
    Benchmark("InProcess.\(path).Put.64KiB", configuration: configuration) { benchmark in
      let value = (0..<65_536).map { UInt8(truncatingIfNeeded: $0) }
      try await InProcessPlugin.withKV(direct: direct) { kv in
        for _ in 0..<100 { try await kv.put("bulk", value: value) }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
          try await kv.put("bulk", value: value)
        }
        benchmark.stopMeasurement()
      }
    }
  }
}

enum InProcessPlugin {
  /// Serves the KV plugin in this process for the length of `body`, with a `KVClient` on it;
  /// both sides on the direct call path or both on grpc-swift's.
  static func withKV(direct: Bool, _ body: (KVClient) async throws -> Void) async throws {
    let directory = FileManager.default.temporaryDirectory
      .appendingPathComponent("go-plugin-bench-\(UUID().uuidString.prefix(8))").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }

    // What a host puts in a plugin's environment; here the plugin is this process.
    let environment = [
      HandshakeConfiguration.kv.magicCookieKey: HandshakeConfiguration.kv.magicCookieValue,
      "PLUGIN_PROTOCOL_VERSIONS": "1",
      "PLUGIN_UNIX_SOCKET_DIR": directory,
    ]
    var serve = PluginServeConfiguration(
      handshake: .kv,
      plugins: ["kv": KVPlugin(serving: MemoryKV())],
      logger: Logger(label: "in-process-plugin", factory: { _ in SwiftLogNoOpLogHandler() })
    )
    serve.directMethods = direct
    let (lines, continuation) = AsyncStream.makeStream(of: HandshakeLine.self)

    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { [serve] in
        do {
          try await PluginServer.run(serve, environment: environment) { line in
            continuation.yield(line)
            continuation.finish()
          }
        } catch  where Task.isCancelled {
          // Stopped by the cancellation below: not a failure.
        }
        continuation.finish()
      }
      var iterator = lines.makeAsyncIterator()
      guard let line = await iterator.next() else { throw CancellationError() }
      let transport = try PluginClientTransport(address: line.address)
      try await withGRPCClient(transport: PluginTransport(transport)) { client in
        let kv =
          direct
          ? KVClient(caller: PluginCaller(grpcClient: client, transport: PluginTransport(transport)))
          : KVClient(grpcClient: client)
        try await kv.put("k", value: (0..<16).map { UInt8($0) })
        try await body(kv)
      }
      // Cancelling the plugin's serve is how it stops when its host goes away.
      group.cancelAll()
    }
  }
}
