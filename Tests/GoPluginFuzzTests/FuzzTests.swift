import Foundation
import Testing

@testable import GoPlugin

#if canImport(Glibc)
import Glibc
#endif

/// The fuzz pass's settings, from the environment: `GOPLUGIN_FUZZ_CASES` (default 300),
/// `GOPLUGIN_FUZZ_SEED` (default fixed, so CI runs the same cases every time),
/// `GOPLUGIN_FUZZ_JOBS` (cases at once, default 3) and `GOPLUGIN_FUZZ_PROGRESS` (a file that
/// gets "start N" and "end N" lines, so that a run that crashes names the cases in flight).
/// `dev/fuzz.sh` sets them for a long run.
enum FuzzSettings {
  static let environment = ProcessInfo.processInfo.environment
  static let cases = environment["GOPLUGIN_FUZZ_CASES"].flatMap { Int($0) } ?? 300
  static let seed = environment["GOPLUGIN_FUZZ_SEED"].flatMap { UInt64($0) } ?? 0x60_9106_1
  static let jobs = max(1, environment["GOPLUGIN_FUZZ_JOBS"].flatMap { Int($0) } ?? 3)
  /// Only these case indices (comma-separated), to replay cases a run reported.
  static let only = environment["GOPLUGIN_FUZZ_ONLY"].map { $0.split(separator: ",").compactMap { Int($0) } }
  static let progress = environment["GOPLUGIN_FUZZ_PROGRESS"]
  /// Enough for every case to hang, so that the summary is always printed.
  static var timeLimit: Int { max(2, cases * 12 / jobs / 60 + 2) }
}

@Suite("Fuzzing the host's start-up")
struct FuzzTests {
  @Test(
    "random and broken handshake lines and the servers behind them end cleanly",
    .timeLimit(.minutes(FuzzSettings.timeLimit))
  )
  func fuzzStartUp() async throws {
    // A hang is a start that never ends, so the margin is far above the slowest start that
    // does: the first cases run while every suite starts at once on two cores, and case 2 of
    // the CI seed (an AutoMTLS start behind a TLS server) has taken 5.7 to 8.5 s then, against
    // 1.1 s on its own.
    let harness = try FuzzHarness(startTimeout: .seconds(1), margin: .seconds(15))
    defer { harness.removeDirectory() }
    let indices = FuzzSettings.only ?? Array(0..<FuzzSettings.cases)
    let progress = FuzzSettings.progress.flatMap { FileHandle(forWritingAtPath: $0) ?? Self.create($0) }
    let clock = ContinuousClock()
    let start = clock.now

    // A few cases at a time: enough to finish quickly, few enough not to starve a small machine.
    var results: [FuzzResult] = []
    try await withThrowingTaskGroup(of: FuzzResult.self) { group in
      var next = indices.makeIterator()
      func addCase() {
        guard let index = next.next() else { return }
        let fuzzCase = FuzzCase.make(index: index, seed: FuzzSettings.seed)
        progress?.write(Data("start \(index) \(fuzzCase)\n".utf8))
        group.addTask { try await harness.run(fuzzCase) }
      }
      for _ in 0..<FuzzSettings.jobs { addCase() }
      while let result = try await group.next() {
        progress?.write(Data("end \(result.fuzzCase.index)\n".utf8))
        results.append(result)
        addCase()
      }
    }
    let summary = FuzzSummary(results: results, seed: FuzzSettings.seed, elapsed: clock.now - start)
    print(summary.line)
    for line in summary.details { print(line) }

    for problem in FuzzProblem.allCases where problem != .unverified {
      let failing = results.filter { $0.problems[problem] != nil }
      guard !failing.isEmpty else { continue }
      Issue.record(Comment(rawValue: summary.report(problem, failing)))
    }
    // Every case that completed either started or failed with a typed error; hangs and untyped
    // errors are reported above.
    #expect(results.count == indices.count)
  }

  @Test("the same seed makes the same cases, and a short pass covers every kind of case")
  func generator() {
    let cases = (0..<FuzzSettings.cases).map { FuzzCase.make(index: $0, seed: FuzzSettings.seed) }
    let again = (0..<FuzzSettings.cases).map { FuzzCase.make(index: $0, seed: FuzzSettings.seed) }
    #expect(cases.map(\.description) == again.map(\.description))
    #expect(FuzzCase.make(index: 0, seed: 1).description != FuzzCase.make(index: 0, seed: 2).description)

    let families = Set(cases.map { $0.family.split(separator: ":").first.map(String.init) ?? "" })
    #expect(families.isSuperset(of: ["random bytes", "random fields", "special", "structured", "valid line"]))
    let validLines = cases.filter { $0.family == "valid line" }
    for behaviour in FuzzCase.Behaviour.allCases {
      #expect(validLines.contains { $0.behaviour == behaviour }, "no valid line served by \(behaviour)")
    }
    #expect(validLines.contains { $0.listener == .unix } && validLines.contains { $0.listener == .tcp })
    #expect(cases.contains { $0.autoMTLS } && cases.contains { $0.multiplex })
    // Valid net/rpc lines a host that allows net/rpc has to start, or give up on, cleanly.
    let netRPCLines = validLines.filter {
      $0.netRPC && String(decoding: $0.line ?? [], as: UTF8.self).contains("netrpc")
    }
    #expect(Set(netRPCLines.map(\.behaviour)).count >= 4, "\(netRPCLines.map(\.description))")
    for served in [FuzzCase.ServedCertificate.pinned, .other, .leaf] {
      #expect(
        validLines.contains { $0.autoMTLS && [.tls, .tlsSettings].contains($0.behaviour) && $0.served == served })
    }
    let lines = cases.compactMap(\.line).map { String(decoding: $0, as: UTF8.self) }
    #expect(lines.contains { $0.contains("{DECOY0}") } && lines.contains { $0.contains("{DECOY0}\u{0}") })
  }

  static func create(_ path: String) -> FileHandle? {
    _ = FileManager.default.createFile(atPath: path, contents: nil)
    return FileHandle(forWritingAtPath: path)
  }
}

