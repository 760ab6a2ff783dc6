/// Splits a byte stream into lines at `\n`, dropping one trailing `\r`, however long a line is:
/// unlike Go's 64 KiB scanner, nothing is cut or lost up to `maximumLineLength`, past which a
/// line is handed on in pieces.
struct LineSplitter {
  private var pending: [UInt8] = []
  let maximumLineLength: Int

  init(maximumLineLength: Int = 16 * 1024 * 1024) {
    self.maximumLineLength = maximumLineLength
  }

  /// Feeds bytes and returns the lines they complete.
  mutating func feed(_ bytes: some Collection<UInt8>) -> [[UInt8]] {
    var lines: [[UInt8]] = []
    var start = bytes.startIndex
    while let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) {
      self.pending.append(contentsOf: bytes[start..<newline])
      lines.append(self.takeLine())
      start = bytes.index(after: newline)
    }
    self.pending.append(contentsOf: bytes[start...])
    while self.pending.count > self.maximumLineLength {
      lines.append(Array(self.pending.prefix(self.maximumLineLength)))
      self.pending.removeFirst(self.maximumLineLength)
    }
    return lines
  }

  /// What is left when the stream ends: a last line without a newline, if any.
  mutating func finish() -> [UInt8]? {
    guard !self.pending.isEmpty else { return nil }
    return self.takeLine()
  }

  private mutating func takeLine() -> [UInt8] {
    var line = self.pending
    self.pending.removeAll(keepingCapacity: true)
    if line.last == UInt8(ascii: "\r") { line.removeLast() }
    return line
  }
}
