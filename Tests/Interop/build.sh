#!/usr/bin/env bash
# Builds the interop peers (go-kv-plugin, go-kv-host, python-kv-plugin,
# go-counter-plugin, go-counter-host, go-mux-host, go-yamux-peer,
# go-reattach-host, go-netrpc-plugin, go-netrpc-host, go-gob-corpus) into an
# output directory:
# Tests/Interop/build.sh [outdir]  (default .build/interop).
# Installs nothing: a missing tool stops it with the package to install.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${1:-$repo/.build/interop}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

die() { echo "build.sh: $*" >&2; exit 1; }

# Parallel test runs may all call this script: one builds, the others wait.
if command -v flock >/dev/null; then
    exec 9>"$out/.lock"
    flock 9
fi

# Everything the outputs are made from; a change to any of them rebuilds.
# Protos/ covers kvbench/, counter/, plugin/ and grpc/.
sources=("$here/build.sh" "$here/go/src" "$repo/Protos")
outputs=(go-kv-plugin go-kv-host python-kv-plugin go-counter-plugin go-counter-host go-mux-host go-yamux-peer
    go-reattach-host go-netrpc-plugin go-netrpc-host go-gob-corpus)
stamp="$out/.stamp"
built() { local o; for o in "${outputs[@]}"; do [ -x "$out/$o" ] || return 1; done; }
if [ -f "$stamp" ] && built && [ -z "$(find "${sources[@]}" -newer "$stamp")" ]; then
    echo "interop peers up to date in $out"
    exit 0
fi
rm -f "$stamp"
# Stamped with the time the build started, so edits made during it still count.
touch "$stamp.new"

command -v go >/dev/null || die "go not found: apt-get install golang-go"
command -v protoc >/dev/null || die "protoc not found: apt-get install protobuf-compiler"
command -v protoc-gen-go >/dev/null || die "protoc-gen-go not found: apt-get install golang-goprotobuf-dev"
[ -d /usr/share/gocode/src/github.com/hashicorp/go-plugin ] ||
    die "go-plugin sources not found: apt-get install golang-github-hashicorp-go-plugin-dev golang-google-grpc-dev"
[ -d /usr/share/gocode/src/github.com/hashicorp/yamux ] ||
    die "yamux sources not found: apt-get install golang-github-hashicorp-yamux-dev"
command -v python3 >/dev/null || die "python3 not found: apt-get install python3"
python3 -c 'import grpc_tools.protoc' 2>/dev/null ||
    die "python grpc_tools not found: pip install grpcio grpcio-tools protobuf"
python3 -c 'import cryptography' 2>/dev/null ||
    die "python cryptography not found (the AutoMTLS leaf of python-kv-plugin): pip install cryptography (dev/test.sh does)"

# Go: generated kv and counter code lives in a GOPATH of its own inside $out
# (as kvbench/proto and counter/proto, from their go_package), the programs
# in Tests/Interop/go, and go-plugin & co. in Debian's gocode.
gopath="$out/gopath"
rm -rf "$gopath/src/kvbench" "$gopath/src/counter" "$gopath/src/goplugin"
mkdir -p "$gopath/src/goplugin"
protoc -I "$repo/Protos" --go_out=plugins=grpc:"$gopath/src" "$repo/Protos/kvbench/kv.proto"
protoc -I "$repo/Protos" --go_out=plugins=grpc:"$gopath/src" "$repo/Protos/counter/counter.proto"
# go-plugin's own services (plugin.*, with the multiplexing Knock that 1.0.1
# lacks) as goplugin/plugin: their go_package is go-plugin's internal package,
# which we can neither import nor shadow, and google/protobuf/empty.proto is
# mapped to the ptypes/empty that Debian's protobuf 1.3 has.
protoc -I "$repo/Protos" \
    --go_out=plugins=grpc,paths=source_relative,Mgoogle/protobuf/empty.proto=github.com/golang/protobuf/ptypes/empty:"$gopath/src/goplugin" \
    "$repo"/Protos/plugin/*.proto
export GO111MODULE=off GOPATH="$gopath:$here/go:/usr/share/gocode" GOFLAGS=
# go needs a cache; without HOME it has no default one.
[ -n "${HOME:-}" ] || export GOCACHE="${GOCACHE:-$out/go-cache}"
go build -o "$out/go-kv-plugin" interop/kvplugin
go build -o "$out/go-kv-host" interop/kvhost
go build -o "$out/go-counter-plugin" interop/counterplugin
go build -o "$out/go-counter-host" interop/counterhost
go build -o "$out/go-mux-host" interop/muxhost
go build -o "$out/go-yamux-peer" interop/yamuxpeer
go build -o "$out/go-reattach-host" interop/reattachhost
go build -o "$out/go-netrpc-plugin" interop/netrpcplugin
go build -o "$out/go-netrpc-host" interop/netrpchost
go build -o "$out/go-gob-corpus" interop/gobcorpus

# Python: kvbench/, plugin/ and health/v1/ packages. health.proto is compiled
# from Protos/grpc so its module is health.v1, not grpc.health.v1, which the
# grpc package itself would shadow.
py="$out/python"
rm -rf "$py"
mkdir -p "$py"
python3 -m grpc_tools.protoc -I "$repo/Protos" --python_out="$py" --grpc_python_out="$py" \
    "$repo/Protos/kvbench/kv.proto" "$repo"/Protos/plugin/*.proto
python3 -m grpc_tools.protoc -I "$repo/Protos/grpc" --python_out="$py" --grpc_python_out="$py" \
    "$repo/Protos/grpc/health/v1/health.proto"

# Pin the interpreter that has grpc: a test runner's PATH may find another.
python="$(python3 -c 'import sys; print(sys.executable)')"
cat > "$out/python-kv-plugin" <<WRAPPER
#!/bin/sh
PYTHONPATH="$py\${PYTHONPATH:+:\$PYTHONPATH}" exec "$python" "$here/python/kv_plugin.py" "\$@"
WRAPPER
chmod +x "$out/python-kv-plugin"

mv "$stamp.new" "$stamp"
echo "interop peers built in $out"
