#!/usr/bin/env bash
# Checks that GoPluginProtoGenerator stops a build with an error that says what to install when
# the protoc it is told to use does not exist, rather than with protoc's or SwiftPM's own words,
# and that it stops only builds that need generated code. With PROTOC_PATH naming a file that
# does not exist and a PATH without protoc, in the repository's build folder, it builds
#   - the GreeterProto example's interface target, which must fail with that error;
#   - kv-plugin, which generates nothing and must build (SwiftPM runs build plugins for every
#     target of the package, whatever is being built).
# and, where user namespaces allow it (unshare -rm), runs the generator's command directly with
# every usual protoc hidden behind /dev/null, for the error of a machine without any protoc.
# About a minute when the package is already built.
#
#   dev/check-proto-generator.sh
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
toolchain=$(dirname "$(readlink -f "$(command -v swift)")")

status=0
first=$(env PROTOC_PATH=/nonexistent/protoc PATH="$toolchain:/bin" \
  nice -n 15 swift build --target GreeterProtoInterface 2>&1) || status=$?
if ((status == 0)); then
  echo "the build succeeded with PROTOC_PATH=/nonexistent/protoc: the generator did not check it" >&2
  exit 1
fi
for expected in "/nonexistent/protoc, named by PROTOC_PATH, is not an executable file" \
  "apt-get install protobuf-compiler" "brew install protobuf"; do
  if ! grep -qF "$expected" <<<"$first"; then
    printf 'the build failed, but without saying "%s":\n%s\n' "$expected" "$first" >&2
    exit 1
  fi
done
# The linker may need the rest of PATH; PROTOC_PATH alone already rules out every other protoc.
if ! output=$(env PROTOC_PATH=/nonexistent/protoc nice -n 15 swift build --product kv-plugin 2>&1); then
  printf 'without protoc, kv-plugin, which needs no generated code, did not build:\n%s\n' "$output" >&2
  exit 1
fi
echo "a missing protoc stops only builds that need it, with: $(grep -m1 -F 'GoPluginProtoGenerator:' <<<"$first")"

# No protoc anywhere: hidden in a private mount namespace, so nothing outside this check sees it.
if unshare -rm true 2>/dev/null; then
  driver=$(swift build --show-bin-path)/goplugin-protoc
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  hide=""
  for protoc in /usr/bin/protoc /usr/local/bin/protoc /opt/homebrew/bin/protoc; do
    [[ -e $protoc ]] && hide+="mount --bind /dev/null $protoc && "
  done
  none=$(unshare -rm sh -c "$hide exec \"\$0\" \"\$@\"" "$driver" \
    --target-directory "$repo/Examples/GreeterProto/Sources/GreeterProtoInterface" --proto greeter.proto \
    --output "$scratch" --protoc-gen-swift unused --protoc-gen-grpc-swift-2 unused --protoc-gen-swift-go-plugin unused \
    --protoc-path-variable "" --search-path /nonexistent 2>&1) && {
    echo "goplugin-protoc found a protoc although every usual one was hidden" >&2
    exit 1
  }
  if ! grep -qF "found none in PATH, /usr/bin, /usr/local/bin or /opt/homebrew/bin" <<<"$none" \
    || ! grep -qF "apt-get install protobuf-compiler" <<<"$none"; then
    printf 'without any protoc, goplugin-protoc said:\n%s\n' "$none" >&2
    exit 1
  fi
  echo "no protoc at all stops the build with: $none"
else
  echo "skipped the no-protoc-at-all case: unshare -rm is not allowed here" >&2
fi
