//! Where to resume: the `fluvio.offset` header of the last record in each Kafka partition.
//! With `same` (or `fixed`) partitioning the records of a Fluvio partition land in one Kafka
//! partition in order, so everything up to that offset is in Kafka and nothing after it: the
//! bridge resumes right after it, leaving neither a gap nor a duplicate whatever the crash.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;
use crate::mirror::client_config;

/// Fluvio partition -> the highest Fluvio offset found at the end of the Kafka topic.
pub fn last_mirrored(cfg: &KafkaConfig, fluvio_topic: &str) -> Result<HashMap<u32, i64>> {
    let mut settings = vec![
        ("bootstrap.servers".to_string(), cfg.brokers.clone()),
        (
            "group.id".to_string(),
            "kafka-bridge-resume-probe".to_string(),
        ),
        ("enable.auto.commit".to_string(), "false".to_string()),
        ("enable.partition.eof".to_string(), "false".to_string()),
    ];
    settings.extend(cfg.security_settings());
    let consumer: BaseConsumer = client_config(&settings)
        .create()
        .map_err(|e| anyhow!("kafka: resume reader: {e}"))?;
    let md = consumer
        .fetch_metadata(Some(&cfg.topic), Duration::from_secs(10))
        .map_err(|e| anyhow!("kafka: metadata of `{}`: {e}", cfg.topic))?;
    let partitions: Vec<i32> = md
        .topics()
        .first()
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    let mut found: HashMap<u32, i64> = HashMap::new();
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(&cfg.topic, p, Duration::from_secs(10))
            .map_err(|e| anyhow!("kafka: watermarks of `{}` partition {p}: {e}", cfg.topic))?;
        if high <= low {
            continue;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&cfg.topic, p, Offset::Offset(high - 1))?;
        consumer.assign(&tpl)?;
        let deadline = Instant::now() + Duration::from_secs(15);
        let last = loop {
            match consumer.poll(Duration::from_millis(500)) {
                Some(Ok(msg)) if msg.partition() == p => break Some(msg.detach()),
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::warn!(partition = p, error = %e, "resume read"),
                None => {}
            }
            if Instant::now() > deadline {
                break None;
            }
        };
        let Some(msg) = last else {
            anyhow::bail!(
                "kafka: could not read the last record of `{}` partition {p} (offset {})",
                cfg.topic,
                high - 1
            );
        };
        let header = |name: &str| -> Option<String> {
            let hs = msg.headers()?;
            hs.iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        if header("fluvio.topic").as_deref() != Some(fluvio_topic) {
            continue; // written by someone else, or from another Fluvio topic
        }
        if let (Some(fp), Some(off)) = (
            header("fluvio.partition").and_then(|v| v.parse().ok()),
            header("fluvio.offset").and_then(|v| v.parse().ok()),
        ) {
            let e = found.entry(fp).or_insert(off);
            *e = (*e).max(off);
        }
    }
    Ok(found)
}
