import GoPluginPlatform
import Logging
import Synchronization

/// Keeps the last lines a plugin wrote to stderr, so that a plugin that fails to start can be
/// shown with its own explanation (a Go plugin launched with the wrong cookie says so there).
final class PluginLogRecorder: Sendable {
  private let lines = Mutex<[String]>([])
  private let limit: Int

  init(limit: Int = 20) {
    self.limit = limit
  }

  var recorded: [String] { self.lines.withLock { $0 } }

  fileprivate func record(_ line: String) {
    self.lines.withLock { lines in
      lines.append(line)
      if lines.count > self.limit { lines.removeFirst(lines.count - self.limit) }
    }
  }

  /// A logger for a `PluginClient`: it prints records at `displayLevel` and above to stderr and
  /// records every line the plugin logs.
  func logger(displayLevel: Logger.Level) -> Logger {
    Logger(label: "goplugin") { label in
      RecordingLogHandler(label: label, displayLevel: displayLevel, recorder: self)
    }
  }
}

/// The client logs each plugin stderr line through a logger that carries the plugin's `pid`;
/// those are recorded whatever their level, the rest only printed.
private struct RecordingLogHandler: LogHandler {
  var logLevel: Logger.Level = .trace
  var metadata: Logger.Metadata = [:]
  var metadataProvider: Logger.MetadataProvider?
  let label: String
  let displayLevel: Logger.Level
  let recorder: PluginLogRecorder

  init(label: String, displayLevel: Logger.Level, recorder: PluginLogRecorder) {
    self.label = label
    self.displayLevel = displayLevel
    self.recorder = recorder
  }

  subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { self.metadata[key] }
    set { self.metadata[key] = newValue }
  }

  func log(event: LogEvent) {
    let fromPlugin = self.metadata["pid"] != nil
    if fromPlugin {
      self.recorder.record("\(event.message)")
    }
    guard event.level >= self.displayLevel else { return }
    var fields = self.metadata
    if let explicit = event.metadata { fields.merge(explicit) { _, new in new } }
    let rendered = fields.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    let line = "\(event.level) \(event.message)" + (rendered.isEmpty ? "" : " [\(rendered)]") + "\n"
    // Unbuffered, so that what a failing run printed is out before the process exits.
    POSIX.writeAll(line, to: 2)
  }
}
