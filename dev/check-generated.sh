#!/usr/bin/env bash
# Fails when the committed generated code is not what the protos under Protos/ produce, or when
# Protos/kvbench/kv.proto has drifted from the shared contract it is a copy of.
#
# It regenerates into a temporary tree, which needs the protoc plugins; where they are not built
# (CI), it checks instead that every .proto still has the digest recorded when the code was last
# generated (dev/generated.sha256), which dev/generate-protos.sh users refresh with --record.
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
  for dir in Sources/GoPluginProtos/Generated Examples/KV/Sources/KVInterface/Generated; do
    if ! diff -r "$tmp/$dir" "$dir" >/dev/null; then
      echo "$dir is stale: run dev/generate-protos.sh and commit the result" >&2
      status=1
    fi
  done
  if [[ $status == 0 ]]; then
    find Protos Sources/GoPluginProtos/Generated Examples/KV/Sources/KVInterface/Generated -type f \
      | LC_ALL=C sort | xargs sha256sum > "$tmp/digests"
    cmp -s "$tmp/digests" dev/generated.sha256 || cp "$tmp/digests" dev/generated.sha256
  fi
else
  # Without the plugins: the protos and the generated files must be exactly those recorded the
  # last time the full check passed, so an edited .proto or a hand-edited file is caught.
  if ! sha256sum --quiet -c dev/generated.sha256; then
    echo "a .proto or generated file changed since it was last generated: run dev/generate-protos.sh" >&2
    status=1
  fi
  recorded=$(cut -d' ' -f3 dev/generated.sha256 | LC_ALL=C sort)
  present=$(find Protos Sources/GoPluginProtos/Generated Examples/KV/Sources/KVInterface/Generated -type f | LC_ALL=C sort)
  if [[ "$recorded" != "$present" ]]; then
    echo "files were added to or removed from Protos/ or the generated folders: run dev/generate-protos.sh" >&2
    status=1
  fi
fi
exit $status
