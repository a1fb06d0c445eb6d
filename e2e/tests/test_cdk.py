"""The cdk way, with the real `cdk` (PATH or FLUVIO_BIN_DIR; it is built from Fluvio's source like
`fluvio-run`): the README's cdk commands run as written from the repository root, then
`cdk deploy list`, `cdk deploy log` and `cdk deploy shutdown`; and `./pipeline.sh`'s cdk branch,
which deploys both connectors with cdk and must show records reaching the ML consumer.

cdk builds each connector itself (`cargo build --profile release --target <host>`), so the first
run of these tests takes minutes; the build is cached in CARGO_TARGET_DIR."""
import os
import pathlib
import re
import shlex
import shutil
import socket
import subprocess
import time

import pytest
from ports import free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
BUILD_TIMEOUT = 2400


def find(tool: str):
    return shutil.which(tool, path=os.environ.get("FLUVIO_BIN_DIR")) or shutil.which(tool)


@pytest.fixture
def cdk_env(tmp_path):
    cdk = find("cdk")
    if not cdk:
        pytest.skip("SKIPPED: cdk is not installed (PATH or FLUVIO_BIN_DIR); build it from Fluvio's "
                    "source (cargo build --release -p cdk) to run the cdk commands of the README")
    if not os.environ.get("FLV_PROFILE_PATH"):
        pytest.skip("SKIPPED: no Fluvio cluster for the tests (./test.sh starts one when fluvio and "
                    "fluvio-run are installed)")
    env = dict(os.environ)
    # cdk keeps its index of deployments in the temporary folder: one per test.
    env["TMPDIR"] = str(tmp_path)
    env["PATH"] = f"{pathlib.Path(cdk).parent}{os.pathsep}{env['PATH']}"
    env.pop("TWITTER_BEARER_TOKEN", None)
    yield env


def readme_commands(prefix: str) -> list:
    """The README's shell lines that start with `prefix` (its comment cut off), as written."""
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S):
        for line in block.splitlines():
            if line.startswith(prefix):
                lines.append(line.split("  #", 1)[0].strip())
    return lines


