#!/usr/bin/env bash
# A directory of plugins filled, upgraded, broken and emptied while `kv watch` keeps serving:
# a PluginManager starts each KV plugin that appears, swaps an upgraded one without a failed
# call, keeps the old version serving when the new one does not start, and stops the plugins
# whose files go. On SIGINT it stops everything and prints {"event":"summary",...,"failed":0}.
#
#   Examples/KV/watch-demo.sh                  # builds kv and kv-plugin with swift build first
#   KV_BIN=/path/to/bin Examples/KV/watch-demo.sh   # uses the kv and kv-plugin built there
#   KV_WATCH_ARGS="--instances 2 --poll 200" Examples/KV/watch-demo.sh   # more options for kv watch
#
# Only Swift is needed. Exits 0 when every step showed what it should and no call failed.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "${KV_BIN:-}" ]; then
  echo "== building kv and kv-plugin" >&2
  swift build --package-path "$root" --product kv >&2
  swift build --package-path "$root" --product kv-plugin >&2
  KV_BIN=$(swift build --package-path "$root" --show-bin-path)
fi
kv=$KV_BIN/kv
plugin=$KV_BIN/kv-plugin
timeout=${DEMO_TIMEOUT:-120}
# How long the calls flow between two steps, so that every change happens under load.
pause=${DEMO_PAUSE:-1}

work=$(mktemp -d "${TMPDIR:-/tmp}/kv-watch-demo.XXXXXX")
dir=$work/plugins
events=$work/events.jsonl
mkdir "$dir"
watcher=
cleanup() {
  if [ -n "$watcher" ] && kill -0 "$watcher" 2>/dev/null; then kill -KILL "$watcher" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

shown=0
# Prints the event lines that came since the last call.
show() {
  local total
  total=$(wc -l <"$events")
  if [ "$total" -gt "$shown" ]; then tail -n "+$((shown + 1))" "$events" | head -n "$((total - shown))" | sed 's/^/   /'; fi
  shown=$total
}
# Waits until an event line matches the pattern (grep -E), or fails after $timeout seconds.
wait_for() {
  local deadline=$((SECONDS + timeout))
  until grep -Eq "$1" "$events"; do
    if ! kill -0 "$watcher" 2>/dev/null; then
      show
      echo "kv watch ended early; its stderr:" >&2
      cat "$work/stderr" >&2
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      show
      echo "no event matching $1 within ${timeout}s" >&2
      exit 1
    fi
    sleep 0.05
  done
  show
}
# Puts a file into the directory as package managers do: a copy under a dot name, then a rename,
# so the watcher never sees half a file and a running executable is never written to (ETXTBSY).
install_as() {
  cp "$1" "$dir/.$2.new"
  if [ -n "${3:-}" ]; then printf '%s' "$3" >>"$dir/.$2.new"; fi
  chmod +x "$dir/.$2.new"
  mv "$dir/.$2.new" "$dir/$2"
}

echo "== kv watch $dir --json ${KV_WATCH_ARGS:-}"
# shellcheck disable=SC2086 # the extra arguments are split on purpose
"$kv" watch "$dir" --json ${KV_WATCH_ARGS:-} >"$events" 2>"$work/stderr" &
watcher=$!

echo "== 1. fill the directory: alpha and beta come online"
install_as "$plugin" alpha
install_as "$plugin" beta
wait_for '"event":"online","plugin":"alpha"'
wait_for '"event":"online","plugin":"beta"'

sleep "$pause"
echo "== 2. upgrade alpha (the same plugin with bytes appended: a new digest that still runs)"
install_as "$plugin" alpha "upgrade-$(date +%s)"
wait_for '"event":"swapped","plugin":"alpha"'

sleep "$pause"
echo "== 3. break beta: its new version exits at once; the old one keeps serving"
printf '#!/bin/sh\necho "beta 2.0: cannot start" >&2\nexit 1\n' >"$work/broken"
install_as "$work/broken" beta
wait_for '"event":"unhealthy","plugin":"beta"'

sleep "$pause"
echo "== 4. empty the directory: both go offline"
rm "$dir/alpha" "$dir/beta"
wait_for '"event":"offline","plugin":"alpha"'
wait_for '"event":"offline","plugin":"beta"'

sleep "$pause"
echo "== 5. SIGINT: kv watch stops and sums up"
kill -INT "$watcher"
status=0
wait "$watcher" || status=$?
watcher=
show
if [ "$status" -ne 0 ]; then
  echo "kv watch exited with status $status; its stderr:" >&2
  cat "$work/stderr" >&2
  exit 1
fi
if ! grep -Eq '^\{"event":"summary","calls":[1-9][0-9]*,"failed":0\}$' "$events"; then
  echo "calls failed (or none were made); kv watch's stderr:" >&2
  cat "$work/stderr" >&2
  exit 1
fi
echo "== done: every call succeeded while plugins came, changed, broke and went"
