"""Watch a Kafka topic as a read_committed consumer sees it live (confluent-kafka): for each
record, print its fluvio.offset header and the wall-clock time (Unix ms) it became visible;
stops after N records or 180 s. Used by the end-to-end bench: watch.py BROKER TOPIC N."""
import sys
import time

from confluent_kafka import Consumer, KafkaException

broker, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = Consumer({"bootstrap.servers": broker, "group.id": f"watch-{time.time()}",
              "enable.auto.commit": False, "auto.offset.reset": "earliest",
              "isolation.level": "read_committed", "fetch.wait.max.ms": 5,
              "topic.metadata.refresh.interval.ms": 200})
deadline = time.time() + 180
while time.time() < deadline:
    md = c.list_topics(topic, timeout=5)
    if topic in md.topics and md.topics[topic].error is None and md.topics[topic].partitions:
        break
    time.sleep(0.05)
c.subscribe([topic])
seen = 0
out = sys.stdout
while seen < n and time.time() < deadline:
    for m in c.consume(num_messages=1000, timeout=0.05):
        if m.error():
            raise KafkaException(m.error())
        now = int(time.time() * 1000)
        offset = dict(m.headers() or []).get("fluvio.offset", b"-1").decode()
        out.write(f"{offset} {now}\n")
        seen += 1
out.flush()
c.close()
