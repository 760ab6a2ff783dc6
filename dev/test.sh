#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the interop tests need (Go,
# go-plugin and protoc from Debian's packages, grpcio from PyPI) when it is missing, checks
# that the generated code is current, that the sources are formatted and lint-clean and form a
# stack of folders without cycles, builds with warnings as errors, checks that no binary links
# full Foundation, runs every test, interop included, and builds the PluginFromProto article's
# code as a new package.
#
#   dev/test.sh            # everything
#   dev/test.sh --filter X # passes extra arguments on to `swift test`
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

step() { printf '\n==> %s\n' "$*"; }

debian=(golang-go golang-github-hashicorp-go-plugin-dev golang-google-grpc-dev golang-goprotobuf-dev protobuf-compiler)
missing=()
for package in "${debian[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  step "installing ${missing[*]} from Debian"
  sudo=""
  [[ $(id -u) == 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! python3 -c 'import grpc, grpc_tools, google.protobuf, cryptography' 2>/dev/null; then
  step "installing grpcio, grpcio-tools, protobuf and cryptography from PyPI"
  python3 -m pip install -q --disable-pip-version-check grpcio grpcio-tools protobuf cryptography
fi

step "checking that generated code matches Protos/"
dev/check-generated.sh

step "checking formatting and lint (swift format)"
dev/lint.sh

step "checking that the library's folders form a stack"
python3 dev/folder-deps.py

step "building the Go and Python interop peers"
Tests/Interop/build.sh "$repo/.build/interop"

# A warning in the package's own targets fails the build (see Package.swift).
export GOPLUGIN_WARNINGS_AS_ERRORS=1
step "building"
swift build --build-tests

step "checking that nothing links full Foundation"
dev/check-foundation.sh "$(swift build --show-bin-path)"

step "testing"
GOPLUGIN_INTEROP_DIR="$repo/.build/interop" swift test --skip-build --disable-xctest "$@"

# Last, and only for the whole suite: the PluginFromProto article built as a new package that
# depends on this checkout (about 7 minutes, nearly all of it the cold build of the dependencies).
if (($# == 0)); then
  step "checking that the proto build plugin says what to install when protoc is missing"
  dev/check-proto-generator.sh
  step "building the PluginFromProto article as a user's package"
  dev/test-user-package.sh
fi
