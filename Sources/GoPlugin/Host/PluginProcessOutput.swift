import Logging

/// What a plugin process writes, as its thread reads it: the first stdout line is the
/// handshake, the rest of stdout is dropped (as go-plugin does, so that a plugin printing to
/// stdout never blocks on a full pipe), and each stderr line becomes a log record.
struct PluginProcessOutput {
  private let firstLine: OneShot<PluginProcess.FirstLine>
  /// Keeps a stderr line among the last few.
  private let keepStandardErrorLine: ([UInt8]) -> Void
  private let logger: Logger
  private var standardOutput = LineSplitter(maximumLineLength: 64 * 1024)
  private var handshakeRead = false
  private var standardError: LineSplitter
  private var parser = PluginLogParser()

  init(
    firstLine: OneShot<PluginProcess.FirstLine>,
    logLineLimit: Int,
    logger: Logger,
    keepStandardErrorLine: @escaping ([UInt8]) -> Void
  ) {
    self.firstLine = firstLine
    self.keepStandardErrorLine = keepStandardErrorLine
    self.standardError = LineSplitter(maximumLineLength: logLineLimit)
    self.logger = logger
  }

  mutating func handle(_ output: ChildProcess.Output) {
    switch output {
    case .standardOutput(let chunk):
      guard !self.handshakeRead, let first = self.standardOutput.feed(chunk).first else { return }
      self.handshakeRead = true
      self.firstLine.fulfil(.line(String(decoding: first.bytes, as: UTF8.self)))
    case .endOfStandardOutput:
      guard !self.handshakeRead else { return }
      self.handshakeRead = true
      // Like Go's scanner, a last line without a newline still counts at end of stream.
      if let rest = self.standardOutput.finish() {
        self.firstLine.fulfil(.line(String(decoding: rest.bytes, as: UTF8.self)))
      } else {
        self.firstLine.fulfil(.closed)
      }
    case .standardError(let chunk):
      for line in self.standardError.feed(chunk) { self.emit(line) }
    case .endOfStandardError:
      if let rest = self.standardError.finish() { self.emit(rest) }
    }
  }

  /// Logs a stderr line as a record, and keeps it among the last few for a start error. A line
  /// longer than the limit is logged in pieces, at debug (or error, after a panic), each with
  /// `partial: true`, as go-plugin logs the pieces of a line past its buffer.
  private mutating func emit(_ line: LineSplitter.Line) {
    var record = line.isPiece ? self.parser.parsePiece(line.bytes) : self.parser.parse(line.bytes)
    // Who logged it is the host's to say; a plugin's fields of the same names do not override.
    record.metadata["plugin"] = nil
    record.metadata["pid"] = nil
    if line.isPiece { record.metadata["partial"] = "true" }
    self.logger.log(level: record.level, "\(record.message)", metadata: record.metadata)
    self.keepStandardErrorLine(line.bytes)
  }
}

/// The last lines of an output, bounded in count and bytes.
struct OutputTail: Sendable {
  private(set) var contents: [String] = []
  private var byteCount = 0
  let lines: Int
  let bytes: Int

  init(lines: Int, bytes: Int) {
    self.lines = lines
    self.bytes = bytes
  }

  mutating func append(_ line: [UInt8]) {
    // A long line keeps its end: that is where a message usually says what went wrong.
    let text = String(decoding: line.suffix(self.bytes), as: UTF8.self)
    self.contents.append(text)
    self.byteCount += text.utf8.count
    while self.contents.count > self.lines || (self.byteCount > self.bytes && self.contents.count > 1) {
      self.byteCount -= self.contents.removeFirst().utf8.count
    }
  }
}
