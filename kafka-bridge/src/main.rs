//! # kafka-bridge-sink
//!
//! A Fluvio sink connector that mirrors a Fluvio topic into a Kafka topic (default `tweets`),
//! at least once with no loss, and with no duplicate after a crash: each Fluvio offset is
//! committed only after Kafka acknowledged it and every earlier one, and on start each Fluvio
//! partition resumes after the `fluvio.offset` header of the last record in Kafka.
//!
//! The data path: [`input`] (Fluvio partition streams) -> [`mirror`] (idempotent producer,
//! in-order delivery pipes) -> commit; [`resume`] decides where each partition starts and
//! [`timestamps`] which time each record carries.

mod config;
mod input;
mod lag;
mod mirror;
mod resume;
mod timestamps;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use connector_runtime::cluster::StartAt;
use connector_runtime::launch::{self, ConnectorInfo, Launched};
use connector_runtime::sink;
use tokio_util::sync::CancellationToken;

use crate::config::{KafkaConfig, Partitioning};
use crate::input::{FileInput, PartitionInput};
use crate::lag::{Progress, Watch};
use crate::mirror::{Mirror, PartitionPipe};

const INFO: ConnectorInfo = ConnectorInfo {
    name: "kafka-bridge-sink",
    version: env!("CARGO_PKG_VERSION"),
    about: "Fluvio sink connector mirroring a Fluvio topic into Kafka, losing nothing",
    section: "kafka",
};

/// How long the way out waits for Kafka to acknowledge what is in flight.
const SHUTDOWN_DRAIN: std::time::Duration = std::time::Duration::from_secs(20);

/// Mirror a capture file instead of Fluvio (tests, offline captures).
const INPUT_FILE_ENV: &str = "KAFKA_BRIDGE_INPUT_FILE";

fn main() -> ExitCode {
    launch::run(INFO, run)
}

async fn run(launched: Launched<KafkaConfig>) -> Result<()> {
    let cfg = launched.config.custom.clone();
    cfg.validate()
        .map_err(|e| anyhow!("invalid config: {}: {e}", launched.config.file.display()))?;
    let meta = &launched.config.meta;
    let client_id = format!("fluvio_connector_{}", meta.name);
    let shutdown = launched.shutdown.clone();
    let metrics = launched.metrics.clone();
    let fluvio_topic = meta.topic.name.clone();

    if let Some(file) = std::env::var_os(INPUT_FILE_ENV) {
        let path = std::path::PathBuf::from(file);
        let Some(mirror) = Mirror::connect(
            cfg.clone(),
            &client_id,
            &fluvio_topic,
            1,
            &metrics,
            &shutdown,
        )
        .await?
        else {
            return Ok(());
        };
        let resumed = resume_points(&cfg, &fluvio_topic, &[0]).await?;
        let committed = FileInput::committed(&path);
        let start = start_offset(resumed.get(&0).copied(), committed).unwrap_or(0);
        tracing::info!(file = %path.display(), start, "mirroring a capture file");
        let input = PartitionInput::File(FileInput::open(path, start)?);
        let in_kafka = start.checked_sub(1).filter(|o| *o >= 0);
        return mirror_partition(
            Arc::new(mirror),
            0,
            input,
            in_kafka,
            Progress::default(),
            shutdown,
        )
        .await;
    }

    let Some(consumer_id) = meta.consumer.as_ref().and_then(|c| c.id.clone()) else {
        return Err(anyhow!(
            "meta.consumer.id: required (without it, records produced while the bridge is down would be skipped); e.g. `consumer: {{id: kafka-bridge, offset: {{start: beginning, strategy: manual}}}}`"
        ));
    };
    let ctx = Arc::new(sink::connect(&launched).await?);
    let partitions = ctx.partitions().await?;
    // The lag is reported from now on, also while Kafka is still awaited.
    let watches: HashMap<u32, Watch> = partitions.iter().map(|p| (*p, Watch::default())).collect();
    {
        let (ctx, topic, metrics, shutdown) = (
            ctx.clone(),
            fluvio_topic.clone(),
            metrics.clone(),
            shutdown.clone(),
        );
        let watches = watches.iter().map(|(p, w)| (*p, w.clone())).collect();
        tokio::spawn(async move {
            lag::report(
                &ctx.fluvio,
                &topic,
                &consumer_id,
                watches,
                &metrics,
                &shutdown,
            )
            .await
        });
    }
    let Some(mirror) = Mirror::connect(
        cfg.clone(),
        &client_id,
        &fluvio_topic,
        partitions.len(),
        &metrics,
        &shutdown,
    )
    .await?
    else {
        return Ok(());
    };
    let mirror = Arc::new(mirror);
    let resumed = resume_points(&cfg, &fluvio_topic, &partitions).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for p in partitions {
        let start = match resumed.get(&p) {
            Some(off) => {
                tracing::info!(
                    partition = p,
                    after = off,
                    "resuming after the last record found in Kafka"
                );
                StartAt::Absolute(off + 1)
            }
            None => StartAt::Config,
        };
        let stream = ctx.partition_stream(p, start).await?;
        let expected = match start {
            StartAt::Absolute(o) => Some(o),
            StartAt::Config => None,
        };
        let reopen_ctx = ctx.clone();
        let reopen: input::Reopen = Box::new(move |offset| {
            let ctx = reopen_ctx.clone();
            Box::pin(async move {
                let stream = ctx.plain_stream(p, offset).await?;
                Ok(Box::new(stream) as input::FluvioStream)
            })
        });
        let watch = watches[&p].clone();
        let input = PartitionInput::fluvio(p, Box::new(stream), expected, reopen, watch.end);
        let in_kafka = resumed.get(&p).copied();
        let progress = watch.progress;
        if let Some(off) = in_kafka {
            progress.raise_to(off);
        }
        tasks.spawn(mirror_partition(
            mirror.clone(),
            p,
            input,
            in_kafka,
            progress,
            shutdown.clone(),
        ));
    }
    let mut result = Ok(());
    while let Some(joined) = tasks.join_next().await {
        let r = joined
            .map_err(|e| anyhow!("partition task: {e}"))
            .and_then(|r| r);
        if let Err(e) = r {
            tracing::error!(error = %format!("{e:#}"), "a partition stopped; stopping the bridge");
            shutdown.cancel();
            if result.is_ok() {
                result = Err(e);
            }
        }
    }
    mirror.flush(std::time::Duration::from_secs(10));
    result
}

