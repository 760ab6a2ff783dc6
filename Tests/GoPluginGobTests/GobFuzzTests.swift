import Foundation
import GoPluginGob
import Testing

/// Seeds for the fuzzer: our own streams of the corpus's shapes and Go's bytes for net/rpc.
func gobFuzzSeeds() throws -> [[UInt8]] {
  var seeds = [goRequests, goResponses, goKVPut]
  func stream<T: Encodable>(_ values: T...) throws -> [UInt8] {
    var encoder = GobStreamEncoder()
    var bytes: [UInt8] = []
    for value in values { try encoder.encode(value, into: &bytes) }
    return bytes
  }
  seeds.append(try stream(Everything(), Everything()))
  seeds.append(try stream(Zeroes()))
  seeds.append(
    try stream(
      Corpus.Outer(
        name: "o", inner: Corpus.Inner(name: "i", tags: ["t"]), inners: [Corpus.Inner()], byName: ["k": Corpus.Inner()],
        grid: [[1], []], counts: [1: 2])))
  seeds.append(try stream(GobValue.complex(real: 1, imaginary: 2), GobValue.array([.int(1)], element: .int)))
  seeds.append(
    try stream(
      GobInterface(
        .map(
          [GobMapEntry(key: .string("k"), value: .interface(GobInterface(.slice([.uint(1)], element: .uint))))],
          key: .string, value: .interface))))
  seeds.append(try stream(Logged(at: Stamp(seconds: 1), level: .debug, stamps: [])))
  // The Go corpus, when dev/fuzz-gob.sh or a developer points at one.
  if let directory = ProcessInfo.processInfo.environment["GOB_FUZZ_CORPUS"] {
    for file in try FileManager.default.contentsOfDirectory(atPath: directory) where file.hasSuffix(".gob") {
      seeds.append(try [UInt8](Data(contentsOf: URL(fileURLWithPath: directory).appendingPathComponent(file))))
    }
  }
  return seeds
}

/// A short pass for CI (a fixed seed, so a failure reproduces); dev/fuzz-gob.sh runs millions.
@Test func decoderSurvivesMutatedAndRandomInput() throws {
  let iterations = Int(ProcessInfo.processInfo.environment["GOB_FUZZ_ITERATIONS"] ?? "") ?? 8000
  let seed = UInt64(ProcessInfo.processInfo.environment["GOB_FUZZ_SEED"] ?? "") ?? 14
  var fuzzer = GobFuzzer(seed: seed, seeds: try gobFuzzSeeds())
  fuzzer.run(iterations: iterations)
  #expect(fuzzer.stats.inputs == iterations)
  // The mutations must reach both outcomes, or the pass tests nothing.
  #expect(fuzzer.stats.errors > 0)
  #expect(fuzzer.stats.values > 0)
}
