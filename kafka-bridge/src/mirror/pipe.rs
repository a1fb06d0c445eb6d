//! A partition's pipe: records sent in Fluvio order, their deliveries settled in the same
//! order, and the highest offset Kafka holds with every earlier one (acknowledged, and with
//! transactions also committed): what may be committed to Fluvio.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use connector_runtime::metrics::{Gauge, Metrics};
use futures_util::FutureExt;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, Producer};

use super::errors::is_permanent;
use super::transactions::TransactionFailed;
use super::{Mirror, Refused};
use crate::input::SourceRecord;

/// A record handed to Kafka: its acknowledgement to come, or arrived and not yet taken.
enum Sent {
    Pending(DeliveryFuture),
    /// The outcome arrived while the pipe was waiting for it (see [`PartitionPipe::front_arrived`]).
    Arrived(Outcome),
}

/// The outcome of one delivery.
type Outcome = Result<(), KafkaError>;

/// How often a wait for Kafka's acknowledgement says so in the log.
const WAIT_REPORT: Duration = Duration::from_secs(10);

impl Sent {
    fn now_or_never(&mut self) -> Option<Outcome> {
        match self {
            Sent::Pending(fut) => {
                let o = fut.now_or_never().map(outcome)?;
                *self = Sent::Arrived(o.clone());
                Some(o)
            }
            Sent::Arrived(o) => Some(o.clone()),
        }
    }

    /// The outcome, once Kafka gave it; a long wait (a broker away) is reported every
    /// [`WAIT_REPORT`]. Cancel-safe.
    async fn wait(&mut self, rec: &SourceRecord, sent_at: Instant) -> Outcome {
        let fut = match self {
            Sent::Arrived(o) => return o.clone(),
            Sent::Pending(fut) => fut,
        };
        loop {
            match tokio::time::timeout(WAIT_REPORT, &mut *fut).await {
                Ok(result) => {
                    let o = outcome(result);
                    *self = Sent::Arrived(o.clone());
                    return o;
                }
                Err(_) => tracing::warn!(
                    partition = rec.partition,
                    offset = rec.offset,
                    waited = ?sent_at.elapsed(),
                    "Kafka has not acknowledged this record yet (a broker away?); librdkafka keeps sending it, in order"
                ),
            }
        }
    }
}

pub(super) fn outcome(result: <DeliveryFuture as std::future::Future>::Output) -> Outcome {
    match result {
        Ok(Ok(_delivery)) => Ok(()),
        Ok(Err((e, _msg))) => Err(e),
        Err(_) => Err(KafkaError::Canceled),
    }
}

/// One record in a pipe: what was sent, its delivery, when, and its transaction (0: none).
struct InFlight {
    rec: SourceRecord,
    sent: Sent,
    at: Instant,
    txn: u64,
    /// Filtered out by the sink transforms: nothing was sent, the offset is done in turn.
    filtered: bool,
}

/// In-order deliveries of one Fluvio partition.
pub struct PartitionPipe {
    in_flight: VecDeque<InFlight>,
    /// Value bytes of `in_flight`.
    in_flight_bytes: usize,
    /// The highest offset Kafka holds (acknowledged, and committed with transactions), every
    /// earlier one too.
    acked: Option<i64>,
    in_flight_gauge: Gauge,
    acked_gauge: Gauge,
}

impl PartitionPipe {
    /// `acked`: what is known to be in Kafka already (where the partition resumes), if anything.
    pub fn new(partition: u32, metrics: &Metrics, acked: Option<i64>) -> Self {
        let p = partition.to_string();
        let mut pipe = Self {
            in_flight: VecDeque::new(),
            in_flight_bytes: 0,
            acked: None,
            in_flight_gauge: metrics.gauge_with(
                "in_flight",
                &[("partition", &p)],
                "records sent, not yet acknowledged (and committed, with transactions)",
            ),
            acked_gauge: metrics.gauge_with(
                "acked_offset",
                &[("partition", &p)],
                "highest Fluvio offset Kafka holds with all earlier ones (acknowledged, and committed with transactions)",
            ),
        };
        if let Some(a) = acked {
            pipe.mark_acked(a);
        }
        pipe
    }

    pub fn acked(&self) -> Option<i64> {
        self.acked
    }

