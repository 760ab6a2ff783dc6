import GoPluginPlatform
public import Logging
import Synchronization

/// A swift-log handler that writes the JSON lines of HashiCorp's hclog to the process's real
/// standard error, the format every go-plugin host parses (spec §7.2).
///
/// A plugin that logs through it shows up in a Go host's logs, and in a Swift host's, at the
/// level it logged at, with its metadata as fields. The label becomes `@module`.
///
/// ```swift
/// LoggingSystem.bootstrap(HCLogHandler.init)
/// ```
public struct HCLogHandler: LogHandler, Sendable {
  public var logLevel: Logger.Level = .trace
  public var metadata: Logger.Metadata = [:]
  public var metadataProvider: Logger.MetadataProvider?
  private let label: String
  private let write: @Sendable (String) -> Void

  /// A handler for `label`, which becomes each line's `@module`.
  public init(label: String) {
    self.init(label: label, write: HCLogHandler.writeToStandardError)
  }

  /// A handler for `label` that adds the provider's metadata to every line.
  public init(label: String, metadataProvider: Logger.MetadataProvider?) {
    self.init(label: label, write: HCLogHandler.writeToStandardError)
    self.metadataProvider = metadataProvider
  }

  /// For tests: formatted lines go to `write` instead of standard error.
  init(label: String, write: @escaping @Sendable (String) -> Void) {
    self.label = label
    self.write = write
  }

  public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { self.metadata[key] }
    set { self.metadata[key] = newValue }
  }

  public func log(event: LogEvent) {
    var fields = self.metadata
    if let provided = self.metadataProvider?.get() { fields.merge(provided) { _, new in new } }
    if let explicit = event.metadata { fields.merge(explicit) { _, new in new } }
    self.write(
      Self.format(level: event.level, message: "\(event.message)", module: self.label, fields: fields, time: .now)
        + "\n")
  }

  /// One hclog JSON object: keys in sorted order as hclog writes them, strings everywhere a Go
  /// host asserts a string (a number there crashes it).
  static func format(
    level: Logger.Level, message: String, module: String, fields: Logger.Metadata, time: WallTime
  ) -> String {
    var entries: [(String, String)] = [
      ("@level", JSONText.quote(Self.name(of: level))),
      ("@message", JSONText.quote(message)),
      ("@timestamp", JSONText.quote(time.hclogFormatted)),
    ]
    if !module.isEmpty { entries.append(("@module", JSONText.quote(module))) }
    for (key, value) in fields where !key.hasPrefix("@") {
      entries.append((key, JSONText.encode(value)))
    }
    entries.sort { $0.0 < $1.0 }
    return "{" + entries.map { "\(JSONText.quote($0.0)):\($0.1)" }.joined(separator: ",") + "}"
  }

  static func name(of level: Logger.Level) -> String {
    switch level {
    case .trace: "trace"
    case .debug: "debug"
    case .info, .notice: "info"
    case .warning: "warn"
    case .error, .critical: "error"
    }
  }

  /// The real stderr: fd 2, or a copy of it while fd 2 is captured for forwarding over
  /// `GRPCStdio`, since the host reads logs from the real one only.
  private static let standardError = Mutex<Int32>(2)

  static func useStandardError(_ descriptor: Int32) {
    standardError.withLock { $0 = descriptor }
  }

  @Sendable private static func writeToStandardError(_ line: String) {
    // One writer at a time, so that lines from concurrent tasks never interleave.
    standardError.withLock { POSIX.writeAll(line, to: $0) }
  }
}

/// A moment on the wall clock, with the local UTC offset it was taken in.
struct WallTime: Sendable {
  var seconds: Int
  var microseconds: Int
  var offsetSeconds: Int

  static var now: WallTime {
    var spec = timespec()
    clock_gettime(CLOCK_REALTIME, &spec)
    var seconds = time_t(spec.tv_sec)
    var local = tm()
    localtime_r(&seconds, &local)
    return WallTime(
      seconds: Int(spec.tv_sec), microseconds: Int(spec.tv_nsec) / 1000, offsetSeconds: Int(local.tm_gmtoff))
  }

  /// Go's `2006-01-02T15:04:05.000000Z07:00`, the only layout go-plugin hosts accept.
  var hclogFormatted: String {
    var shifted = time_t(self.seconds + self.offsetSeconds)
    var parts = tm()
    gmtime_r(&shifted, &parts)
    func pad(_ value: Int, _ width: Int) -> String {
      let text = String(value)
      return String(repeating: "0", count: max(0, width - text.count)) + text
    }
    var text = "\(pad(Int(parts.tm_year) + 1900, 4))-\(pad(Int(parts.tm_mon) + 1, 2))-\(pad(Int(parts.tm_mday), 2))"
    text += "T\(pad(Int(parts.tm_hour), 2)):\(pad(Int(parts.tm_min), 2)):\(pad(Int(parts.tm_sec), 2))"
    text += ".\(pad(self.microseconds, 6))"
    if self.offsetSeconds == 0 { return text + "Z" }
    let sign = self.offsetSeconds < 0 ? "-" : "+"
    let minutes = abs(self.offsetSeconds) / 60
    return text + "\(sign)\(pad(minutes / 60, 2)):\(pad(minutes % 60, 2))"
  }
}

enum JSONText {
  static func quote(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      case let control where control.value < 0x20:
        let hex = String(control.value, radix: 16)
        out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
      default: out.unicodeScalars.append(scalar)
      }
    }
    return out + "\""
  }

  static func encode(_ value: Logger.MetadataValue) -> String {
    switch value {
    case .string(let text): quote(text)
    case .stringConvertible(let convertible): quote(convertible.description)
    case .array(let values): "[" + values.map(encode).joined(separator: ",") + "]"
    case .dictionary(let values):
      "{" + values.sorted { $0.key < $1.key }.map { "\(quote($0.key)):\(encode($0.value))" }.joined(separator: ",")
        + "}"
    }
  }
}
