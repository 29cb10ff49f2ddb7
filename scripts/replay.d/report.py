"""Turns the replay's results.json files into BENCHMARKS.md's tables and a plot.

    python report.py BENCHMARKS.md PLOT.svg DIR...

Each DIR holds a results.json from `cargo run --example replay -- score DIR`. The tables go
between `<!-- replay:begin -->` and `<!-- replay:end -->` in BENCHMARKS.md (appended when
the markers are absent); the plot shows median delay against false-alarm rate per detector.
"""

import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BUDGETS = [0.1, 0.15, 0.2, 0.25, 0.3]
BASELINE_FAMILIES = {"fixed", "bgnbd", "paretonbd"}
SHOWN_CANARY = {"canary", "canary-x1.5", "canary-x3", "canary-x5-c0.05", "canary-period", "canary-fixed-fallback"}
TITLES = {"cdnow": "CDNOW (real purchases)", "saas": "SaaS-like mix (generated)"}


def pct(v):
    return "–" if v is None else f"{100 * v:.1f} %"


def delay(s):
    if s["medianDelay"] is None:
        found = s["medianDelayDetected"]
        return "miss" + ("" if found is None else f" ({found} d when caught)")
    return f"{s['medianDelay']} d"


def shown(results):
    """The detectors of the main table: the fixed thresholds, P(alive) < 0.5, the default
    adaptive detectors and two of their gap factors."""
    out = []
    for d in results["detectors"]:
        if d["family"] in ("bgnbd", "paretonbd") and not d["name"].endswith("-p0.5"):
            continue
        # Of the adaptive families' gap-factor sweeps, the default and two neighbours; the
        # budget table and the plot show them all.
        if d["family"].startswith("canary") and d["name"] not in SHOWN_CANARY:
            continue
        out.append(d)
    return out


def families(results):
    """Per family, its operating points (false-alarm rate, median delay, label)."""
    fam = {"fixed": [(p["falseAlarmRate"], p["medianDelay"], f"{p['days']} d") for p in results["fixedSweep"]]}
    for d in results["detectors"]:
        if d["family"] == "fixed":
            continue
        fam.setdefault(d["family"], []).append((d["falseAlarmRate"], d["medianDelay"], d["name"]))
    return fam


def best_at(points, budget):
    ok = [(dl, label) for fa, dl, label in points if fa <= budget and dl is not None]
    return min(ok) if ok else None


def tables(results):
    name = results["dataset"]
    lines = [
        f"### {TITLES.get(name, name)}",
        "",
        f"{results['accounts']} accounts, {results['events']} events, days "
        f"{results['firstDay']}–{results['endDay']} (days since 1970); churned = no event in the "
        f"last {results['churnDays']} days of the data. Replayed into ClickHouse in "
        f"{results['replaySeconds']:.0f} s.",
        "",
        "| detector | source | false alarms (of returns) | median delay | precision | recall |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for d in shown(results):
        lines.append(
            f"| `{d['name']}` | {d['source']} | {pct(d['falseAlarmRate'])} ({d['falseAlarms']} of "
            f"{d['returning']}) | {delay(d)} | {pct(d['precision'])} | {pct(d['recall'])} "
            f"({d['detected']} of {d['churned']}) |"
        )
    fam = families(results)
    lines += [
        "",
        "Best median delay at a false-alarm budget (the earliest operating point of each family "
        "whose false-alarm rate is within the budget; fixed thresholds swept over 1–365 days):",
        "",
        "| family | " + " | ".join(f"≤ {b:.2f}" for b in BUDGETS) + " |",
        "| --- | " + " | ".join("---:" for _ in BUDGETS) + " |",
    ]
    for f, points in fam.items():
        cells = []
        for b in BUDGETS:
            best = best_at(points, b)
            cells.append("–" if best is None else f"{best[0]} d (`{best[1]}`)")
        lines.append(f"| {f} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def plot(all_results, path):
    fig, axes = plt.subplots(1, len(all_results), figsize=(6 * len(all_results), 4.5), squeeze=False)
    for ax, results in zip(axes[0], all_results):
        for f, points in families(results).items():
            pts = sorted((fa, dl) for fa, dl, _ in points if dl is not None)
            if not pts:
                continue
            xs, ys = zip(*pts)
            style = "-" if f in BASELINE_FAMILIES else "o-"
            ax.plot([100 * x for x in xs], ys, style, label=f, markersize=5)
        for d in results["detectors"]:
            if d["family"] == "fixed" and d["medianDelay"] is not None:
                ax.annotate(d["name"], (100 * d["falseAlarmRate"], d["medianDelay"]), fontsize=7)
        ax.set_title(TITLES.get(results["dataset"], results["dataset"]))
        ax.set_xlabel("false alarms, % of quiet spells that ended with a return")
        ax.set_ylabel("median detection delay, days (misses counted)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None})


def main(benchmarks, plot_path, dirs):
    all_results = []
    for d in dirs:
        with open(os.path.join(d, "results.json")) as f:
            all_results.append(json.load(f))
    lines = ["<!-- replay:begin -->", ""]
    for r in all_results:
        lines += tables(r)
    lines += [f"![median delay against false alarms]({os.path.relpath(plot_path, os.path.dirname(benchmarks))})", "", "<!-- replay:end -->"]
    block = "\n".join(lines)
    text = open(benchmarks).read()
    begin, end = "<!-- replay:begin -->", "<!-- replay:end -->"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n## Replay: detection delay against false alarms\n\n" + block + "\n"
    with open(benchmarks, "w") as f:
        f.write(text)
    plot(all_results, plot_path)
    print(block)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
