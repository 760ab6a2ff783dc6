#!/usr/bin/env bash
# The round trip of a bare unix socket between two processes on this machine, the floor under
# any plugin call: builds dev/socket-floor.c with the system C compiler and runs it --runs times
# (5 by default), printing each run. Compare it with `sequential Get p50` in dev/bench.sh's table.
#
#   dev/socket-floor.sh [--runs N] [--rounds N]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs=5
rounds=100000
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    -h | --help) sed -n '2,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "socket-floor.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
cc="$(command -v cc || command -v clang || true)"
[ -n "$cc" ] || { echo "socket-floor.sh: no C compiler (cc or clang)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$cc" -O2 -o "$work/socket-floor" "$repo/dev/socket-floor.c"
for _ in $(seq "$runs"); do "$work/socket-floor" "$rounds"; done
