#!/usr/bin/env bash
# A long fuzz pass over the host's start-up: random and broken handshake lines, and servers
# behind valid ones that close, send garbage, speak HTTP/1.1, stay silent or present the wrong
# certificate (Tests/GoPluginFuzzTests, docs/fuzzing.md). The test suite runs a short pass of
# the same harness with a fixed seed; this runs as many cases as you like.
#
#   dev/fuzz.sh                        # 2000 cases, a new seed
#   dev/fuzz.sh --cases 5000 --seed 42 # a given run; the same seed makes the same cases
#   dev/fuzz.sh --seed 42 --only 17,230  # replays cases a run reported
#   dev/fuzz.sh --jobs 2 --skip-build
#
# Prints the run's summary line (cases, started, clear errors, hangs, crashes, leftovers, the
# longest case) and every failure by category with its cases. A crash of the test process is
# counted as one, with the cases that were running when it happened. Exits non-zero if any
# case hung, crashed, left something behind or failed with an untyped error.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
cases=2000
seed=""
jobs=3
only=""
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --cases) cases="$2"; shift ;;
        --seed) seed="$2"; shift ;;
        --jobs) jobs="$2"; shift ;;
        --only) only="$2"; shift ;;
        --skip-build) build=0 ;;
        -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "fuzz.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$seed" ] || seed=$(( $(date +%s) * 1000 + RANDOM % 1000 ))

# The same build settings as dev/test.sh, so that neither rebuilds what the other built.
export GOPLUGIN_WARNINGS_AS_ERRORS=1
if [ "$build" = 1 ]; then
    swift build --build-tests
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOPLUGIN_FUZZ_CASES="$cases" GOPLUGIN_FUZZ_SEED="$seed" GOPLUGIN_FUZZ_JOBS="$jobs"
export GOPLUGIN_FUZZ_PROGRESS="$work/progress"
[ -z "$only" ] || export GOPLUGIN_FUZZ_ONLY="$only"
echo "fuzz.sh: $cases cases, seed $seed, $jobs at a time"

status=0
swift test --skip-build --disable-xctest --filter GoPluginFuzzTests >"$work/log" 2>&1 || status=$?
# The harness's own report; Swift Testing repeats each failure indented, which adds nothing.
grep -E '^(fuzz:|  [0-9]+×|     (e\.g\.|lines:))' "$work/log" || true

if ! grep -q '^fuzz: seed=' "$work/log"; then
    # No summary: the test process died. Whatever was in flight is what crashed it.
    echo "fuzz.sh: crashes=1: the test process ended without a summary (exit status $status)"
    tail -n 20 "$work/log"
    if [ -f "$work/progress" ]; then
        echo "fuzz.sh: cases running when it ended:"
        awk '$1 == "start" { line[$2] = $0 } $1 == "end" { delete line[$2] } END { for (i in line) print "  " line[i] }' \
            "$work/progress"
    fi
    exit 1
fi
exit "$status"
