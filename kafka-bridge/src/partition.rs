//! One Fluvio partition into Kafka: read, transform, send each record in order through the
//! partition's pipe, and commit the Fluvio offset only once Kafka holds everything up to it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use tokio_util::sync::CancellationToken;

use crate::input::PartitionInput;
use crate::lag::Progress;
use crate::mirror::{Mirror, PartitionPipe, Refused};
use crate::transform::{SinkTransforms, Transformed};

/// How long the way out waits for Kafka to acknowledge what is in flight.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(20);

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
    let PartitionJob {
        partition,
        mut input,
        mut transforms,
        in_kafka,
        progress,
        careful,
    } = job;
    let mut pipe = PartitionPipe::new(partition, mirror.metrics(), in_kafka);
    let committed_gauge = mirror.metrics().gauge_with(
        "committed_offset",
        &[("partition", &partition.to_string())],
        "last Fluvio offset committed",
    );
    let mut committed: Option<i64> = None;
    let interval = mirror.config().commit_interval;
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    // The Fluvio 0.50 consumer stream holds a lock inside a pending read, and its commit waits
    // for that lock: committing while a read is pending never returns. So a Fluvio partition
    // commits right after a read completed; a file can commit on a timer, even when idle.
    let timer_commits = !input.commits_last_read();
    let mut last_commit = std::time::Instant::now();
    let work = async {
        loop {
            // A file input and a fast Kafka never leave this loop waiting: give the runtime
            // its turn (timers, the signal) once this task has used its budget.
            tokio::task::consume_budget().await;
            tokio::select! {
                _ = tick.tick(), if timer_commits => {
                    commit_acked(&mirror, &mut pipe, &mut input, &mut committed, &committed_gauge).await?;
                }
                _ = pipe.front_arrived(&mirror), if pipe.in_flight() > 0 => {
                    pipe.collect_ready(&mirror).await?;
                }
                record = input.next() => match record?.map(|rec| transforms.apply(rec)) {
                    Some(Err(refused)) => {
                        // Everything before it goes to Kafka; the refusal names the record.
                        pipe.drain(&mirror).await?;
                        return Err(anyhow::Error::from(refused));
                    }
                    Some(Ok(Transformed::Filtered(rec))) => pipe.skip(rec),
                    Some(Ok(Transformed::Send(rec))) if careful.is_some_and(|(from, through)| (from..=through).contains(&rec.offset)) => {
                        // One record per transaction: a refusal names the record at fault,
                        // and everything before it is committed.
                        pipe.drain(&mirror).await?;
                        pipe.push(&mirror, rec).await?;
                        pipe.drain(&mirror).await.map_err(isolate)?;
                    }
                    Some(Ok(Transformed::Send(rec))) => {
                        // Whatever came before the first record read is in Kafka or skipped
                        // by the start position.
                        if pipe.acked().is_none() {
                            progress.raise_to(rec.offset - 1);
                        }
                        pipe.push(&mirror, rec).await?;
                        if !timer_commits
                            && last_commit.elapsed() >= interval
                            && commit_acked(&mirror, &mut pipe, &mut input, &mut committed, &committed_gauge).await?
                        {
                            last_commit = std::time::Instant::now();
                        }
                    }
                    None => break,
                },
            }
            if let Some(acked) = pipe.acked() {
                progress.raise_to(acked);
            }
        }
        Ok(())
    };
    // A signal cuts in anywhere, even while sending or draining waits on Kafka.
    let result: Result<()> = tokio::select! {
        biased;
        _ = shutdown.cancelled() => Ok(()),
        r = work => r,
    };
    // On the way out (signal, end, or error): deliver what is in flight, commit what Kafka has,
    // within a bounded time: with Kafka away, what it has not acknowledged stays uncommitted
    // (and is sent again on the next start), and the exit is non-zero.
    let drained = match tokio::time::timeout(SHUTDOWN_DRAIN, pipe.drain(&mirror)).await {
        Ok(r) => r,
        Err(_) => Err(anyhow!(
            "Kafka did not acknowledge the records in flight within {SHUTDOWN_DRAIN:?}; exiting without committing them (they are sent again on the next start)"
        )),
    };
    if let Some(acked) = pipe.acked().filter(|a| Some(*a) != committed) {
        match tokio::time::timeout(std::time::Duration::from_secs(3), input.commit(acked)).await {
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
    }
    result.and(drained)
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

/// Commit what Kafka acknowledged: the committed offset never passes a record Kafka has not
/// taken. A Fluvio stream commits the last record read, so it waits for everything in flight,
/// and does not try while records read again are still to be sent. Returns whether it tried
/// (else it should try again soon).
async fn commit_acked(
    mirror: &Mirror,
    pipe: &mut PartitionPipe,
    input: &mut PartitionInput,
    committed: &mut Option<i64>,
    gauge: &connector_runtime::metrics::Gauge,
) -> Result<bool> {
    if input.commits_last_read() {
        if input.holds_records() {
            return Ok(false);
        }
        pipe.drain(mirror).await?;
    } else {
        pipe.collect_ready(mirror).await?;
    }
    if let Some(acked) = pipe.acked().filter(|a| Some(*a) != *committed) {
        if !input.commit(acked).await? {
            return Ok(false);
        }
        *committed = Some(acked);
        gauge.set(acked.max(0) as u64);
    }
    Ok(true)
}
