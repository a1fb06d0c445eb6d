"""The README's main command, `./pipeline.sh`, run as a user runs it: against the private Fluvio
cluster of the test run (reused, so it must be left running), with its own ports and run folder.
It must show the pipeline alive (a live line, then what the ML consumer receives), refuse a
second start, and `--stop` must stop what it started and nothing else."""
import json
import os
import pathlib
import re
import shutil
import subprocess
import time

import pytest
from ports import free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "pipeline.sh"
STARTED = ("twitter-source", "kafka-bridge", "emulator", "kafka")


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
        "PIPELINE_DEPLOY": "binary",  # the cdk branch: e2e/tests/test_cdk.py
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
    assert len(re.findall(r"(\d+) reconnects\) .* \| (\d+) errors", out.stdout)) == 3, out.stdout
    summary = re.search(r"counts per stage so far: X stream (\d+) tweets -> SmartModules kept (\d+), "
                        r"filtered out (\d+) -> Fluvio topic tweets -> Kafka mirrored (\d+)", out.stderr)
    assert summary, out.stderr
    seen, kept, dropped, mirrored_now = map(int, summary.groups())
    assert seen >= tweets[-1] and kept + dropped <= seen and mirrored_now >= 5, summary.group(0)

    # The seed's consumer as its users ran it (`pip install kafka-python`, no codec extras):
    # it decodes the mirror as the bridge writes it by default.
    from kafka import KafkaConsumer
    consumer = KafkaConsumer("tweets", bootstrap_servers=f"127.0.0.1:{env['PIPELINE_KAFKA_PORT']}",
                             consumer_timeout_ms=30000)
    seen = []
    for message in consumer:
        seen.append(json.loads(message.value))
        if len(seen) == 5:
            break
    consumer.close()
    assert len(seen) == 5 and all(r["id"].isdigit() for r in seen), seen

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


