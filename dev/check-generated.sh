#!/usr/bin/env bash
# Fails when the committed generated code is not what the protos under Protos/ produce, or when
# Protos/kvbench/kv.proto has drifted from the shared contract it is a copy of.
#
# Where the protoc plugins are built, it regenerates into a temporary tree and compares. Where
# they are not (CI: building them takes many minutes), it checks that the protos and generated
# files are exactly those recorded by the last dev/generate-protos.sh (dev/generated.sha256).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
status=0

shared=$repo/../shared/bench/kv.proto
if [[ -f $shared ]] && ! cmp -s "$shared" Protos/kvbench/kv.proto; then
  echo "Protos/kvbench/kv.proto differs from ../shared/bench/kv.proto: copy it again and regenerate" >&2
  status=1
fi

plugins=${PROTOC_PLUGINS:-$repo/.build-codegen/release}
if [[ -x $plugins/protoc-gen-swift && -x $plugins/protoc-gen-grpc-swift-2 ]] && command -v protoc >/dev/null; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  PROTOC_PLUGINS=$plugins dev/generate-protos.sh "$tmp" >/dev/null
  for dir in Sources/GoPluginProtos/Generated Examples/*/Sources/*/Generated; do
    if ! diff -r "$tmp/$dir" "$dir" >/dev/null; then
      echo "$dir is stale: run dev/generate-protos.sh and commit the result" >&2
      status=1
    fi
  done
fi

# The protos and the generated files must be exactly those recorded at generation, so an
# edited .proto or a hand-edited generated file is caught even without the plugins.
if ! sha256sum --quiet -c dev/generated.sha256; then
  echo "a .proto or generated file changed since it was last generated: run dev/generate-protos.sh" >&2
  status=1
fi
recorded=$(cut -d' ' -f3 dev/generated.sha256 | LC_ALL=C sort)
present=$(find Protos Sources/GoPluginProtos/Generated Examples/*/Sources/*/Generated -type f | LC_ALL=C sort)
if [[ "$recorded" != "$present" ]]; then
  echo "files were added to or removed from Protos/ or the generated folders: run dev/generate-protos.sh" >&2
  status=1
fi
exit $status
