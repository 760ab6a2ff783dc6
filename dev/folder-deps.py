#!/usr/bin/env python3
"""Which folder of Sources/GoPlugin uses which: prints one line per folder with the folders
whose types it names, and exits 1 if the folders do not form a stack (a cycle).

The modules GoPlugin is built on (GoPluginTransport) count as one folder each, named after
the module; they must sit below every folder of GoPlugin, so naming a type declared in
GoPlugin from one of them fails the check like a cycle. A type such a module declares and a
folder of GoPlugin extends (Transports, PluginClientTransport) belongs to both.

  dev/folder-deps.py            # the graph, and the layers from the bottom up
  dev/folder-deps.py --dot      # the graph as Graphviz dot
"""
import os, re, sys

sources = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Sources")
root = os.path.join(sources, "GoPlugin")
modules = ["GoPluginTransport"]
declaration = re.compile(r"^(?:public |package |internal |fileprivate |private |final |indirect )*"
                         r"(?:struct|class|enum|protocol|actor|typealias)\s+([A-Z]\w*)", re.M)
comment = re.compile(r"//.*?$|/\*.*?\*/", re.M | re.S)
string = re.compile(r'"(?:\\.|[^"\\\n])*"')
extension = re.compile(r"^(?:public |package |internal |fileprivate |private )*extension\s+([A-Z]\w*)", re.M)

def read(directory, top_of):
    for folder, _, names in os.walk(directory):
        for name in names:
            if name.endswith(".swift"):
                with open(os.path.join(folder, name)) as handle:
                    text = handle.read()
                files.setdefault(top_of(folder), []).append(string.sub('""', comment.sub("", text)))

def top_folder(folder):
    rel = os.path.relpath(folder, root)
    return rel.split(os.sep)[0] if rel != "." else "(root)"

files = {}
read(root, top_folder)
for module in modules:
    read(os.path.join(sources, module), lambda _, module=module: module)

declared = {}
for folder, texts in files.items():
    for text in texts:
        for match in declaration.finditer(text):
            declared.setdefault(match.group(1), folder)
extended = {}
for folder, texts in files.items():
    for text in texts:
        for match in extension.finditer(text):
            if declared.get(match.group(1)) in modules and folder not in modules:
                extended.setdefault(match.group(1), set()).add(folder)

uses = {folder: set() for folder in files}
for folder, texts in files.items():
    words = set()
    for text in texts:
        words.update(re.findall(r"\b[A-Z]\w*\b", text))
    for word in words:
        if word not in declared:
            continue
        owners = {declared[word]}
        if folder not in modules:
            # Naming a module's type may mean using what a folder of GoPlugin adds to it.
            owners |= extended.get(word, set())
        uses[folder] |= owners - {folder}

if "--dot" in sys.argv:
    print("digraph folders {")
    for folder in sorted(uses):
        for used in sorted(uses[folder]):
            print(f'  "{folder}" -> "{used}";')
    print("}")
    sys.exit(0)

for folder in sorted(uses):
    print(f"{folder:12} uses {', '.join(sorted(uses[folder])) or '-'}")

upward = {module: uses[module] - set(modules) for module in modules if uses.get(module, set()) - set(modules)}
if upward:
    for module, used in sorted(upward.items()):
        print(f"\n{module} is below GoPlugin but names types of its folders: {', '.join(sorted(used))}")
    sys.exit(1)

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
