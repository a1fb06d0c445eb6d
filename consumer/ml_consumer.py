#!/usr/bin/env python3
"""Example ML consumer: reads Kafka topic `tweets` as a consumer group and turns each shaped
tweet (the tweet-shape record, see smartmodules/tweet-shape/tweet.schema.json) into a feature
dict, ready for a model. Raw v1.1/v2 tweets are accepted too (only the id and text are used).

    python consumer/ml_consumer.py --brokers 127.0.0.1:9092 [--group ml] [--max N]

Offsets are committed after each record is handled (at-least-once), so a crash re-reads
at most what was in hand; the `fluvio.offset` header lets a model store deduplicate.
"""
import argparse
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
    }


def parse(value: bytes) -> dict:
    """A shaped record, or a raw v1.1/v2 tweet reduced to the fields `features` reads."""
    doc = json.loads(value)
    if doc.get("schema", "").startswith("tweet/"):
        return doc
    data = doc.get("data", doc)
    return {"id": data.get("id_str") or data.get("id"), "text": data.get("text"), "lang": data.get("lang")}


def run(brokers: str, topic: str, group: str, max_records: int | None, out=sys.stdout) -> int:
    from confluent_kafka import Consumer

    consumer = Consumer({
        "bootstrap.servers": brokers,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    n = 0
    try:
        while not stopping and (max_records is None or n < max_records):
            msg = consumer.poll(1.0)
            if msg is None:
                continue
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
                print(json.dumps(row, ensure_ascii=False), file=out, flush=True)
            consumer.commit(message=msg, asynchronous=False)
            n += 1
    finally:
        consumer.close()
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--brokers", default="127.0.0.1:9092")
    ap.add_argument("--topic", default="tweets")
    ap.add_argument("--group", default="ml-features")
    ap.add_argument("--max", type=int, default=None, help="stop after this many records")
    a = ap.parse_args()
    run(a.brokers, a.topic, a.group, a.max)


if __name__ == "__main__":
    main()
