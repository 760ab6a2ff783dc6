#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One run's results: the JSON object both harnesses print (plugin-bench and the Go twin
/// benchhost print the same keys), and a table for people.
struct BenchResult: Codable, Sendable {
  var label: String
  var host: String
  var plugin: String
  var launches: Int
  var calls: Int
  var warmup: Int
  var concurrentCalls: Int
  var callers: Int
  var bulkMiB: Double
  var chunkKiB: Int
  var multiplex: Bool
  var autoMTLS: Bool
  var startMedianMs = 0.0
  var startMinMs = 0.0
  var startMaxMs = 0.0
  var getP50Us = 0.0
  var getP99Us = 0.0
  var getCallsPerSecond = 0.0
  var concurrentCallsPerSecond = 0.0
  var putMiBPerSecond = 0.0
  var uploadMiBPerSecond = 0.0
  var hostPeakRSSKiB = 0
  var pluginPeakRSSKiB = 0
  var callFailures = 0
  var error: String?

  init(label: String, host: String, plugin: String, parameters: Workloads.Parameters) {
    self.label = label
    self.host = host
    self.plugin = plugin
    self.launches = parameters.launches
    self.calls = parameters.calls
    self.warmup = parameters.warmup
    self.concurrentCalls = parameters.concurrentCalls
    self.callers = parameters.callers
    self.bulkMiB = Double(parameters.bulkBytes) / 1_048_576
    self.chunkKiB = parameters.chunkBytes / 1024
    self.multiplex = parameters.multiplex
    self.autoMTLS = parameters.autoMTLS
  }

  func jsonLine() throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(self), as: UTF8.self)
  }

  func table() -> String {
    func number(_ value: Double, _ digits: Int = 1) -> String { Self.fixed(value, digits: digits) }
    let rows: [(String, String)] = [
      (
        "start → first call, median of \(self.launches)",
        "\(number(self.startMedianMs, 2)) ms (min \(number(self.startMinMs, 2)), max \(number(self.startMaxMs, 2)))"
      ),
      ("sequential Get p50", "\(number(self.getP50Us)) µs"),
      ("sequential Get p99", "\(number(self.getP99Us)) µs"),
      ("sequential Get (\(self.calls) after \(self.warmup))", "\(number(self.getCallsPerSecond, 0)) calls/s"),
      ("\(self.callers) callers (\(self.concurrentCalls) Gets)", "\(number(self.concurrentCallsPerSecond, 0)) calls/s"),
      ("\(number(self.bulkMiB, 0)) MiB as \(self.chunkKiB) KiB Puts", "\(number(self.putMiBPerSecond)) MiB/s"),
      ("\(number(self.bulkMiB, 0)) MiB in one Upload stream", "\(number(self.uploadMiBPerSecond)) MiB/s"),
      ("host peak RSS", "\(self.hostPeakRSSKiB / 1024) MiB"),
      ("plugin peak RSS", "\(self.pluginPeakRSSKiB / 1024) MiB"),
      ("call failures", "\(self.callFailures)"),
    ]
    let width = rows.map(\.0.count).max() ?? 0
    let connection = [self.multiplex ? "multiplexed" : nil, self.autoMTLS ? "AutoMTLS" : nil].compactMap { $0 }
    var lines = [
      "\(self.label): \(self.host) host → \(self.plugin)"
        + (connection.isEmpty ? "" : " (\(connection.joined(separator: ", ")))")
    ]
    lines += rows.map { $0.0 + String(repeating: " ", count: width - $0.0.count) + "  " + $0.1 }
    if let error = self.error { lines.append("error: \(error)") }
    return lines.joined(separator: "\n")
  }

  /// `value` rounded to `digits` decimals, as `%.*f` prints it (without Foundation's
  /// `String(format:)`, which FoundationEssentials lacks).
  static func fixed(_ value: Double, digits: Int) -> String {
    guard value.isFinite else { return "\(value)" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = (abs(value) * scale).rounded()
    guard scaled < 9e15 else { return "\(value)" }
    let units = Int(scaled)
    let whole = units / Int(scale)
    let sign = value < 0 && units != 0 ? "-" : ""
    guard digits > 0 else { return "\(sign)\(whole)" }
    let fraction = String(units % Int(scale))
    return "\(sign)\(whole)." + String(repeating: "0", count: digits - fraction.count) + fraction
  }
}