def test_pipeline_on_bluesky_carries_posts_into_kafka_as_the_same_record(pipeline_env):
    """`PIPELINE_SOURCE=bluesky ./pipeline.sh`: the emulator's Jetstream, Bluesky.yaml's filter and
    shape, the bridge, and the ML consumer reading posts in the record tweets have."""
    env = dict(pipeline_env, PIPELINE_SOURCE="bluesky")
    run = pathlib.Path(env["PIPELINE_RUN_DIR"])
    out = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300)
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(run.glob("*.log")))
    assert out.returncode == 0, f"{out.stdout}\n{out.stderr}\n{logs}"
    posts = [int(m) for m in re.findall(r"Bluesky\s+(\d+) posts", out.stdout)]
    assert len(posts) == 3 and posts[-1] > 0, out.stdout
    records = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert len(records) == 5, out.stdout
    for r in records:
        assert r["id"].startswith("at://did:plc:") and r["source"] == "bluesky", r
        assert r["lang"] in ("en", "es", "fr", "pt"), r  # Bluesky.yaml's filter
    assert "instances: [ws://127.0.0.1:" in (run / "source.yaml").read_text()
    stop = subprocess.run(["bash", str(SCRIPT), "--stop"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert stop.returncode == 0, stop
    assert pids(run) == {}


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


def test_offline_tweets_keep_flowing_while_it_runs(pipeline_env):
    """Generated tweets, not a recording that runs out: every tick of the live line counts new
    tweets (a user saw 0/s for 22 s once 398 recorded tweets were through)."""
    env = dict(pipeline_env, PIPELINE_WATCH_SECS="14")
    out = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"{out.stdout}\n{out.stderr}"
    rates = [int(m) for m in re.findall(r"X stream\s+\d+ tweets \(\s*(\d+)/s", out.stdout)]
    assert len(rates) == 7 and all(r > 0 for r in rates[1:]), out.stdout


def binaries_but(env: dict, tmp_path, replaced: str):
    """A bin folder with the built binaries but `replaced`, which the test writes itself."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real = pathlib.Path(env["PIPELINE_BIN_DIR"])
    for name in ("twitter-source", "kafka-bridge-sink", "x-emulator", "test-kafka-broker"):
        if name != replaced:
            (bin_dir / name).symlink_to(real / name)
    return bin_dir, real


def test_a_connector_that_dies_stops_the_watch_with_its_log_and_a_hint(pipeline_env, tmp_path):
    """The source given a wrong token: the emulator answers 401 like X, the connector stops, and
    the watch says so at its next tick with the log's tail and what to check."""
    env = pipeline_env
    bin_dir, real = binaries_but(env, tmp_path, "twitter-source")
    wrong = tmp_path / "wrong-secrets.env"
    wrong.write_text("TWITTER_BEARER_TOKEN=not-the-token\n")
    source = bin_dir / "twitter-source"
    # The real connector, handed a secrets file with a token the emulator refuses.
    source.write_text(f"#!/bin/sh\nexec {real / 'twitter-source'} --config \"$2\" --secrets {wrong} \"$5\" \"$6\"\n")
    source.chmod(0o755)
    env["PIPELINE_BIN_DIR"] = str(bin_dir)
    env["PIPELINE_WATCH_SECS"] = "30"
    started = time.monotonic()
    out = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, f"{out.stdout}\n{out.stderr}"
    assert "twitter-source stopped" in out.stderr and "last 20 lines" in out.stderr, out.stderr
    assert "401" in out.stderr, "the log's tail shows X's answer"
    assert "hint: X refused the credentials" in out.stderr, out.stderr
    assert "the ML consumer" not in out.stderr, "the watch stopped at the death, not at its end"
    assert pids(pathlib.Path(env["PIPELINE_RUN_DIR"])) == {}, "the rest was stopped"
    assert fluvio_answers(env)
    assert time.monotonic() - started < 200


def fake_path(tmp_path, tools):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in tools:
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    return bin_dir


def test_install_fluvio_says_where_the_installer_cannot_be_reached(tmp_path):
    bin_dir = fake_path(tmp_path, ("dirname", "cargo", "mvn", "python3", "curl", "bash"))
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "PIPELINE_RUN_DIR": str(tmp_path / "run"),
           "PIPELINE_FLUVIO_INSTALLER": "http://127.0.0.1:9/install.sh"}
    out = subprocess.run([shutil.which("bash"), str(SCRIPT), "--install-fluvio"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out
    assert "installer could not be reached" in out.stderr, out.stderr
    assert "compose/README.md" in out.stderr and "Fluvio's source" in out.stderr, out.stderr
    assert not (tmp_path / "run").exists()


def test_install_fluvio_runs_the_installer_and_goes_on(tmp_path):
    """An installer that puts fluvio and fluvio-run into ~/.fluvio/bin, as Fluvio's does: the
    script finds them and goes on to its next check (java is left missing to stop it there)."""
    real = shutil.which("fluvio")
    if not real or not shutil.which("fluvio-run"):
        pytest.skip("SKIPPED: fluvio and fluvio-run are not installed (the fake installer links them)")
    installer = tmp_path / "install.sh"
    installer.write_text(f"mkdir -p $HOME/.fluvio/bin\nln -sf {real} $HOME/.fluvio/bin/fluvio\n"
                         f"ln -sf {shutil.which('fluvio-run')} $HOME/.fluvio/bin/fluvio-run\n"
                         "echo 'fluvio installed'\n")
    bin_dir = fake_path(tmp_path, ("dirname", "cargo", "mvn", "python3", "curl", "bash", "mkdir", "ln"))
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "PIPELINE_RUN_DIR": str(tmp_path / "run"),
           "PIPELINE_FLUVIO_INSTALLER": installer.as_uri()}
    out = subprocess.run([shutil.which("bash"), str(SCRIPT), "--install-fluvio"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert "fluvio installed" in out.stderr, out.stderr
    assert "missing: fluvio" not in out.stderr, out.stderr
    assert out.returncode == 1 and "missing: java" in out.stderr, out.stderr


def test_a_failed_start_stops_what_it_started_and_leaves_the_reused_cluster(pipeline_env, tmp_path):
    env = pipeline_env
    bin_dir, _ = binaries_but(env, tmp_path, "test-kafka-broker")
    broken = bin_dir / "test-kafka-broker"
    broken.write_text("#!/bin/sh\necho 'broker: cannot bind its port' >&2\nexit 1\n")
    broken.chmod(0o755)
    env["PIPELINE_BIN_DIR"] = str(bin_dir)
    out = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 1, out
    assert "broker: cannot bind its port" in out.stderr and "start-up failed" in out.stderr, out.stderr
    assert pids(pathlib.Path(env["PIPELINE_RUN_DIR"])) == {}
    assert fluvio_answers(env)


def prometheus_tool(name: str):
    cached = pathlib.Path(os.environ.get("TWEET_PIPELINE_CACHE", pathlib.Path.home() / ".cache/tweet-pipeline"))
    local = cached / "prometheus" / "usr" / "bin" / name
    return str(local) if local.exists() else shutil.which(name)


def http(url: str):
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:  # not listening (yet)
        return 0, str(e)


def test_a_real_prometheus_scrapes_both_connectors(pipeline_env, tmp_path):
    """What users watch: /metrics of both connectors passes `promtool check metrics` and a real
    Prometheus scrapes them (counters, the two latency histograms, process figures); /health and
    /ready answer 200 while the pipeline runs, and the source's /ready turns 503 naming the X
    stream once the X side (the emulator) is gone."""
    prometheus, promtool = prometheus_tool("prometheus"), prometheus_tool("promtool")
    if not prometheus or not promtool:
        pytest.skip("SKIPPED: prometheus and promtool are not installed (./scripts/provision.sh unpacks "
                    "Debian's package where apt-get works)")
    env = pipeline_env
    out = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"{out.stdout}\n{out.stderr}"
    source, bridge = int(env["PIPELINE_METRICS_PORT"]), int(env["PIPELINE_METRICS_PORT"]) + 1

    bodies = ""
    for port in (source, bridge):
        status, body = http(f"http://127.0.0.1:{port}/metrics")
        assert status == 200, body
        bodies += body
        lint = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True)
        assert lint.returncode == 0, f"{lint.stdout}{lint.stderr}\n{body}"
        for probe in ("/health", "/ready"):
            status, answer = http(f"http://127.0.0.1:{port}{probe}")
            assert status == 200, (port, probe, answer)

    # Every metric the Grafana dashboard plots is one the connectors serve.
    dashboard = json.loads((ROOT / "compose/grafana/dashboards/tweet-pipeline.json").read_text())
    plotted = {name for p in dashboard["panels"] for t in p["targets"]
               for name in re.findall(r"\b((?:twitter_source|kafka_bridge_sink|process)_[a-z_]+)", t["expr"])}
    assert len(plotted) >= 10, plotted
    served = set(re.findall(r"^([a-z_]+)[{ ]", bodies, re.M))
    assert plotted <= served, plotted - served

    prom_port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: tweet-pipeline\n    static_configs: [{{targets: ['127.0.0.1:{source}', '127.0.0.1:{bridge}']}}]\n")
    server = subprocess.Popen([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                               f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                               f"--web.listen-address=127.0.0.1:{prom_port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def query(q: str) -> list:
            import urllib.parse
            status, body = http(f"http://127.0.0.1:{prom_port}/api/v1/query?query={urllib.parse.quote(q)}")
            return json.loads(body)["data"]["result"] if status == 200 else []

        deadline = time.monotonic() + 60
        wanted = {
            "up": lambda r: len(r) == 2 and all(x["value"][1] == "1" for x in r),
            "twitter_source_tweets_total": lambda r: r and float(r[0]["value"][1]) > 0,
            "kafka_bridge_sink_records_mirrored_total": lambda r: r and float(r[0]["value"][1]) > 0,
            "twitter_source_event_to_fluvio_seconds_count": lambda r: r and float(r[0]["value"][1]) > 0,
            "kafka_bridge_sink_fluvio_to_kafka_seconds_count": lambda r: r and float(r[0]["value"][1]) > 0,
            "histogram_quantile(0.99, kafka_bridge_sink_fluvio_to_kafka_seconds_bucket)":
                lambda r: r and 0 <= float(r[0]["value"][1]) < 60,
            "process_resident_memory_bytes": lambda r: len(r) == 2 and all(float(x["value"][1]) > 1e6 for x in r),
        }
        results = {}
        while time.monotonic() < deadline:
            results = {q: query(q) for q in wanted}
            if all(check(results[q]) for q, check in wanted.items()):
                break
            time.sleep(1)
        failing = {q: results.get(q) for q, check in wanted.items() if not check(results.get(q) or [])}
        assert not failing, failing
    finally:
        server.terminate()
        server.wait(30)

    # The X side gone: the source is alive but not ready, and says why.
    emulator = int((pathlib.Path(env["PIPELINE_RUN_DIR"]) / "emulator.pid").read_text())
    os.kill(emulator, 15)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and http(f"http://127.0.0.1:{source}/ready")[0] == 200:
        time.sleep(0.2)
    status, answer = http(f"http://127.0.0.1:{source}/ready")
    assert status == 503 and "X stream connected" in answer, answer
    assert http(f"http://127.0.0.1:{source}/health")[0] == 200
