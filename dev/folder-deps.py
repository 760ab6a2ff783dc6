#!/usr/bin/env python3
"""Which folder of Sources/GoPlugin uses which: prints one line per folder with the folders
whose types it names, and exits 1 if the folders do not form a stack (a cycle).

  dev/folder-deps.py            # the graph, and the layers from the bottom up
  dev/folder-deps.py --dot      # the graph as Graphviz dot
"""
import os, re, sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Sources", "GoPlugin")
declaration = re.compile(r"^(?:public |package |internal |fileprivate |private |final |indirect )*"
                         r"(?:struct|class|enum|protocol|actor|typealias)\s+([A-Z]\w*)", re.M)
comment = re.compile(r"//.*?$|/\*.*?\*/", re.M | re.S)
string = re.compile(r'"(?:\\.|[^"\\\n])*"')

files = {}
for folder, _, names in os.walk(root):
    for name in names:
        if name.endswith(".swift"):
            path = os.path.join(folder, name)
            rel = os.path.relpath(folder, root)
            top = rel.split(os.sep)[0] if rel != "." else "(root)"
            with open(path) as handle:
                text = handle.read()
            files.setdefault(top, []).append(string.sub('""', comment.sub("", text)))

declared = {}
for folder, texts in files.items():
    for text in texts:
        for match in declaration.finditer(text):
            declared.setdefault(match.group(1), folder)

uses = {folder: set() for folder in files}
for folder, texts in files.items():
    words = set()
    for text in texts:
        words.update(re.findall(r"\b[A-Z]\w*\b", text))
    for word in words:
        owner = declared.get(word)
        if owner and owner != folder:
            uses[folder].add(owner)

if "--dot" in sys.argv:
    print("digraph folders {")
    for folder in sorted(uses):
        for used in sorted(uses[folder]):
            print(f'  "{folder}" -> "{used}";')
    print("}")
    sys.exit(0)

for folder in sorted(uses):
    print(f"{folder:12} uses {', '.join(sorted(uses[folder])) or '-'}")

layers, placed, remaining = [], set(), set(uses)
while remaining:
    layer = {f for f in remaining if uses[f] <= placed}
    if not layer:
        print("\ncycle among: " + ", ".join(sorted(remaining)))
        for folder in sorted(remaining):
            print(f"  {folder} -> {', '.join(sorted(uses[folder] & remaining))}")
        sys.exit(1)
    layers.append(sorted(layer))
    placed |= layer
    remaining -= layer
print("\nlayers, bottom first:")
for number, layer in enumerate(layers):
    print(f"  {number}: {', '.join(layer)}")
