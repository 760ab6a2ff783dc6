#!/usr/bin/env bash
# Keeps full Foundation (and with it ICU: tens of megabytes and milliseconds of start-up in
# every host and plugin) out of the library, the goplugin CLI and the examples. Fails, naming
# each offender, when
#   - a source of Sources/GoPlugin, GoPluginGob, GoPluginNetRPC, goplugin or Examples imports Foundation,
#     FoundationNetworking, FoundationXML or FoundationInternationalization anywhere but in
#     the fallback branch of `#if canImport(FoundationEssentials)` (the branch macOS takes), or
#   - on Linux, a built executable links libFoundation, libFoundationInternationalization or
#     lib_FoundationICU (ldd: what the binary would load, dependencies' dependencies included).
#
#   dev/check-foundation.sh            # sources, then the debug build's binaries (.build/debug)
#   dev/check-foundation.sh BIN_DIR    # sources, then the binaries in BIN_DIR
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
bin=${1:-$repo/.build/debug}
status=0

# Sources. The #if nesting is tracked so that an import is accepted only inside a branch that
# canImport(FoundationEssentials) rules out: `#if canImport(FoundationEssentials) … #else` or
# `#if !canImport(FoundationEssentials)`.
mapfile -t sources < <(find Sources/GoPlugin Sources/GoPluginGob Sources/GoPluginNetRPC Sources/goplugin Examples -name '*.swift' \
  -not -path '*/.build*' | LC_ALL=C sort)
findings=$(awk '
  FNR == 1 { depth = 0 }
  /^[ \t]*#if[ \t(!]/ {
    depth++
    if ($0 ~ /^[ \t]*#if[ \t]+!canImport\(FoundationEssentials\)/) kind[depth] = "fallback"
    else if ($0 ~ /^[ \t]*#if[ \t]+canImport\(FoundationEssentials\)[ \t]*(\/\/.*)?$/) kind[depth] = "essentials"
    else kind[depth] = "other"
    next
  }
  /^[ \t]*#(else|elseif)([ \t]|$)/ {
    if (depth > 0 && kind[depth] == "essentials") kind[depth] = "fallback"
    next
  }
  /^[ \t]*#endif/ { if (depth > 0) depth--; next }
  /^[ \t]*(@[A-Za-z_]+[ \t]+)*((public|package|internal|fileprivate|private)[ \t]+)?import[ \t]+((typealias|struct|class|enum|protocol|let|var|func)[ \t]+)?(Foundation|FoundationNetworking|FoundationXML|FoundationInternationalization|_FoundationICU)([ \t.]|$)/ {
    allowed = 0
    for (level = 1; level <= depth; level++) if (kind[level] == "fallback") allowed = 1
    if (!allowed) printf "%s:%d: imports full Foundation outside `#if canImport(FoundationEssentials) … #else`: %s\n", FILENAME, FNR, $0
  }
' "${sources[@]}")
if [[ -n $findings ]]; then
  printf '%s\n' "$findings" >&2
  status=1
fi

# Binaries. On macOS Foundation is the system's and costs nothing to load: nothing to check.
products=(kv-plugin kv counter counter-plugin stream-file streaming-plugin greeter greeter-plugin greeter-proto greeter-proto-plugin goplugin)
if [[ $(uname -s) == Linux ]]; then
  for product in "${products[@]}"; do
    if [[ ! -x $bin/$product ]]; then
      echo "$bin/$product: not built (build first: swift build --build-tests)" >&2
      status=1
      continue
    fi
    linked=$(ldd "$bin/$product" | grep -oE '\b(libFoundation|libFoundationInternationalization|lib_FoundationICU)\.so' \
      | LC_ALL=C sort -u | paste -sd ' ' || true)
    if [[ -n $linked ]]; then
      echo "$bin/$product links full Foundation: $linked" >&2
      status=1
    fi
  done
fi

if ((status)); then
  echo "full Foundation found: use FoundationEssentials (#if canImport(FoundationEssentials) … #else import Foundation)" >&2
  exit 1
fi
echo "no full Foundation: ${#sources[@]} sources, ${#products[@]} binaries"
