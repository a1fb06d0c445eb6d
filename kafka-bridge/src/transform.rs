//! Sink `transforms:`, run in the bridge on each record before it is sent (Fluvio 0.18's SPU
//! does not apply them to the bridge's consumer-id stream). A record the chain filters out is
//! not loss: its offset counts as mirrored. A record the chain rejects, or turns into several
//! (exactly once resumes on one Kafka record per Fluvio offset), is refused like a record
//! Kafka refuses: the bridge stops on it, or writes it to the dead-letter topic. With
//! `tombstones: true`, delete events become tombstones (the post's id, no value) before any
//! chain, and other events are filtered out.

use anyhow::Result;
use bytes::Bytes;
use connector_runtime::metrics::{Counter, Metrics};
use connector_runtime::transforms::{ModuleSpec, TransformChain};
use connector_runtime::Record;

use crate::input::SourceRecord;
use crate::mirror::{Refused, RefusedBy};

/// What the chain made of one record.
#[derive(Debug, PartialEq, Eq)]
pub enum Transformed {
    /// Send this (the input's partition and offset, the chain's key and value).
    Send(SourceRecord),
    /// Filtered out: nothing to send, the offset is done (the record keeps its position and
    /// time, not its bytes).
    Filtered(SourceRecord),
}

/// One partition's chain (none configured: records pass as they are).
pub struct SinkTransforms {
    chain: Option<TransformChain>,
    tombstones: bool,
    filtered: Counter,
}

impl SinkTransforms {
    /// Initialise the chain for one partition (60-300 ms per module).
    pub fn new(modules: &[ModuleSpec], tombstones: bool, metrics: &Metrics) -> Result<Self> {
        let chain = if modules.is_empty() {
            None
        } else {
            Some(TransformChain::new(modules.to_vec())?)
        };
        Ok(Self {
            chain,
            tombstones,
            filtered: metrics.counter(
                "filtered_total",
                "records the sink transforms filtered out (their offsets count as mirrored)",
            ),
        })
    }

    pub fn apply(&mut self, mut rec: SourceRecord) -> Result<Transformed, Refused> {
        if self.tombstones {
            return Ok(match deleted_post(&rec.value) {
                // No value: the mirror sends it as a Kafka tombstone.
                Some(id) => Transformed::Send(SourceRecord {
                    key: Some(id.into_bytes()),
                    value: Vec::new(),
                    ..rec
                }),
                None => {
                    self.filtered.inc();
                    Transformed::Filtered(rec)
                }
            });
        }
        let Some(chain) = self.chain.as_mut() else {
            return Ok(Transformed::Send(rec));
        };
        // The bytes move into the chain's input (no copy); a refused record gets them back.
        let input = Record {
            key: rec.key.take().map(Bytes::from),
            value: Bytes::from(std::mem::take(&mut rec.value)),
            timestamp_ms: rec.timestamp_ms,
        };
        let refuse = |mut rec: SourceRecord, reason: String| {
            rec.key = input.key.as_ref().map(|k| k.to_vec());
            rec.value = input.value.to_vec();
            Refused {
                by: RefusedBy::Transforms,
                through: rec.offset,
                record: rec,
                isolated: true,
                reason,
            }
        };
        let mut out = match chain.apply(&input) {
            Ok(out) => out,
            // The first line says why; the engine's details after it repeat the record.
            Err(e) => {
                let why = e.to_string();
                let first = why.lines().next().unwrap_or_default().to_string();
                return Err(refuse(rec, first));
            }
        };
        match out.len() {
            0 => {
                self.filtered.inc();
                Ok(Transformed::Filtered(rec))
            }
            1 => {
                let r = out.pop().expect("one record");
                Ok(Transformed::Send(SourceRecord {
                    key: r.key.map(|k| k.to_vec()),
                    value: r.value.to_vec(),
                    ..rec
                }))
            }
            n => Err(refuse(
                rec,
                format!("the chain made {n} records of it; a sink transform may keep, change or drop a record, not split it (split on the source side)"),
            )),
        }
    }
}

/// The id of the post a delete event removes: v1.1 `{"delete": {"status": {"id_str"}}}` or v2
/// compliance `{"data": {"delete": {"tweet": {"id"}}}}`.
pub fn deleted_post(value: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(value).ok()?;
    let status = &v["delete"]["status"];
    status["id_str"]
        .as_str()
        .map(str::to_string)
        .or_else(|| status["id"].as_u64().map(|n| n.to_string()))
        .or_else(|| {
            v["data"]["delete"]["tweet"]["id"]
                .as_str()
                .map(str::to_string)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_events_of_both_dialects_name_the_post() {
        assert_eq!(
            deleted_post(br#"{"delete":{"status":{"id":1,"id_str":"1501","user_id":7}}}"#),
            Some("1501".into())
        );
        assert_eq!(
            deleted_post(br#"{"delete":{"status":{"id":1502,"user_id":7}}}"#),
            Some("1502".into())
        );
        assert_eq!(
            deleted_post(
                br#"{"data":{"delete":{"tweet":{"id":"1503","author_id":"7"},"event_at":"x"}}}"#
            ),
            Some("1503".into())
        );
        assert_eq!(
            deleted_post(br#"{"data":{"tweet_edit":{"tweet":{"id":"1504"}}}}"#),
            None
        );
        assert_eq!(deleted_post(b"{not json"), None);
    }
}
