//! Producing into a Fluvio topic without losing what the source accepted. Every record is kept
//! until the cluster confirms it. When the cluster fails (an SPU down, a connection broken), the
//! client and producer are made anew, with backoff and progress in the log, and the unconfirmed
//! records are sent again in order, except those the end of the topic shows already written (by
//! key: a record whose confirmation was lost is not written twice). The failed producer keeps the
//! batches it holds and writes them once it reaches the cluster again, so the end of the topic is
//! read only after it has settled each of them (stored, or failed for good). Meanwhile nothing new
//! is taken, so the bounded queue holds the stream reader back.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use fluvio::{Fluvio, RecordKey, TopicProducerPool};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::MetaConfig;
use crate::metrics::{Counter, Gauge, Histogram, Metrics, Ready};
use crate::{cluster, Record};

/// Records sent and not yet confirmed before a send waits for the oldest confirmation.
const MAX_UNCONFIRMED: usize = 50_000;
/// How long one producer call may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Waits between recovery attempts: doubling from the first to the last.
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// After a shutdown signal, how long recovery keeps trying before it gives up.
const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(30);
/// Once the cluster answers again, how long the failed producer may take to settle the records
/// it holds (it reconnects with its own backoff, at most 30 s apart) before they are looked for
/// in the topic and sent again regardless.
const SETTLE_PATIENCE: Duration = Duration::from_secs(90);

type Confirmation = BoxFuture<'static, Result<()>>;

/// Where a record handed to a producer stands.
enum Delivery {
    /// Its confirmation is to come.
    Pending(Confirmation),
    /// Confirmed stored.
    Stored,
    /// Not handed over, or its producer failed to store it: to look for in the topic and
    /// send again if absent.
    Unknown,
}

impl Delivery {
    /// The outcome if it is already in, without waiting; `None` while it is to come.
    fn settle_now(&mut self) -> Option<Result<()>> {
        match self {
            Delivery::Pending(confirm) => {
                let outcome = confirm.now_or_never()?;
                Some(self.keep(outcome))
            }
            Delivery::Stored => Some(Ok(())),
            Delivery::Unknown => Some(Err(anyhow!("not sent"))),
        }
    }

    /// The outcome, waiting for it until `deadline`; `None` if it is still to come then.
    async fn settle_by(&mut self, deadline: Instant) -> Option<Result<()>> {
        if let Delivery::Pending(confirm) = self {
            let outcome = tokio::time::timeout_at(deadline, confirm).await.ok()?;
            return Some(self.keep(outcome));
        }
        self.settle_now()
    }

    /// Remember a confirmation's outcome: its future has finished and must never be polled
    /// again (it would panic).
    fn keep(&mut self, outcome: Result<()>) -> Result<()> {
        *self = match outcome {
            Ok(()) => Delivery::Stored,
            Err(_) => Delivery::Unknown,
        };
        outcome
    }
}

/// A record handed to the producer, and where its delivery stands.
struct Unconfirmed {
    record: Record,
    delivery: Delivery,
}

/// The Fluvio producer of one topic, with recovery.
pub struct FluvioOutput {
    fluvio: Arc<Fluvio>,
    meta: MetaConfig,
    producer: TopicProducerPool,
    unconfirmed: VecDeque<Unconfirmed>,
    shutdown: CancellationToken,
    recoveries: Counter,
    resent: Counter,
    found: Counter,
    unsettled: Counter,
    unconfirmed_gauge: Gauge,
    /// From a record's event time (a tweet's creation) to Fluvio's confirmation.
    latency: Histogram,
    /// Not met while the producer recovers.
    writing: Ready,
}

