//! Exactly-once delivery for `read_committed` readers: one Kafka transaction at a time spans
//! every partition pipe. Records are produced into the open transaction; a committer commits it
//! every `transaction_interval` (or at once when a pipe drains) and opens the next. A record
//! counts as mirrored, and its Fluvio offset may be committed, only once its transaction has
//! committed. A failed transaction is aborted, so nothing after a refused record ever becomes
//! visible; `init_transactions` at start fences an older instance with the same
//! `transactional.id` and aborts what a killed one left open.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use connector_runtime::metrics::{Counter, FloatGauge, Histogram, Metrics};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, Producer};
use tokio::sync::{watch, Notify, RwLock, RwLockReadGuard};
use tokio_util::sync::CancellationToken;

use super::AuthWatch;

/// How long one commit or abort call may block before it is tried again (commit) or the
/// bridge gives up (abort).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The open transaction failed (aborted by the broker, or after a timeout): the bridge
/// aborts it and goes on from what Kafka has committed.
#[derive(Debug, thiserror::Error)]
#[error("the Kafka transaction failed: {0}")]
pub struct TransactionFailed(pub String);

/// Kafka acknowledged none of the records in flight, or did not commit, for the whole
/// `stalled_producer_timeout`: the producer is replaced (its queue is purged, so nothing waits
/// on it any more).
#[derive(Debug, thiserror::Error)]
#[error("the Kafka producer stalled: {0}")]
pub struct ProducerStalled(pub String);

/// Another instance with the same `transactional.id` took over.
#[derive(Debug, thiserror::Error)]
#[error("kafka: {0}")]
pub struct Fenced(pub String);

/// What the pipes watch: the newest committed transaction, or why the open one failed.
#[derive(Clone, Debug, Default)]
struct State {
    committed: u64,
    failed: Option<String>,
}

/// The open transaction and its committer.
pub struct Transactions {
    producer: FutureProducer<AuthWatch>,
    transactional_id: String,
    /// How long deliveries may make no progress before the producer counts as stalled (never
    /// with a `delivery_timeout`: the records then fail after it, and the bridge stops).
    stall: Option<Duration>,
    /// Sends hold it shared; a commit or abort holds it alone (librdkafka takes no record
    /// between the commit and the next `begin_transaction`).
    gate: RwLock<()>,
    /// The number of the open transaction (1, 2, ...).
    open: AtomicU64,
    /// Records produced into the open transaction.
    sent: AtomicU64,
    /// A send or delivery of the open transaction failed: it can only be aborted.
    doomed: AtomicBool,
    state: watch::Sender<State>,
    commit_now: Notify,
    commits: Counter,
    aborts: Counter,
    /// How long commits held sends back (distribution and longest).
    commit_time: Histogram,
    /// The part of it spent waiting for the transaction's last deliveries.
    flush_time: Histogram,
    commit_time_max: FloatGauge,
}

/// The permission to produce into the open transaction `number`; commits wait for it.
pub struct SendPermit<'a> {
    _guard: RwLockReadGuard<'a, ()>,
    pub number: u64,
}

/// Whether a Kafka error means another instance took over this `transactional.id`.
pub fn is_fenced(e: &KafkaError) -> bool {
    e.rdkafka_error_code().is_some_and(is_fenced_code)
}

fn is_fenced_code(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::Fenced
            | RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerEpoch
    )
}

impl Fenced {
    /// Another instance with `transactional_id` took over (`cause`: what Kafka said).
    pub fn new(transactional_id: &str, cause: &dyn std::fmt::Display) -> Self {
        Self(format!("another bridge instance with the same transactional.id (`{transactional_id}`, from meta.consumer.id and the Fluvio topic) took over: this one stops without committing anything more ({cause})"))
    }
}

/// How long one flush waits before the committer looks at the transaction's state again.
const FLUSH_STEP: Duration = Duration::from_millis(100);

/// How long the committer waits for deliveries before it holds sends back (under a steady
/// stream new records keep arriving, so this flush may not empty the queue).
const PRE_FLUSH: Duration = Duration::from_millis(20);

/// librdkafka's own flush: what lingers is sent at once, and it returns as soon as every
/// delivery is in (or after `timeout`).
/// How long a metadata request made while deliveries wait may take.
const METADATA_NUDGE_TIMEOUT: Duration = Duration::from_secs(5);

