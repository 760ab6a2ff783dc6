// The gob decoder's fuzz harness: the test suite runs a short pass, dev/fuzz-gob.sh compiles this
// file with the module's sources into an optimised executable for a long one.
#if canImport(GoPluginGob)
import GoPluginGob
#endif

/// A small, seedable generator, so that a failing input can be made again from the seed.
struct SplitMix64: RandomNumberGenerator {
  var state: UInt64
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

/// A typed target that exercises the Codable side of decoding.
struct GobFuzzTarget: Codable {
  var name: String?
  var count: Int
  var flag: Bool
  var ratio: Double
  var items: [UInt8]
  var list: [Int32]
  var map: [String: GobInterface]
  var any: GobInterface
  var nested: [GobFuzzNested]
}

struct GobFuzzNested: Codable {
  var x: Int8
  var y: UInt16
  var tags: [String]
}

/// Mutates seed streams and makes random ones, and feeds each to fresh decoders.
struct GobFuzzer {
  struct Stats {
    var inputs = 0
    var values = 0
    var errors = 0
    var incomplete = 0
    var bytes = 0
  }

  var random: SplitMix64
  let seeds: [[UInt8]]
  var stats = Stats()

  init(seed: UInt64, seeds: [[UInt8]]) {
    random = SplitMix64(state: seed)
    self.seeds = seeds.filter { !$0.isEmpty }
  }

  /// Bytes that steer gob's decoder into its edges: counts, negated lengths, type ids.
  static let interesting: [UInt8] = [
    0x00, 0x01, 0x02, 0x03, 0x7F, 0x80, 0x81, 0xF8, 0xF9, 0xFE, 0xFF, 0x82, 0x10, 0x0C,
  ]

  mutating func input() -> [UInt8] {
    let choice = random.next() % 10
    if choice == 0 || seeds.isEmpty {
      let count = Int(random.next() % 64)
      return (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
    }
    var bytes = seeds[Int(random.next() % UInt64(seeds.count))]
    let mutations = 1 + Int(random.next() % 4)
    for _ in 0..<mutations where !bytes.isEmpty {
      let index = Int(random.next() % UInt64(bytes.count))
      switch random.next() % 7 {
      case 0: bytes[index] ^= 1 << UInt8(random.next() % 8)
      case 1: bytes[index] = Self.interesting[Int(random.next() % UInt64(Self.interesting.count))]
      case 2: bytes[index] = UInt8(truncatingIfNeeded: random.next())
      case 3: bytes.insert(Self.interesting[Int(random.next() % UInt64(Self.interesting.count))], at: index)
      case 4: bytes.remove(at: index)
      case 5: bytes.removeLast(Int(random.next() % UInt64(bytes.count)))
      default:
        let other = seeds[Int(random.next() % UInt64(seeds.count))]
        let from = Int(random.next() % UInt64(other.count))
        bytes.insert(contentsOf: other[from...].prefix(16), at: index)
      }
    }
    return bytes
  }

  /// Decodes every value of `bytes` as GobValue (re-encoding each), then as typed values, then
  /// fed a few bytes at a time. Only GobError may come out: the decoder's methods throw nothing
  /// else, and a trap ends the process.
  mutating func run(_ bytes: [UInt8]) {
    stats.inputs += 1
    stats.bytes += bytes.count
    var decoder = GobStreamDecoder()
    decoder.maxMessageSize = 1 << 20
    decoder.append(bytes)
    do {
      var encoder = GobStreamEncoder()
      var output: [UInt8] = []
      while let value = try decoder.decode(GobValue.self) {
        stats.values += 1
        // Whatever decoded must encode, or fail as a GobError.
        try? encoder.encode(value, into: &output)
      }
      stats.incomplete += 1
    } catch {
      stats.errors += 1
    }

    var typed = GobStreamDecoder()
    typed.append(bytes)
    while true {
      do {
        guard try typed.decode(GobFuzzTarget.self) != nil else { break }
      } catch {
        // A value that does not fit is skipped only if it decodes untyped; otherwise stop.
        break
      }
    }

    var chunked = GobStreamDecoder()
    var offset = 0
    let step = 1 + Int(random.next() % 7)
    while offset < bytes.count {
      chunked.append(bytes[offset..<min(offset + step, bytes.count)])
      offset += step
      do {
        while try chunked.skipValue() {}
      } catch {
        break
      }
    }
  }

  mutating func run(iterations: Int) {
    for _ in 0..<iterations {
      run(input())
    }
  }
}
