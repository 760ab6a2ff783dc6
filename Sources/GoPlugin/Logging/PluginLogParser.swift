import Logging

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Turns the lines a plugin writes to stderr into log records (spec §7): hclog JSON objects at
/// their own level with their fields as metadata, `[LEVEL]`-prefixed text at that level, and
/// anything else at debug — or at error once the plugin has printed a Go panic, so that its
/// stack trace is not lost among debug lines.
///
/// Unlike a Go host, a malformed or oddly typed JSON line is never fatal: it is logged as text.
struct PluginLogParser: Sendable {
  struct Record: Sendable, Equatable {
    var level: Logger.Level
    var message: String
    var metadata: Logger.Metadata
  }

  private var panicking = false

  init() {}

  mutating func parse(_ line: [UInt8]) -> Record {
    if let record = Self.parseJSON(line) { return record }
    let text = String(decoding: line, as: UTF8.self)
    if text.hasPrefix("panic: ") || text.hasPrefix("fatal error: ") {
      self.panicking = true
      return Record(level: .error, message: text, metadata: [:])
    }
    for (prefix, level) in Self.prefixes where text.hasPrefix(prefix) {
      return Record(level: level, message: text, metadata: [:])
    }
    return Record(level: self.panicking ? .error : .debug, message: text, metadata: [:])
  }

  /// A piece of a line longer than the host's limit: it is not parsed (it is not a whole JSON
  /// object, and a prefix would only name its first piece), so it is logged as text at debug,
  /// or at error after a panic, as go-plugin does with the pieces of a line past its buffer.
  func parsePiece(_ piece: [UInt8]) -> Record {
    Record(level: self.panicking ? .error : .debug, message: String(decoding: piece, as: UTF8.self), metadata: [:])
  }

  private static let prefixes: [(String, Logger.Level)] = [
    ("[TRACE]", .trace), ("[DEBUG]", .debug), ("[INFO]", .info), ("[WARN]", .warning), ("[ERROR]", .error),
  ]

  private static func parseJSON(_ line: [UInt8]) -> Record? {
    guard line.first == UInt8(ascii: "{"),
      case .object(let object)? = try? JSONDecoder().decode(JSONValue.self, from: Data(line))
    else { return nil }

    // A timestamp in any other layout makes go-plugin treat the whole line as text; we agree,
    // so that a plugin's output looks the same to Swift and Go hosts.
    if let stamp = object["@timestamp"] {
      guard case .string(let stamp) = stamp, HCLogTimestamp.isValid(stamp) else { return nil }
    }
    guard case .string(let message)? = object["@message"] else { return nil }
    guard case .string(let levelText)? = object["@level"], let level = Self.level(hclog: levelText) else {
      // A JSON object without a usable level is logged verbatim.
      return Record(level: .debug, message: String(decoding: line, as: UTF8.self), metadata: [:])
    }

    var metadata: Logger.Metadata = [:]
    for (key, value) in object where key != "@message" && key != "@level" {
      metadata[key] = value.metadataValue
    }
    return Record(level: level, message: message, metadata: metadata)
  }

  static func level(hclog text: String) -> Logger.Level? {
    switch text.trimmingGoSpace().lowercased() {
    case "trace": .trace
    case "debug": .debug
    case "info": .info
    case "warn": .warning
    case "error": .error
    default: nil
    }
  }
}

/// Any JSON value, so that a log line's fields keep their types without Foundation's bridging.
private enum JSONValue: Decodable {
  case string(String)
  case bool(Bool)
  case number(Double)
  case null
  case array([JSONValue])
  case object([String: JSONValue])

  init(from decoder: any Decoder) throws {
    let container = try decoder.singleValueContainer()
    if container.decodeNil() {
      self = .null
    } else if let value = try? container.decode(Bool.self) {
      self = .bool(value)
    } else if let value = try? container.decode(Double.self) {
      self = .number(value)
    } else if let value = try? container.decode(String.self) {
      self = .string(value)
    } else if let value = try? container.decode([JSONValue].self) {
      self = .array(value)
    } else {
      self = .object(try container.decode([String: JSONValue].self))
    }
  }

  var metadataValue: Logger.MetadataValue {
    switch self {
    case .string(let value): .string(value)
    case .bool(let value): .string(value ? "true" : "false")
    // Integers print without a fraction, as Go's %v prints a float64 that holds one.
    case .number(let value):
      value.rounded() == value && abs(value) < 1e15 ? .string(String(Int64(value))) : .string(String(value))
    case .null: .string("null")
    case .array(let values): .array(values.map(\.metadataValue))
    case .object(let values): .dictionary(values.mapValues(\.metadataValue))
    }
  }
}

/// hclog's JSON timestamp layout, `2006-01-02T15:04:05.000000Z07:00`: exactly six fractional
/// digits, then `Z` or `±hh:mm`.
enum HCLogTimestamp {
  static func isValid(_ text: String) -> Bool {
    let bytes = Array(text.utf8)
    func digits(_ range: Range<Int>) -> Bool { range.allSatisfy { $0 < bytes.count && (48...57).contains(bytes[$0]) } }
    func byte(_ index: Int, _ expected: Character) -> Bool {
      index < bytes.count && bytes[index] == expected.asciiValue!
    }
    guard bytes.count >= 27,
      digits(0..<4), byte(4, "-"), digits(5..<7), byte(7, "-"), digits(8..<10), byte(10, "T"),
      digits(11..<13), byte(13, ":"), digits(14..<16), byte(16, ":"), digits(17..<19), byte(19, "."),
      digits(20..<26)
    else { return false }
    if bytes.count == 27 { return byte(26, "Z") }
    return bytes.count == 32 && (byte(26, "+") || byte(26, "-")) && digits(27..<29) && byte(29, ":") && digits(30..<32)
  }
}
