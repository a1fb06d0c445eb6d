"""The README's main command, `./pipeline.sh`, run as a user runs it: against the private Fluvio
cluster of the test run (reused, so it must be left running), with its own ports and run folder.
It must show the pipeline alive (a live line, then what the ML consumer receives), refuse a
second start, and `--stop` must stop what it started and nothing else."""
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "pipeline.sh"
STARTED = ("twitter-source", "kafka-bridge", "emulator", "kafka")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def fluvio(env: dict, *args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("fluvio", path=env.get("FLUVIO_BIN_DIR") or env["PATH"])
    return subprocess.run([binary, *args], env=env, capture_output=True, text=True)


def fluvio_answers(env: dict) -> bool:
    return fluvio(env, "topic", "list").returncode == 0


@pytest.fixture
def pipeline_env(tmp_path):
    if not os.environ.get("FLV_PROFILE_PATH"):
        pytest.skip("SKIPPED: no Fluvio cluster for the tests (./test.sh starts one when fluvio and "
                    "fluvio-run are installed); pipeline.sh is not run against a user's own cluster")
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    env = dict(os.environ)
    env.update({
        "PIPELINE_RUN_DIR": str(tmp_path / "run"),
        "PIPELINE_BIN_DIR": str(target / "debug"),
        "PIPELINE_KAFKA_PORT": str(free_port()),
        "PIPELINE_EMULATOR_PORT": str(free_port()),
        "PIPELINE_METRICS_PORT": str(free_port()),
        "PIPELINE_WATCH_SECS": "6",
    })
    env.pop("TWITTER_BEARER_TOKEN", None)
    # As on a first run: the source and the bridge start together on a topic not there yet.
    fluvio(env, "topic", "delete", "tweets")
    yield env
    # Whatever the outcome, nothing this test started outlives it.
    subprocess.run(["bash", str(SCRIPT), "--stop"], env=env, capture_output=True, timeout=120)


def pids(run: pathlib.Path) -> dict:
    return {n: int((run / f"{n}.pid").read_text()) for n in STARTED if (run / f"{n}.pid").exists()}


def test_pipeline_runs_shows_records_and_stops_what_it_started(pipeline_env):
    env = pipeline_env
    run = pathlib.Path(env["PIPELINE_RUN_DIR"])
    out = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300)
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(run.glob("*.log")))
    assert out.returncode == 0, f"{out.stdout}\n{out.stderr}\n{logs}"

    mirrored = [int(m) for m in re.findall(r"Kafka:\s+(\d+) mirrored", out.stdout)]
    assert len(mirrored) == 3, out.stdout
    tweets = [int(m) for m in re.findall(r"X stream\s+(\d+) tweets", out.stdout)]
    assert tweets[-1] > 0, out.stdout
    # The filtered stream is billed per post: the spend is the tweets at $0.005.
    spend = [float(m) for m in re.findall(r"\$([0-9.]+) at pay-per-use", out.stdout)]
    assert len(spend) == 3 and spend[-1] > 0, out.stdout
    records = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert len(records) == 5, out.stdout
    for r in records:
        assert r["id"].isdigit() and r["fluvio_offset"] is not None, r
    assert "using the running Fluvio cluster" in out.stderr, out.stderr

    started = pids(run)
    assert set(started) == set(STARTED), started
    assert all(alive(p) for p in started.values()), started

    again = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "already running" in again.stdout, again

    stop = subprocess.run(["bash", str(SCRIPT), "--stop"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert stop.returncode == 0, stop
    deadline = time.monotonic() + 10
    while any(alive(p) for p in started.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in started.values()), started
    assert pids(run) == {}
    # The cluster was reused, not started: it is left running.
    assert fluvio_answers(env)


def test_missing_prerequisites_are_named_with_how_to_get_them(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "cargo", "mvn", "python3"):  # no java, no fluvio
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "PIPELINE_RUN_DIR": str(tmp_path / "run")}
    out = subprocess.run([shutil.which("bash"), str(SCRIPT)], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1, out
    assert "missing: java" in out.stderr and "JDK 17" in out.stderr, out.stderr
    assert "missing: fluvio and fluvio-run" in out.stderr and "installer" in out.stderr, out.stderr
    assert not (tmp_path / "run").exists(), "nothing is started or written before the check passes"


def test_a_failed_start_stops_what_it_started_and_leaves_the_reused_cluster(pipeline_env, tmp_path):
    env = pipeline_env
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real = pathlib.Path(env["PIPELINE_BIN_DIR"])
    for name in ("twitter-source", "kafka-bridge-sink", "x-emulator"):
        (bin_dir / name).symlink_to(real / name)
    broken = bin_dir / "test-kafka-broker"
    broken.write_text("#!/bin/sh\necho 'broker: cannot bind its port' >&2\nexit 1\n")
    broken.chmod(0o755)
    env["PIPELINE_BIN_DIR"] = str(bin_dir)
    out = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 1, out
    assert "broker: cannot bind its port" in out.stderr and "start-up failed" in out.stderr, out.stderr
    assert pids(pathlib.Path(env["PIPELINE_RUN_DIR"])) == {}
    assert fluvio_answers(env)
