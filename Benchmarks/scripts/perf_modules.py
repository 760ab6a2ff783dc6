#!/usr/bin/env python3
"""Charges `perf script -F pid,ip,sym,dso` samples to Swift modules, per process.

    perf record -F 2999 --call-graph fp -p PID[,PID] -o perf.data -- sleep 4
    perf script -i perf.data -F pid,ip,sym,dso > samples.txt
    python3 Benchmarks/scripts/perf_modules.py samples.txt

A sample whose leaf is in the kernel is the kernel's. Any other goes to the nearest frame on
its stack that belongs to one of MODULES (read from the Swift mangling), so that the runtime's
retains, releases, task switches and casts count for the code that made them. Python 3's
standard library only.
"""
import collections
import re
import sys

MODULES = {
    "GRPCCore", "GRPCProtobuf", "NIOHTTP2", "NIOHPACK", "NIOCore", "NIOPosix", "NIOSSL",
    "NIOConcurrencyHelpers", "GoPluginTransport", "GoPlugin", "GoPluginPlatform", "KVInterface",
    "SwiftProtobuf", "plugin_bench", "kv_plugin", "Synchronization",
}


def module(symbol):
    match = re.match(r"\$s(\d+)([A-Za-z_]\w*)", symbol)
    return match.group(2)[: int(match.group(1))] if match else None


def samples(path):
    current = None
    with open(path) as lines:
        for line in lines:
            if not line.strip():
                if current:
                    yield current
                current = None
            elif re.match(r"^\s*\d+\s*$", line):
                current = (line.split()[0], [])
            elif current is not None:
                rest = line.split(None, 1)[1].strip() if len(line.split(None, 1)) > 1 else "?"
                match = re.match(r"(.*) \((.*)\)$", rest)
                current[1].append((match.group(1), match.group(2)) if match else (rest, ""))
    if current:
        yield current


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    charged = collections.defaultdict(collections.Counter)
    for pid, frames in samples(sys.argv[1]):
        if frames and "kernel" in frames[0][1]:
            where = "kernel"
        else:
            where = next((m for m in (module(s) for s, _ in frames) if m in MODULES), "other")
        charged[pid][where] += 1
    for pid, counts in sorted(charged.items(), key=lambda item: int(item[0])):
        total = sum(counts.values())
        print(f"pid {pid}: {total} samples")
        for where, count in counts.most_common():
            print(f"  {100 * count / total:5.1f}%  {where}")


if __name__ == "__main__":
    main()
