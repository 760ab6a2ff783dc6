#!/usr/bin/env python3
"""Side-by-side Markdown table of plugin-bench / benchhost results, with ratios to Go↔Go, then
the issue's targets checked against the same run and what each Swift build's binaries hold.

usage: bench_table.py RESULTS.json   (the file dev/bench.sh writes: {"runs": [...], ...})

Standard library only; bench_chart.py imports the helpers below.
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
# The metrics a workload times: multiplexing must cost at most MUX_TOLERANCE on each of them.
WORKLOAD_KEYS = [key for key, *_ in METRICS if not key.endswith("RSSKiB")]
MUX_TOLERANCE = 0.10
BASELINE = "go→go"


def scaled(key, value):
    """The value in the unit METRICS names (memory is recorded in KiB and shown in MiB)."""
    return value / 1024 if key.endswith("RSSKiB") else value


def show(key, value):
    value = scaled(key, value)
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def pair_of(run):
    """host→plugin and variant, without the Swift build: what a colour stands for in the chart.
    Results written before dev/bench.sh recorded these facts fall back to the label."""
    pair = run.get("pair") or run.get("label", "?")
    return f"{pair} ({run['variant']})" if run.get("variant") else pair


def baseline_of(runs):
    """Go↔Go plain: the run every ratio divides by, or None if it is missing or failed."""
    for run in runs:
        if pair_of(run) == BASELINE and not run.get("error"):
            return run
    return None


def ratio(run, baseline, key):
    """value ÷ the baseline's value, or None where either is missing."""
    if baseline is None or run.get("error") or not baseline.get(key) or key not in run:
        return None
    return run[key] / baseline[key]


def worse(value_ratio, higher):
    """How much worse than the reference a ratio is, as a fraction (0.1 = 10 % worse); negative
    when better. For calls/s and MiB/s worse is slower, so 0.8× is 25 % worse (1/0.8 − 1)."""
    return (1 / value_ratio - 1) if higher else (value_ratio - 1)


def find(runs, pair, variant=None, build=None):
    for run in runs:
        if (run.get("pair") == pair and run.get("variant") == variant and run.get("swiftBuild") == build
                and not run.get("error")):
            return run
    return None


def targets(runs):
    """The issue's targets, per Swift build: (what, build, ratio or None, met)."""
    baseline = baseline_of(runs)
    builds = []
    for run in runs:
        if run.get("swiftBuild") and run["swiftBuild"] not in builds:
            builds.append(run["swiftBuild"])
    rows = []
    checks = [
        ("Swift plugin: start → first call (go→swift ÷ go→go) ≤ 1.00×", "go→swift", "startMedianMs"),
        ("Swift plugin: peak RSS (go→swift ÷ go→go) ≤ 1.00×", "go→swift", "pluginPeakRSSKiB"),
        ("Swift host: peak RSS (swift→go ÷ go→go) ≤ 1.00×", "swift→go", "hostPeakRSSKiB"),
    ]
    for what, pair, key in checks:
        cells = []
        for build in builds:
            run = find(runs, pair, None, build)
            r = ratio(run, baseline, key) if run else None
            cells.append(None if r is None else (f"{r:.2f}×", r <= 1.0))
        rows.append((what, cells))
    cells = []
    for build in builds:
        plain, mux = find(runs, "swift→swift", None, build), find(runs, "swift→swift", "mux", build)
        if not plain or not mux:
            cells.append(None)
            continue
        # The workload on which multiplexing costs the most.
        worst = None
        for key, name, _, higher in METRICS:
            if key in WORKLOAD_KEYS and plain.get(key) and mux.get(key):
                cost = worse(mux[key] / plain[key], higher)
                if worst is None or cost > worst[0]:
                    worst = (cost, name)
        if worst is None:
            cells.append(None)
        else:
            cells.append((f"{worst[1]}: {worst[0]:+.0%}", worst[0] <= MUX_TOLERANCE))
    rows.append((f"Swift↔Swift multiplexed vs plain: worst workload ≤ +{MUX_TOLERANCE:.0%}", cells))
    # Issue #17's call-speed targets. A host may run its callers on the pool or on the
    # connection's loop, so each target takes the better of the two and says which.
    speed = [
        ("sequential Get p50: swift→swift ≤ 0.50×", "swift→swift", "getP50Us", 0.50, False),
        ("sequential Get p50: swift→go ≤ 1.00×", "swift→go", "getP50Us", 1.00, False),
        ("sequential Get p50: go→swift ≤ 1.00×", "go→swift", "getP50Us", 1.00, False),
        ("8 concurrent callers: swift→swift ≥ 1.50×", "swift→swift", "concurrentCallsPerSecond", 1.50, True),
        ("64 KiB Puts: swift→swift ≥ 1.50×", "swift→swift", "putMiBPerSecond", 1.50, True),
        ("one Upload stream: swift→swift ≥ 2.00×", "swift→swift", "uploadMiBPerSecond", 2.00, True),
    ]
    for what, pair, key, limit, higher in speed:
        cells = []
        for build in builds:
            best = None
            for variant in (None, "loop"):
                run = find(runs, pair, variant, build)
                r = ratio(run, baseline, key) if run else None
                if r is not None and (best is None or (r > best[0] if higher else r < best[0])):
                    best = (r, variant)
            if best is None:
                cells.append(None)
            else:
                r, variant = best
                label = f"{r:.2f}×" + (f" ({variant})" if variant else "")
                cells.append((label, r >= limit if higher else r <= limit))
        rows.append((what, cells))
    return builds, rows


def mib(n):
    return f"{n / 1048576:.1f} MiB"


def main():
    with open(sys.argv[1]) as f:
        results = json.load(f)
    runs = results["runs"]
    baseline = baseline_of(runs)
    labels = [r.get("label", "?") for r in runs]

    first = next((r for r in runs if "launches" in r), runs[0])
    print(
        f"{first.get('launches')} launches; {first.get('calls')} sequential Gets after {first.get('warmup')}; "
        f"{first.get('concurrentCalls')} Gets by {first.get('callers')} callers; "
        f"{first.get('bulkMiB', 0):.0f} MiB in {first.get('chunkKiB')} KiB chunks. "
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
            cell = show(key, run.get(key, 0))
            r = ratio(run, baseline, key)
            if r is not None:
                cell += f" ({r:.2f}×)"
            cells.append(cell)
        print(f"| {name} | {unit} | {'higher' if higher else 'lower'} | " + " | ".join(cells) + " |")

    builds, rows = targets(runs)
    if builds:
        print("\n| target | " + " | ".join(builds) + " |")
        print("|---|" + "---:|" * len(builds))
        for what, cells in rows:
            shown = ["–" if c is None else f"{c[0]} {'✓' if c[1] else '✗'}" for c in cells]
            print(f"| {what} | " + " | ".join(shown) + " |")

    binaries = results.get("swiftBuilds") or {}
    if binaries:
        print("\n| Swift build | binary | size | shared libraries | Foundation in it |")
        print("|---|---|---:|---:|---|")
        for build, programs in binaries.items():
            for name, facts in programs.items():
                print(f"| {build} | {name} | {mib(facts['bytes'])} | {len(facts.get('sharedLibraries', []))} | "
                      f"{', '.join(facts.get('foundation', [])) or 'none'} |")

    failures = [r for r in runs if r.get("error") or r.get("callFailures")]
    for run in failures:
        print(f"\n{run.get('label')}: {run.get('error') or str(run.get('callFailures')) + ' calls returned a wrong value'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
