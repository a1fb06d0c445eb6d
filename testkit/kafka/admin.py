"""Small Kafka admin and producer actions for the tests, with confluent-kafka (a real client):
  admin.py alter-topic BROKER TOPIC KEY VALUE    set a topic config (incremental alter)
  admin.py create-topic BROKER TOPIC PARTITIONS [KEY=VALUE ...]
  admin.py leader BROKER TOPIC PARTITION          print the node id leading that partition
  admin.py foreign BROKER TOPIC N [FLUVIO_TOPIC]  write N records of another producer: without
      headers, or (with FLUVIO_TOPIC) with fluvio.* headers of that other Fluvio topic
Used through testkit::kafka."""
import sys

from confluent_kafka import Producer
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewTopic, ResourceType)

action, broker = sys.argv[1], sys.argv[2]
if action == "alter-topic":
    topic, key, value = sys.argv[3:6]
    admin = AdminClient({"bootstrap.servers": broker})
    res = ConfigResource(ResourceType.TOPIC, topic,
                         incremental_configs=[ConfigEntry(key, value,
                                                          incremental_operation=AlterConfigOpType.SET)])
    for f in admin.incremental_alter_configs([res]).values():
        f.result(timeout=30)
elif action == "create-topic":
    topic, partitions = sys.argv[3], int(sys.argv[4])
    config = dict(kv.split("=", 1) for kv in sys.argv[5:])
    admin = AdminClient({"bootstrap.servers": broker})
    for f in admin.create_topics([NewTopic(topic, partitions, 1, config=config)]).values():
        f.result(timeout=30)
elif action == "leader":
    topic, partition = sys.argv[3], int(sys.argv[4])
    md = AdminClient({"bootstrap.servers": broker}).list_topics(topic, timeout=30)
    print(md.topics[topic].partitions[partition].leader)
elif action == "foreign":
    topic, n = sys.argv[3], int(sys.argv[4])
    other = sys.argv[5] if len(sys.argv) > 5 else None
    p = Producer({"bootstrap.servers": broker, "enable.idempotence": True})
    for i in range(n):
        headers = None
        if other:
            headers = [("fluvio.topic", other), ("fluvio.partition", "0"),
                       ("fluvio.offset", str(10_000_000 + i))]
        p.produce(topic, key=f"foreign-{i}", value=f"a record of another producer {i}",
                  headers=headers)
        if i % 10_000 == 0:
            p.poll(0)
    left = p.flush(60)
    if left:
        raise SystemExit(f"{left} foreign records not delivered")
else:
    raise SystemExit(f"unknown action {action}")