    /// Send a record; waits for the oldest acknowledgements when too many are in flight.
    pub async fn push(&mut self, mirror: &Mirror, rec: SourceRecord) -> Result<()> {
        while self.in_flight.len() >= mirror.cfg.max_in_flight
            || (self.in_flight_bytes >= mirror.cfg.max_in_flight_bytes
                && !self.in_flight.is_empty())
        {
            if let Some(t) = &mirror.txn {
                t.hurry();
            }
            self.complete_front(mirror).await?;
        }
        self.collect_ready(mirror).await?;
        let (fut, txn) = match self.send_with_retry(mirror, &rec).await {
            Ok(sent) => sent,
            Err(e) if e.is::<TransactionFailed>() => {
                // The transaction failed under a record sent earlier: name it when it was
                // refused (its delivery reports the reason).
                return Err(self.failed_delivery(mirror).await.unwrap_or(e));
            }
            Err(e) => {
                // Refused before it left (too large for the producer): isolated, and what
                // came before it still goes to Kafka.
                if let Some(refused) = e.downcast_ref::<Refused>() {
                    if mirror.txn.is_some() && refused.record.offset == rec.offset {
                        self.drain(mirror).await?;
                        let mut refused = e.downcast::<Refused>().expect("refused");
                        refused.isolated = true;
                        return Err(refused.into());
                    }
                }
                // A send refused because the transaction failed under earlier records: the
                // first of them Kafka did not take (if its outcome is in) says what happened.
                if mirror.txn.is_some() {
                    if let Some((first, why)) = self.first_failed() {
                        mirror.doom();
                        return Err(self.widen(mirror.classify(&first, why)));
                    }
                }
                return Err(e);
            }
        };
        self.in_flight_bytes += rec.value.len();
        self.in_flight.push_back(InFlight {
            rec,
            sent: Sent::Pending(fut),
            at: Instant::now(),
            txn,
            filtered: false,
        });
        self.in_flight_gauge.set(self.in_flight.len() as u64);
        Ok(())
    }

    /// A record the sink transforms filtered out: its offset is done once every record
    /// before it is in Kafka.
    pub fn skip(&mut self, rec: SourceRecord) {
        if self.in_flight.is_empty() {
            self.mark_acked(rec.offset);
            return;
        }
        self.in_flight.push_back(InFlight {
            rec: SourceRecord {
                key: None,
                value: Vec::new(),
                ..rec
            },
            sent: Sent::Arrived(Ok(())),
            at: Instant::now(),
            txn: 0,
            filtered: true,
        });
        self.in_flight_gauge.set(self.in_flight.len() as u64);
    }

