#!/usr/bin/env bash
# How busy each process is while 8 callers share one connection, and what each spends per call:
# the Swift host on the Swift plugin, and go-plugin's host on the Go plugin, from the release
# binaries dev/bench.sh built. Also the system calls per call of each process in the sequential
# workload (caller on the connection's loop).
#
#   dev/busy-share.sh [--bin .build-bench/swift-static/release] [--seconds 3]
#
# Each pair makes far more calls than the window takes; after a 3-second start the script samples
# `perf stat -e task-clock,context-switches -p PID` on the host and on the plugin for --seconds,
# one after the other, and prints CPUs used, context switches and CPU µs per call (calls per
# second from the same run's report). strace -c over the same kind of window counts the system
# calls. Not part of the test suite: it needs perf and strace, and the numbers are the
# machine's.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$repo/.build-bench/swift-static/release"
interop="$repo/.build-bench/interop"
seconds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin="$2"; shift ;;
    --seconds) seconds="$2"; shift ;;
    -h | --help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "busy-share.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
for tool in perf strace; do
  command -v "$tool" >/dev/null || { echo "busy-share.sh: needs $tool" >&2; exit 2; }
done
[ -x "$bin/plugin-bench" ] && [ -x "$bin/kv-plugin" ] && [ -x "$repo/.build-bench/benchhost" ] || {
  echo "busy-share.sh: run dev/bench.sh first (no release binaries in $bin)" >&2
  exit 2
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Samples PID for the window; prints "CPUs switches".
sample() {
  perf stat -x, -e task-clock,context-switches -p "$1" -- sleep "$seconds" 2>&1 >/dev/null |
    awk -F, -v s="$seconds" '$3 == "task-clock" { cpus = $1 / 1000 / s } $3 == "context-switches" { sw = $1 } END { printf "%.2f %d\n", cpus, sw }'
}

# Starts a pair's run (CMD...) in the background, lets it get going, and finds its host and
# plugin processes by name: sets runner, host_pid and plugin_pid.
start_pair() {
  local host="$1" plugin="$2"
  shift 2
  "$@" >"$work/report" 2>&1 &
  runner=$!
  sleep 3
  host_pid=$(pgrep -n -x "$host")
  plugin_pid=$(pgrep -n -x "$plugin")
}

# Runs one pair's concurrent workload and samples host then plugin: LABEL HOST PLUGIN CMD...
concurrent() {
  local label="$1"
  shift
  start_pair "$@"
  read -r host_cpus host_sw < <(sample "$host_pid")
  read -r plugin_cpus plugin_sw < <(sample "$plugin_pid")
  wait "$runner"
  local rate
  rate=$(grep -E '^8 callers' "$work/report" | grep -oE '[0-9]+ calls/s' | grep -oE '[0-9]+')
  awk -v l="$label" -v r="$rate" -v hc="$host_cpus" -v pc="$plugin_cpus" -v hs="$host_sw" -v ps="$plugin_sw" -v s="$seconds" \
    'BEGIN { printf "| %s | %d | %.2f + %.2f = %.2f | %.1f | %.2f |\n", l, r, hc, pc, hc + pc, (hc + pc) * 1e6 / r, (hs + ps) / s / r }'
}

# Counts one pair's system calls per sequential call: LABEL HOST PLUGIN CMD...
syscalls() {
  local label="$1"
  shift
  start_pair "$@"
  timeout "$seconds" strace -c -f -p "$host_pid" -o "$work/host.strace" 2>/dev/null || true
  timeout "$seconds" strace -c -f -p "$plugin_pid" -o "$work/plugin.strace" 2>/dev/null || true
  wait "$runner"
  for side in host plugin; do
    awk -v l="$label" -v side="$side" '
      $1 ~ /^[0-9.]+$/ && NF >= 5 { calls[$NF] = $4 }
      END {
        reads = calls["read"] + calls["readv"] + calls["recvmsg"]
        base = reads > 0 ? reads : 1
        out = ""
        for (n in calls) if (n != "restart_syscall" && n != "total" && calls[n] / base >= 0.05) out = out sprintf("%s %.2f, ", n, calls[n] / base)
        printf "| %s, %s | %s |\n", l, side, substr(out, 1, length(out) - 2)
      }' "$work/$side.strace"
  done
}

echo "8 callers on one connection; CPUs busy host + plugin over ${seconds}s windows:"
echo
echo "| pair | calls/s | CPUs (host + plugin) | CPU µs / call | switches / call |"
echo "|---|---:|---:|---:|---:|"
concurrent "swift→swift" plugin-bench kv-plugin \
  "$bin/plugin-bench" --plugin "$bin/kv-plugin" --launches 1 --calls 10 --warmup 10 \
  --concurrent-calls 300000 --callers 8 --bulk-mib 1
concurrent "go→go" benchhost go-kv-plugin \
  "$repo/.build-bench/benchhost" -plugin "$interop/go-kv-plugin" -launches 1 -calls 10 -warmup 10 \
  -concurrent-calls 400000 -callers 8 -bulk-mib 1
echo
echo "System calls per sequential call (per read of the socket), each side:"
echo
echo "| pair, side | system calls per call |"
echo "|---|---|"
syscalls "swift→swift (loop)" plugin-bench kv-plugin \
  "$bin/plugin-bench" --plugin "$bin/kv-plugin" --launches 1 --calls 150000 --warmup 10 \
  --concurrent-calls 10 --callers 8 --bulk-mib 1 --callers-on-connection
syscalls "go→go" benchhost go-kv-plugin \
  "$repo/.build-bench/benchhost" -plugin "$interop/go-kv-plugin" -launches 1 -calls 150000 -warmup 10 \
  -concurrent-calls 10 -callers 8 -bulk-mib 1
