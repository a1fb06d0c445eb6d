//! Producing into a Fluvio topic without losing what the source accepted. Every record is kept
//! until the cluster confirms it. When the cluster fails (an SPU down, a connection broken), the
//! client and producer are made anew, with backoff and progress in the log, and the unconfirmed records are
//! sent again in order, except those the end of the topic shows already written (by key: a
//! record whose confirmation was lost is not written twice). Meanwhile nothing new is taken,
//! so the bounded queue holds the stream reader back.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use fluvio::{Fluvio, RecordKey, TopicProducerPool};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;

use crate::config::MetaConfig;
use crate::metrics::{Counter, Gauge, Metrics};
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

type Confirmation = BoxFuture<'static, Result<()>>;

/// A record handed to the producer, and its confirmation to come (none: to send again).
struct Unconfirmed {
    record: Record,
    confirm: Option<Confirmation>,
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
    unconfirmed_gauge: Gauge,
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
        Self {
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
                confirm: Some(confirm),
            }),
            Err(e) => {
                self.unconfirmed.push_back(Unconfirmed {
                    record,
                    confirm: None,
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
            let Some(confirm) = front.confirm.as_mut() else {
                break;
            };
            match confirm.now_or_never() {
                None => break,
                Some(Ok(())) => {
                    self.unconfirmed.pop_front();
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
        let result = match front.confirm.as_mut() {
            Some(confirm) => timed(confirm).await,
            None => Err(anyhow!("not sent")),
        };
        match result {
            Ok(()) => {
                self.unconfirmed.pop_front();
                Ok(())
            }
            Err(e) => self.recover(e).await,
        }
    }

    /// Make a new producer and store every unconfirmed record, retrying with backoff; after
    /// a shutdown signal, give up after [`SHUTDOWN_PATIENCE`] naming how many are not stored.
    async fn recover(&mut self, error: anyhow::Error) -> Result<()> {
        let topic = self.meta.topic.name.clone();
        tracing::warn!(
            topic,
            error = %format!("{error:#}"),
            unconfirmed = self.unconfirmed.len(),
            "the Fluvio producer failed; making a new one and storing the unconfirmed records"
        );
        self.recoveries.inc();
        let mut delay = RETRY_FIRST;
        let mut give_up_at = None;
        loop {
            match self.store_unconfirmed().await {
                Ok(()) => {
                    tracing::info!(topic, "the Fluvio producer recovered; nothing was lost");
                    return Ok(());
                }
                Err(e) => {
                    if self.shutdown.is_cancelled() {
                        let at = *give_up_at
                            .get_or_insert_with(|| tokio::time::Instant::now() + SHUTDOWN_PATIENCE);
                        if tokio::time::Instant::now() >= at {
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

    /// One attempt: a new producer; the unconfirmed records not already at the end of the
    /// topic sent again in order, flushed and confirmed.
    async fn store_unconfirmed(&mut self) -> Result<()> {
        // A cluster that restarted is reached anew: the old client's connections are gone.
        self.fluvio = Arc::new(timed(cluster::connect(&self.meta.name)).await?);
        let producer = timed(cluster::producer(&self.fluvio, &self.meta)).await?;
        let window = self.unconfirmed.len() as i64 + 1000;
        let written: HashSet<Vec<u8>> = timed(cluster::last_keys(
            &self.fluvio,
            &self.meta.topic.name,
            window,
        ))
        .await?
        .into_iter()
        .collect();
        let to_send: Vec<Record> = self
            .unconfirmed
            .iter()
            .filter(|u| {
                !u.record
                    .key
                    .as_ref()
                    .is_some_and(|k| written.contains(&k[..]))
            })
            .map(|u| u.record.clone())
            .collect();
        let (found, resent) = (
            (self.unconfirmed.len() - to_send.len()) as u64,
            to_send.len() as u64,
        );
        let mut confirms = Vec::new();
        for record in &to_send {
            confirms.push(timed(send(&producer, record)).await?);
        }
        timed(producer.flush()).await?;
        for c in confirms {
            timed(c).await?;
        }
        self.found.add(found);
        self.resent.add(resent);
        tracing::info!(
            found_written = found,
            sent_again = resent,
            "unconfirmed records stored"
        );
        self.unconfirmed.clear();
        self.producer = producer;
        Ok(())
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
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| anyhow!("no answer from Fluvio in {CALL_TIMEOUT:?}"))?
}
