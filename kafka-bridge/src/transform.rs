//! Sink `transforms:`, run in the bridge on each record before it is sent (Fluvio 0.18's SPU
//! does not apply them to the bridge's consumer-id stream). A record the chain filters out is
//! not loss: its offset counts as mirrored. A record the chain rejects, or turns into several
//! (exactly once resumes on one Kafka record per Fluvio offset), is refused like a record
//! Kafka refuses: the bridge stops on it, or writes it to the dead-letter topic.

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
    filtered: Counter,
}

impl SinkTransforms {
    /// Initialise the chain for one partition (60-300 ms per module).
    pub fn new(modules: &[ModuleSpec], metrics: &Metrics) -> Result<Self> {
        let chain = if modules.is_empty() {
            None
        } else {
            Some(TransformChain::new(modules.to_vec())?)
        };
        Ok(Self {
            chain,
            filtered: metrics.counter(
                "filtered_total",
                "records the sink transforms filtered out (their offsets count as mirrored)",
            ),
        })
    }

    pub fn apply(&mut self, mut rec: SourceRecord) -> Result<Transformed, Refused> {
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
