/// Splits a byte stream into lines at `\n`, dropping one trailing `\r`. A line longer than
/// `maximumLineLength` is handed on in pieces of at most that length, each marked as a piece,
/// so that what the splitter holds stays bounded however long a line a peer writes.
struct LineSplitter {
  /// A whole line, or one piece of a line longer than the maximum.
  struct Line: Equatable {
    var bytes: [UInt8]
    /// Whether this is a piece of a longer line (the last piece included) rather than a whole
    /// line: a piece is not a record of its own and must not be parsed as one.
    var isPiece: Bool
  }

  private var pending: [UInt8] = []
  /// Whether pieces of the current line have been handed on already.
  private var continuing = false
  let maximumLineLength: Int

  init(maximumLineLength: Int = 16 * 1024 * 1024) {
    self.maximumLineLength = max(maximumLineLength, 4)
  }

  /// Feeds bytes and returns the lines, and pieces of lines, they complete.
  mutating func feed(_ bytes: some Collection<UInt8>) -> [Line] {
    var lines: [Line] = []
    var start = bytes.startIndex
    while start != bytes.endIndex {
      let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n"))
      let end = newline ?? bytes.endIndex
      // Copied in slices no longer than the room left, so a long line never piles up here.
      var next = start
      while next != end {
        let room = self.maximumLineLength - self.pending.count
        if room == 0 {
          lines.append(self.takePiece())
          continue
        }
        let upTo = bytes.index(next, offsetBy: room, limitedBy: end) ?? end
        self.pending.append(contentsOf: bytes[next..<upTo])
        next = upTo
      }
      guard let newline else { break }
      if let line = self.takeLine() { lines.append(line) }
      start = bytes.index(after: newline)
    }
    return lines
  }

  /// What is left when the stream ends: a last line (or piece) without a newline, if any.
  mutating func finish() -> Line? {
    guard !self.pending.isEmpty else {
      self.continuing = false
      return nil
    }
    return self.takeLine()
  }

  private mutating func takeLine() -> Line? {
    defer { self.continuing = false }
    var line = self.pending
    self.pending.removeAll(keepingCapacity: true)
    if line.last == UInt8(ascii: "\r") { line.removeLast() }
    // A line that ended right where a piece was cut has nothing more to say.
    if self.continuing && line.isEmpty { return nil }
    return Line(bytes: line, isPiece: self.continuing)
  }

  /// A full buffer's worth, cut before a UTF-8 sequence that is not complete yet, so that each
  /// piece decodes as text on its own.
  private mutating func takePiece() -> Line {
    var cut = self.pending.count
    var index = cut - 1
    while index > 0, cut - index < 4, self.pending[index] & 0xC0 == 0x80 { index -= 1 }
    let lead = self.pending[index]
    let length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1
    if index > 0, length > cut - index { cut = index }
    let piece = Array(self.pending[..<cut])
    self.pending.removeFirst(cut)
    self.continuing = true
    return Line(bytes: piece, isPiece: true)
  }
}
