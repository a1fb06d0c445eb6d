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
mod transactions;
mod transform;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use connector_runtime::cluster::{self, StartAt};
use connector_runtime::launch::{self, ConnectorInfo, Launched};
use connector_runtime::sink::{self, SinkContext};
use connector_runtime::transforms::ModuleSpec;
use tokio_util::sync::CancellationToken;

use crate::config::{Delivery, KafkaConfig, OnFluvioReset, OnRefused, Partitioning};
use crate::input::{FileInput, FluvioFailed, PartitionInput};
use crate::lag::{Progress, Watch};
use crate::mirror::{Mirror, PartitionPipe, Refused};
use crate::resume::Spread;
use crate::transactions::{Fenced, TransactionFailed};
use crate::transform::{SinkTransforms, Transformed};

const INFO: ConnectorInfo = ConnectorInfo {
    name: "kafka-bridge-sink",
    version: env!("CARGO_PKG_VERSION"),
    about: "Fluvio sink connector mirroring a Fluvio topic into Kafka, exactly once",
    section: "kafka",
};

/// How long the way out waits for Kafka to acknowledge what is in flight.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(20);

/// How long the bridge waits before it goes on after an aborted transaction.
const AFTER_ABORT: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    launch::run(INFO, run)
}

/// Where the records come from.
enum Source {
    /// A capture file, read as partition 0, and the sink transforms.
    File(PathBuf, Vec<ModuleSpec>),
    /// The Fluvio topic's partitions, each with its lag watch (the partition ends the input
    /// checks its streams against, read by a task on the current client).
    Fluvio {
        ctx: Arc<SinkContext>,
        partitions: Vec<u32>,
        watches: HashMap<u32, Watch>,
        lag: LagTask,
    },
}

/// What the lag task reads with, and the handle that stops it.
struct LagTask {
    topic: String,
    consumer_id: String,
    metrics: connector_runtime::metrics::Metrics,
    shutdown: CancellationToken,
    /// Stops the task running now.
    stop: CancellationToken,
}

impl LagTask {
    /// Watch the partition ends and the lag with `ctx`'s client, until `stop` or a newer task.
    fn spawn(&mut self, ctx: &Arc<SinkContext>, watches: &HashMap<u32, Watch>) {
        self.stop.cancel();
        self.stop = self.shutdown.child_token();
        let (ctx, topic, consumer_id, metrics, stop) = (
            ctx.clone(),
            self.topic.clone(),
            self.consumer_id.clone(),
            self.metrics.clone(),
            self.stop.clone(),
        );
        let w = watches.iter().map(|(p, w)| (*p, w.clone())).collect();
        tokio::spawn(async move {
            lag::report(&ctx.fluvio, &topic, &consumer_id, w, &metrics, &stop).await
        });
    }
}

impl Source {
    fn partitions(&self) -> Vec<u32> {
        match self {
            Source::File(..) => vec![0],
            Source::Fluvio { partitions, .. } => partitions.clone(),
        }
    }

    /// The sink `transforms:`, resolved to wasm (run in-process on each record).
    fn transforms(&self) -> &[ModuleSpec] {
        match self {
            Source::File(_, modules) => modules,
            Source::Fluvio { ctx, .. } => &ctx.transforms,
        }
    }