/// The counts of a run, as one line, and the failures by category with example cases.
struct FuzzSummary {
  let results: [FuzzResult]
  let seed: UInt64
  let elapsed: Duration

  func count(_ problem: FuzzProblem) -> Int { self.results.filter { $0.problems[problem] != nil }.count }

  var line: String {
    var started = 0
    var calls: [String: Int] = [:]
    var codes: [String: Int] = [:]
    for result in self.results {
      switch result.outcome {
      case .started(let call):
        started += 1
        calls[call, default: 0] += 1
      case .refused(let error) where !error.message.isEmpty:
        codes["\(error.code)", default: 0] += 1
      case .refused, .untyped, .hang:
        break
      }
    }
    let clearErrors = codes.values.reduce(0, +)
    let longest = self.results.max { $0.duration < $1.duration }
    let leftovers = self.count(.processLeft) + self.count(.directoryLeft) + self.count(.decoyTouched)
    func list(_ counts: [String: Int]) -> String {
      counts.sorted { $0.value > $1.value }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
    }
    return "fuzz: seed=\(self.seed) cases=\(self.results.count) started=\(started) clear errors=\(clearErrors) "
      + "hangs=\(self.count(.hang)) crashes=0 leftovers=\(leftovers) "
      + "(processes=\(self.count(.processLeft)) directories=\(self.count(.directoryLeft)) decoys=\(self.count(.decoyTouched))) "
      + "untyped=\(self.count(.untyped)) empty messages=\(self.count(.emptyMessage)) "
      + "unverified=\(self.count(.unverified)) "
      + "longest=\(Self.seconds(longest?.duration ?? .zero)) (case \(longest?.fuzzCase.index ?? -1)) "
      + "elapsed=\(Self.seconds(self.elapsed)) | errors: \(list(codes)) | started: \(started == 0 ? "none" : list(calls))"
  }

  /// Each category of failure with its count, split by what the cases have in common.
  var details: [String] {
    FuzzProblem.allCases.compactMap { problem in
      let failing = self.results.filter { $0.problems[problem] != nil }
      return failing.isEmpty ? nil : self.report(problem, failing)
    }
  }

  /// The cases that failed in one way, grouped by the server behind their line and how it
  /// listened (what decides most failures), with the host configurations and line families
  /// each group spans, and one example to replay.
  func report(_ problem: FuzzProblem, _ failing: [FuzzResult]) -> String {
    var groups: [String: [FuzzResult]] = [:]
    for result in failing {
      let fuzzCase = result.fuzzCase
      // A hung case is still running when it is checked: what it left may be the hang's doing.
      let hung = problem != .hang && result.problems[.hang] != nil ? " (hung)" : ""
      // A decoy is deleted for what the line names, whatever listens behind it.
      let server = "serve=\(fuzzCase.behaviour.rawValue) listen=\(fuzzCase.listener.rawValue)"
      let key = problem == .decoyTouched ? Self.decoyForm(result) : server + hung
      groups[key, default: []].append(result)
    }
    var text = "fuzz: \(failing.count) \(problem.rawValue) (seed \(self.seed)); "
    text += "replay with GOPLUGIN_FUZZ_SEED=\(self.seed) GOPLUGIN_FUZZ_ONLY=<cases>"
    for (key, results) in groups.sorted(by: {
      $0.value.count > $1.value.count || ($0.value.count == $1.value.count && $0.key < $1.key)
    }) {
      let hosts = Set(
        results.map { ($0.fuzzCase.autoMTLS ? "automtls" : "plain") + ($0.fuzzCase.multiplex ? "+mux" : "") })
      let families = Set(results.map { $0.fuzzCase.family })
      text += "\n  \(results.count)× \(key) host=\(hosts.sorted().joined(separator: "/")): cases "
      text += results.prefix(10).map { String($0.fuzzCase.index) }.joined(separator: ",")
      text += "\n     lines: \(families.sorted().joined(separator: "; "))"
      if let example = results.first {
        text += "\n     e.g. \(example.fuzzCase) -> \(FuzzHarness.name(example.outcome)): \(example.problems[problem]!)"
      }
    }
    return text
  }

  /// How a line named a decoy, and what the host made of the line.
  static func decoyForm(_ result: FuzzResult) -> String {
    let line = String(decoding: result.fuzzCase.line ?? [], as: UTF8.self)
    let form = line.contains("}\u{0}") ? "a line naming a decoy, NUL and more after it" : "a line naming a decoy"
    switch result.outcome {
    case .refused(let error): return "\(form), refused (\(error.code))"
    case .started: return "\(form), started"
    case .hang: return "\(form), hung"
    case .untyped: return "\(form), untyped error"
    }
  }

  static func seconds(_ duration: Duration) -> String {
    let (seconds, attoseconds) = duration.components
    return String(format: "%.2fs", Double(seconds) + Double(attoseconds) / 1e18)
  }
}