    async fn send_with_retry(
        &mut self,
        mirror: &Mirror,
        rec: &SourceRecord,
    ) -> Result<(DeliveryFuture, u64)> {
        loop {
            match mirror.send(rec, &mirror.cfg.topic, &[]).await {
                Ok(f) => return Ok(f),
                // Refused before it left: the transaction holds nothing of it.
                Err(e) if is_permanent(&e) => return Err(mirror.classify(rec, e)),
                Err(e) if mirror.txn.is_some() => {
                    mirror.doom();
                    return Err(mirror.classify(rec, e));
                }
                // The producer stopped for good (at least once: a refused batch under the
                // gap-less guarantee): the first delivery that failed says why.
                Err(e) if let Some((code, reason)) = mirror.producer.client().fatal_error() => {
                    if let Some((first, why)) = self.first_failed() {
                        return Err(self.widen(mirror.classify(&first, why)));
                    }
                    return Err(anyhow!("kafka: the producer stopped for good at Fluvio partition {} offset {}: {code}: {reason} ({e}; nothing Kafka did not acknowledge is committed, and the next start resumes from Kafka)", rec.partition, rec.offset));
                }
                Err(e) => {
                    tracing::warn!(partition = rec.partition, offset = rec.offset, error = %e, "send failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Take the records Kafka already holds, without waiting.
    pub async fn collect_ready(&mut self, mirror: &Mirror) -> Result<()> {
        while let Some(front) = self.in_flight.front_mut() {
            let Some(result) = front.sent.now_or_never() else {
                break;
            };
            let txn = front.txn;
            if result.is_ok() && !self.committed(mirror, txn)? {
                break;
            }
            self.settle_front(mirror, result)?;
        }
        Ok(())
    }

    /// Whether transaction `txn` committed; when it failed, the error names the record Kafka
    /// refused, if one of ours was (a commit fails only after every delivery has an outcome).
    fn committed(&mut self, mirror: &Mirror, txn: u64) -> Result<bool> {
        let Some(t) = &mirror.txn else {
            return Ok(true);
        };
        match t.is_committed(txn) {
            Ok(done) => Ok(done),
            Err(why) => match self.first_failed() {
                Some((rec, e)) => Err(self.widen(mirror.classify(&rec, e))),
                None => Err(TransactionFailed(format!("{why:#}")).into()),
            },
        }
    }

    /// Kafka holds `offset` and every earlier one.
    fn mark_acked(&mut self, offset: i64) {
        self.acked = Some(offset);
        self.acked_gauge.set(offset.max(0) as u64);
    }

    /// The first record in flight whose delivery failed, among the outcomes already in.
    fn first_failed(&mut self) -> Option<(SourceRecord, KafkaError)> {
        self.in_flight
            .iter_mut()
            .find_map(|f| match f.sent.now_or_never() {
                Some(Err(e)) => Some((f.rec.clone(), e)),
                _ => None,
            })
    }

    /// Records sent and not yet settled.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Wait until the oldest delivery has an outcome (and its transaction committed), keeping
    /// it in the pipe for [`PartitionPipe::collect_ready`]: cancel-safe, so it can race a read
    /// of the input (an idle input must not keep acknowledgements unseen).
    pub async fn front_arrived(&mut self, mirror: &Mirror) {
        let Some(f) = self.in_flight.front_mut() else {
            return std::future::pending().await;
        };
        // The outcome stays in the pipe (`Sent::Arrived`) for `collect_ready` to settle.
        if f.sent.wait(&f.rec, f.at).await.is_ok() {
            if let Some(t) = &mirror.txn {
                let _ = t.committed(f.txn).await;
            }
        }
    }

    /// Wait for the oldest record to be in Kafka.
    pub async fn complete_front(&mut self, mirror: &Mirror) -> Result<()> {
        let Some(f) = self.in_flight.front_mut() else {
            return Ok(());
        };
        let result = f.sent.wait(&f.rec, f.at).await;
        let txn = f.txn;
        if result.is_ok() {
            if let Some(t) = &mirror.txn {
                if t.committed(txn).await.is_err() {
                    self.committed(mirror, txn)?;
                }
            }
        }
        self.settle_front(mirror, result)
    }

    /// Wait until every record sent is in Kafka (with transactions: committed now).
    pub async fn drain(&mut self, mirror: &Mirror) -> Result<()> {
        if let (Some(t), false) = (&mirror.txn, self.in_flight.is_empty()) {
            t.hurry();
        }
        while !self.in_flight.is_empty() {
            self.complete_front(mirror).await?;
        }
        Ok(())
    }

    fn settle_front(&mut self, mirror: &Mirror, outcome: Outcome) -> Result<()> {
        match outcome {
            Ok(()) => {
                let f = self.in_flight.pop_front().expect("front exists");
                self.in_flight_bytes -= f.rec.value.len();
                self.mark_acked(f.rec.offset);
                self.in_flight_gauge.set(self.in_flight.len() as u64);
                if f.filtered {
                    return Ok(());
                }
                let took = f.at.elapsed();
                mirror.m.delivery.observe(took);
                mirror.m.delivery_max.raise_to(took.as_secs_f64());
                mirror.m.kafka_writable.set(true);
                if let Some(t) = f.rec.timestamp_ms {
                    mirror.m.fluvio_to_kafka.observe_since(t);
                }
                mirror.m.records.inc();
                mirror.m.bytes.add(f.rec.value.len() as u64);
                Ok(())
            }
            Err(e) => {
                mirror.doom();
                mirror.m.kafka_writable.set(false);
                let f = self.in_flight.front().expect("front exists");
                Err(self.widen(mirror.classify(&f.rec, e)))
            }
        }
    }

    /// The error of the first record in flight whose delivery failed, waiting (bounded) for
    /// the outcomes still to come.
    async fn failed_delivery(&mut self, mirror: &Mirror) -> Option<anyhow::Error> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut failed = None;
        for f in self.in_flight.iter_mut() {
            let left = deadline.saturating_duration_since(Instant::now());
            let outcome = match f.sent.now_or_never() {
                Some(o) => o,
                None => match tokio::time::timeout(left, f.sent.wait(&f.rec, f.at)).await {
                    Ok(o) => o,
                    Err(_) => break,
                },
            };
            if let Err(e) = outcome {
                failed = Some((f.rec.clone(), e));
                break;
            }
        }
        let (rec, e) = failed?;
        mirror.doom();
        Some(self.widen(mirror.classify(&rec, e)))
    }

    /// A refused record's error, with the last offset of this pipe refused with it.
    fn widen(&mut self, e: anyhow::Error) -> anyhow::Error {
        match e.downcast::<Refused>() {
            Ok(mut refused) => {
                for f in self.in_flight.iter_mut() {
                    if let Some(Err(_)) = f.sent.now_or_never() {
                        refused.through = refused.through.max(f.rec.offset);
                    }
                }
                refused.into()
            }
            Err(e) => e,
        }
    }
}