impl FluvioOutput {
    pub fn new(
        fluvio: Arc<Fluvio>,
        meta: MetaConfig,
        producer: TopicProducerPool,
        metrics: &Metrics,
        shutdown: CancellationToken,
    ) -> Self {
        let topic = meta.topic.name.clone();
        let l = [("topic", topic.as_str())];
        let writing = metrics.readiness(&format!("Fluvio producer writing to {topic}"));
        writing.set(true);
        Self {
            latency: metrics.histogram(
                "event_to_fluvio_seconds",
                "from a record's event time (a tweet's creation at X) to its confirmation by Fluvio",
            ),
            writing,
            fluvio,
            meta,
            producer,
            unconfirmed: VecDeque::new(),
            shutdown,
            recoveries: metrics.counter_with(
                "producer_recoveries_total",
                &l,
                "times the Fluvio producer failed and was made anew",
            ),
            resent: metrics.counter_with(
                "records_resent_total",
                &l,
                "unconfirmed records sent again after a producer failure",
            ),
            found: metrics.counter_with(
                "records_found_written_total",
                &l,
                "unconfirmed records found already in the topic after a producer failure (not sent again)",
            ),
            unsettled: metrics.counter_with(
                "records_unsettled_total",
                &l,
                "records a failed producer still held after the settle patience (looked for and sent again; one it writes late is a duplicate)",
            ),
            unconfirmed_gauge: metrics.gauge_with(
                "records_unconfirmed",
                &l,
                "records sent to Fluvio and not yet confirmed",
            ),
        }
    }

    /// Hand one record over; it is stored once [`FluvioOutput::flush`] returns.
    pub async fn send(&mut self, record: Record) -> Result<()> {
        self.settle_ready().await?;
        while self.unconfirmed.len() >= MAX_UNCONFIRMED {
            self.settle_front().await?;
        }
        let sent = timed(send(&self.producer, &record)).await;
        match sent {
            Ok(confirm) => self.unconfirmed.push_back(Unconfirmed {
                record,
                delivery: Delivery::Pending(confirm),
            }),
            Err(e) => {
                self.unconfirmed.push_back(Unconfirmed {
                    record,
                    delivery: Delivery::Unknown,
                });
                self.recover(e).await?;
            }
        }
        self.unconfirmed_gauge.set(self.unconfirmed.len() as u64);
        Ok(())
    }

    /// Wait until every record handed over is stored (sending again what a failure lost).
    pub async fn flush(&mut self) -> Result<()> {
        if let Err(e) = timed(self.producer.flush()).await {
            self.recover(e).await?;
        }
        while !self.unconfirmed.is_empty() {
            self.settle_front().await?;
        }
        self.unconfirmed_gauge.set(0);
        Ok(())
    }

    /// Drop the confirmed records at the front, without waiting.
    async fn settle_ready(&mut self) -> Result<()> {
        while let Some(front) = self.unconfirmed.front_mut() {
            if !matches!(front.delivery, Delivery::Pending(_)) {
                break;
            }
            match front.delivery.settle_now() {
                None => break,
                Some(Ok(())) => {
                    let u = self.unconfirmed.pop_front().expect("front exists");
                    observe_stored(&self.latency, &u.record);
                }
                Some(Err(e)) => return self.recover(e).await,
            }
        }
        Ok(())
    }

    /// Wait for the oldest record's confirmation.
    async fn settle_front(&mut self) -> Result<()> {
        let Some(front) = self.unconfirmed.front_mut() else {
            return Ok(());
        };
        let result = match front
            .delivery
            .settle_by(Instant::now() + CALL_TIMEOUT)
            .await
        {
            Some(outcome) => outcome,
            None => Err(anyhow!("no answer from Fluvio in {CALL_TIMEOUT:?}")),
        };
        match result {
            Ok(()) => {
                let u = self.unconfirmed.pop_front().expect("front exists");
                observe_stored(&self.latency, &u.record);
                Ok(())
            }
            Err(e) => self.recover(e).await,
        }
    }

