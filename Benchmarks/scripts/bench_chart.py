#!/usr/bin/env python3
"""The chart beside the table: one panel per metric (small multiples), one horizontal bar per
pair, each host→plugin pair (and variant) in a colour of its own in every panel, the dynamic
build of the Swift side hatched, every bar labelled with its value and its ratio to Go↔Go, and
a dashed line at the Go↔Go value.

usage: bench_chart.py RESULTS.json [OUT.svg]   (default: RESULTS.svg beside RESULTS.json)

Standard library only, so that it runs wherever the harness does; the SVG needs no fonts or
scripts beyond a sans-serif face.
"""
import json
import os
import sys
from xml.sax.saxutils import escape

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_table import BASELINE, METRICS, baseline_of, pair_of, ratio, scaled, show, worse  # noqa: E402

# Okabe–Ito colours (told apart with the common colour-vision deficiencies), Go↔Go in greys.
COLOURS = {
    "go→go": "#4d4d4d",
    "go→go (mtls)": "#a3a3a3",
    "swift→swift": "#0072b2",
    "swift→swift (mux)": "#56b4e9",
    "swift→swift (mtls)": "#cc79a7",
    "swift→go": "#e69f00",
    "go→swift": "#009e73",
}
SPARE_COLOURS = ["#d55e00", "#f0e442", "#8c564b", "#17becf", "#bcbd22"]
WORSE, BETTER, EVEN = "#b8212f", "#1a7f37", "#555555"
# A ratio within this much of 1 is drawn as even: run-to-run noise is larger than that.
EVEN_BAND = 0.05

FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
COLUMNS = 3
LABEL_WIDTH = 200
PANEL_WIDTH = 340
VALUE_ROOM = 112  # right of the longest bar: "12,345 · 1.23×"
BAR_HEIGHT = 14
BAR_PITCH = 20
GROUP_GAP = 6  # between pairs, so that a pair's builds sit together
PANEL_HEAD = 52
PANEL_FOOT = 18
MARGIN = 16


def text(x, y, s, size=12, anchor="start", weight="normal", fill="#222", extra=""):
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}" fill="{fill}"{extra}>{escape(s)}</text>')


def colour_for(pairs):
    colours, spare = {}, iter(SPARE_COLOURS * 4)
    for pair in pairs:
        colours[pair] = COLOURS.get(pair) or next(spare)
    return colours


def pattern_id(colour):
    return "hatch-" + colour.lstrip("#")


def hatch(colour):
    """The dynamic build's fill: the pair's colour in diagonal stripes on a pale tint of it."""
    return (f'<pattern id="{pattern_id(colour)}" width="6" height="6" patternUnits="userSpaceOnUse" '
            f'patternTransform="rotate(45)"><rect width="6" height="6" fill="{colour}" fill-opacity="0.28"/>'
            f'<rect width="3" height="6" fill="{colour}"/></pattern>')


def fill(run, colours):
    colour = colours[pair_of(run)]
    return f"url(#{pattern_id(colour)})" if run.get("swiftBuild") == "dynamic" else colour


def ratio_colour(r, higher):
    if r is None:
        return EVEN
    cost = worse(r, higher)
    if abs(cost) <= EVEN_BAND:
        return EVEN
    return WORSE if cost > 0 else BETTER


def offsets(runs):
    """Each bar's distance from the first, with a gap wherever the pair changes."""
    result, y, previous = [], 0, None
    for run in runs:
        if previous is not None and pair_of(run) != previous:
            y += GROUP_GAP
        result.append(y)
        y += BAR_PITCH
        previous = pair_of(run)
    return result


