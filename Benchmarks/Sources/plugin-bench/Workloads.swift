import GRPCCore
import GoPlugin
import KVInterface
import Logging
import SwiftProtobuf

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The KV plugin as the harness sees it: the generated stub itself, so that the Swift host does
/// per call what the Go twin does with its generated client, and can stream an upload of any
/// size without holding it in memory. Its unary calls take the direct path unless
/// `throughGRPCClient` sends every call through grpc-swift's client.
struct BenchKVPlugin: GRPCPlugin {
  var throughGRPCClient = false

  func services(context: PluginServiceContext) throws -> [any RegistrableRPCService] {
    throw PluginError(code: .invalidConfiguration, message: "plugin-bench only hosts \(context.name)")
  }

  func client(connection: PluginConnection) -> BenchKV {
    let caller = self.throughGRPCClient ? PluginCaller(wrapping: connection.grpcClient) : connection.caller
    return BenchKV(stub: Kvbench_KV.PluginClient(caller: caller), callExecutor: connection.callExecutor)
  }
}

struct BenchKV: Sendable {
  var stub: Kvbench_KV.PluginClient
  var callExecutor: (any TaskExecutor)?
}

/// A workload failed in a way the numbers cannot hide.
struct BenchFailure: Error, CustomStringConvertible {
  var description: String
}

/// The five workloads, in the order they run: launches (one plugin each), then on one further
/// plugin sequential Gets, concurrent Gets, bulk Puts, one bulk Upload, and its peak RSS.
struct Workloads: Sendable {
  struct Parameters: Sendable {
    var launches: Int
    var calls: Int
    var warmup: Int
    var concurrentCalls: Int
    var callers: Int
    var bulkBytes: Int
    var chunkBytes: Int
    /// The connection asks for multiplexing (yamux under gRPC).
    var multiplex = false
    /// The connection is secured with AutoMTLS.
    var autoMTLS = false
    /// The callers run on the connection's call executor rather than on the cooperative pool,
    /// where a host's tasks run unless it asks otherwise.
    var callersOnConnectionExecutor = false
    /// Every call goes through grpc-swift's `GRPCClient`, none on the direct path.
    var throughGRPCClient = false
  }

  static let valueSize = 16

  let command: PluginCommand
  let parameters: Parameters
  let logger: Logger
  private let clock = ContinuousClock()

  init(command: PluginCommand, parameters: Parameters, logger: Logger) {
    self.command = command
    self.parameters = parameters
    self.logger = logger
  }

  private var configuration: PluginClientConfiguration {
    var configuration = PluginClientConfiguration(
      command: self.command, handshake: .kv,
      plugins: ["kv": BenchKVPlugin(throughGRPCClient: self.parameters.throughGRPCClient)])
    configuration.multiplexBroker = self.parameters.multiplex
    if self.parameters.autoMTLS { configuration.tls = .autoMTLS }
    return configuration
  }

  /// A variant's numbers mean something only if the connection is the one its label names: a
  /// plugin that refused multiplexing fails the start, but one that sent no certificate is worth
  /// a check of its own.
  private func checkConnection(_ info: PluginInfo) throws {
    if self.parameters.multiplex && !info.multiplexed {
      throw BenchFailure(description: "the plugin's connection is not multiplexed")
    }
    if self.parameters.autoMTLS && info.serverCertificate == nil {
      throw BenchFailure(description: "the plugin sent no AutoMTLS certificate")
    }
  }

  func run(into result: inout BenchResult) async throws {
    // 1. Start to the first successful call, one new plugin per launch.
    var starts: [Duration] = []
    starts.reserveCapacity(self.parameters.launches)
    for _ in 0..<self.parameters.launches {
      starts.append(try await self.timeFirstCall())
    }
    if !starts.isEmpty {
      starts.sort()
      result.startMedianMs = Stats.percentile(starts, 50).milliseconds
      result.startMinMs = starts.first!.milliseconds
      result.startMaxMs = starts.last!.milliseconds
    }

    // 2–5 on one plugin.
    let soFar = result
    result = try await withPluginClient(self.configuration, logger: self.logger) { client in
      let info = try await client.info
      try self.checkConnection(info)
      let pid = info.pid
      let kv = try await client.dispense("kv", as: BenchKVPlugin.self)
      var measured = soFar
      let executor = self.parameters.callersOnConnectionExecutor ? kv.callExecutor : nil
      try await withTaskExecutorPreference(executor) {
        try await self.sequential(kv.stub, into: &measured)
        try await self.concurrent(kv.stub, into: &measured)
        try await self.bulk(kv.stub, into: &measured)
      }
      // Read before the plugin is stopped: after that there is no process to ask.
      measured.pluginPeakRSSKiB = ProcessStats.peakRSSKiB(pid: pid) ?? 0
      return measured
    }
  }