/// Where Kafka says each Fluvio partition was mirrored up to (only where that is exact: with
/// `key` partitioning a Fluvio partition is spread over Kafka partitions).
async fn resume_points(
    cfg: &KafkaConfig,
    fluvio_topic: &str,
    partitions: &[u32],
) -> Result<HashMap<u32, i64>> {
    if !cfg.resume_from_kafka {
        return Ok(HashMap::new());
    }
    if cfg.partitioning == Partitioning::Key {
        tracing::info!("key partitioning: resuming from the committed Fluvio offsets (after a crash, a few records may be written twice; use the fluvio.* headers to deduplicate)");
        return Ok(HashMap::new());
    }
    resume::newest_offsets(cfg, fluvio_topic, partitions).await
}

/// The first offset to read: after what Kafka holds, or after the committed one.
fn start_offset(in_kafka: Option<i64>, committed: Option<i64>) -> Option<i64> {
    match (in_kafka, committed) {
        (Some(k), Some(c)) => Some(k.max(c) + 1),
        (Some(k), None) => Some(k + 1),
        (None, Some(c)) => Some(c + 1),
        (None, None) => None,
    }
}

/// Read one partition, send each record in order, commit what Kafka acknowledged; `progress`
/// follows what Kafka holds (for the lag).
async fn mirror_partition(
    mirror: Arc<Mirror>,
    partition: u32,
    mut input: PartitionInput,
    in_kafka: Option<i64>,
    progress: Progress,
    shutdown: CancellationToken,
) -> Result<()> {
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
            tokio::select! {
                _ = tick.tick(), if timer_commits => {
                    commit_acked(&mirror, &mut pipe, &mut input, &mut committed, &committed_gauge).await?;
                }
                _ = pipe.front_arrived(), if pipe.in_flight() > 0 => {
                    pipe.collect_ready(&mirror).await?;
                }
                record = input.next() => match record? {
                    Some(rec) => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_offsets() {
        assert_eq!(start_offset(None, None), None);
        assert_eq!(start_offset(Some(9), None), Some(10));
        assert_eq!(start_offset(Some(9), Some(4)), Some(10));
        assert_eq!(start_offset(None, Some(4)), Some(5));
    }
}
