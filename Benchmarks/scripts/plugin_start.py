#!/usr/bin/env python3
"""What a plugin's start costs up to its handshake line: launches PLUGIN under the KV example's
handshake (BASIC_PLUGIN=hello, version 1) COUNT times, as a host would, and prints the medians
of the time to the handshake line, the CPU time its threads used by then, its page faults, its
threads and its RSS at that point. No connection is made: this is the part of
"start → first call" that is the plugin's alone.

usage: plugin_start.py PLUGIN [PLUGIN...] [--count N]

Linux only; standard library only.
"""
import os
import statistics
import subprocess
import sys
import time


def sample(pid):
    cpu_ns = 0
    threads = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/schedstat") as f:
            cpu_ns += int(f.read().split()[0])
        threads += 1
    with open(f"/proc/{pid}/stat") as f:
        # Fields after the command name, which may hold spaces: minflt is the 10th, majflt the 12th.
        fields = f.read().rsplit(")", 1)[1].split()
    faults = int(fields[7]) + int(fields[9])
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return cpu_ns / 1e6, faults, threads, rss / 1024


def measure(plugin, count):
    env = dict(os.environ, BASIC_PLUGIN="hello", PLUGIN_PROTOCOL_VERSIONS="1")
    rows = []
    for _ in range(count):
        start = time.perf_counter()
        process = subprocess.Popen([plugin], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = process.stdout.readline()
        elapsed = (time.perf_counter() - start) * 1000
        if not line:
            sys.exit(f"{plugin}: no handshake line")
        rows.append((elapsed,) + sample(process.pid))
        process.kill()
        process.wait()
    return [statistics.median(column) for column in zip(*rows)]


def main():
    args = sys.argv[1:]
    count = 30
    if "--count" in args:
        at = args.index("--count")
        count = int(args[at + 1])
        del args[at:at + 2]
    if not args:
        sys.exit(__doc__)
    print(f"medians of {count} launches")
    print(f"| plugin | to handshake (ms) | CPU by then (ms) | page faults | threads | RSS (MiB) |")
    print(f"|---|---:|---:|---:|---:|---:|")
    for plugin in args:
        wall, cpu, faults, threads, rss = measure(os.path.abspath(plugin), count)
        print(f"| {plugin} | {wall:.2f} | {cpu:.2f} | {faults:.0f} | {threads:.0f} | {rss:.1f} |")


if __name__ == "__main__":
    main()
