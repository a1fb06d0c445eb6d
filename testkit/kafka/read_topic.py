"""Read a whole Kafka topic with confluent-kafka (a real client, librdkafka inside) and print
one JSON line per record: partition, offset, key/value as base64 (null key stays null; a null
value, a tombstone, says so in `tombstone`),
timestamp type and value, headers. Reads with isolation.level=read_committed (records of
aborted or open transactions are not shown), up to each partition's end as the client reports
it (a transaction's commit marker takes an offset no record has).
Used by the tests through testkit::kafka::read_topic: read_topic.py BROKER TOPIC [ISOLATION]."""
import base64
import json
import sys

from confluent_kafka import Consumer, KafkaError, TopicPartition

broker, topic = sys.argv[1], sys.argv[2]
isolation = sys.argv[3] if len(sys.argv) > 3 else "read_committed"
c = Consumer({"bootstrap.servers": broker, "group.id": "bridge-test-reader", "enable.auto.commit": False,
              "isolation.level": isolation, "enable.partition.eof": True})
md = c.list_topics(topic, timeout=10)
parts = sorted(md.topics[topic].partitions)
for p in parts:
    low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
    if high <= low:
        continue
    c.assign([TopicPartition(topic, p, low)])
    idle = 0
    while True:
        m = c.poll(1)
        if m is None:
            idle += 1
            if idle > 30:
                raise SystemExit(f"no end of partition {p} within 30 s")
            continue
        idle = 0
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                break
            raise SystemExit(str(m.error()))
        ts_type, ts = m.timestamp()
        print(json.dumps({
            "partition": m.partition(), "offset": m.offset(),
            "key": None if m.key() is None else base64.b64encode(m.key()).decode(),
            "value": base64.b64encode(m.value() or b"").decode(),
            "tombstone": m.value() is None,
            "ts_type": ts_type, "ts": ts,
            "headers": {k: (v.decode() if v is not None else None) for k, v in (m.headers() or [])},
        }))
c.close()