    /// Store every unconfirmed record, retrying with backoff; after a shutdown signal, give up
    /// after [`SHUTDOWN_PATIENCE`] naming how many are not stored.
    async fn recover(&mut self, error: anyhow::Error) -> Result<()> {
        let topic = self.meta.topic.name.clone();
        tracing::warn!(
            topic,
            error = %format!("{error:#}"),
            unconfirmed = self.unconfirmed.len(),
            "the Fluvio producer failed; making a new one and storing the unconfirmed records"
        );
        self.recoveries.inc();
        self.writing.set(false);
        let mut delay = RETRY_FIRST;
        let mut give_up_at = None;
        let mut settle_by = None;
        loop {
            match self.store_unconfirmed(&mut settle_by).await {
                Ok(()) => {
                    tracing::info!(topic, "the Fluvio producer recovered; nothing was lost");
                    self.writing.set(true);
                    self.unconfirmed_gauge.set(self.unconfirmed.len() as u64);
                    return Ok(());
                }
                Err(e) => {
                    if self.shutdown.is_cancelled() {
                        let at =
                            *give_up_at.get_or_insert_with(|| Instant::now() + SHUTDOWN_PATIENCE);
                        if Instant::now() >= at {
                            return Err(e.context(format!(
                                "stopping with {} records accepted but not stored in `{topic}` (Fluvio unreachable for {SHUTDOWN_PATIENCE:?} after the shutdown signal)",
                                self.unconfirmed.len()
                            )));
                        }
                    }
                    tracing::warn!(topic, error = %format!("{e:#}"), retry_in = ?delay, "Fluvio is not back yet");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// One attempt: once the cluster answers and the current producer has settled what it
    /// holds (by `settle_by`, set on the first attempt that reaches the cluster), a new
    /// producer sends again in order the records neither confirmed nor at the end of the
    /// topic, and every confirmation is awaited.
    async fn store_unconfirmed(&mut self, settle_by: &mut Option<Instant>) -> Result<()> {
        // A cluster that restarted is reached anew: the old client's connections are gone.
        self.fluvio = Arc::new(timed(cluster::connect(&self.meta.name)).await?);
        let window = self.unconfirmed.len() as i64 + 1000;
        let by = *settle_by.get_or_insert_with(|| Instant::now() + SETTLE_PATIENCE);
        let pending = self.settle_all(by.min(Instant::now() + CALL_TIMEOUT)).await;
        if pending > 0 {
            if Instant::now() < by {
                bail!("the failed producer still holds {pending} records it may yet store");
            }
            tracing::warn!(
                pending,
                patience = ?SETTLE_PATIENCE,
                "the failed producer did not settle these records in time; looking for them in the topic and sending the others again (one it still writes late is written twice)"
            );
            self.unsettled.add(pending as u64);
            for u in &mut self.unconfirmed {
                u.delivery = Delivery::Unknown;
            }
        }
        // The failed producer holds nothing more: it goes, and the new one gets its own patience.
        self.producer = timed(cluster::producer(&self.fluvio, &self.meta)).await?;
        *settle_by = None;
        let written: HashSet<Vec<u8>> = timed(cluster::last_keys(
            &self.fluvio,
            &self.meta.topic.name,
            window,
        ))
        .await?
        .into_iter()
        .collect();
        let (mut found, mut resent) = (0, 0);
        for u in &mut self.unconfirmed {
            if u.record
                .key
                .as_ref()
                .is_some_and(|k| written.contains(&k[..]))
            {
                u.delivery = Delivery::Stored;
                found += 1;
            } else {
                u.delivery = Delivery::Pending(timed(send(&self.producer, &u.record)).await?);
                resent += 1;
            }
        }
        self.found.add(found);
        self.resent.add(resent);
        timed(self.producer.flush()).await?;
        let pending = self.settle_all(Instant::now() + CALL_TIMEOUT).await;
        let failed = self.unconfirmed.len() - pending;
        if !self.unconfirmed.is_empty() {
            bail!("{pending} records sent again are not confirmed yet and {failed} failed");
        }
        tracing::info!(
            found_written = found,
            sent_again = resent,
            "unconfirmed records stored"
        );
        Ok(())
    }

    /// Await each pending confirmation until `until`, in order; drop the stored records. The
    /// number still pending (the others left are [`Delivery::Unknown`]).
    async fn settle_all(&mut self, until: Instant) -> usize {
        let mut pending = 0;
        for u in &mut self.unconfirmed {
            if u.delivery.settle_by(until).await.is_none() {
                pending += 1;
            }
        }
        let latency = &self.latency;
        self.unconfirmed.retain(|u| {
            let stored = matches!(u.delivery, Delivery::Stored);
            if stored {
                observe_stored(latency, &u.record);
            }
            !stored
        });
        pending
    }
}

/// The time from a stored record's event time (when it has one) to now.
fn observe_stored(latency: &Histogram, record: &Record) {
    if let Some(t) = record.timestamp_ms {
        latency.observe_since(t);
    }
}

/// Send one record; the future of its confirmation.
async fn send(producer: &TopicProducerPool, record: &Record) -> Result<Confirmation> {
    let key = match &record.key {
        Some(k) => RecordKey::from(k.to_vec()),
        None => RecordKey::NULL,
    };
    let output = producer
        .send(key, record.value.to_vec())
        .await
        .context("Fluvio producer refused the record")?;
    Ok(async move {
        output
            .wait()
            .await
            .map(|_| ())
            .context("Fluvio did not store the record")
    }
    .boxed())
}

/// A producer call that takes too long counts as failed.
async fn timed<T>(call: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    crate::cluster::within(CALL_TIMEOUT, call).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(
        outcome: impl std::future::Future<Output = Result<()>> + Send + 'static,
    ) -> Delivery {
        Delivery::Pending(outcome.boxed())
    }

    #[tokio::test]
    async fn a_failed_confirmation_is_kept_and_never_awaited_again() {
        let mut d = pending(async { Err(anyhow!("the given SPU is not the leader")) });
        let first = d.settle_by(Instant::now() + CALL_TIMEOUT).await;
        assert!(
            matches!(&first, Some(Err(e)) if e.to_string().contains("not the leader")),
            "{first:?}"
        );
        assert!(matches!(d, Delivery::Unknown));
        // A second wait (recovery settles every record) must not poll the finished future.
        let again = d.settle_by(Instant::now() + CALL_TIMEOUT).await;
        assert!(
            matches!(&again, Some(Err(e)) if e.to_string() == "not sent"),
            "{again:?}"
        );
    }

    #[tokio::test]
    async fn a_confirmation_still_to_come_stays_pending_until_it_arrives() {
        let mut d = pending(async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(())
        });
        assert!(d
            .settle_by(Instant::now() + Duration::from_millis(20))
            .await
            .is_none());
        assert!(matches!(d, Delivery::Pending(_)));
        let arrived = d.settle_by(Instant::now() + Duration::from_secs(10)).await;
        assert!(matches!(arrived, Some(Ok(()))), "{arrived:?}");
        assert!(matches!(d, Delivery::Stored));
        assert!(matches!(d.settle_by(Instant::now()).await, Some(Ok(()))));
    }

    #[test]
    fn an_outcome_already_in_is_taken_without_waiting() {
        let mut d = pending(async { Ok(()) });
        let now = d.settle_now();
        assert!(matches!(now, Some(Ok(()))), "{now:?}");
        assert!(matches!(d, Delivery::Stored));
        let mut d = pending(std::future::pending());
        assert!(d.settle_now().is_none());
        assert!(matches!(d, Delivery::Pending(_)));
        let mut d = pending(async { Err(anyhow!("refused")) });
        assert!(matches!(d.settle_now(), Some(Err(_))));
        assert!(matches!(d.settle_now(), Some(Err(e)) if e.to_string() == "not sent"));
    }
}
