#!/usr/bin/env bash
# Context switches and CPU time per sequential unary call, host and plugin together, for the four
# host → plugin pairs of the KV example: the Swift host (`kv bench`) and go-plugin 1.0.1's host
# (`go-kv-host` from Tests/Interop) on the Swift kv-plugin (release) and the Go go-kv-plugin.
#
#   dev/ctxsw.sh                         # builds kv and kv-plugin in release, 20000 calls, 5 runs
#   dev/ctxsw.sh --calls 50000 --runs 7 --skip-build --results FILE.md
#   dev/ctxsw.sh --bin .build-bench/swift-static/release [--swift-host-args "--callers-on-pool"]
#
# With --bin, the Swift side is the release build in DIR (dev/bench.sh's, which builds none
# here) and the Swift host is its `plugin-bench`, given --swift-host-args.
#
# What a call costs beyond the wire is mostly thread hand-offs; this counts them. Each pair runs
# twice per round under `perf stat -e context-switches,cpu-migrations,task-clock` (software
# counters, which count the host and every process and thread it starts): once with a small number
# of calls and once with --calls more. The difference divided by --calls is the cost of one call,
# without the launch, handshake, warm-up and stop that both runs share. The median of --runs rounds
# is printed. Counting is exact; the CPU time is as noisy as the machine.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
calls=20000
base=2000
runs=5
build=1
results=""
bin_dir=""
host_args=""
while [ $# -gt 0 ]; do
  case "$1" in
    --calls) calls="$2"; shift ;;
    --runs) runs="$2"; shift ;;
    --skip-build) build=0 ;;
    --results) results="$2"; shift ;;
    --bin) bin_dir="$2"; build=0; shift ;;
    --swift-host-args) host_args="$2"; shift ;;
    -h | --help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "ctxsw.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
command -v perf >/dev/null || { echo "ctxsw.sh: perf is missing: apt-get install linux-perf" >&2; exit 1; }

interop="$repo/.build/interop"
if [ "$build" = 1 ]; then
  echo "== building kv and kv-plugin in release" >&2
  swift build --package-path "$repo" -c release --product kv >&2
  swift build --package-path "$repo" -c release --product kv-plugin >&2
  [ -x "$interop/go-kv-host" ] || "$repo/Tests/Interop/build.sh" "$interop" >&2
fi
if [ -n "$bin_dir" ]; then
  bin="$(cd "$bin_dir" && pwd)"
  swift_host="$bin/plugin-bench"
else
  bin="$(swift build --package-path "$repo" -c release --show-bin-path)"
  swift_host="$bin/kv"
fi
for program in "$swift_host" "$bin/kv-plugin" "$interop/go-kv-host" "$interop/go-kv-plugin"; do
  [ -x "$program" ] || { echo "ctxsw.sh: $program is missing (run without --skip-build)" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# measure HOST PLUGIN CALLS: prints "context-switches cpu-migrations task-clock-ms" of one run.
measure() {
  local host=$1 plugin=$2 n=$3
  case "$host" in
    swift)
      if [ -n "$bin_dir" ]; then
        # shellcheck disable=SC2086 # the host's extra arguments are words
        perf stat -x, -o "$work/stat" -e context-switches,cpu-migrations,task-clock -- \
          "$swift_host" --plugin "$plugin" --launches 0 --calls "$n" --warmup 0 --concurrent-calls 0 \
          --bulk-mib 0 $host_args >"$work/out" 2>&1
      else
        perf stat -x, -o "$work/stat" -e context-switches,cpu-migrations,task-clock -- \
          "$swift_host" --plugin "$plugin" bench --calls "$n" --launches 1 >"$work/out" 2>&1
      fi ;;
    go) perf stat -x, -o "$work/stat" -e context-switches,cpu-migrations,task-clock -- \
      "$interop/go-kv-host" -plugin "$plugin" -calls "$n" >"$work/out" 2>&1 ;;
  esac || { echo "ctxsw.sh: the $host host failed on $plugin:" >&2; cat "$work/out" >&2; exit 1; }
  awk -F, '$3 ~ /^context-switches/ {c=$1} $3 ~ /^cpu-migrations/ {m=$1} $3 ~ /^task-clock/ {t=$1}
    END {print c, m, t}' "$work/stat"
}

median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }

pairs=("go go-kv-plugin go→go" "swift go-kv-plugin swift→go" "go kv-plugin go→swift" "swift kv-plugin swift→swift")
{
  echo "| pair | context switches / call | migrations / call | CPU µs / call (host + plugin) |"
  echo "|---|---:|---:|---:|"
} >"$work/table"
for pair in "${pairs[@]}"; do
  read -r host plugin name <<<"$pair"
  case "$plugin" in
    kv-plugin) path="$bin/kv-plugin" ;;
    *) path="$interop/$plugin" ;;
  esac
  : >"$work/cs"; : >"$work/mig"; : >"$work/cpu"
  for _ in $(seq "$runs"); do
    read -r c1 m1 t1 <<<"$(measure "$host" "$path" "$base")"
    read -r c2 m2 t2 <<<"$(measure "$host" "$path" "$((base + calls))")"
    awk -v a="$c1" -v b="$c2" -v n="$calls" 'BEGIN {printf "%.3f\n", (b - a) / n}' >>"$work/cs"
    awk -v a="$m1" -v b="$m2" -v n="$calls" 'BEGIN {printf "%.3f\n", (b - a) / n}' >>"$work/mig"
    awk -v a="$t1" -v b="$t2" -v n="$calls" 'BEGIN {printf "%.1f\n", (b - a) * 1000 / n}' >>"$work/cpu"
  done
  echo "$name: $(tr '\n' ' ' <"$work/cs")context switches per call" >&2
  printf '| %s | %s | %s | %s |\n' "$name" "$(median <"$work/cs")" "$(median <"$work/mig")" \
    "$(median <"$work/cpu")" >>"$work/table"
done
echo
echo "Sequential Get of a short value, $calls calls beyond a $base-call run, median of $runs rounds."
cat "$work/table"
if [ -n "$results" ]; then
  {
    echo "# Context switches per call ($(date -u +%Y-%m-%d), $(git -C "$repo" rev-parse --short HEAD))"
    echo
    echo "\`dev/ctxsw.sh --calls $calls --runs $runs${bin_dir:+ --bin $bin_dir}${host_args:+ --swift-host-args \"$host_args\"}\`: sequential Get of a short value, $calls calls beyond a"
    echo "$base-call run, host and plugin processes counted together by \`perf stat\`, median of $runs rounds."
    echo
    cat "$work/table"
  } >"$results"
fi