  private func timeFirstCall() async throws -> Duration {
    let start = self.clock.now
    return try await withPluginClient(self.configuration, logger: self.logger) { client in
      let kv = try await client.dispense("kv", as: BenchKVPlugin.self)
      _ = try await kv.stub.get(.with { $0.key = "first" })
      return self.clock.now - start
    }
  }

  private func sequential(_ kv: Kvbench_KV.PluginClient, into measured: inout BenchResult) async throws {
    let value = Data((0..<Self.valueSize).map { UInt8($0) })
    _ = try await kv.put(
      .with {
        $0.key = "k"
        $0.value = value
      })
    let request = Kvbench_GetRequest.with { $0.key = "k" }
    for _ in 0..<self.parameters.warmup {
      _ = try await kv.get(request)
    }
    var timings: [Duration] = []
    timings.reserveCapacity(self.parameters.calls)
    var failures = 0
    let start = self.clock.now
    for _ in 0..<self.parameters.calls {
      let before = self.clock.now
      let response = try await kv.get(request)
      timings.append(self.clock.now - before)
      if response.value.count != Self.valueSize { failures += 1 }
    }
    let elapsed = self.clock.now - start
    timings.sort()
    measured.getP50Us = Stats.percentile(timings, 50).microseconds
    measured.getP99Us = Stats.percentile(timings, 99).microseconds
    measured.getCallsPerSecond = Double(self.parameters.calls) / elapsed.seconds
    measured.callFailures += failures
  }

  private func concurrent(_ kv: Kvbench_KV.PluginClient, into measured: inout BenchResult) async throws {
    let total = self.parameters.concurrentCalls
    guard total > 0 else { return }
    let callers = self.parameters.callers
    let request = Kvbench_GetRequest.with { $0.key = "k" }
    let start = self.clock.now
    let failures = try await withThrowingTaskGroup(of: Int.self) { group in
      for caller in 0..<callers {
        // The calls split as evenly as they go; the first callers take the remainder.
        let share = total / callers + (caller < total % callers ? 1 : 0)
        group.addTask {
          var failures = 0
          for _ in 0..<share {
            let response = try await kv.get(request)
            if response.value.count != Self.valueSize { failures += 1 }
          }
          return failures
        }
      }
      return try await group.reduce(0, +)
    }
    measured.concurrentCallsPerSecond = Double(total) / (self.clock.now - start).seconds
    measured.callFailures += failures
  }

  private func bulk(_ kv: Kvbench_KV.PluginClient, into measured: inout BenchResult) async throws {
    let chunkBytes = self.parameters.chunkBytes
    let chunks = self.parameters.bulkBytes / chunkBytes
    guard chunks > 0 else { return }
    let payload = Data((0..<chunkBytes).map { UInt8(truncatingIfNeeded: $0) })
    let mebibytes = Double(chunks * chunkBytes) / 1_048_576

    // Puts overwrite one key, so the plugin holds one chunk, not the whole bulk.
    let put = Kvbench_PutRequest.with {
      $0.key = "bulk"
      $0.value = payload
    }
    var start = self.clock.now
    for _ in 0..<chunks {
      _ = try await kv.put(put)
    }
    measured.putMiBPerSecond = mebibytes / (self.clock.now - start).seconds

    let chunk = Kvbench_Chunk.with { $0.data = payload }
    start = self.clock.now
    let count = try await kv.upload(requestProducer: { writer in
      for _ in 0..<chunks {
        try await writer.write(chunk)
      }
    })
    measured.uploadMiBPerSecond = mebibytes / (self.clock.now - start).seconds
    guard count.bytes == Int64(chunks * chunkBytes), count.chunks == Int64(chunks) else {
      throw BenchFailure(
        description:
          "upload: plugin counted \(count.bytes) bytes in \(count.chunks) chunks, sent \(chunks * chunkBytes) in \(chunks)"
      )
    }
  }
}

enum Stats {
  /// The nearest-rank percentile of an ascending array: the smallest value with at least `p`
  /// percent of the values at or below it. The Go twin computes the same.
  static func percentile(_ sorted: [Duration], _ p: Int) -> Duration {
    precondition(!sorted.isEmpty)
    let rank = (p * sorted.count + 99) / 100
    return sorted[max(rank, 1) - 1]
  }
}

extension Duration {
  var seconds: Double {
    Double(self.components.seconds) + Double(self.components.attoseconds) / 1e18
  }

  var milliseconds: Double { self.seconds * 1e3 }
  var microseconds: Double { self.seconds * 1e6 }
}
