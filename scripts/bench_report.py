"""The benchmark table and charts of docs/BENCHMARKS.md, from the figures the benches report.

    python scripts/bench_report.py RESULTS.tsv --charts docs/   # bench.sh: BENCH lines of this run
    python scripts/bench_report.py --markdown docs/BENCHMARKS.md --charts docs/   # re-read a table

Prints the markdown table with a `met` column (each row's target checked against its value, or
its ratio when the target is a multiple like `>= 3x`), and writes two charts: every throughput
figure against its baseline (`bench-throughput.png`) and the latency percentiles against their
targets (`bench-latency.png`).
"""
import argparse
import math
import pathlib
import re
import sys

HEADER = "| stage | figure | value | unit | baseline | baseline value | ratio | target | met |"
RULE = "|---|---|---:|---|---|---:|---:|---|---|"
TARGET = re.compile(r"^(>=|<=|<|>)\s*([0-9][0-9,]*(?:\.[0-9]+)?)\s*(x)?")


def met(row: dict) -> str:
    """'yes', 'NO' or '' (no target) for one row."""
    target = row["target"].strip()
    if target in ("", "-"):
        return ""
    if target == "flat":
        return "yes" if abs(row["ratio"] - 1.0) <= 0.05 else "NO"
    m = TARGET.match(target)
    if not m:
        return ""
    op, number, multiple = m.group(1), float(m.group(2).replace(",", "")), m.group(3)
    x = row["ratio"] if multiple else row["value"]
    if math.isnan(x):
        return "NO"
    ok = {">=": x >= number, "<=": x <= number, "<": x < number, ">": x > number}[op]
    return "yes" if ok else "NO"


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def from_results(path: pathlib.Path) -> list:
    rows = []
    for line in path.read_text().splitlines():
        f = line.split("\t")
        if len(f) >= 9 and f[0] == "BENCH":
            rows.append({"stage": f[1], "what": f[2], "value": number(f[3]), "unit": f[4],
                         "baseline_what": f[5], "baseline": number(f[6]), "ratio": number(f[7]),
                         "target": f[8]})
    return rows


def from_markdown(path: pathlib.Path) -> list:
    rows = []
    for line in path.read_text().splitlines():
        if not line.startswith("| ") or line.startswith("| stage"):
            continue
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) < 8:
            continue
        rows.append({"stage": cells[0], "what": cells[1], "value": number(cells[2]), "unit": cells[3],
                     "baseline_what": cells[4], "baseline": number(cells[5]), "ratio": number(cells[6]),
                     "target": cells[7]})
    return rows


def table(rows: list) -> str:
    out = [HEADER, RULE]
    for r in rows:
        cells = [r["stage"], r["what"], f"{r['value']:.1f}", r["unit"], r["baseline_what"],
                 f"{r['baseline']:.1f}", f"{r['ratio']:.2f}", r["target"], met(r)]
        cells = [c.replace("|", "\\|") for c in cells]
        if cells[-1] == "NO":
            cells[-1] = "**NO**"
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def bar_chart(rows: list, folder: pathlib.Path, name: str, values: list, labels: list, title: str,
              xlabel: str, marks: list, log: bool = False) -> pathlib.Path:
    """One horizontal bar per row, coloured by whether its target is met; `marks` are
    (row index, x) ticks (targets, or 1.0 for a baseline)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colour = {"yes": "#2e7d32", "NO": "#c62828", "": "#546e7a"}
    fig, ax = plt.subplots(figsize=(11, 0.4 * len(rows) + 1.5))
    ax.barh(range(len(rows)), values, color=[colour[met(r)] for r in rows])
    for i, x in marks:
        ax.plot([x, x], [i - 0.4, i + 0.4], color="black", linewidth=1.5)
    if log:
        ax.set_xscale("log")
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    fig.tight_layout()
    path = folder / name
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def charts(rows: list, folder: pathlib.Path) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    rates = [r for r in rows if r["unit"] in ("rec/s", "tweets/s", "MB/s")
             and not math.isnan(r["ratio"]) and r["baseline_what"] != "(same run)"]
    if rates:
        written.append(bar_chart(
            rates, folder, "bench-throughput.png", [r["ratio"] for r in rates],
            [f"{r['stage']}: {r['what'][:60]} vs {r['baseline_what'][:32]}" for r in rates],
            "Throughput per stage against its baseline",
            "figure / its baseline in the same run, log scale (green: target met, red: not, grey: no target)",
            [(i, 1.0) for i in range(len(rates))], log=True))
    latency = [r for r in rows if r["unit"] == "ms" and "latency" in r["what"]]
    if latency:
        targets = [(i, float(m.group(2))) for i, r in enumerate(latency)
                   if (m := TARGET.match(r["target"].strip())) and not m.group(3)]
        written.append(bar_chart(
            latency, folder, "bench-latency.png", [r["value"] for r in latency],
            [f"{r['stage']}: {r['what'][:80]}" for r in latency], "Latency percentiles",
            "milliseconds (black tick: target)", targets))
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="?", type=pathlib.Path, help="BENCH lines (tab-separated)")
    p.add_argument("--markdown", type=pathlib.Path, help="read the rows of an existing table instead")
    p.add_argument("--charts", type=pathlib.Path, help="folder for the PNG charts")
    a = p.parse_args(argv)
    if bool(a.results) == bool(a.markdown):
        p.error("give a results file or --markdown, one of them")
    rows = from_results(a.results) if a.results else from_markdown(a.markdown)
    print(table(rows))
    missed = [r for r in rows if met(r) == "NO"]
    print()
    print(f"Targets: {sum(met(r) == 'yes' for r in rows)} met, {len(missed)} not met"
          + (": " + "; ".join(f"{r['stage']} {r['what']}" for r in missed) if missed else "") + ".")
    if a.charts:
        for path in charts(rows, a.charts):
            print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
