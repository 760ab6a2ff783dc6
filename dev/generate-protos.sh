#!/usr/bin/env bash
# Regenerates the committed Swift code for the protos under Protos/.
#
# Building protoc-gen-swift and protoc-gen-grpc-swift-2 takes many minutes, so this is run by
# hand when a .proto changes, never in CI; dev/check-generated.sh (which CI runs) only compares.
#
#   dev/generate-protos.sh [OUTPUT_ROOT]   # OUTPUT_ROOT defaults to the repository
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$repo}
plugins=${PROTOC_PLUGINS:-$repo/.build-codegen/release}

command -v protoc >/dev/null || { echo "protoc is missing: apt-get install protobuf-compiler" >&2; exit 1; }
if [[ ! -x $plugins/protoc-gen-swift || ! -x $plugins/protoc-gen-grpc-swift-2 ]]; then
  echo "building the protoc plugins into $plugins (several minutes, once)" >&2
  (cd "$repo/dev/codegen" && swift build -c release --scratch-path "$repo/.build-codegen" \
    --product protoc-gen-swift && swift build -c release --scratch-path "$repo/.build-codegen" \
    --product protoc-gen-grpc-swift-2) >&2
fi

# The direct call path's generator is this package's own; it builds in a minute.
go_plugin_bin=$repo/.build-codegen-go-plugin/release
echo "building protoc-gen-swift-go-plugin into $go_plugin_bin" >&2
swift build --package-path "$repo" -c release --scratch-path "$repo/.build-codegen-go-plugin" \
  --product protoc-gen-swift-go-plugin >&2

# generate VISIBILITY OUTPUT_DIR PROTO...
# With DIRECT=1, also the direct call path (*.goplugin.swift), whose code imports GoPlugin.
generate() {
  local visibility=$1 dir=$2
  shift 2
  mkdir -p "$dir"
  rm -f "$dir"/*.pb.swift "$dir"/*.grpc.swift "$dir"/*.goplugin.swift
  local direct=()
  if [[ ${DIRECT:-0} == 1 ]]; then
    direct=(--plugin=protoc-gen-swift-go-plugin="$go_plugin_bin/protoc-gen-swift-go-plugin"
      --swift-go-plugin_opt=Visibility="$visibility" --swift-go-plugin_opt=FileNaming=PathToUnderscores
      --swift-go-plugin_opt=UseAccessLevelOnImports=true --swift-go-plugin_out="$dir")
  fi
  protoc -I "$repo/Protos" -I /usr/include \
    --plugin=protoc-gen-swift="$plugins/protoc-gen-swift" \
    --plugin=protoc-gen-grpc-swift-2="$plugins/protoc-gen-grpc-swift-2" \
    --swift_opt=Visibility="$visibility" --swift_opt=FileNaming=PathToUnderscores --swift_opt=UseAccessLevelOnImports=true \
    --swift_out="$dir" \
    --grpc-swift-2_opt=Visibility="$visibility" --grpc-swift-2_opt=FileNaming=PathToUnderscores --grpc-swift-2_opt=UseAccessLevelOnImports=true \
    --grpc-swift-2_out="$dir" \
    "${direct[@]}" \
    "$@"
}

cd "$repo/Protos"
# go-plugin's own services are internals of the library: package access only. Server
# reflection, which Go plugins may register, is here for the library's describer to ask with,
# and so is swift-go-plugin's own info service (goplugin/info.proto).
generate Package "$out/Sources/GoPluginProtos/Generated" \
  plugin/grpc_broker.proto plugin/grpc_controller.proto plugin/grpc_stdio.proto grpc/health/v1/health.proto \
  grpc/reflection/v1alpha/reflection.proto goplugin/info.proto
# The KV contract is shared with outside programs, so its types are public.
DIRECT=1 generate Public "$out/Examples/KV/Sources/KVInterface/Generated" kvbench/kv.proto
generate Public "$out/Examples/Counter/Sources/CounterInterface/Generated" counter/counter.proto
generate Public "$out/Examples/Streaming/Sources/StreamingInterface/Generated" streaming/streaming.proto

# Recorded so that dev/check-generated.sh can tell, without the plugins, that nothing changed.
if [[ $out == "$repo" ]]; then
  cd "$repo"
  find Protos Sources/GoPluginProtos/Generated Examples/*/Sources/*/Generated -type f \
    | LC_ALL=C sort | xargs sha256sum > dev/generated.sha256
fi
