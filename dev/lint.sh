#!/usr/bin/env bash
# Formatting and lint with the toolchain's `swift format`, configured by .swift-format.
# Generated code (any Generated/ folder) is left alone: dev/generate-protos.sh owns it.
#
#   dev/lint.sh         # fails, listing each finding, if any file is not formatted or lint-clean
#   dev/lint.sh --fix   # formats every file in place, then lints what formatting cannot fix
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

mapfile -t files < <(find Sources Examples Tests Benchmarks Plugins Package.swift -name '*.swift' \
  -not -path '*/Generated/*' -not -path '*/.build*' -not -path '*/.swiftpm/*' | LC_ALL=C sort)

if [[ ${1:-} == --fix ]]; then
  swift format format --in-place --parallel "${files[@]}"
fi
findings=$(swift format lint --strict --parallel "${files[@]}" 2>&1 || true)
if [[ -n $findings ]]; then
  printf '%s\n' "$findings" >&2
  echo "swift format found $(printf '%s\n' "$findings" | grep -c 'warning:\|error:') problem(s): run dev/lint.sh --fix" >&2
  exit 1
fi
echo "swift format: ${#files[@]} files formatted and lint-clean"
