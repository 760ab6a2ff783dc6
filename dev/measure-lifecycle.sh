#!/usr/bin/env bash
# Measures what issue #13's closing note reports, on debug builds:
#   orphans   the time from SIGKILL of a host to the exit of its Swift, Go and Python plugins;
#   restarts  the time from a plugin's crash to the host noticing it and to the restarted
#             plugin answering again, for the Swift fixture plugin and the Go KV plugin.
# Usage: dev/measure-lifecycle.sh [orphans|restarts|all] [runs]   (default: all 11)
# Needs `swift build --build-tests` and Tests/Interop/build.sh .build/interop first.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
runs=${2:-11}
debug=$(swift build --show-bin-path)
interop=${GOPLUGIN_INTEROP_DIR:-$PWD/.build/interop}

measure_orphans() {
  local out
  out=$(mktemp)
  for _ in $(seq "$runs"); do
    "$debug/orphan-host" "$debug/kv-plugin" "$interop/go-kv-plugin" "$interop/python-kv-plugin" >"$out" 2>/dev/null &
    local host=$!
    # Killed on purpose below: no job report for it.
    disown "$host"
    for _ in $(seq 300); do
      [ "$(grep -c '^pid' "$out" || true)" = 3 ] && break
      sleep 0.1
    done
    # pidfds tell each plugin's exit as it happens, zombie or not.
    python3 - "$host" $(awk '/^pid/{print $2":"$3}' "$out") <<'PY'
import os, select, signal, sys, time
host = int(sys.argv[1])
names = {"0": "swift", "1": "go", "2": "python"}
left = {}
for argument in sys.argv[2:]:
    index, pid = argument.split(":")
    left[os.pidfd_open(int(pid))] = names[index]
start = time.monotonic()
os.kill(host, signal.SIGKILL)
gone = {}
while left:
    ready, _, _ = select.select(list(left), [], [], 5)
    if not ready:
        break
    for descriptor in ready:
        gone[left.pop(descriptor)] = (time.monotonic() - start) * 1000
print(" ".join(f"{n}={gone[n]:.1f}ms" if n in gone else f"{n}=STILL-RUNNING" for n in ("swift", "go", "python")),
      f"all={max(gone.values()):.1f}ms" if not left else "")
PY
  done
  rm -f "$out"
}

measure_restarts() {
  local fixture=$debug/fixture-plugin
  echo "Swift plugin (fixture-plugin crash-every 3):"
  "$fixture" measure-restarts "$runs" "$fixture" crash-every 3
  echo "Go plugin (go-kv-plugin, KV_CRASH_EVERY=3):"
  KV_CRASH_EVERY=3 "$fixture" measure-restarts "$runs" "$interop/go-kv-plugin"
}

case $what in
  orphans) measure_orphans ;;
  restarts) measure_restarts ;;
  all) measure_orphans; measure_restarts ;;
  *) echo "usage: $0 [orphans|restarts|all] [runs]" >&2; exit 64 ;;
esac
