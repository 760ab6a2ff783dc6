import Logging
import Testing

@testable import GoPlugin

@Suite("Plugin stderr lines")
struct PluginLogParserTests {
  struct Sample: Sendable, CustomTestStringConvertible {
    var line: String
    var level: Logger.Level
    var message: String
    var metadata: Logger.Metadata = [:]
    var testDescription: String { self.line }
  }

  static let samples: [Sample] = [
    Sample(
      line:
        #"{"@level":"debug","@message":"message from plugin","@module":"mylogger","@timestamp":"2026-08-17T10:00:00.123456+01:00","foo":"bar"}"#,
      level: .debug,
      message: "message from plugin",
      metadata: ["@module": "mylogger", "@timestamp": "2026-08-17T10:00:00.123456+01:00", "foo": "bar"]
    ),
    Sample(
      line: #"{"@level":"warn","@message":"w","@timestamp":"2026-08-17T10:00:00.123456Z","n":12,"ok":true}"#,
      level: .warning, message: "w",
      metadata: ["@timestamp": "2026-08-17T10:00:00.123456Z", "n": "12", "ok": "true"]),
    Sample(line: #"{"@level":"ERROR","@message":"loud"}"#, level: .error, message: "loud"),
    Sample(line: #"{"@level":"trace","@message":"t"}"#, level: .trace, message: "t"),
    Sample(line: #"{"@level":"info","@message":"i"}"#, level: .info, message: "i"),
    // No usable level: the whole line, verbatim, at debug.
    Sample(
      line: #"{"@level":"warning","@message":"x"}"#, level: .debug, message: #"{"@level":"warning","@message":"x"}"#),
    Sample(line: #"{"a":1}"#, level: .debug, message: #"{"a":1}"#),
    // A timestamp in another layout makes the line text, as go-plugin treats it.
    Sample(
      line: #"{"@level":"error","@message":"x","@timestamp":"2026-08-17T10:00:00.123Z"}"#, level: .debug,
      message: #"{"@level":"error","@message":"x","@timestamp":"2026-08-17T10:00:00.123Z"}"#),
    // Types that crash a Go host are text here.
    Sample(line: #"{"@level":"error","@message":1}"#, level: .debug, message: #"{"@level":"error","@message":1}"#),
    Sample(
      line: #"{"@level":"error","@message":"unterminated"#, level: .debug,
      message: #"{"@level":"error","@message":"unterminated"#),
    Sample(line: #"["HELLO"]"#, level: .debug, message: #"["HELLO"]"#),
    Sample(line: "12345", level: .debug, message: "12345"),
    Sample(line: "[WARN] test line 98765", level: .warning, message: "[WARN] test line 98765"),
    Sample(line: "[TRACE] t", level: .trace, message: "[TRACE] t"),
    Sample(line: "[DEBUG] d", level: .debug, message: "[DEBUG] d"),
    Sample(line: "[INFO] i", level: .info, message: "[INFO] i"),
    Sample(line: "[ERROR] e", level: .error, message: "[ERROR] e"),
    Sample(line: "[warn] lower case is no prefix", level: .debug, message: "[warn] lower case is no prefix"),
    Sample(line: "plain text", level: .debug, message: "plain text"),
  ]

  @Test("classifies each form of line", arguments: samples)
  func classifies(_ sample: Sample) {
    var parser = PluginLogParser()
    let record = parser.parse(Array(sample.line.utf8))
    #expect(record.level == sample.level)
    #expect(record.message == sample.message)
    #expect(record.metadata == sample.metadata)
  }

  @Test("after a Go panic, untagged lines are errors")
  func panicMode() {
    var parser = PluginLogParser()
    #expect(parser.parse(Array("before".utf8)).level == .debug)
    #expect(parser.parse(Array("panic: invalid foo bar".utf8)).level == .error)
    #expect(parser.parse(Array("goroutine 1 [running]:".utf8)).level == .error)
    #expect(parser.parse(Array("[INFO] tagged".utf8)).level == .info)

    var fatal = PluginLogParser()
    #expect(fatal.parse(Array("fatal error: all goroutines are asleep".utf8)).level == .error)
    #expect(fatal.parse(Array("main.main()".utf8)).level == .error)
  }
}

@Suite("hclog output")
struct HCLogHandlerTests {
  @Test(
    "timestamps in the one layout Go hosts accept",
    arguments: [
      (WallTime(seconds: 0, microseconds: 42, offsetSeconds: 0), "1970-01-01T00:00:00.000042Z"),
      (
        WallTime(seconds: 1_700_000_000, microseconds: 123_456, offsetSeconds: 3600), "2023-11-14T23:13:20.123456+01:00"
      ),
      (
        WallTime(seconds: 1_700_000_000, microseconds: 5, offsetSeconds: -(5 * 3600 + 1800)),
        "2023-11-14T16:43:20.000005-05:30"
      ),
    ])
  func timestamps(_ time: WallTime, _ text: String) {
    #expect(time.hclogFormatted == text)
    #expect(HCLogTimestamp.isValid(text))
  }

  @Test("a line a Go host parses at its level, and so do we")
  func roundTrip() {
    let line = HCLogHandler.format(
      level: .warning,
      message: "disk \"full\"\nsoon",
      module: "kv",
      fields: ["path": "/tmp", "count": "\(3)"],
      time: WallTime(seconds: 0, microseconds: 1, offsetSeconds: 0)
    )
    #expect(
      line
        == #"{"@level":"warn","@message":"disk \"full\"\nsoon","@module":"kv","@timestamp":"1970-01-01T00:00:00.000001Z","count":"3","path":"/tmp"}"#
    )
    var parser = PluginLogParser()
    let record = parser.parse(Array(line.utf8))
    #expect(record.level == .warning)
    #expect(record.message == "disk \"full\"\nsoon")
    #expect(record.metadata["path"] == "/tmp")
  }
}

@Suite("Line splitting")
struct LineSplitterTests {
  func whole(_ text: String) -> LineSplitter.Line { LineSplitter.Line(bytes: Array(text.utf8), isPiece: false) }
  func piece(_ text: String) -> LineSplitter.Line { LineSplitter.Line(bytes: Array(text.utf8), isPiece: true) }

  @Test("lines split across reads arrive whole, CR dropped")
  func splits() {
    var splitter = LineSplitter()
    #expect(splitter.feed(Array("1|1|un".utf8)).isEmpty)
    #expect(splitter.feed(Array("ix|/p|grpc|\r\nnext\nlast".utf8)) == [whole("1|1|unix|/p|grpc|"), whole("next")])
    #expect(splitter.finish() == whole("last"))
    #expect(splitter.finish() == nil)
  }

  @Test("a 1 MiB line is one line")
  func longLine() {
    var splitter = LineSplitter()
    let long = [UInt8](repeating: UInt8(ascii: "a"), count: 1 << 20)
    var lines: [LineSplitter.Line] = []
    for start in stride(from: 0, to: long.count, by: 4096) {
      lines += splitter.feed(long[start..<min(start + 4096, long.count)])
    }
    lines += splitter.feed([UInt8(ascii: "\n")])
    #expect(lines.count == 1)
    #expect(lines.first?.bytes.count == 1 << 20)
    #expect(lines.first?.isPiece == false)
  }

  @Test("past the maximum, a line comes in marked pieces, with nothing lost, even within one read")
  func maximum() {
    var splitter = LineSplitter(maximumLineLength: 4)
    #expect(
      splitter.feed(Array("abcd\nabcdefghij\n".utf8)) == [whole("abcd"), piece("abcd"), piece("efgh"), piece("ij")])
    #expect(splitter.feed(Array("abcdefghij".utf8)) == [piece("abcd"), piece("efgh")])
    #expect(splitter.finish() == piece("ij"))
    // A line ending just where a piece was cut adds no empty piece; the next line is whole.
    #expect(splitter.feed(Array("abcdefgh\nxy\n".utf8)) == [piece("abcd"), piece("efgh"), whole("xy")])
  }

  @Test("pieces are cut between UTF-8 sequences, never inside one")
  func utf8Boundaries() {
    var splitter = LineSplitter(maximumLineLength: 5)
    // "aé€x": a, é (2 bytes), € (3 bytes), x: a cut after 5 bytes would split the euro sign.
    let lines = splitter.feed(Array("aé€xyz\n".utf8))
    #expect(lines == [piece("aé"), piece("€xy"), piece("z")])
  }

  @Test("what the splitter holds stays bounded for an endless line")
  func bounded() {
    var splitter = LineSplitter(maximumLineLength: 1000)
    let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 4096)
    var total = 0
    for _ in 0..<256 {
      for line in splitter.feed(chunk) {
        #expect(line.isPiece && line.bytes.count == 1000)
        total += line.bytes.count
      }
    }
    total += splitter.finish()?.bytes.count ?? 0
    #expect(total == 256 * 4096)
  }
}
