//! One Fluvio partition into Kafka: read, transform, send each record in order through the
//! partition's pipe, and commit the Fluvio offset only once Kafka holds everything up to it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use connector_runtime::metrics::Gauge;
use tokio_util::sync::CancellationToken;

use crate::input::{PartitionInput, SourceRecord};
use crate::lag::Progress;
use crate::mirror::{Mirror, PartitionPipe, Refused};
use crate::transform::{SinkTransforms, Transformed};

/// How long the way out waits for Kafka to acknowledge what is in flight.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(20);
/// How long the way out waits to commit the Fluvio offset.
const SHUTDOWN_COMMIT: Duration = Duration::from_secs(3);

/// One partition to mirror.
pub(crate) struct PartitionJob {
    pub(crate) partition: u32,
    pub(crate) input: PartitionInput,
    pub(crate) transforms: SinkTransforms,
    /// The highest offset Kafka holds already (where the partition resumes), if any.
    pub(crate) in_kafka: Option<i64>,
    /// Follows the partition's progress, for the lag.
    pub(crate) progress: Progress,
    /// Offsets to send one record per transaction.
    pub(crate) careful: Option<(i64, i64)>,
}

/// Read one partition, transform and send each record in order, commit what Kafka holds.
pub(crate) async fn mirror_partition(
    mirror: Arc<Mirror>,
    job: PartitionJob,
    shutdown: CancellationToken,
) -> Result<()> {
    let mut run = PartitionRun::new(mirror, job);
    // A signal cuts in anywhere, even while sending or draining waits on Kafka.
    let result: Result<()> = tokio::select! {
        biased;
        _ = shutdown.cancelled() => Ok(()),
        r = run.mirror() => r,
    };
    let drained = run.finish().await;
    result.and(drained)
}

/// One partition's loop and what it keeps between records.
struct PartitionRun {
    mirror: Arc<Mirror>,
    partition: u32,
    input: PartitionInput,
    transforms: SinkTransforms,
    pipe: PartitionPipe,
    progress: Progress,
    careful: Option<(i64, i64)>,
    /// The last Fluvio offset committed, and its gauge.
    committed: Option<i64>,
    committed_gauge: Gauge,
    /// The Fluvio 0.50 consumer stream holds a lock inside a pending read, and its commit
    /// waits for that lock: committing while a read is pending never returns. So a Fluvio
    /// partition commits right after a read completed (every `commit_interval`, timed by
    /// `last_commit`); a file commits on a timer, even when idle.
    timer_commits: bool,
    last_commit: Instant,
}

impl PartitionRun {
    fn new(mirror: Arc<Mirror>, job: PartitionJob) -> Self {
        let PartitionJob {
            partition,
            input,
            transforms,
            in_kafka,
            progress,
            careful,
        } = job;
        let pipe = PartitionPipe::new(partition, mirror.metrics(), in_kafka);
        let committed_gauge = mirror.metrics().gauge_with(
            "committed_offset",
            &[("partition", &partition.to_string())],
            "last Fluvio offset committed",
        );
        let timer_commits = !input.commits_last_read();
        Self {
            mirror,
            partition,
            input,
            transforms,
            pipe,
            progress,
            careful,
            committed: None,
            committed_gauge,
            timer_commits,
            last_commit: Instant::now(),
        }
    }

    /// Mirror until the input ends or an error.
    async fn mirror(&mut self) -> Result<()> {
        let mut tick = tokio::time::interval(self.mirror.config().commit_interval);
        tick.tick().await;
        loop {
            // A file input and a fast Kafka never leave this loop waiting: give the runtime
            // its turn (timers, the signal) once this task has used its budget.
            tokio::task::consume_budget().await;
            tokio::select! {
                _ = tick.tick(), if self.timer_commits => {
                    self.commit_acked().await?;
                }
                _ = self.pipe.front_arrived(&self.mirror), if self.pipe.in_flight() > 0 => {
                    self.pipe.collect_ready(&self.mirror).await?;
                }
                record = self.input.next() => match record? {
                    Some(rec) => self.send(rec).await?,
                    None => return Ok(()),
                },
            }
            if let Some(acked) = self.pipe.acked() {
                self.progress.raise_to(acked);
            }
        }
    }

