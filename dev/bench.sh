#!/usr/bin/env bash
# Runs the cross-language benchmark: the same workloads from a Swift host (plugin-bench) and a
# Go go-plugin 1.0.1 host (benchhost) against the Swift and the Go KV plugin, side by side with
# each pair's ratio to Go↔Go: the four host→plugin pairs, Swift↔Swift also multiplexed and with
# AutoMTLS (Go↔Go with AutoMTLS too), the Swift host's callers also on the connection's event loop
# ("loop"), every pair with Swift in it also through grpc-swift's executors ("grpc-swift", the
# path before direct calls), and every pair with Swift in it for both release builds of the Swift side, static and
# dynamic. Not part of the test suite.
#
#   dev/bench.sh                      # full run (about 5 minutes on 2 cores, after the builds)
#   dev/bench.sh --quick              # a smoke test with small counts
#   dev/bench.sh --swift-builds static --results FILE --skip-build
#
# Builds everything in release, outside the root package's .build: .build-bench/swift-static
# (the Swift runtime linked into the binaries), .build-bench/swift-dynamic (the default build),
# .build-bench/ (Go peers, the Go twin, results). Writes RESULTS.json, and beside it RESULTS.md
# (the table it prints) and RESULTS.svg (the chart). See Benchmarks/README.md.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$repo/.build-bench"
quick=0
build=1
results=""
swift_builds="static,dynamic"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --skip-build) build=0 ;;
        --results) results="$2"; shift ;;
        --swift-builds) swift_builds="$2"; shift ;;
        -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
builds=()
for b in ${swift_builds//,/ }; do
    case "$b" in
        static|dynamic) builds+=("$b") ;;
        *) echo "bench.sh: --swift-builds takes static, dynamic or both (static,dynamic), not $b" >&2; exit 2 ;;
    esac
done
[ ${#builds[@]} -gt 0 ] || { echo "bench.sh: --swift-builds is empty" >&2; exit 2; }
mkdir -p "$out"
results="${results:-$out/results-$(date +%Y%m%d-%H%M%S).json}"
case "$results" in
    *.json) base="${results%.json}" ;;
    *) base="$results" ;;
esac

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

# Two release builds of the Swift side, each in a scratch path of its own (which also keeps
# their flags from rebuilding Benchmarks/.build):
# - static: linked as Go links its programs, with the Swift runtime (and whatever of Foundation
#   the program uses) inside the binary, at a fixed address (not position-independent: no
#   relocations to apply at start) and exporting no symbols (the dynamic loader has no table of
#   a megabyte to read);
# - dynamic: SwiftPM's default, the Swift runtime's shared libraries loaded at start.
swift_build() {
    local kind="$1"; shift
    local flags=(-c release --scratch-path "$out/swift-$kind")
    [ "$kind" = static ] && flags+=(--static-swift-stdlib -Xswiftc -Xclang-linker -Xswiftc -no-pie
        -Xlinker --no-export-dynamic)
    (cd "$repo/Benchmarks" && swift build "${flags[@]}" "$@")
}
declare -A bin
for b in "${builds[@]}"; do
    bin[$b]="$(swift_build "$b" --show-bin-path)"
done
if [ "$build" = 1 ]; then
    for b in "${builds[@]}"; do
        echo "== building the Swift side (release, $b)" >&2
        # kv-plugin is a product of the root package, built here as a dependency of Benchmarks/.
        swift_build "$b" --product kv-plugin >&2 && swift_build "$b" --product plugin-bench >&2
    done
    "$repo/Tests/Interop/build.sh" "$out/interop" >&2
    go build -o "$out/benchhost" benchhost
fi
go_plugin="$out/interop/go-kv-plugin"
wanted=("$go_plugin" "$out/benchhost")
for b in "${builds[@]}"; do wanted+=("${bin[$b]}/kv-plugin" "${bin[$b]}/plugin-bench"); done
for f in "${wanted[@]}"; do
    [ -x "$f" ] || { echo "bench.sh: $f is missing; run without --skip-build" >&2; exit 1; }
done

runs="$(mktemp)"
trap 'rm -f "$runs"' EXIT
status=0

# One pair: the pair (host→plugin), its variant (mux, mtls or -), the Swift side's build (static,
# dynamic or -), then the host's command. Its JSON object goes to $runs after a line with the
# pair's facts; its log goes to stderr.
pair() {
    local kind="$1" variant="$2" swift="$3"; shift 3
    local tags=""
    [ "$variant" != - ] && tags="$variant"
    [ "$swift" != - ] && tags="${tags:+$tags, }$swift"
    local label="$kind${tags:+ ($tags)}"
    echo "== $label" >&2
    local line started=$SECONDS
    # Both hosts take --label (Go's flag package reads one dash or two alike).
    if line="$(timeout --kill-after=10 "$limit" "$@" --label "$label")"; then :; else
        echo "bench.sh: $label failed (exit $?)" >&2
        status=1
    fi
    if [ -z "$line" ]; then
        line="{\"label\":\"$label\",\"error\":\"no output\"}"
    fi
    printf '%s\t%s\t%s\t%s\n%s\n' "$kind" "$variant" "$swift" "$((SECONDS - started))" "$line" >> "$runs"
}