def run(env, command, cwd=ROOT, timeout=120):
    return subprocess.run(shlex.split(command) if isinstance(command, str) else command, cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


def listed(env) -> dict:
    out = run(env, "cdk deploy list")
    assert out.returncode == 0, out
    return dict(re.findall(r"^\s*(\S+)\s+(Running|Stopped)\s*$", out.stdout, re.M))


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def wait_for(predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return predicate()


def test_the_readme_cdk_commands_as_written(cdk_env, tmp_path):
    env = cdk_env
    starts = readme_commands("cdk deploy")
    assert len(starts) == 3 and all(" start --config " in c for c in starts), starts
    register = readme_commands("scripts/register-smartmodules.sh")
    assert register, "the README registers the SmartModules before deploying"
    out = run(env, register[0], timeout=300)
    assert out.returncode == 0, out

    # The bridge's config points at a broker on 127.0.0.1:9092: one is started there when free.
    broker = None
    if port_is_free(9092):
        broker = subprocess.Popen([str(TARGET / "debug" / "test-kafka-broker"), "--port", "9092",
                                   "--stay"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, env=env)
        for line in broker.stdout:
            if line.startswith("bootstrap="):
                break
    secrets = ROOT / "secrets.env"
    made_secrets = not secrets.exists()
    if made_secrets:
        secrets.write_text("TWITTER_BEARER_TOKEN=a-token-the-test-made\n")
    names = {"Connector.yaml": "twitter-tweets", "kafka-bridge/config.yaml": "kafka-bridge",
             "Bluesky.yaml": "bluesky-posts"}
    try:
        for command in starts:
            out = run(env, command, timeout=BUILD_TIMEOUT)
            assert out.returncode == 0, f"{command}\n{out.stdout}\n{out.stderr}"
            name = names[re.search(r"--config (\S+)", command).group(1)]
            assert f"Started connector `{name}`" in out.stdout, out.stdout
        assert wait_for(lambda: listed(env) == {n: "Running" for n in names.values()}, 20), listed(env)

        # The source's log, through cdk: it started, read its config and secrets, and is trying
        # X (unreachable here), not stopped on an error.
        assert wait_for(lambda: "twitter" in run(env, "cdk deploy log --name twitter-tweets").stdout, 20)
        log = run(env, "cdk deploy log --name twitter-tweets")
        assert log.returncode == 0 and "a-token-the-test-made" not in log.stdout, log
        bridge_log = run(env, "cdk deploy log --name kafka-bridge").stdout
        assert "kafka" in bridge_log.lower(), bridge_log
        # The Bluesky source tries the public Jetstream instances (unreachable here), in turn.
        assert wait_for(lambda: "jetstream" in run(env, "cdk deploy log --name bluesky-posts").stdout.lower(), 20)
        assert listed(env)["bluesky-posts"] == "Running"
        assert listed(env)["twitter-tweets"] == "Running", log.stdout

        for name in names.values():
            out = run(env, ["cdk", "deploy", "shutdown", "--name", name])
            assert out.returncode == 0, out
        assert listed(env) == {}, "shut down connectors leave cdk's list"
        # SIGTERM from cdk: each connector stops cleanly (exit 0 is logged by the runtime).
        for name in names.values():
            log_file = ROOT / f"{name}.log"
            assert wait_for(lambda: "stopped cleanly" in log_file.read_text(), 30), log_file.read_text()[-2000:]
    finally:
        for name in names.values():
            run(env, ["cdk", "deploy", "shutdown", "--name", name])
            (ROOT / f"{name}.log").unlink(missing_ok=True)
        if made_secrets:
            secrets.unlink()
        if broker:
            broker.terminate()
            broker.wait(30)


def test_the_config_comments_say_the_readme_commands():
    """The cdk commands in the configs' comments are the README's (which the test above runs)."""
    readme = set(readme_commands("cdk deploy"))
    for config in ("Connector.yaml", "kafka-bridge/config.yaml", "Bluesky.yaml"):
        said = [line.lstrip("# ").strip() for line in (ROOT / config).read_text().splitlines()
                if line.startswith("#") and "cdk deploy" in line]
        assert said and set(said) <= readme, (config, said, readme)


def test_pipeline_sh_deploys_with_cdk_when_it_is_installed(cdk_env, tmp_path):
    env = dict(cdk_env)
    env.update({
        "PIPELINE_RUN_DIR": str(tmp_path / "run"),
        "PIPELINE_BIN_DIR": str(TARGET / "debug"),  # the emulator and the broker; cdk builds the connectors
        "PIPELINE_KAFKA_PORT": str(free_port()),
        "PIPELINE_EMULATOR_PORT": str(free_port()),
        "PIPELINE_METRICS_PORT": str(free_port()),  # and the bridge's, one above
        "PIPELINE_WATCH_SECS": "6",
    })
    env.pop("PIPELINE_DEPLOY", None)
    try:
        out = run(env, ["bash", "pipeline.sh"], timeout=BUILD_TIMEOUT)
        assert out.returncode == 0, f"{out.stdout}\n{out.stderr}"
        assert "deploying twitter-source and kafka-bridge with cdk" in out.stderr, out.stderr
        assert out.stderr.count("Started connector") == 2, out.stderr
        records = [line for line in out.stdout.splitlines() if line.startswith("{")]
        assert len(records) == 5, out.stdout
        assert listed(env) == {"twitter-tweets": "Running", "kafka-bridge": "Running"}, listed(env)
        log = run(env, "cdk deploy log --name kafka-bridge")
        assert log.returncode == 0 and log.stdout.strip(), log

        stop = run(env, ["bash", "pipeline.sh", "--stop"])
        assert stop.returncode == 0 and "stopping twitter-source (cdk)" in stop.stderr, stop
        assert listed(env) == {}, "--stop shuts the cdk deployments down"
    finally:
        run(env, ["bash", "pipeline.sh", "--stop"])
        for name in ("twitter-tweets", "kafka-bridge"):
            (ROOT / f"{name}.log").unlink(missing_ok=True)
