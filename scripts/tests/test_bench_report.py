"""docs/BENCHMARKS.md's table and charts: each target is checked against the value (or the
ratio, for a multiple), rows without a target stay blank, and the charts are real PNGs."""
import math
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import bench_report  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]


def row(value, ratio, target, unit="rec/s", what="x"):
    return {"stage": "s", "what": what, "value": value, "unit": unit, "baseline_what": "b",
            "baseline": value / ratio if ratio else math.nan, "ratio": ratio, "target": target}


def test_targets_are_checked():
    assert bench_report.met(row(145548.5, 1.46, ">= 100000 tweets/s on one core")) == "yes"
    assert bench_report.met(row(90000.0, 0.9, ">= 100000 tweets/s on one core")) == "NO"
    assert bench_report.met(row(131444.4, 0.86, ">= 1.0x")) == "NO"
    assert bench_report.met(row(131444.4, 27.54, ">= 10x")) == "yes"
    assert bench_report.met(row(65868.6, 0.51, ">= 3x the pipe")) == "NO"
    assert bench_report.met(row(29.0, 0.58, "< 50 ms", unit="ms")) == "yes"
    assert bench_report.met(row(57.8, 0.9, "<= 64 MB", unit="MB")) == "yes"
    assert bench_report.met(row(540.9, 1.0, "flat", unit="MB")) == "yes"
    assert bench_report.met(row(600.0, 1.2, "flat", unit="MB")) == "NO"
    assert bench_report.met(row(1.0, 1.0, "-")) == ""


def test_table_and_charts_from_a_results_file(tmp_path):
    results = tmp_path / "results.tsv"
    results.write_text(
        "BENCH\tsource\tdecode tweets/s\t145548.5\ttweets/s\ttarget\t100000.0\t1.46\t>= 100000 tweets/s\n"
        "BENCH\tbridge\tmirror | records\t65868.6\trec/s\tthe pipe\t129897.8\t0.51\t>= 3x the pipe\n"
        "BENCH\tbridge\tadded latency p99\t29.0\tms\ttarget\t50.0\t0.58\t< 50 ms\n")
    rows = bench_report.from_results(results)
    text = bench_report.table(rows)
    assert text.splitlines()[0] == bench_report.HEADER
    assert "| yes |" in text and "| **NO** |" in text and "mirror \\| records" in text
    written = bench_report.charts(rows, tmp_path)
    assert {p.name for p in written} == {"bench-throughput.png", "bench-latency.png"}
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)


def test_the_committed_table_reads_back_with_its_met_column():
    rows = bench_report.from_markdown(ROOT / "docs/BENCHMARKS.md")
    assert len(rows) > 20
    text = (ROOT / "docs/BENCHMARKS.md").read_text()
    assert bench_report.HEADER in text, "BENCHMARKS.md is written with the met column"
    for r in rows:
        assert r["stage"] and not math.isnan(r["value"]), r