def panel(x0, y0, runs, baseline, metric, colours):
    key, name, unit, higher = metric
    out = []
    ys = offsets(runs)
    out.append(text(x0, y0 + 14, f"{name} ({unit})", size=13, weight="bold"))
    direction = "higher is better →" if higher else "← lower is better"
    out.append(text(x0, y0 + 30, direction, size=11, fill="#666"))
    values = [scaled(key, r.get(key, 0)) for r in runs if not r.get("error")]
    top = max(values + [0]) or 1
    width = PANEL_WIDTH - VALUE_ROOM
    bars_top = y0 + PANEL_HEAD
    bottom = bars_top + ys[-1] + BAR_HEIGHT
    # The axis, and the Go↔Go value behind the bars: bars start at zero, so lengths compare.
    out.append(f'<line x1="{x0}" y1="{bars_top - 2}" x2="{x0}" y2="{bottom + 2}" stroke="#999" stroke-width="1"/>')
    if baseline is not None and baseline.get(key):
        bx = x0 + scaled(key, baseline[key]) / top * width
        out.append(f'<line x1="{bx:.1f}" y1="{bars_top - 4}" x2="{bx:.1f}" y2="{bottom + 4}" stroke="#111" '
                   f'stroke-width="1" stroke-dasharray="3,3"/>')
        out.append(text(bx, bars_top - 6, BASELINE, size=10, anchor="middle", fill="#111"))
    for y_offset, run in zip(ys, runs):
        y = bars_top + y_offset
        if run.get("error"):
            out.append(text(x0 + 2, y + BAR_HEIGHT - 3, "failed", size=11, fill=WORSE, weight="bold"))
            continue
        value = scaled(key, run.get(key, 0))
        w = max(value / top * width, 1)
        out.append(f'<rect x="{x0}" y="{y}" width="{w:.1f}" height="{BAR_HEIGHT}" fill="{fill(run, colours)}" '
                   f'stroke="{colours[pair_of(run)]}" stroke-width="0.8"><title>{escape(run.get("label", "?"))}: '
                   f'{escape(show(key, run.get(key, 0)))} {escape(unit)}</title></rect>')
        r = ratio(run, baseline, key)
        label = show(key, run.get(key, 0))
        tx = x0 + w + 4
        # A white ground under the text, so that the Go↔Go line crossing it does not strike it through.
        shown = label + (f" · {r:.2f}×" if r is not None else "")
        out.append(f'<rect x="{tx - 1:.1f}" y="{y}" width="{len(shown) * 6.6 + 2:.1f}" height="{BAR_HEIGHT}" '
                   f'fill="#fff" fill-opacity="0.9"/>')
        out.append(f'<text x="{tx:.1f}" y="{y + BAR_HEIGHT - 3}" font-size="11" fill="#222">{escape(label)}'
                   + (f'<tspan fill="{ratio_colour(r, higher)}" font-weight="bold"> · {r:.2f}×</tspan>'
                      if r is not None else "")
                   + "</text>")
    return out


def legend(x0, y0, pairs, colours, has_dynamic):
    out, x = [], x0
    for pair in pairs:
        out.append(f'<rect x="{x}" y="{y0}" width="14" height="14" fill="{colours[pair]}"/>')
        out.append(text(x + 19, y0 + 11.5, pair, size=12))
        x += 19 + 7.4 * len(pair) + 22
    y = y0 + 24
    x = x0
    items = []
    if has_dynamic:
        grey = "#4d4d4d"
        items.append(f'<rect x="{x}" y="{y}" width="14" height="14" fill="{grey}"/>')
        items.append(text(x + 19, y + 11.5, "static Swift build (and Go)", size=12))
        x += 215
        items.append(f'<rect x="{x}" y="{y}" width="14" height="14" fill="url(#{pattern_id(grey)})" '
                     f'stroke="{grey}" stroke-width="0.8"/>')
        items.append(text(x + 19, y + 11.5, "dynamic Swift build", size=12))
        x += 165
    items.append(f'<line x1="{x}" y1="{y + 7}" x2="{x + 18}" y2="{y + 7}" stroke="#111" stroke-dasharray="3,3"/>')
    items.append(text(x + 24, y + 11.5, f"{BASELINE} value", size=12))
    x += 110
    items.append(f'<text x="{x}" y="{y + 11.5}" font-size="12" fill="#222">ratio to {escape(BASELINE)}: '
                 f'<tspan fill="{WORSE}" font-weight="bold">worse</tspan>, '
                 f'<tspan fill="{BETTER}" font-weight="bold">better</tspan>, '
                 f'<tspan fill="{EVEN}" font-weight="bold">within {EVEN_BAND:.0%}</tspan></text>')
    return out + items