    /// Connect to the Fluvio cluster again (after it failed under a stream), waiting with
    /// backoff until it answers or `shutdown`.
    async fn reconnect(
        &mut self,
        launched: &Launched<KafkaConfig>,
        shutdown: &CancellationToken,
    ) -> Result<()> {
        let Source::Fluvio {
            ctx, watches, lag, ..
        } = self
        else {
            return Ok(());
        };
        let fluvio_open = launched.metrics.readiness(FLUVIO_OPEN);
        fluvio_open.set(false);
        let mut pause = Duration::from_millis(500);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.cancelled() => return Ok(()),
            }
            match sink::connect(launched).await {
                Ok(new) => {
                    tracing::info!("connected to the Fluvio cluster again");
                    fluvio_open.set(true);
                    *ctx = Arc::new(new);
                    // The partition ends too are read anew: the old client's are stale.
                    lag.spawn(ctx, watches);
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), retry_in = ?pause, "the Fluvio cluster does not answer yet");
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// The bridge's readiness condition on its input (`/ready`).
const FLUVIO_OPEN: &str = "Fluvio stream open";

async fn run(launched: Launched<KafkaConfig>) -> Result<()> {
    let cfg = launched.config.custom.clone();
    cfg.validate()
        .map_err(|e| anyhow!("invalid config: {}: {e}", launched.config.file.display()))?;
    let meta = &launched.config.meta;
    let client_id = format!("fluvio_connector_{}", meta.name);
    let shutdown = launched.shutdown.clone();
    let metrics = launched.metrics.clone();
    let fluvio_topic = meta.topic.name.clone();
    let consumer_id = meta.consumer.as_ref().and_then(|c| c.id.clone());

    // Met while the Fluvio stream is open (a capture file is always open).
    let fluvio_open = metrics.readiness(FLUVIO_OPEN);
    let source = if let Some(file) = launched.args.input_file.clone() {
        let config = &launched.config;
        let modules = sink::sink_transforms(&config.transforms, &config.dir(), None).await?;
        fluvio_open.set(true);
        Source::File(file, modules)
    } else {
        let Some(consumer_id) = consumer_id.clone() else {
            return Err(anyhow!(
                "meta.consumer.id: required (without it, records produced while the bridge is down would be skipped); e.g. `consumer: {{id: kafka-bridge, offset: {{start: beginning, strategy: manual}}}}`"
            ));
        };
        let ctx = Arc::new(sink::connect(&launched).await?);
        let partitions = ctx.partitions().await?;
        fluvio_open.set(true);
        // The lag is reported from now on, also while Kafka is still awaited.
        let watches: HashMap<u32, Watch> =
            partitions.iter().map(|p| (*p, Watch::default())).collect();
        let mut lag = LagTask {
            topic: fluvio_topic.clone(),
            consumer_id,
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
            stop: CancellationToken::new(),
        };
        lag.spawn(&ctx, &watches);
        Source::Fluvio {
            ctx,
            partitions,
            watches,
            lag,
        }
    };
    let transactional_id = KafkaConfig::transactional_id(
        consumer_id.as_deref().unwrap_or("capture-file"),
        &fluvio_topic,
    );
    let Some(mirror) = Mirror::connect(
        cfg.clone(),
        &client_id,
        &transactional_id,
        &fluvio_topic,
        source.partitions().len(),
        &metrics,
        &shutdown,
    )
    .await?
    else {
        return Ok(());
    };
    let mirror = Arc::new(mirror);
    let mut source = source;
    let result =
        mirror_until_stopped(&mirror, &mut source, &launched, &fluvio_topic, &shutdown).await;
    mirror.flush(Duration::from_secs(10));
    result
}

/// Mirror until a signal or an error that needs a person. With transactions, a failed
/// transaction is aborted and mirroring goes on from what Kafka has committed. A refused batch
/// is sent again one record per transaction, which commits everything before the record at
/// fault and names it; that record then stops the bridge, or goes to the dead-letter topic.
async fn mirror_until_stopped(
    mirror: &Arc<Mirror>,
    source: &mut Source,
    launched: &Launched<KafkaConfig>,
    fluvio_topic: &str,
    shutdown: &CancellationToken,
) -> Result<()> {
    let cfg = mirror.config();
    let mut careful = None;
    loop {
        let Err(e) = session(mirror, source, fluvio_topic, careful, shutdown).await else {
            return Ok(());
        };
        if e.is::<FluvioFailed>() && !shutdown.is_cancelled() {
            // What Kafka holds stays; the rest is read again after it.
            tracing::warn!(error = %format!("{e:#}"), "the Fluvio cluster failed under the bridge; connecting again");
            if let Some(txn) = mirror.transactions() {
                txn.abort().await?;
            }
            source.reconnect(launched, shutdown).await?;
            continue;
        }
        let Some(txn) = mirror.transactions() else {
            return Err(e);
        };
        if e.is::<Fenced>() {
            return Err(e);
        }
        if let Some(fatal) = txn.fatal() {
            tracing::error!(error = %format!("{e:#}"), "the run stopped");
            return Err(fatal);
        }
        tracing::warn!(error = %format!("{e:#}"), "aborting the open Kafka transaction");
        if let Err(abort) = txn.abort().await {
            if abort.is::<Fenced>() {
                tracing::error!(error = %format!("{e:#}"), "the run stopped");
                return Err(abort);
            }
            return Err(e.context(format!("{abort:#}")));
        }
        if shutdown.is_cancelled() {
            return Err(e);
        }
        match e.downcast::<Refused>() {
            Ok(refused) if !refused.isolated => {
                tracing::warn!(
                    partition = refused.record.partition,
                    from = refused.record.offset,
                    through = refused.through,
                    "Kafka refused a batch: sending these records again one per transaction, to find the one at fault"
                );
                careful = Some(Careful {
                    partition: refused.record.partition,
                    from: refused.record.offset,
                    through: refused.through,
                });
            }
            Ok(refused) => match cfg.on_refused {
                OnRefused::Stop => return Err(refused.into()),
                OnRefused::DeadLetter => {
                    mirror.dead_letter(&refused).await?;
                    careful = None;
                }
            },
            Err(e) if e.is::<TransactionFailed>() => {
                tracing::warn!("going on from what Kafka has committed in {AFTER_ABORT:?}");
                tokio::select! {
                    _ = tokio::time::sleep(AFTER_ABORT) => {}
                    _ = shutdown.cancelled() => return Ok(()),
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Offsets of one partition to send one record per transaction (a refused batch's).
#[derive(Clone, Copy, Debug)]
struct Careful {
    partition: u32,
    from: i64,
    through: i64,
}

/// One run over every partition, from where Kafka says each was mirrored up to, until a
/// signal or an error.
async fn session(
    mirror: &Arc<Mirror>,
    source: &Source,
    fluvio_topic: &str,
    careful: Option<Careful>,
    shutdown: &CancellationToken,
) -> Result<()> {
    let cfg = mirror.config();
    let stop = shutdown.child_token();
    let (committer_stop, committer_abandon) = (CancellationToken::new(), CancellationToken::new());
    let committer = mirror.transactions().map(|_| {
        let (mirror, stop, abandon) = (
            mirror.clone(),
            committer_stop.clone(),
            committer_abandon.clone(),
        );
        tokio::spawn(async move {
            let t = mirror.transactions().expect("transactions");
            t.run_committer(mirror.config().transaction_interval, stop, abandon)
                .await
        })
    });
    let partitions = source.partitions();
    let mut resumed = resume_points(cfg, fluvio_topic, &partitions).await?;
    let mut tasks = tokio::task::JoinSet::new();
    match source {
        Source::File(path, _) => {
            let committed = FileInput::committed(path);
            let start = start_offset(resumed.get(&0).copied(), committed).unwrap_or(0);
            tracing::info!(file = %path.display(), start, "mirroring a capture file");
            let input = PartitionInput::File(FileInput::open(path.clone(), start)?);
            let in_kafka = start.checked_sub(1).filter(|o| *o >= 0);
            let job = PartitionJob {
                partition: 0,
                input,
                transforms: SinkTransforms::new(
                    source.transforms(),
                    cfg.tombstones,
                    mirror.metrics(),
                )?,
                in_kafka,
                progress: Progress::default(),
                careful: careful_range(careful, 0),
            };
            tasks.spawn(mirror_partition(mirror.clone(), job, stop.clone()));
        }
        Source::Fluvio {
            ctx,
            partitions,
            watches,
            ..
        } => {
            check_partition_ends(ctx, cfg, fluvio_topic, &mut resumed).await?;
            for &p in partitions {
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
                let stream = ctx
                    .partition_stream(p, start)
                    .await
                    .map_err(|e| FluvioFailed(format!("{e:#}")))?;
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
                let input =
                    PartitionInput::fluvio(p, Box::new(stream), expected, reopen, watch.end);
                let in_kafka = resumed.get(&p).copied().filter(|o| *o >= 0);
                let progress = watch.progress;
                if let Some(off) = in_kafka {
                    progress.raise_to(off);
                }
                let job = PartitionJob {
                    partition: p,
                    input,
                    transforms: SinkTransforms::new(
                        &ctx.transforms,
                        cfg.tombstones,
                        mirror.metrics(),
                    )?,
                    in_kafka,
                    progress,
                    careful: careful_range(careful, p),
                };
                tasks.spawn(mirror_partition(mirror.clone(), job, stop.clone()));
            }
        }
    }
    let mut errors = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let r = joined
            .map_err(|e| anyhow!("partition task: {e}"))
            .and_then(|r| r);
        if let Err(e) = r {
            if errors.is_empty() {
                tracing::error!(error = %format!("{e:#}"), "a partition stopped; stopping the others");
            }
            stop.cancel();
            errors.push(e);
        }
    }
    // A run that ended well commits what it sent; a failed one leaves it to the abort.
    if errors.is_empty() {
        committer_stop.cancel();
    } else {
        committer_abandon.cancel();
    }
    if let Some(c) = committer {
        match c.await {
            Ok(Err(e)) if e.is::<Fenced>() || e.is::<TransactionFailed>() => errors.push(e),
            Ok(Err(e)) => errors.push(TransactionFailed(format!("{e:#}")).into()),
            Err(e) => errors.push(anyhow!("transaction committer: {e}")),
            Ok(Ok(())) => {}
        }
    }
    // The error that says most: a refused record, then a takeover, then the first.
    let rank = |e: &anyhow::Error| {
        if e.is::<Refused>() {
            0
        } else if e.is::<Fenced>() {
            1
        } else if e.is::<TransactionFailed>() {
            3
        } else {
            2
        }
    };
    errors.sort_by_key(rank);
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The offsets of `partition` to send one by one, if any.
fn careful_range(careful: Option<Careful>, partition: u32) -> Option<(i64, i64)> {
    careful
        .filter(|c| c.partition == partition)
        .map(|c| (c.from, c.through))
}

/// A resume point past a Fluvio partition's end means the topic was deleted and re-created
/// (or lost records): stop with a clear error, or start the partition over when configured.
async fn check_partition_ends(
    ctx: &SinkContext,
    cfg: &KafkaConfig,
    fluvio_topic: &str,
    resumed: &mut HashMap<u32, i64>,
) -> Result<()> {
    if resumed.is_empty() {
        return Ok(());
    }
    let ends = cluster::partition_ends(&ctx.fluvio, fluvio_topic)
        .await
        .map_err(|e| FluvioFailed(format!("{e:#}")))?;
    for (p, end) in ends {
        let Some(&after) = resumed.get(&p) else {
            continue;
        };
        if after < end {
            continue;
        }
        match cfg.on_fluvio_reset {
            OnFluvioReset::Stop => {
                return Err(anyhow!(
                    "Fluvio partition {p} of `{fluvio_topic}` ends at offset {end}, but Kafka `{}` already holds its offset {after}: the Fluvio topic was deleted and re-created (or lost records). Nothing was skipped. To mirror the new topic from its start, set kafka.on_fluvio_reset: start-over",
                    cfg.topic
                ));
            }
            OnFluvioReset::StartOver => {
                tracing::warn!(
                    partition = p,
                    end,
                    in_kafka = after,
                    "the Fluvio partition ends before what Kafka holds of it (topic re-created): mirroring it from its start"
                );
                // From offset 0, not from the consumer id's offset (it belongs to the old topic).
                resumed.insert(p, -1);
            }
        }
    }
    Ok(())
}

/// Where Kafka says each Fluvio partition was mirrored up to (with `key` partitioning and
/// at-least-once delivery a Fluvio partition is spread over Kafka partitions without order
/// between them: no exact answer).
async fn resume_points(
    cfg: &KafkaConfig,
    fluvio_topic: &str,
    partitions: &[u32],
) -> Result<HashMap<u32, i64>> {
    if !cfg.resume_from_kafka {
        return Ok(HashMap::new());
    }
    let spread = match (cfg.partitioning, cfg.delivery) {
        (Partitioning::Key, Delivery::AtLeastOnce) => {
            tracing::info!("key partitioning: resuming from the committed Fluvio offsets (after a crash, a few records may be written twice; use the fluvio.* headers to deduplicate, or delivery: exactly-once)");
            return Ok(HashMap::new());
        }
        (Partitioning::Key, Delivery::ExactlyOnce) => Spread::Everywhere,
        _ => Spread::ByPartitioning,
    };
    let mut found =
        resume::newest_offsets(cfg, &cfg.topic, fluvio_topic, partitions, spread).await?;
    if cfg.on_refused == OnRefused::DeadLetter {
        let dlq = cfg.dead_letter_topic();
        let dead =
            resume::newest_offsets(cfg, &dlq, fluvio_topic, partitions, Spread::Everywhere).await?;
        for (p, o) in dead {
            let newest = found.entry(p).or_insert(o);
            *newest = o.max(*newest);
        }
    }
    Ok(found)
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

/// One partition to mirror.
struct PartitionJob {
    partition: u32,
    input: PartitionInput,
    transforms: SinkTransforms,
    /// The highest offset Kafka holds already (where the partition resumes), if any.
    in_kafka: Option<i64>,
    /// Follows the partition's progress, for the lag.
    progress: Progress,
    /// Offsets to send one record per transaction.
    careful: Option<(i64, i64)>,
}

/// Read one partition, transform and send each record in order, commit what Kafka holds.
async fn mirror_partition(
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