# Go↔Go first: it is every ratio's baseline. Then each Swift pair for its builds, side by side,
# so that a drift in the machine's load moves both builds alike. go-plugin 1.0.1 hosts cannot
# multiplex, so multiplexing has no Go↔Go twin; Swift↔Swift plain is its baseline.
go_host=("$out/benchhost" -json -plugin)
pair "go→go" - - "${go_host[@]}" "$go_plugin" "${go_args[@]}"
pair "go→go" mtls - "${go_host[@]}" "$go_plugin" -auto-mtls "${go_args[@]}"
# "loop": the Swift host's callers run on the connection's call executor (its event loop), as a
# host may ask (PluginClient.callExecutor), instead of on the cooperative pool.
# "grpc-swift": every call through grpc-swift's client and server executors, as before the
# direct call path (plugin-bench --through-grpc-client; a Swift plugin with KV_DIRECT_METHODS=0,
# which it inherits from the host).
variants=("swift→swift|-" "swift→swift|grpc-swift" "swift→swift|loop" "swift→swift|mux" "swift→swift|mtls"
    "swift→go|-" "swift→go|grpc-swift" "swift→go|loop" "go→swift|-" "go→swift|grpc-swift")
for v in "${variants[@]}"; do
    kind="${v%|*}" variant="${v#*|}"
    for b in "${builds[@]}"; do
        swift_host=("${bin[$b]}/plugin-bench" --json --plugin)
        case "$kind" in
            "swift→swift") host=("${swift_host[@]}" "${bin[$b]}/kv-plugin" "${swift_args[@]}") ;;
            "swift→go") host=("${swift_host[@]}" "$go_plugin" "${swift_args[@]}") ;;
            "go→swift") host=("${go_host[@]}" "${bin[$b]}/kv-plugin" "${go_args[@]}") ;;
        esac
        case "$variant" in
            mux) host+=(--multiplex) ;;
            mtls) host+=(--auto-mtls) ;;
            loop) host+=(--callers-on-connection) ;;
            grpc-swift)
                host=(env KV_DIRECT_METHODS=0 "${host[@]}")
                [ "$kind" = "go→swift" ] || host+=(--through-grpc-client) ;;
        esac
        pair "$kind" "$variant" "$b" "${host[@]}"
    done
done

bindirs=()
for b in "${builds[@]}"; do bindirs+=("$b=${bin[$b]}"); done
python3 - "$runs" "$results" "$quick" "${bindirs[@]}" <<'PY'
import datetime, json, os, platform, subprocess, sys

lines = [line.rstrip("\n") for line in open(sys.argv[1]) if line.strip()]
runs = []
for facts, line in zip(lines[0::2], lines[1::2]):
    kind, variant, swift, seconds = facts.split("\t")
    run = json.loads(line)
    # The pair's facts, for the table and the chart: which host→plugin, which variant, which
    # build of the Swift side, and how long the pair took (to keep the full run's time in check).
    run["pair"] = kind
    run["variant"] = None if variant == "-" else variant
    run["swiftBuild"] = None if swift == "-" else swift
    run["wallSeconds"] = int(seconds)
    runs.append(run)

def version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
    except Exception:
        return "?"

FOUNDATION = ["Foundation", "FoundationEssentials", "FoundationInternationalization", "_FoundationICU"]

def binary(path):
    # What a process of this binary maps before it does anything: its size, the shared libraries
    # it loads (from ldd), and which Foundation modules are in it, loaded as libraries (dynamic)
    # or linked in (static: their Swift symbols, and ICU's data for _FoundationICU).
    facts = {"bytes": os.path.getsize(path)}
    ldd = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
    libs = sorted({l.split()[0] for l in ldd.splitlines() if "=>" in l})
    facts["sharedLibraries"] = libs
    found = {m for m in FOUNDATION if f"lib{m}.so" in libs}
    nm = subprocess.run(["nm", "--defined-only", path], capture_output=True, text=True).stdout
    for m in FOUNDATION[:3]:
        if f"$s{len(m)}{m}" in nm:
            found.add(m)
    if "icudt" in nm:
        found.add("_FoundationICU")
    facts["foundation"] = [m for m in FOUNDATION if m in found]
    return facts

builds = {}
for arg in sys.argv[4:]:
    b, bindir = arg.split("=", 1)
    builds[b] = {name: binary(os.path.join(bindir, name)) for name in ("kv-plugin", "plugin-bench")}
doc = {
    "date": datetime.datetime.now().isoformat(timespec="seconds"),
    "quick": sys.argv[3] == "1",
    "machine": {"system": platform.platform(), "cpus": os.cpu_count(),
                "swift": version(["swift", "--version"]), "go": version(["go", "version"])},
    "swiftBuilds": builds,
    "runs": runs,
}
with open(sys.argv[2], "w") as f:
    json.dump(doc, f, indent=2, ensure_ascii=False)
PY
echo "results: $results" >&2
echo
python3 "$repo/Benchmarks/scripts/bench_table.py" "$results" > "$base.md" || status=1
cat "$base.md"
python3 "$repo/Benchmarks/scripts/bench_chart.py" "$results" "$base.svg" || status=1
echo "table: $base.md" >&2
echo "chart: $base.svg" >&2

# Every plugin a host launched must be gone by now.
plugins="$go_plugin"
for b in "${builds[@]}"; do plugins+="|${bin[$b]}/kv-plugin"; done
left="$(pgrep -f -x "($plugins)" || true)"
if [ -n "$left" ]; then
    echo "bench.sh: plugin processes left behind: $left" >&2
    status=1
fi
exit $status