fn flush_now(producer: &FutureProducer<AuthWatch>, timeout: Duration) -> Result<(), KafkaError> {
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: `producer` keeps its librdkafka handle alive for the call, and rd_kafka_flush
    // may be called from any thread.
    let code = unsafe { rdkafka::bindings::rd_kafka_flush(producer.client().native_ptr(), ms) };
    match RDKafkaErrorCode::from(code) {
        RDKafkaErrorCode::NoError => Ok(()),
        e => Err(KafkaError::Flush(e)),
    }
}

fn blocking<T: Send + 'static>(
    producer: &FutureProducer<AuthWatch>,
    call: impl FnOnce(&FutureProducer<AuthWatch>) -> Result<T, KafkaError> + Send + 'static,
) -> impl std::future::Future<Output = Result<T, KafkaError>> {
    let p = producer.clone();
    async move {
        tokio::task::spawn_blocking(move || call(&p))
            .await
            .unwrap_or(Err(KafkaError::Canceled))
    }
}

impl Transactions {
    /// `init_transactions` (fencing an older instance, aborting what it left open; waits for
    /// the brokers until `shutdown`), then the first transaction. `None` on shutdown.
    pub async fn init(
        producer: &FutureProducer<AuthWatch>,
        transactional_id: &str,
        stall: Option<Duration>,
        metrics: &Metrics,
        shutdown: &CancellationToken,
    ) -> Result<Option<Self>> {
        let started = std::time::Instant::now();
        loop {
            match blocking(producer, |p| p.init_transactions(CALL_TIMEOUT)).await {
                Ok(()) => break,
                Err(e) if is_retriable(&e) => {
                    tracing::warn!(error = %e, waited = ?started.elapsed(), "Kafka's transaction coordinator is not reachable yet; waiting");
                }
                Err(e) if is_fenced(&e) => return Err(Fenced::new(transactional_id, &e).into()),
                Err(e) => bail!(
                    "kafka: cannot start transactions (transactional.id `{transactional_id}`): {e}"
                ),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.cancelled() => return Ok(None),
            }
        }
        producer
            .begin_transaction()
            .map_err(|e| anyhow!("kafka: begin transaction: {e}"))?;
        tracing::info!(transactional_id, "transactions initialised: any older instance is fenced, and what it left open is aborted");
        let (state, _) = watch::channel(State::default());
        Ok(Some(Self {
            producer: producer.clone(),
            transactional_id: transactional_id.to_string(),
            stall,
            gate: RwLock::new(()),
            open: AtomicU64::new(1),
            sent: AtomicU64::new(0),
            doomed: AtomicBool::new(false),
            state,
            commit_now: Notify::new(),
            commits: metrics.counter(
                "transactions_committed_total",
                "Kafka transactions committed",
            ),
            aborts: metrics.counter(
                "transactions_aborted_total",
                "Kafka transactions aborted (their records are read again from Fluvio)",
            ),
            commit_time: metrics.histogram(
                "transaction_commit_seconds",
                "time a commit held sends back",
            ),
            flush_time: metrics.histogram(
                "transaction_flush_seconds",
                "the part of a commit spent waiting for the transaction's last deliveries",
            ),
            commit_time_max: metrics.float_gauge(
                "transaction_commit_seconds_max",
                "the longest time one commit held sends back",
            ),
        }))
    }

