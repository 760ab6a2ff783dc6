#!/usr/bin/env bash
# Compares go-plugin's net/rpc protocol across languages: the same workload, N kv Gets of a
# 16-byte value on one dispensed net/rpc client, sequential (C = 1) and from C goroutines or
# tasks sharing the client, for each host→plugin pair that can run:
#   Go→Go        go-netrpc-host -plugin go-netrpc-plugin                (always)
#   Go→Swift     go-netrpc-host -plugin greeter-plugin                  (if greeter-plugin exists)
#   Swift→Go     greeter --plugin go-netrpc-plugin bench …              (if greeter exists)
#   Swift→Swift  greeter --plugin greeter-plugin bench …                (if both exist)
# Each pair runs --runs times (pairs interleaved, so a slow spell of the machine hits all of
# them); the table shows the median of each figure and its ratio to Go↔Go. Not part of the
# test suite; it builds the Go peers (Tests/Interop/build.sh) but not the Swift binaries.
#
#   dev/bench-netrpc.sh [--calls N] [--concurrency C] [--runs R] [--results FILE.md]
#                       [--interop DIR] [--swift-host PATH] [--swift-plugin PATH] [--quick]
#
# Defaults: --calls 5000 --concurrency 8 --runs 5, Go peers in .build/interop, Swift
# binaries .build/release/greeter and .build/release/greeter-plugin. --quick is
# --calls 500 --runs 1. Exit status 1 if any run failed (its error is printed and the pair
# shows "failed" in the table).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
calls=5000
concurrency=8
runs=5
results=""
interop="$repo/.build/interop"
swift_host="$repo/.build/release/greeter"
swift_plugin="$repo/.build/release/greeter-plugin"
while [ $# -gt 0 ]; do
    case "$1" in
        --calls) calls="$2"; shift ;;
        --concurrency) concurrency="$2"; shift ;;
        --runs) runs="$2"; shift ;;
        --results) results="$2"; shift ;;
        --interop) interop="$2"; shift ;;
        --swift-host) swift_host="$2"; shift ;;
        --swift-plugin) swift_plugin="$2"; shift ;;
        --quick) calls=500; runs=1 ;;
        -h|--help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-netrpc.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
for n in "$calls" "$concurrency" "$runs"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "bench-netrpc.sh: counts must be positive integers, not $n" >&2; exit 2; }
done

"$repo/Tests/Interop/build.sh" "$interop" >&2
interop="$(cd "$interop" && pwd)"
go_host="$interop/go-netrpc-host"
go_plugin="$interop/go-netrpc-plugin"

# pair name, then the command that takes the plugin command line and C: each prints one JSON
# line with calls, concurrency, p50Micros, p99Micros and callsPerSecond.
pairs=("Go→Go")
[ -x "$swift_plugin" ] && pairs+=("Go→Swift") || echo "bench-netrpc.sh: no $swift_plugin, skipping Go→Swift" >&2
[ -x "$swift_host" ] && pairs+=("Swift→Go") || echo "bench-netrpc.sh: no $swift_host, skipping Swift→Go" >&2
[ -x "$swift_host" ] && [ -x "$swift_plugin" ] && pairs+=("Swift→Swift")

run_pair() { # pair C
    local host plugin
    case "$1" in
        Go→*) host=go ;;
        *) host=swift ;;
    esac
    case "$1" in
        *→Go) plugin="$go_plugin" ;;
        *) plugin="$swift_plugin" ;;
    esac
    if [ "$host" = go ]; then
        timeout 300 "$go_host" -plugin "$plugin" -calls "$calls" -concurrency "$2"
    else
        timeout 300 "$swift_host" --plugin "$plugin" bench --calls "$calls" --concurrency "$2" --json
    fi
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
raw="$work/runs.jsonl"
failed=0
for ((r = 1; r <= runs; r++)); do
    for c in 1 "$concurrency"; do
        for pair in "${pairs[@]}"; do
            echo "bench-netrpc.sh: run $r/$runs $pair C=$c" >&2
            if line="$(run_pair "$pair" "$c" 2>"$work/stderr")" && [ -n "$line" ]; then
                :
            else
                failed=1
                echo "bench-netrpc.sh: $pair C=$c failed: ${line:-no output}; its stderr ends:" >&2
                tail -5 "$work/stderr" >&2
                line='{"error":"failed"}'
            fi
            printf '%s\t%s\t%s\n' "$pair" "$c" "$(tail -n 1 <<<"$line")" >>"$raw"
        done
    done
done

table="$(python3 - "$raw" "$calls" "$concurrency" "$runs" <<'PY'
import json, statistics, sys
raw, calls, conc, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
order, data = [], {}
for line in open(raw, encoding="utf-8"):
    pair, c, text = line.rstrip("\n").split("\t", 2)
    if pair not in order:
        order.append(pair)
    try:
        r = json.loads(text)
    except ValueError:
        r = {"error": "not JSON: " + text[:80]}
    data.setdefault((pair, int(c)), []).append(r)

def median(pair, c, key):
    rs = data.get((pair, c), [])
    if not rs or any(r.get("error") for r in rs):
        return None
    return statistics.median(float(r[key]) for r in rs)

def cell(v, digits=0):
    return "failed" if v is None else f"{v:,.{digits}f}"

def ratio(v, base):
    return "" if v is None or not base else f"{v / base:.2f}×"

cols = [(1, "callsPerSecond", "calls/s C=1", 0), (1, "p50Micros", "p50 µs C=1", 1),
        (1, "p99Micros", "p99 µs C=1", 1), (conc, "callsPerSecond", f"calls/s C={conc}", 0)]
head = "| pair |" + "".join(f" {name} | ×Go↔Go |" for _, _, name, _ in cols)
print(f"net/rpc kv Get of 16 bytes, {calls} calls, median of {runs} run(s); "
      "×Go↔Go is the pair's figure over Go→Go's (calls/s: higher is faster, µs: lower is).")
print()
print(head)
print("|---" * (1 + 2 * len(cols)) + "|")
for pair in order:
    row = f"| {pair} |"
    for c, key, _, digits in cols:
        v, base = median(pair, c, key), median("Go→Go", c, key)
        row += f" {cell(v, digits)} | {ratio(v, base)} |"
    print(row)
PY
)"
echo "$table"
if [ -n "$results" ]; then
    printf '%s\n' "$table" >"$results"
    cp "$raw" "${results%.md}.runs.tsv"
    echo "bench-netrpc.sh: table in $results, runs in ${results%.md}.runs.tsv" >&2
fi
exit "$failed"