def chart(results):
    runs = results["runs"]
    baseline = baseline_of(runs)
    pairs = []
    for run in runs:
        if pair_of(run) not in pairs:
            pairs.append(pair_of(run))
    colours = colour_for(pairs)
    has_dynamic = any(r.get("swiftBuild") == "dynamic" for r in runs)

    rows = (len(METRICS) + COLUMNS - 1) // COLUMNS
    ys = offsets(runs)
    panel_height = PANEL_HEAD + ys[-1] + BAR_PITCH + PANEL_FOOT
    header = 104
    width = MARGIN * 2 + LABEL_WIDTH + COLUMNS * PANEL_WIDTH
    height = header + rows * panel_height + MARGIN

    first = next((r for r in runs if "launches" in r), runs[0])
    machine = results.get("machine", {})
    swift = (machine.get("swift") or "").replace("Swift version ", "Swift ").split(" (")[0]
    title = "swift-go-plugin: the same workloads, host → plugin" + (" (quick run)" if results.get("quick") else "")
    details = (f"{results.get('date', '')} · {machine.get('cpus', '?')} CPUs · {swift} · "
               f"{(machine.get('go') or '').replace('go version ', '')} · {first.get('launches')} launches, "
               f"{first.get('calls')} sequential Gets, {first.get('concurrentCalls')} Gets by "
               f"{first.get('callers')} callers, {first.get('bulkMiB', 0):.0f} MiB in {first.get('chunkKiB')} KiB "
               f"chunks · ratios are to {BASELINE} of this run")

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="{FONT}">']
    out.append("<defs>" + "".join(hatch(c) for c in sorted(set(colours.values()) | {"#4d4d4d"})) + "</defs>")
    out.append(f'<rect width="{width}" height="{height}" fill="#fff"/>')
    out.append(text(MARGIN, MARGIN + 14, title, size=17, weight="bold"))
    out.append(text(MARGIN, MARGIN + 34, details, size=11, fill="#555"))
    out += legend(MARGIN, MARGIN + 46, pairs, colours, has_dynamic)

    for index, metric in enumerate(METRICS):
        row, column = divmod(index, COLUMNS)
        y0 = header + row * panel_height
        x0 = MARGIN + LABEL_WIDTH + column * PANEL_WIDTH
        out += panel(x0, y0, runs, baseline, metric, colours)
        if column == 0:
            # The pairs' names once per row of panels: every panel lists them in the same order.
            for y_offset, run in zip(ys, runs):
                y = y0 + PANEL_HEAD + y_offset + BAR_HEIGHT - 3
                out.append(text(x0 - 10, y, run.get("label", "?"), size=12, anchor="end",
                                weight="bold" if pair_of(run) == BASELINE else "normal"))
        if column > 0:
            out.append(f'<line x1="{x0 - 14}" y1="{y0 + 4}" x2="{x0 - 14}" y2="{y0 + panel_height - 10}" '
                       f'stroke="#e2e2e2"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__.strip().splitlines()[-3], file=sys.stderr)
        return 2
    source = sys.argv[1]
    target = sys.argv[2] if len(sys.argv) == 3 else os.path.splitext(source)[0] + ".svg"
    with open(source) as f:
        results = json.load(f)
    if not results.get("runs"):
        print(f"bench_chart.py: no runs in {source}", file=sys.stderr)
        return 1
    with open(target, "w") as f:
        f.write(chart(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
