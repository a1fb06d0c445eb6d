#!/usr/bin/env python3
"""Benchmark of the example ML consumer (run by ./bench.sh): records per second through
`ml_consumer.run` (features, offsets stored, background commits) against a bare
confluent-kafka loop that only polls, in the same run, on the same topic of shaped tweets that
the bridge's defaults would write (gzip). Prints the figures; with BENCH_RESULTS set, appends
them as BENCH lines for docs/BENCHMARKS.md."""
import json
import os
import pathlib
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import ml_consumer  # noqa: E402

N = int(os.environ.get("BENCH_RECORDS", "100000"))


def shaped(i: int) -> dict:
    return {
        "schema": "tweet/1", "id": str(1800000000000000000 + i), "created_at": "2026-11-30T10:00:00.000Z",
        "created_at_ms": 1796032800000 + i * 37, "lang": ("en", "es", "ja", "pt")[i % 4],
        "text": f"Post {i}: training data for #MachineLearning and #RustLang, see https://t.co/x{i} @data{i % 97}",
        "author": {"id": str(1000 + i % 5000), "username": f"user{i % 5000}", "name": "A Name",
                   "followers": (i * 7919) % 250000, "verified": i % 50 == 0},
        "hashtags": ["MachineLearning", "RustLang"], "mentions": [f"data{i % 97}"],
        "urls": [f"https://example.org/{i}"], "media": [], "kind": ("original", "reply", "quote")[i % 3],
        "referenced": {"retweeted": None, "quoted": None, "replied_to": None},
        "geo": {"coordinates": None, "place": None, "country_code": None},
        "metrics": {"retweet_count": i % 13, "reply_count": i % 7, "like_count": i % 101, "quote_count": 0},
        "matching_rules": [{"id": "1", "tag": ("ml", "climate", "data")[i % 3]}], "source_api": "v2",
    }


def broker():
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    binary = os.environ.get("TEST_KAFKA_BROKER_BIN", str(target / "debug" / "test-kafka-broker"))
    proc = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    if not line.startswith("bootstrap="):
        proc.kill()
        sys.exit(f"broker did not start: {line!r}")
    return proc, line.split("=", 1)[1]


def bare_loop(brokers: str, topic: str, parse: bool) -> float:
    """A loop that only polls (and, with `parse`, decodes each value's JSON)."""
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": brokers, "group.id": f"bench-bare-{parse}", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    n, start = 0, None
    while n < N:
        msgs = c.consume(num_messages=500, timeout=0.5)
        if msgs and start is None:
            start = time.monotonic()
        for m in msgs:
            if not m.error():
                n += 1
                if parse:
                    json.loads(m.value())
    secs = time.monotonic() - start
    c.close()
    return N / secs


def ml_loop(brokers: str, topic: str) -> float:
    with open(os.devnull, "w") as sink:
        start = time.monotonic()
        n = ml_consumer.run(brokers, topic, "bench-ml", N, out=sink)
        return n / (time.monotonic() - start)


def report(what: str, value: float, baseline_what: str, baseline: float, target: str = "-") -> None:
    ratio = value / baseline if baseline > 0 else float("nan")
    print(f"consumer   {what:<52} {value:>12.1f} rec/s    vs {baseline_what:<44} {baseline:>12.1f}  ratio {ratio:>6.2f}x")
    if os.environ.get("BENCH_RESULTS"):
        with open(os.environ["BENCH_RESULTS"], "a") as f:
            f.write(f"BENCH\tconsumer\t{what}\t{value:.1f}\trec/s\t{baseline_what}\t{baseline:.1f}\t{ratio:.2f}\t{target}\n")


def main() -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    proc, brokers = broker()
    try:
        topic = "tweets"
        admin = AdminClient({"bootstrap.servers": brokers})
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result()
        p = Producer({"bootstrap.servers": brokers, "compression.type": "gzip", "linger.ms": 20})
        values = [json.dumps(shaped(i)) for i in range(N)]
        for i, v in enumerate(values):
            while True:
                try:
                    p.produce(topic, key=shaped(i)["id"], value=v, headers=[("fluvio.offset", str(i).encode())])
                    break
                except BufferError:
                    p.poll(0.1)
        assert p.flush(60) == 0
        avg = sum(map(len, values)) // N
        print(f"== example ML consumer, {N} shaped records of ~{avg} B, gzip ==")
        bare = bare_loop(brokers, topic, parse=False)
        parsing = bare_loop(brokers, topic, parse=True)
        ml = ml_loop(brokers, topic)
        what = f"ml_consumer.py features of {N} shaped records (~{avg} B)"
        report(what, ml, "bare confluent-kafka poll loop", bare)
        report(what, ml, "the same loop + json.loads of each value", parsing)
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)


if __name__ == "__main__":
    main()
