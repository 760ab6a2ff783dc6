public import Logging
import Synchronization

/// Collects log records in memory, for tests that assert on what a host logged, such as the
/// plugin's stderr lines at their levels.
///
/// ```swift
/// let capture = LogCapture()
/// try await withPluginClient(configuration, logger: capture.logger) { … }
/// #expect(capture.records.contains { $0.level == .warning && $0.message == "json warning" })
/// ```
public final class LogCapture: Sendable {
  /// One captured log record.
  public struct Record: Sendable, Hashable {
    /// The level it was logged at.
    public var level: Logger.Level
    /// The message text.
    public var message: String
    /// Metadata as text, merged from the logger and the call.
    public var metadata: [String: String]
    /// The label of the logger it came from.
    public var label: String
  }

  private let storage = Mutex<[Record]>([])

  /// An empty capture.
  public init() {}

  /// Everything logged so far, oldest first.
  public var records: [Record] { self.storage.withLock { $0 } }

  /// A logger at `level` whose records are captured here.
  public func logger(label: String = "test", level: Logger.Level = .trace) -> Logger {
    var logger = Logger(label: label) { label in Handler(label: label, capture: self) }
    logger.logLevel = level
    return logger
  }

  /// A trace-level logger whose records are captured here.
  public var logger: Logger { self.logger() }

  fileprivate func append(_ record: Record) {
    self.storage.withLock { $0.append(record) }
  }

  private struct Handler: LogHandler {
    let label: String
    let capture: LogCapture
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
      get { self.metadata[key] }
      set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) {
      var merged = self.metadata
      if let explicit = event.metadata { merged.merge(explicit) { _, new in new } }
      self.capture.append(
        Record(
          level: event.level, message: "\(event.message)", metadata: merged.mapValues { "\($0)" }, label: self.label)
      )
    }
  }
}
