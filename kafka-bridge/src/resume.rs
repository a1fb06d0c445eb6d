//! What Kafka already holds: the `fluvio.offset` header of the newest record a Fluvio partition
//! has in a Kafka partition. The records of one Fluvio partition reach one Kafka partition in
//! order (idempotent producer), so everything of it up to that offset is there and nothing
//! after. The bridge asks at start (to resume right after it): neither a gap nor a duplicate,
//! whatever the crash. With transactions the reader sees committed records only, and a Fluvio
//! partition spread over several Kafka partitions (`key` partitioning, the dead-letter topic)
//! resumes after the highest offset found in any of them: transactions commit in order, so
//! everything before it is committed too.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::config::KafkaConfig;
use crate::mirror::client_config;

/// The tail reader's client context: reaching a partition's end is how a scan ends, not an
/// error worth a log line.
struct EndIsNoError;

impl ClientContext for EndIsNoError {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(rdkafka::error::RDKafkaErrorCode::PartitionEOF) {
            tracing::trace!(reason, "end of partition");
        } else {
            tracing::error!(error = %error, reason, "kafka client error (tail reader)");
        }
    }
}

impl ConsumerContext for EndIsNoError {}

/// How far back to look for a Fluvio partition's newest record in one Kafka partition
/// (records of other Fluvio partitions or other writers may sit after it).
const SCAN_LIMIT: i64 = 1_000_000;

/// The newest offset of each Fluvio partition that Kafka holds, in the Kafka partition the
/// partitioning sends it to (partitions it spreads over several are left out), read on the
/// blocking pool.
pub async fn newest_offsets(
    cfg: &KafkaConfig,
    topic: &str,
    fluvio_topic: &str,
    partitions: &[u32],
    spread: Spread,
) -> Result<HashMap<u32, i64>> {
    let (cfg, topic, fluvio_topic, partitions) = (
        cfg.clone(),
        topic.to_string(),
        fluvio_topic.to_string(),
        partitions.to_vec(),
    );
    tokio::task::spawn_blocking(move || {
        let tail = KafkaTail::open(&cfg, &topic, &fluvio_topic)?;
        let everywhere = match spread {
            Spread::ByPartitioning => None,
            Spread::Everywhere => Some(tail.partitions()?),
        };
        let mut found = HashMap::new();
        for p in partitions {
            let kafka_partitions = match (&everywhere, cfg.partitioning.kafka_partition(p)) {
                (Some(all), _) => all.clone(),
                (None, Some(k)) => vec![k],
                (None, None) => continue,
            };
            for k in kafka_partitions {
                if let Some(offset) = tail.newest(k, p)? {
                    let newest = found.entry(p).or_insert(offset);
                    *newest = offset.max(*newest);
                }
            }
        }
        Ok(found)
    })
    .await?
}

/// Where a Fluvio partition's records are looked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spread {
    /// In the one Kafka partition the partitioning sends them to (none with `key`).
    ByPartitioning,
    /// In every Kafka partition of the topic.
    Everywhere,
}

/// A reader of the end of the Kafka topic (blocking).
struct KafkaTail {
    consumer: BaseConsumer<EndIsNoError>,
    topic: String,
    fluvio_topic: String,
}

impl KafkaTail {
    fn open(cfg: &KafkaConfig, topic: &str, fluvio_topic: &str) -> Result<Self> {
        let mut settings = vec![
            ("bootstrap.servers".to_string(), cfg.brokers.clone()),
            (
                "group.id".to_string(),
                "kafka-bridge-resume-probe".to_string(),
            ),
            ("enable.auto.commit".to_string(), "false".to_string()),
            ("enable.partition.eof".to_string(), "true".to_string()),
            // Records of aborted or open transactions are not in Kafka for our readers.
            ("isolation.level".to_string(), "read_committed".to_string()),
        ];
        settings.extend(cfg.security_settings());
        let consumer: BaseConsumer<EndIsNoError> = client_config(&settings)
            .create_with_context(EndIsNoError)
            .map_err(|e| anyhow!("kafka: tail reader: {e}"))?;
        Ok(Self {
            consumer,
            topic: topic.to_string(),
            fluvio_topic: fluvio_topic.to_string(),
        })
    }

    /// The topic's partitions.
    fn partitions(&self) -> Result<Vec<i32>> {
        let md = self
            .consumer
            .fetch_metadata(Some(&self.topic), Duration::from_secs(10))
            .map_err(|e| anyhow!("kafka: metadata of `{}`: {e}", self.topic))?;
        Ok(md
            .topics()
            .first()
            .map(|t| t.partitions().iter().map(|p| p.id()).collect())
            .unwrap_or_default())
    }

    /// The newest Fluvio offset of `fluvio_partition` in Kafka partition `kafka_partition`, or
    /// `None` when none is in its last [`SCAN_LIMIT`] records.
    fn newest(&self, kafka_partition: i32, fluvio_partition: u32) -> Result<Option<i64>> {
        let (low, high) = self
            .consumer
            .fetch_watermarks(&self.topic, kafka_partition, Duration::from_secs(10))
            .map_err(|e| {
                anyhow!(
                    "kafka: watermarks of `{}` partition {kafka_partition}: {e}",
                    self.topic
                )
            })?;
        // Look back one record, then ever larger windows, up to the limit.
        let (mut end, mut size) = (high, 1);
        while end > low && high - end < SCAN_LIMIT {
            let start = (end - size).max(low);
            if let Some(found) = self.newest_in(kafka_partition, fluvio_partition, start, end)? {
                return Ok(Some(found));
            }
            end = start;
            size *= 16;
        }
        Ok(None)
    }

    /// The newest record of `fluvio_partition` among Kafka offsets `from..to`.
    fn newest_in(
        &self,
        kafka_partition: i32,
        fluvio_partition: u32,
        from: i64,
        to: i64,
    ) -> Result<Option<i64>> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, kafka_partition, Offset::Offset(from))?;
        self.consumer.assign(&tpl)?;
        let deadline = Instant::now()
            + Duration::from_secs(15)
            + Duration::from_millis(((to - from) / 1000) as u64);
        let mut newest = None;
        loop {
            match self.consumer.poll(Duration::from_millis(500)) {
                Some(Ok(msg)) if msg.partition() == kafka_partition => {
                    if msg.offset() >= to {
                        break;
                    }
                    if let Some(off) = self.fluvio_offset(&msg, fluvio_partition) {
                        newest = Some(off);
                    }
                    if msg.offset() >= to - 1 {
                        break;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(KafkaError::PartitionEOF(p))) if p == kafka_partition => break,
                Some(Err(e)) => {
                    tracing::warn!(partition = kafka_partition, error = %e, "reading the end of the Kafka topic")
                }
                None => {}
            }
            if Instant::now() > deadline {
                bail!(
                    "kafka: could not read `{}` partition {kafka_partition} offsets {from}..{to}",
                    self.topic
                );
            }
        }
        Ok(newest)
    }

    /// The Fluvio offset a record of ours carries, if it comes from `fluvio_partition`.
    fn fluvio_offset(&self, msg: &BorrowedMessage<'_>, fluvio_partition: u32) -> Option<i64> {
        let headers = msg.headers()?;
        let header = |name: &str| {
            headers
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .and_then(|v| std::str::from_utf8(v).ok())
        };
        if header("fluvio.topic")? != self.fluvio_topic {
            return None; // written by someone else, or from another Fluvio topic
        }
        if header("fluvio.partition")?.parse::<u32>().ok()? != fluvio_partition {
            return None;
        }
        header("fluvio.offset")?.parse().ok()
    }
}
