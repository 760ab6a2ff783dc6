#!/usr/bin/env bash
# A long fuzz run of the gob decoder, outside CI: the harness of Tests/GoPluginGobTests
# (GobFuzzEngine.swift), compiled optimised with GoPluginGob's sources into one executable
# (no SwiftPM build), seeded with the corpus real Go writes (Tests/Interop/go/src/interop/gobcorpus).
#
#   dev/fuzz-gob.sh                          # 1,000,000 inputs, a new seed
#   dev/fuzz-gob.sh --inputs 5000000 --seed 42
#
# Prints inputs, inputs/s, values decoded, errors, and the peak RSS; exits non-zero if the
# decoder traps (the process dies) or the peak RSS passes --max-rss-mib (default 256).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
inputs=1000000
seed=$(( $(date +%s) ))
max_rss=256
while [ $# -gt 0 ]; do
    case "$1" in
        --inputs) inputs="$2"; shift ;;
        --seed) seed="$2"; shift ;;
        --max-rss-mib) max_rss="$2"; shift ;;
        -h|--help) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "fuzz-gob.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

command -v go >/dev/null || { echo "fuzz-gob.sh: go not found: apt-get install golang-go" >&2; exit 1; }
mkdir -p "$work/corpus"
GO111MODULE=off GOPATH="$repo/Tests/Interop/go" GOFLAGS= GOCACHE="${GOCACHE:-$work/go-cache}" \
    go build -o "$work/gobcorpus" interop/gobcorpus
"$work/gobcorpus" write "$work/corpus"

cat > "$work/main.swift" <<'SWIFT'
import Foundation

@main
struct GobFuzzMain {
  static func main() throws {
    let arguments = CommandLine.arguments
    let corpus = arguments[1]
    let inputs = Int(arguments[2]) ?? 1_000_000
    let seed = UInt64(arguments[3]) ?? 1
    var seeds: [[UInt8]] = []
    for file in try FileManager.default.contentsOfDirectory(atPath: corpus).sorted() where file.hasSuffix(".gob") {
      seeds.append(try [UInt8](Data(contentsOf: URL(fileURLWithPath: corpus).appendingPathComponent(file))))
    }
    var fuzzer = GobFuzzer(seed: seed, seeds: seeds)
    let clock = ContinuousClock()
    let start = clock.now
    var done = 0
    while done < inputs {
      let batch = min(100_000, inputs - done)
      fuzzer.run(iterations: batch)
      done += batch
    }
    let elapsed = clock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    let peak = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }
      .map { $0.split(separator: " ", omittingEmptySubsequences: true)[1] } ?? "0"
    let stats = fuzzer.stats
    print(
      "gob fuzz: seed \(seed), \(stats.inputs) inputs (\(stats.bytes) bytes) in \(String(format: "%.1f", seconds)) s, "
        + "\(Int(Double(stats.inputs) / seconds)) inputs/s; \(stats.values) values decoded, \(stats.errors) inputs "
        + "ended in a GobError, \(stats.incomplete) incomplete; peak RSS \(peak) KiB")
    print("peak-rss-kib \(peak)")
  }
}
SWIFT

swiftc -O -parse-as-library -module-name GobFuzz -swift-version 6 \
    "$repo"/Sources/GoPluginGob/*.swift "$repo/Tests/GoPluginGobTests/GobFuzzEngine.swift" "$work/main.swift" \
    -o "$work/gob-fuzz"

output="$("$work/gob-fuzz" "$work/corpus" "$inputs" "$seed")" || {
    echo "fuzz-gob.sh: the fuzzer died (seed $seed): a trap in the decoder" >&2
    exit 1
}
printf '%s\n' "$output" | grep -v '^peak-rss-kib'
peak="$(printf '%s\n' "$output" | sed -n 's/^peak-rss-kib //p')"
if [ "${peak:-0}" -gt $(( max_rss * 1024 )) ]; then
    echo "fuzz-gob.sh: peak RSS ${peak} KiB is over ${max_rss} MiB" >&2
    exit 1
fi
