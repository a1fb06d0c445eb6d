#!/usr/bin/env python3
"""Example ML consumer: reads Kafka topic `tweets` as a consumer group and turns each shaped
tweet (the tweet-shape record, see smartmodules/tweet-shape/tweet.schema.json) into a feature
dict, ready for a model. Raw v1.1/v2 tweets are accepted too (only the id and text are used).

    pip install -r consumer/requirements.txt
    python consumer/ml_consumer.py --brokers 127.0.0.1:9092 [--group ml] [--max N]
    python consumer/ml_consumer.py --brokers 127.0.0.1:9092 --batch train.csv --max 10000

Each record's offset is stored once it is handled and committed in the background
(`enable.auto.offset.store: false` + auto-commit): at-least-once without a synchronous commit
per record; a crash re-reads at most the last few seconds, and the `fluvio.offset` header lets
a model store deduplicate. It reads `read_committed` (confluent-kafka's default), so it sees
what the bridge mirrored exactly once. `--batch` writes the features as a CSV training batch
instead of JSON lines.
"""
import argparse
import csv
import json
import math
import re
import signal
import sys

WORD = re.compile(r"\w+", re.UNICODE)


def features(record: dict) -> dict:
    """Features of one shaped tweet; fields the record lacks become None, never guessed."""
    text = record.get("text") or ""
    author = record.get("author") or {}
    followers = author.get("followers")
    created_ms = record.get("created_at_ms")
    return {
        "id": record.get("id"),
        "lang": record.get("lang"),
        "kind": record.get("kind"),
        "tokens": len(WORD.findall(text)),
        "chars": len(text),
        "hashtags": [h.lower() for h in record.get("hashtags") or []],
        "n_mentions": len(record.get("mentions") or []),
        "n_urls": len(record.get("urls") or []),
        "has_media": bool(record.get("media")),
        "log_followers": None if followers is None else round(math.log10(1 + followers), 4),
        "verified": author.get("verified"),
        "hour_utc": None if created_ms is None else (created_ms // 3_600_000) % 24,
        "interests": sorted({r.get("tag") for r in record.get("matching_rules") or [] if r.get("tag")}),
        "source": record.get("source_api"),
    }


def parse(value: bytes) -> dict:
    """A shaped record, or a raw v1.1/v2 tweet reduced to the fields `features` reads."""
    doc = json.loads(value)
    if doc.get("schema", "").startswith("tweet/"):
        return doc
    data = doc.get("data", doc)
    return {"id": data.get("id_str") or data.get("id"), "text": data.get("text"), "lang": data.get("lang")}


COLUMNS = ["id", "fluvio_offset", "lang", "kind", "tokens", "chars", "hashtags", "n_mentions", "n_urls",
           "has_media", "log_followers", "verified", "hour_utc", "interests", "source"]


class CsvBatch:
    """Feature rows as CSV (lists joined with `|`), header first."""

    def __init__(self, out):
        self.writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore")
        self.writer.writeheader()

    def write(self, row: dict) -> None:
        flat = {k: "|".join(v) if isinstance(v, list) else ("" if v is None else v) for k, v in row.items()}
        self.writer.writerow(flat)


class JsonLines:
    def __init__(self, out):
        self.out = out

    def write(self, row: dict) -> None:
        self.out.write(json.dumps(row, ensure_ascii=False) + "\n")


def run(brokers: str, topic: str, group: str, max_records: int | None, out=sys.stdout,
        batch: bool = False, idle_secs: float | None = None) -> int:
    """Read until a signal, `max_records`, or (with `idle_secs`) that long without a record."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({
        "bootstrap.servers": brokers,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": True,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
    })
    consumer.subscribe([topic])
    sink = CsvBatch(out) if batch else JsonLines(out)
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    n = 0
    idle = 0.0
    try:
        while not stopping and (max_records is None or n < max_records):
            if idle_secs is not None and idle >= idle_secs:
                break
            want = 500 if max_records is None else min(500, max_records - n)
            msgs = consumer.consume(num_messages=want, timeout=0.5)
            idle = idle + 0.5 if not msgs else 0.0
            handled = {}
            for msg in msgs:
                if msg.error():
                    print(f"kafka: {msg.error()}", file=sys.stderr)
                    continue
                try:
                    row = features(parse(msg.value()))
                except (ValueError, AttributeError) as e:
                    print(f"skipped offset {msg.offset()}: {e}", file=sys.stderr)
                else:
                    offset = dict(msg.headers() or []).get("fluvio.offset")
                    row["fluvio_offset"] = int(offset) if offset else None
                    sink.write(row)
                handled[(msg.topic(), msg.partition())] = msg.offset()
                n += 1
            out.flush()
            # Once the batch is handled: its offsets are stored (one call per batch, not per
            # record) and committed in the background.
            if handled:
                consumer.store_offsets(offsets=[TopicPartition(t, p, o + 1) for (t, p), o in handled.items()])
    finally:
        out.flush()
        consumer.close()  # commits the stored offsets
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--brokers", default="127.0.0.1:9092")
    ap.add_argument("--topic", default="tweets")
    ap.add_argument("--group", default="ml-features")
    ap.add_argument("--max", type=int, default=None, help="stop after this many records")
    ap.add_argument("--batch", metavar="CSV", help="write a CSV training batch of features to this file")
    ap.add_argument("--idle", type=float, default=None, help="stop after this many seconds without a record")
    a = ap.parse_args()
    if a.batch:
        with open(a.batch, "w", newline="", encoding="utf-8") as f:
            n = run(a.brokers, a.topic, a.group, a.max, out=f, batch=True, idle_secs=a.idle or 10.0)
        print(f"wrote {n} rows to {a.batch}", file=sys.stderr)
    else:
        run(a.brokers, a.topic, a.group, a.max, idle_secs=a.idle)


if __name__ == "__main__":
    main()
