#!/usr/bin/env python3
"""Side-by-side Markdown table of plugin-bench / benchhost results, with ratios to Go↔Go.

usage: bench_table.py RESULTS.json   (the file dev/bench.sh writes: {"runs": [...], ...})
"""
import json
import sys

# (JSON key, what it is, unit, True if higher is better)
METRICS = [
    ("startMedianMs", "start → first call (median)", "ms", False),
    ("getP50Us", "sequential Get p50", "µs", False),
    ("getP99Us", "sequential Get p99", "µs", False),
    ("getCallsPerSecond", "sequential Get", "calls/s", True),
    ("concurrentCallsPerSecond", "concurrent Get", "calls/s", True),
    ("putMiBPerSecond", "bulk as unary Puts", "MiB/s", True),
    ("uploadMiBPerSecond", "bulk as one Upload stream", "MiB/s", True),
    ("hostPeakRSSKiB", "host peak RSS", "MiB", False),
    ("pluginPeakRSSKiB", "plugin peak RSS", "MiB", False),
]
BASELINE = "go→go"


def show(key, value):
    if key.endswith("RSSKiB"):
        value = value / 1024
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def main():
    with open(sys.argv[1]) as f:
        results = json.load(f)
    runs = results["runs"]
    baseline = next((r for r in runs if r.get("label") == BASELINE), None)
    labels = [r.get("label", "?") for r in runs]

    first = runs[0]
    print(
        f"{first['launches']} launches; {first['calls']} sequential Gets after {first['warmup']}; "
        f"{first['concurrentCalls']} Gets by {first['callers']} callers; "
        f"{first['bulkMiB']:.0f} MiB in {first['chunkKiB']} KiB chunks. "
        f"Cells: value (ratio to {BASELINE}).\n"
    )
    print("| metric | unit | better | " + " | ".join(labels) + " |")
    print("|---|---|---|" + "---:|" * len(labels))
    for key, name, unit, higher in METRICS:
        cells = []
        for run in runs:
            if run.get("error"):
                cells.append("failed")
                continue
            value = run.get(key, 0)
            cell = show(key, value)
            if baseline and not baseline.get("error") and baseline.get(key):
                cell += f" ({value / baseline[key]:.2f}×)"
            cells.append(cell)
        print(f"| {name} | {unit} | {'higher' if higher else 'lower'} | " + " | ".join(cells) + " |")
    failures = [r for r in runs if r.get("error") or r.get("callFailures")]
    for run in failures:
        print(f"\n{run.get('label')}: {run.get('error') or str(run.get('callFailures')) + ' calls returned a wrong value'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