    /// Wait until a record may be produced; hold the permit across the produce call only.
    pub async fn permit(&self) -> SendPermit<'_> {
        let guard = self.gate.read().await;
        self.sent.fetch_add(1, Ordering::Relaxed);
        SendPermit {
            _guard: guard,
            number: self.open.load(Ordering::Relaxed),
        }
    }

    /// Whether transaction `number` has committed (`Err` when it failed).
    pub fn is_committed(&self, number: u64) -> Result<bool> {
        let s = self.state.borrow();
        if let Some(why) = &s.failed {
            bail!("{why}");
        }
        Ok(s.committed >= number)
    }

    /// Whether the open transaction failed (it can then only be aborted).
    pub fn has_failed(&self) -> bool {
        self.state.borrow().failed.is_some()
    }

    /// Wait until transaction `number` has committed (cancel-safe).
    pub async fn committed(&self, number: u64) -> Result<()> {
        let mut rx = self.state.subscribe();
        loop {
            if self.is_committed(number)? {
                return Ok(());
            }
            if rx.changed().await.is_err() {
                bail!("the transaction committer stopped");
            }
        }
    }

    /// The producer's fatal error, if it has one (then it cannot go on): another instance
    /// took over, or librdkafka gave up on the transactional producer.
    pub fn fatal(&self) -> Option<anyhow::Error> {
        let (code, reason) = self.producer.client().fatal_error()?;
        Some(if is_fenced_code(code) {
            Fenced::new(&self.transactional_id, &reason).into()
        } else {
            anyhow!("kafka: the transactional producer failed for good: {code}: {reason}")
        })
    }

    /// A send or delivery of the open transaction failed: it must not be committed.
    pub fn doom(&self) {
        self.doomed.store(true, Ordering::Relaxed);
    }

    /// Ask the committer to commit now rather than at its next tick.
    pub fn hurry(&self) {
        self.commit_now.notify_one();
    }

    /// Commit the open transaction every `interval` (or when hurried) until `stop`, then once
    /// more. Returns the reason a commit failed (the transaction is then aborted, see
    /// [`Transactions::abort`]).
    /// `abandon`: stop at once, committing nothing more (the run failed; the transaction is
    /// aborted next).
    pub async fn run_committer(
        &self,
        interval: Duration,
        stop: CancellationToken,
        abandon: CancellationToken,
    ) -> Result<()> {
        loop {
            let stopping = tokio::select! {
                biased;
                _ = abandon.cancelled() => return Ok(()),
                _ = stop.cancelled() => true,
                _ = self.commit_now.notified() => false,
                _ = tokio::time::sleep(interval) => false,
            };
            if let Err(e) = self.commit(&abandon).await {
                self.state
                    .send_modify(|s| s.failed = Some(format!("{e:#}")));
                return Err(e);
            }
            if stopping {
                return Ok(());
            }
        }
    }

    /// Commit the open transaction now, outside a run (no committer is running).
    pub async fn commit_open(&self) -> Result<()> {
        self.commit(&CancellationToken::new()).await
    }

    /// Commit the open transaction (when it holds anything) and open the next one.
    async fn commit(&self, abandon: &CancellationToken) -> Result<()> {
        if self.sent.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        // Most deliveries first, while sends go on: what the gate then holds back is only
        // the tail sent meanwhile, and the commit itself.
        if self.producer.in_flight_count() > 0 && !self.doomed.load(Ordering::Relaxed) {
            let _ = blocking(&self.producer, |p| flush_now(p, PRE_FLUSH)).await;
        }
        let _alone = self.gate.write().await;
        let number = self.open.load(Ordering::Relaxed);
        let started = std::time::Instant::now();
        // Every delivery first, sent at once (not after the linger): rdkafka's commit flushes
        // in 100 ms polling steps, which would hold sends back that long on every commit.
        let mut reported = started;
        // (records in flight, since when that many): no fewer for `stall` is a stall.
        let mut progress = (self.producer.in_flight_count(), started);
        loop {
            let outstanding = self.producer.in_flight_count();
            if outstanding == 0 || self.doomed.load(Ordering::Relaxed) || abandon.is_cancelled() {
                break;
            }
            if outstanding < progress.0 {
                progress = (outstanding, std::time::Instant::now());
            } else if self.has_stalled(progress.1) {
                return Err(self.stalled(format!(
                    "Kafka acknowledged none of the {outstanding} records in flight for {:?}",
                    progress.1.elapsed()
                )));
            }
            if reported.elapsed() >= CALL_TIMEOUT {
                tracing::warn!(waited = ?started.elapsed(), outstanding, "Kafka has not acknowledged the transaction's records yet (a broker away?); waiting");
                // After a broker hung and came back, librdkafka can keep a partition whose
                // leader it lost (`new leader -1 not found in cache`) and its records queued
                // for good; asking for metadata makes it look for the leader again.
                if let Err(e) = blocking(&self.producer, |p| {
                    p.client()
                        .fetch_metadata(None, METADATA_NUDGE_TIMEOUT)
                        .map(|_| ())
                })
                .await
                {
                    tracing::debug!(error = %e, "metadata request while deliveries wait");
                }
                reported = std::time::Instant::now();
            }
            let _ = blocking(&self.producer, |p| flush_now(p, FLUSH_STEP)).await;
        }
        self.flush_time.observe(started.elapsed());
        loop {
            if self.doomed.load(Ordering::Relaxed) || abandon.is_cancelled() {
                return Err(TransactionFailed(format!(
                    "transaction {number} holds a failed record: not committed"
                ))
                .into());
            }
            match blocking(&self.producer, |p| p.commit_transaction(CALL_TIMEOUT)).await {
                Ok(()) => break,
                // A broker away: the same commit may be called again, until the stall.
                Err(e) if is_retriable(&e) && self.has_stalled(progress.1) => {
                    return Err(self.stalled(format!(
                        "transaction {number} not committed after {:?}: {e}",
                        progress.1.elapsed()
                    )))
                }
                Err(e) if is_retriable(&e) => tracing::warn!(
                    error = %e,
                    waited = ?started.elapsed(),
                    "Kafka has not committed the transaction yet (a broker away?); trying again"
                ),
                Err(e) if is_fenced(&e) || is_fatal(&e) => {
                    return Err(Fenced::new(&self.transactional_id, &e).into())
                }
                Err(e) => {
                    return Err(TransactionFailed(format!(
                        "transaction {number} could not commit: {e}"
                    ))
                    .into())
                }
            }
        }
        self.producer
            .begin_transaction()
            .map_err(|e| anyhow!("kafka: begin transaction: {e}"))?;
        self.open.store(number + 1, Ordering::Relaxed);
        self.sent.store(0, Ordering::Relaxed);
        self.commits.inc();
        let took = started.elapsed();
        self.commit_time.observe(took);
        self.commit_time_max.raise_to(took.as_secs_f64());
        self.state.send_modify(|s| s.committed = number);
        tracing::trace!(number, ?took, "transaction committed");
        Ok(())
    }

    /// Whether no progress since `since` makes the producer stalled.
    fn has_stalled(&self, since: std::time::Instant) -> bool {
        self.stall.is_some_and(|s| since.elapsed() >= s)
    }

    /// Give up on this producer: purge what it holds, so every delivery still awaited ends
    /// (with an error: none of it counts as mirrored), and say why.
    fn stalled(&self, why: String) -> anyhow::Error {
        use rdkafka::producer::PurgeConfig;
        self.producer
            .purge(PurgeConfig::default().queue().inflight());
        let stalled = ProducerStalled(why);
        self.state
            .send_modify(|s| s.failed = Some(stalled.to_string()));
        stalled.into()
    }

    /// Abort the open transaction (nothing in it becomes visible to `read_committed` readers)
    /// and open the next, so the producer can go on from what Kafka has committed. Fails when
    /// the producer cannot go on at all (fenced, or a fatal error).
    pub async fn abort(&self) -> Result<()> {
        let _alone = self.gate.write().await;
        let number = self.open.load(Ordering::Relaxed);
        match blocking(&self.producer, |p| p.abort_transaction(CALL_TIMEOUT)).await {
            Ok(()) => {}
            // A send that failed in an "erroneous state" is how a fenced producer often
            // learns it first; the abort then names the cause.
            Err(e) if is_fenced(&e) => return Err(Fenced::new(&self.transactional_id, &e).into()),
            Err(e) => bail!("kafka: transaction {number} could not be aborted: {e}"),
        }
        self.aborts.inc();
        self.producer
            .begin_transaction()
            .map_err(|e| anyhow!("kafka: begin transaction: {e}"))?;
        self.open.store(number + 1, Ordering::Relaxed);
        self.sent.store(0, Ordering::Relaxed);
        self.doomed.store(false, Ordering::Relaxed);
        // Pipes of the next run start clean: no failure, and transaction `number` never counts
        // as committed (its records are read again).
        self.state.send_modify(|s| s.failed = None);
        tracing::warn!(
            number,
            "transaction aborted: none of its records is visible to read_committed readers"
        );
        Ok(())
    }
}

/// Errors after which the producer cannot go on (librdkafka's fatal errors).
pub fn is_fatal(e: &KafkaError) -> bool {
    matches!(e, KafkaError::Transaction(t) if t.is_fatal())
}

/// Errors after which the same call may simply be made again.
fn is_retriable(e: &KafkaError) -> bool {
    match e {
        KafkaError::Transaction(t) => t.is_retriable(),
        _ => matches!(
            e.rdkafka_error_code(),
            Some(RDKafkaErrorCode::OperationTimedOut | RDKafkaErrorCode::RequestTimedOut)
        ),
    }
}
