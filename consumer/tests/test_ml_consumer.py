"""The example ML consumer against a real Kafka broker (started by the test harness's
`test-kafka-broker`), reading as a consumer group."""
import io
import json
import os
import pathlib
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import ml_consumer  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]


def shaped(i: int) -> dict:
    return {
        "schema": "tweet/1", "id": str(1600000000000000000 + i), "created_at": "2022-12-01T10:00:00.000Z",
        "created_at_ms": 1669888800000 + i * 3_600_000, "lang": "en" if i % 2 else "fr",
        "text": f"Tweet {i} about #Rust and data models", "author": {"id": "42", "username": "ada", "name": "Ada",
        "followers": 999, "verified": False}, "hashtags": ["Rust"], "mentions": ["grace"] if i % 3 == 0 else [],
        "urls": [], "media": [], "kind": "original", "referenced": {"retweeted": None, "quoted": None, "replied_to": None},
        "geo": {"coordinates": None, "place": None, "country_code": None}, "metrics": None,
        "matching_rules": [{"id": "7", "tag": "rust"}], "source_api": "v2",
    }


def test_features_of_a_shaped_tweet():
    f = ml_consumer.features(shaped(3))
    assert f["tokens"] == 7 and f["hashtags"] == ["rust"] and f["n_mentions"] == 1
    assert f["log_followers"] == 3.0 and f["interests"] == ["rust"] and f["hour_utc"] == 13
    empty = ml_consumer.features({"id": "1", "text": None})
    assert empty["log_followers"] is None and empty["hour_utc"] is None and empty["tokens"] == 0


def test_raw_tweets_are_read_too():
    assert ml_consumer.parse(b'{"data":{"id":"5","text":"hi"}}')["id"] == "5"
    assert ml_consumer.parse(b'{"id_str":"6","text":"yo","user":{}}')["text"] == "yo"


@pytest.fixture(scope="module")
def broker():
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    binary = pathlib.Path(os.environ.get("TEST_KAFKA_BROKER_BIN", target / "debug" / "test-kafka-broker"))
    if not binary.exists():
        if os.environ.get("REQUIRE_KAFKA") == "1":
            pytest.fail(f"{binary} is not built")
        pytest.skip(f"SKIPPED: {binary} is not built (cargo build -p testkit)")
    proc = subprocess.Popen([str(binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    if not line.startswith("bootstrap="):
        proc.kill()
        pytest.fail(f"broker did not start: {line!r}")
    yield line.split("=", 1)[1]
    proc.stdin.close()
    proc.wait(timeout=60)


def test_consumer_group_reads_features_and_commits(broker):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": broker})
    admin.create_topics([NewTopic("tweets", 2, 1)])["tweets"].result()
    p = Producer({"bootstrap.servers": broker})
    for i in range(20):
        p.produce("tweets", key=shaped(i)["id"], value=json.dumps(shaped(i)), partition=i % 2,
                  headers=[("fluvio.offset", str(i).encode())])
    assert p.flush(10) == 0

    out = io.StringIO()
    assert ml_consumer.run(broker, "tweets", "ml-test", 20, out=out) == 20
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(shaped(i)["id"] for i in range(20))
    assert {r["lang"] for r in rows} == {"en", "fr"}
    assert all(r["fluvio_offset"] is not None for r in rows)

    # The group committed: a second run of the same group gets nothing new.
    out2 = io.StringIO()
    p.produce("tweets", value=json.dumps(shaped(99)), partition=0)
    p.flush(10)
    assert ml_consumer.run(broker, "tweets", "ml-test", 1, out=out2) == 1
    assert json.loads(out2.getvalue())["id"] == shaped(99)["id"]


def test_a_training_batch_as_csv(broker, tmp_path):
    import csv

    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": broker})
    admin.create_topics([NewTopic("batch", 1, 1)])["batch"].result()
    p = Producer({"bootstrap.servers": broker})
    for i in range(30):
        p.produce("batch", value=json.dumps(shaped(i)), headers=[("fluvio.offset", str(i).encode())])
    assert p.flush(10) == 0
    out = tmp_path / "train.csv"
    # As the module docstring says to run it.
    r = subprocess.run([sys.executable, str(ROOT / "consumer" / "ml_consumer.py"), "--brokers", broker,
                        "--topic", "batch", "--group", "ml-batch", "--batch", str(out), "--idle", "3"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "wrote 30 rows" in r.stderr, r.stderr
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["fluvio_offset"]) for r in rows] == list(range(30))
    assert rows[3]["hashtags"] == "rust" and rows[3]["tokens"] == "7" and rows[0]["lang"] == "fr"
    assert list(rows[0].keys())[:2] == ["id", "fluvio_offset"]
