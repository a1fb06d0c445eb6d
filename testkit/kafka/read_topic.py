"""Read a whole Kafka topic with confluent-kafka (a real client, librdkafka inside) and print
one JSON line per record: partition, offset, key/value as base64 (null key stays null),
timestamp type and value, headers. Used by the tests through testkit::kafka::read_topic: read_topic.py BROKER TOPIC."""
import base64
import json
import sys

from confluent_kafka import Consumer, TopicPartition

broker, topic = sys.argv[1], sys.argv[2]
c = Consumer({"bootstrap.servers": broker, "group.id": "bridge-test-reader", "enable.auto.commit": False})
md = c.list_topics(topic, timeout=10)
parts = sorted(md.topics[topic].partitions)
for p in parts:
    low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
    if high <= low:
        continue
    c.assign([TopicPartition(topic, p, low)])
    seen = low
    while seen < high:
        m = c.poll(5)
        if m is None:
            continue
        if m.error():
            raise SystemExit(str(m.error()))
        ts_type, ts = m.timestamp()
        print(json.dumps({
            "partition": m.partition(), "offset": m.offset(),
            "key": None if m.key() is None else base64.b64encode(m.key()).decode(),
            "value": base64.b64encode(m.value() or b"").decode(),
            "ts_type": ts_type, "ts": ts,
            "headers": {k: (v.decode() if v is not None else None) for k, v in (m.headers() or [])},
        }))
        seen = m.offset() + 1
c.close()
