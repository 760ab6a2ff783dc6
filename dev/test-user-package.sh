#!/usr/bin/env bash
# Builds the article "A plugin from a .proto file" (Sources/GoPlugin/Documentation.docc/
# PluginFromProto.md) as a user would: a new package from `swift package init`, the files the
# article shows, this repository as a path dependency, `swift build` and `swift run hello`,
# and compares what the host prints with the output the article shows.
#
# The article is the source: every code block whose preceding line ends with "`PATH`:" is
# written to PATH, so the article cannot show code that this script does not build.
#
#   dev/test-user-package.sh           # build and run in a temporary folder, print the wall time
#   dev/test-user-package.sh --check   # only check that the article still has every file and
#                                      # command this script needs (seconds; nothing is built)
#   KEEP=1 dev/test-user-package.sh    # keep the temporary folder for a look afterwards
#
# It is a cold build of a package that depends on this one (the protoc plugins, SwiftNIO, gRPC,
# BoringSSL and the library from scratch): measured 2026-12-07 on the shared 2-core machine,
# under nice -n 15, at 6 min 58 s (the build itself 401 s; it printed no warning). The last
# step of dev/test.sh.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
article=$repo/Sources/GoPlugin/Documentation.docc/PluginFromProto.md
start=$(date +%s)

# extract ARTICLE DIR: writes each file block of ARTICLE under DIR, and the expected output to
# DIR/.expected-output; prints the paths written.
extract() {
  python3 - "$1" "$2" <<'PY'
import os, re, sys
article, out = sys.argv[1], sys.argv[2]
lines = open(article).read().split("\n")
i, written, previous = 0, [], ""
while i < len(lines):
    line = lines[i]
    if line.startswith("```"):
        end = lines.index("```", i + 1)
        body = "\n".join(lines[i + 1:end]) + "\n"
        path = re.search(r"`([\w./-]+)`:$", previous)
        if path:
            target = os.path.join(out, path.group(1))
            os.makedirs(os.path.dirname(target) or out, exist_ok=True)
            open(target, "w").write(body)
            written.append(path.group(1))
        elif previous.endswith("prints:"):
            open(os.path.join(out, ".expected-output"), "w").write(body)
            written.append(".expected-output")
        i, previous = end + 1, ""
        continue
    if line.strip():
        previous = line.strip()
    i += 1
print("\n".join(written))
PY
}

# The commands the script runs must be the ones the article tells the reader to run.
for command in "swift package init --type executable" "swift build" "swift run hello"; do
  grep -qxF "$command" <(grep -oF "$command" "$article") || {
    echo "$article no longer says \`$command\`: update it and this script together" >&2
    exit 1
  }
done
expected_files=(Package.swift Sources/GreeterAPI/greeter.proto Sources/GreeterAPI/go-plugin-proto.json
  Sources/GreeterAPI/Greeter.swift Sources/hello-plugin/main.swift Sources/hello/hello.swift .expected-output)

work=$(mktemp -d "${TMPDIR:-/tmp}/goplugin-user-package.XXXXXX")
if [[ -z ${KEEP:-} ]]; then trap 'rm -rf "$work"' EXIT; else echo "keeping $work" >&2; fi

check_extracted() {
  local dir=$1
  mapfile -t written < <(extract "$article" "$dir")
  for file in "${expected_files[@]}"; do
    if [[ ! " ${written[*]} " == *" $file "* ]]; then
      echo "$article has no block for $file (it wrote: ${written[*]})" >&2
      exit 1
    fi
  done
}

if [[ ${1:-} == --check ]]; then
  check_extracted "$work/check"
  echo "the article has every file and command dev/test-user-package.sh builds"
  exit 0
fi

# The package is called swift-go-plugin wherever it is checked out, so that the article's
# `package: "swift-go-plugin"` names it: SwiftPM takes a path dependency's name from its folder.
ln -s "$repo" "$work/swift-go-plugin"
mkdir "$work/hello"
cd "$work/hello"
swift package init --type executable >/dev/null
check_extracted "$work/hello"
# The article's dependency is a URL to a release; this one is the checkout being tested.
sed -i.orig 's|\.package(url: "https://github.com/OWNER/swift-go-plugin.git", from: "[^"]*")|.package(path: "../swift-go-plugin")|' Package.swift
rm Package.swift.orig
grep -qF '.package(path: "../swift-go-plugin")' Package.swift || {
  echo "the article's Package.swift no longer depends on swift-go-plugin by the URL this script replaces" >&2
  exit 1
}

echo "building in $work/hello (a cold build: it takes a while)" >&2
nice -n 15 swift build
output=$(nice -n 15 swift run hello 2>/dev/null)
elapsed=$(($(date +%s) - start))
if [[ $output != "$(cat .expected-output)" ]]; then
  printf 'the host printed:\n%s\nand the article says it prints:\n%s' "$output" "$(cat .expected-output)" >&2
  exit 1
fi
echo "the article's package builds and prints what the article says: $((elapsed / 60)) min $((elapsed % 60)) s"
