//! Record encoding: what one Fluvio record becomes in Kafka. Its key and value (an empty value
//! is a tombstone where tombstones are asked for), its partition, its CreateTime, and the
//! `fluvio.*` headers the resume reads back (plus the dead-letter topic's `error.*` ones).

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use crate::config::KafkaConfig;
use crate::input::SourceRecord;
use crate::timestamps::Stamp;

/// Where and how a record is written.
pub(super) struct Encoding<'a> {
    pub cfg: &'a KafkaConfig,
    /// The Fluvio topic the record comes from (its `fluvio.topic` header).
    pub fluvio_topic: &'a str,
    /// The mirror's topic, or the dead-letter topic.
    pub topic: &'a str,
    /// More headers (the dead-letter topic's reasons).
    pub extra: &'a [(&'a str, &'a str)],
    pub stamp: Stamp,
}

impl Encoding<'_> {
    fn dead_letter(&self) -> bool {
        self.topic != self.cfg.topic
    }

    /// The Kafka record for `rec`.
    pub fn record<'r>(&'r self, rec: &'r SourceRecord) -> FutureRecord<'r, [u8], [u8]> {
        let dead_letter = self.dead_letter();
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(self.topic);
        if !(self.cfg.tombstones && rec.value.is_empty() && !dead_letter) {
            record = record.payload(&rec.value[..]);
        }
        if let Some(k) = &rec.key {
            record = record.key(&k[..]);
        }
        if let Some(p) = self.cfg.partitioning.kafka_partition(rec.partition) {
            if !dead_letter {
                record = record.partition(p);
            }
        }
        if let Some(ts) = self.stamp.create_time {
            record = record.timestamp(ts);
        }
        if self.cfg.headers || dead_letter {
            record = record.headers(self.headers(rec));
        }
        record
    }

    fn headers(&self, rec: &SourceRecord) -> OwnedHeaders {
        let partition = rec.partition.to_string();
        let offset = rec.offset.to_string();
        let replaced = self.stamp.replaced.map(|t| t.to_string());
        let fluvio = [
            ("fluvio.topic", Some(self.fluvio_topic)),
            ("fluvio.partition", Some(partition.as_str())),
            ("fluvio.offset", Some(offset.as_str())),
            ("fluvio.timestamp", replaced.as_deref()),
        ];
        let all = fluvio
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .chain(self.extra.iter().copied());
        let mut headers = OwnedHeaders::new_with_capacity(4 + self.extra.len());
        for (key, value) in all {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            });
        }
        headers
    }
}