    /// Transform one record read and send what comes out, in order.
    async fn send(&mut self, rec: SourceRecord) -> Result<()> {
        let rec = match self.transforms.apply(rec) {
            Err(refused) => {
                // Everything before it goes to Kafka; the refusal names the record.
                self.pipe.drain(&self.mirror).await?;
                return Err(anyhow::Error::from(refused));
            }
            Ok(Transformed::Filtered(rec)) => {
                self.pipe.skip(rec);
                return Ok(());
            }
            Ok(Transformed::Send(rec)) => rec,
        };
        let careful = self
            .careful
            .is_some_and(|(from, through)| (from..=through).contains(&rec.offset));
        if careful {
            // One record per transaction: a refusal names the record at fault, and
            // everything before it is committed.
            self.pipe.drain(&self.mirror).await?;
            self.pipe.push(&self.mirror, rec).await?;
            return self.pipe.drain(&self.mirror).await.map_err(isolate);
        }
        // Whatever came before the first record read is in Kafka or skipped by the start
        // position.
        if self.pipe.acked().is_none() {
            self.progress.raise_to(rec.offset - 1);
        }
        self.pipe.push(&self.mirror, rec).await?;
        let interval = self.mirror.config().commit_interval;
        if !self.timer_commits
            && self.last_commit.elapsed() >= interval
            && self.commit_acked().await?
        {
            self.last_commit = Instant::now();
        }
        Ok(())
    }

    /// On the way out (signal, end, or error): deliver what is in flight, commit what Kafka
    /// has, within a bounded time: with Kafka away, what it has not acknowledged stays
    /// uncommitted (and is sent again on the next start), and the exit is non-zero.
    async fn finish(&mut self) -> Result<()> {
        let drained = match tokio::time::timeout(SHUTDOWN_DRAIN, self.pipe.drain(&self.mirror))
            .await
        {
            Ok(r) => r,
            Err(_) => Err(anyhow!(
                "Kafka did not acknowledge the records in flight within {SHUTDOWN_DRAIN:?}; exiting without committing them (they are sent again on the next start)"
            )),
        };
        let partition = self.partition;
        let Some(acked) = self.pipe.acked().filter(|a| Some(*a) != self.committed) else {
            return drained;
        };
        match tokio::time::timeout(SHUTDOWN_COMMIT, self.input.commit(acked)).await {
            Ok(r) => {
                if r? {
                    tracing::info!(partition, offset = acked, "committed on the way out");
                }
            }
            Err(_) => tracing::warn!(
                partition,
                offset = acked,
                "the Fluvio offset could not be committed on the way out (a read was pending); Kafka holds everything up to it and the next start resumes from there"
            ),
        }
        drained
    }

    /// Commit what Kafka acknowledged: the committed offset never passes a record Kafka has
    /// not taken. A Fluvio stream commits the last record read, so it waits for everything in
    /// flight, and does not try while records read again are still to be sent. Returns
    /// whether it tried (else it should try again soon).
    async fn commit_acked(&mut self) -> Result<bool> {
        if self.input.commits_last_read() {
            if self.input.holds_records() {
                return Ok(false);
            }
            self.pipe.drain(&self.mirror).await?;
        } else {
            self.pipe.collect_ready(&self.mirror).await?;
        }
        if let Some(acked) = self.pipe.acked().filter(|a| Some(*a) != self.committed) {
            if !self.input.commit(acked).await? {
                return Ok(false);
            }
            self.committed = Some(acked);
            self.committed_gauge.set(acked.max(0) as u64);
        }
        Ok(true)
    }
}

/// A refusal of a record sent alone names the record at fault.
fn isolate(e: anyhow::Error) -> anyhow::Error {
    match e.downcast::<Refused>() {
        Ok(mut refused) => {
            refused.isolated = true;
            refused.into()
        }
        Err(e) => e,
    }
}
