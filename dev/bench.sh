#!/usr/bin/env bash
# Runs the cross-language benchmark: the same workloads from a Swift host (plugin-bench) and a
# Go go-plugin 1.0.1 host (benchhost) against the Swift and the Go KV plugin, four pairs side
# by side, with each pair's ratio to Go↔Go. Not part of the test suite.
#
#   dev/bench.sh              # full run (about 2 minutes on 2 cores, after the builds)
#   dev/bench.sh --quick      # a smoke test with small counts
#   dev/bench.sh --results FILE --skip-build
#
# Builds everything in release, outside the root package's .build: .build-bench/swift (Swift,
# with the Swift runtime linked statically), .build-bench/ (Go peers, the Go twin, results).
# See Benchmarks/README.md.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$repo/.build-bench"
quick=0
build=1
results=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --skip-build) build=0 ;;
        --results) results="$2"; shift ;;
        -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
mkdir -p "$out"
results="${results:-$out/results-$(date +%Y%m%d-%H%M%S).json}"

if [ "$quick" = 1 ]; then
    swift_args=(--launches 5 --calls 2000 --warmup 200 --concurrent-calls 4000 --callers 8 --bulk-mib 16 --chunk-kib 64)
    go_args=(-launches 5 -calls 2000 -warmup 200 -concurrent-calls 4000 -callers 8 -bulk-mib 16 -chunk-kib 64)
    limit=300
else
    swift_args=(--launches 30 --calls 20000 --warmup 2000 --concurrent-calls 40000 --callers 8 --bulk-mib 256 --chunk-kib 64)
    go_args=(-launches 30 -calls 20000 -warmup 2000 -concurrent-calls 40000 -callers 8 -bulk-mib 256 -chunk-kib 64)
    limit=1200
fi

export GO111MODULE=off GOFLAGS=
export GOPATH="$out/interop/gopath:$repo/Benchmarks/go:$repo/Tests/Interop/go:/usr/share/gocode"
[ -n "${HOME:-}" ] || export GOCACHE="${GOCACHE:-$out/go-cache}"

# Linked as Go links its programs, with the Swift runtime and Foundation inside the binary: a
# plugin process starts about a quarter sooner and smaller than with the shared libraries. A
# scratch path of its own keeps these flags from rebuilding Benchmarks/.build.
swift_build=(swift build -c release --static-swift-stdlib --scratch-path "$out/swift")
bin="$(cd "$repo/Benchmarks" && "${swift_build[@]}" --show-bin-path)"
if [ "$build" = 1 ]; then
    echo "== building (release, static Swift runtime)" >&2
    # kv-plugin is a product of the root package, built here as a dependency of Benchmarks/.
    (cd "$repo/Benchmarks" && "${swift_build[@]}" --product kv-plugin >&2 && "${swift_build[@]}" --product plugin-bench >&2)
    "$repo/Tests/Interop/build.sh" "$out/interop" >&2
    go build -o "$out/benchhost" benchhost
fi
for f in "$bin/kv-plugin" "$bin/plugin-bench" "$out/interop/go-kv-plugin" "$out/benchhost"; do
    [ -x "$f" ] || { echo "bench.sh: $f is missing; run without --skip-build" >&2; exit 1; }
done

swift_plugin="$bin/kv-plugin"
go_plugin="$out/interop/go-kv-plugin"
runs="$(mktemp)"
trap 'rm -f "$runs"' EXIT
status=0

# One pair: label, then the host's command. Its JSON object goes to $runs, its log to stderr.
pair() {
    local label="$1"; shift
    echo "== $label" >&2
    local line
    if line="$(timeout --kill-after=10 "$limit" "$@")"; then :; else
        echo "bench.sh: $label failed (exit $?)" >&2
        status=1
    fi
    if [ -z "$line" ]; then
        line="{\"label\":\"$label\",\"error\":\"no output\"}"
    fi
    echo "$line" >> "$runs"
}

pair "swift→swift" "$bin/plugin-bench" --json --label "swift→swift" --plugin "$swift_plugin" "${swift_args[@]}"
pair "swift→go" "$bin/plugin-bench" --json --label "swift→go" --plugin "$go_plugin" "${swift_args[@]}"
pair "go→swift" "$out/benchhost" -json -label "go→swift" -plugin "$swift_plugin" "${go_args[@]}"
pair "go→go" "$out/benchhost" -json -label "go→go" -plugin "$go_plugin" "${go_args[@]}"

python3 - "$runs" "$results" "$quick" <<'PY'
import json, platform, subprocess, sys, datetime
runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
def version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
    except Exception:
        return "?"
doc = {
    "date": datetime.datetime.now().isoformat(timespec="seconds"),
    "quick": sys.argv[3] == "1",
    "machine": {"system": platform.platform(), "cpus": __import__("os").cpu_count(),
                "swift": version(["swift", "--version"]), "go": version(["go", "version"])},
    "runs": runs,
}
with open(sys.argv[2], "w") as f:
    json.dump(doc, f, indent=2, ensure_ascii=False)
PY
echo "results: $results" >&2
echo
python3 "$repo/Benchmarks/scripts/bench_table.py" "$results" || status=1

# Every plugin a host launched must be gone by now.
left="$(pgrep -f -x "($swift_plugin|$go_plugin)" || true)"
if [ -n "$left" ]; then
    echo "bench.sh: plugin processes left behind: $left" >&2
    status=1
fi
exit $status
