#!/usr/bin/env python3
"""Where a process's resident memory is: runs a command, samples /proc/PID/smaps of it (and of
its children, such as the plugin a host launches) until it exits, and prints each process's
breakdown at its largest RSS: the executable's pages by ELF section kind (code, read-only data,
data), shared libraries, and anonymous memory (heap, thread stacks).

usage: memory_map.py [--handshake] -- COMMAND [ARG...]

--handshake runs COMMAND as a plugin under the KV example's handshake (BASIC_PLUGIN=hello,
version 1), waits for its handshake line, samples it there, and stops it: the memory a plugin
holds once it is ready, before any call.

Linux only; standard library only.
"""
import os
import subprocess
import sys
import time
from collections import Counter


def children_of(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def breakdown(pid):
    """KiB resident by kind, for one process; None once it is gone."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
        with open(f"/proc/{pid}/smaps") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    kinds = Counter()
    kind = None
    for line in lines:
        fields = line.split()
        if not fields:
            continue
        if not fields[0].endswith(":") or "-" in fields[0]:
            # A mapping's header: address range, permissions, offset, device, inode, path.
            perms = fields[1]
            path = fields[5] if len(fields) > 5 else ""
            if path == exe:
                kind = "executable: code" if "x" in perms else (
                    "executable: data" if "w" in perms else "executable: read-only data")
            elif path.startswith("/") and ".so" in path:
                kind = "shared libraries"
            elif path in ("", "[heap]", "[stack]") or path.startswith("[anon"):
                kind = "anonymous (heap, stacks)"
            else:
                kind = "other " + path
        elif fields[0] == "Rss:" and kind:
            kinds[kind] += int(fields[1])
    return exe, kinds


def report(title, sample):
    exe, kinds = sample
    total = sum(kinds.values())
    print(f"{title}: {os.path.basename(exe)}, {total / 1024:.1f} MiB resident at its peak")
    for kind, kib in kinds.most_common():
        if kib >= 64:
            print(f"  {kib / 1024:6.1f} MiB  {kind}")


def main():
    args = sys.argv[1:]
    handshake = False
    if args and args[0] == "--handshake":
        handshake = True
        args = args[1:]
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        sys.exit(__doc__)
    if handshake:
        env = dict(os.environ, BASIC_PLUGIN="hello", PLUGIN_PROTOCOL_VERSIONS="1")
        process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        process.stdout.readline()
        sample = breakdown(process.pid)
        process.kill()
        process.wait()
        report("plugin at its handshake", sample)
        return
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    peaks = {}
    while process.poll() is None:
        for pid in [process.pid] + children_of(process.pid):
            sample = breakdown(pid)
            if sample and sum(sample[1].values()) > sum(peaks.get(pid, (None, Counter()))[1].values()):
                peaks[pid] = sample
        time.sleep(0.02)
    for pid, sample in peaks.items():
        report("host" if pid == process.pid else f"child {pid}", sample)


if __name__ == "__main__":
    main()
