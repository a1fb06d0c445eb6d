//! The bridge's runs: one session mirrors every partition from where Kafka says each was
//! mirrored up to, until a signal or an error; `mirror_until_stopped` starts sessions again
//! after what can be recovered from (Fluvio failing under the streams, an aborted transaction,
//! a refused batch to send again one record per transaction, a stalled producer replaced).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use connector_runtime::cluster::{self, StartAt};
use connector_runtime::metrics::{Counter, Metrics};
use connector_runtime::sink::FluvioTopic;
use tokio_util::sync::CancellationToken;

use crate::config::{Delivery, KafkaConfig, OnFluvioReset, OnRefused, Partitioning};
use crate::input::{self, FileInput, FluvioFailed, PartitionInput};
use crate::lag::Progress;
use crate::mirror::{Fenced, ProducerStalled, TransactionFailed};
use crate::mirror::{Mirror, Refused};
use crate::partition::{mirror_partition, PartitionJob};
use crate::resume::{self, Spread};
use crate::source::{Origin, Source};
use crate::transform::SinkTransforms;

/// How long the bridge waits before it goes on after an aborted transaction.
const AFTER_ABORT: Duration = Duration::from_secs(1);

/// Mirror until a signal or an error that needs a person. With transactions, a failed
/// transaction is aborted and mirroring goes on from what Kafka has committed. A refused batch
/// is sent again one record per transaction, which commits everything before the record at
/// fault and names it; that record then stops the bridge, or goes to the dead-letter topic.
/// A producer that stalls, or cannot abort, is replaced by a new one.
pub(crate) async fn mirror_until_stopped(
    mirror: &mut Arc<Mirror>,
    source: &mut Source,
    metrics: &Metrics,
    fluvio_topic: &str,
    shutdown: &CancellationToken,
) -> Result<()> {
    // Registered at start, so that a scrape shows 0 before the first replacement.
    let replaced = metrics.counter(
        "producers_replaced_total",
        "Kafka producers replaced after they stalled (or could not abort a transaction)",
    );
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
            source.reconnect(metrics, shutdown).await?;
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
        if e.is::<ProducerStalled>() {
            replace_producer(mirror, e, &replaced, shutdown).await?;
            careful = None;
            continue;
        }
        tracing::warn!(error = %format!("{e:#}"), "aborting the open Kafka transaction");
        if let Err(abort) = txn.abort().await {
            if abort.is::<Fenced>() {
                tracing::error!(error = %format!("{e:#}"), "the run stopped");
                return Err(abort);
            }
            let e = e.context(format!("{abort:#}"));
            // With a `delivery_timeout`, giving up is what the user asked for.
            if mirror.config().producer_stall().is_none() {
                return Err(e);
            }
            replace_producer(mirror, e, &replaced, shutdown).await?;
            careful = None;
            continue;
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
            Ok(refused) => match mirror.config().on_refused {
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

/// Put a new producer in the place of `mirror`'s, which stalled or cannot abort (`why`; see
/// [`Mirror::replacement`]). The old one is dropped on a thread of its own: librdkafka's
/// teardown may wait on its brokers. On shutdown nothing is replaced and `why` is returned.
async fn replace_producer(
    mirror: &mut Arc<Mirror>,
    why: anyhow::Error,
    replaced: &Counter,
    shutdown: &CancellationToken,
) -> Result<()> {
    if shutdown.is_cancelled() {
        return Err(why);
    }
    tracing::warn!(error = %format!("{why:#}"), "replacing the Kafka producer: the new one fences the old one and aborts its open transaction; mirroring goes on from what Kafka has committed");
    let Some(new) = mirror.replacement(shutdown).await? else {
        return Err(why);
    };
    let old = std::mem::replace(mirror, Arc::new(new));
    std::thread::spawn(move || drop(old));
    replaced.inc();
    Ok(())
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
    let stop = shutdown.child_token();
    let (committer_stop, committer_abandon) = (CancellationToken::new(), CancellationToken::new());
    let committer = spawn_committer(mirror, &committer_stop, &committer_abandon);
    let mut tasks = tokio::task::JoinSet::new();
    spawn_partitions(mirror, source, fluvio_topic, careful, &stop, &mut tasks).await?;
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
            Ok(Err(e))
                if e.is::<Fenced>() || e.is::<TransactionFailed>() || e.is::<ProducerStalled>() =>
            {
                errors.push(e)
            }
            Ok(Err(e)) => errors.push(TransactionFailed(format!("{e:#}")).into()),
            Err(e) => errors.push(anyhow!("transaction committer: {e}")),
            Ok(Ok(())) => {}
        }
    }
    most_telling(errors)
}

/// The transaction committer of `mirror` (with transactions), until `stop` (commit what was
/// sent) or `abandon` (leave it to the abort).
fn spawn_committer(
    mirror: &Arc<Mirror>,
    stop: &CancellationToken,
    abandon: &CancellationToken,
) -> Option<tokio::task::JoinHandle<Result<()>>> {
    mirror.transactions()?;
    let (mirror, stop, abandon) = (mirror.clone(), stop.clone(), abandon.clone());
    Some(tokio::spawn(async move {
        let t = mirror.transactions().expect("transactions");
        t.run_committer(mirror.config().transaction_interval, stop, abandon)
            .await
    }))
}

/// A task per partition, each from where Kafka says it was mirrored up to.
async fn spawn_partitions(
    mirror: &Arc<Mirror>,
    source: &Source,
    fluvio_topic: &str,
    careful: Option<Careful>,
    stop: &CancellationToken,
    tasks: &mut tokio::task::JoinSet<Result<()>>,
) -> Result<()> {
    let cfg = mirror.config();
    let mut resumed = resume_points(cfg, fluvio_topic, &source.partitions()).await?;
    let transforms = |modules| SinkTransforms::new(modules, cfg.tombstones, mirror.metrics());
    match &source.origin {
        Origin::File(path) => {
            let committed = FileInput::committed(path);
            let start = start_offset(resumed.get(&0).copied(), committed).unwrap_or(0);
            tracing::info!(file = %path.display(), start, "mirroring a capture file");
            let job = PartitionJob {
                partition: 0,
                input: PartitionInput::File(FileInput::open(path.clone(), start)?),
                transforms: transforms(&source.transforms)?,
                in_kafka: start.checked_sub(1).filter(|o| *o >= 0),
                progress: Progress::default(),
                careful: careful_range(careful, 0),
            };
            tasks.spawn(mirror_partition(mirror.clone(), job, stop.clone()));
        }
        Origin::Fluvio {
            topic,
            partitions,
            watches,
            ..
        } => {
            check_partition_ends(topic, cfg, fluvio_topic, &mut resumed).await?;
            for &p in partitions {
                let in_kafka = resumed.get(&p).copied();
                let watch = watches[&p].clone();
                let input = fluvio_input(topic, p, in_kafka, watch.end).await?;
                let in_kafka = in_kafka.filter(|o| *o >= 0);
                if let Some(off) = in_kafka {
                    watch.progress.raise_to(off);
                }
                let job = PartitionJob {
                    partition: p,
                    input,
                    transforms: transforms(&source.transforms)?,
                    in_kafka,
                    progress: watch.progress,
                    careful: careful_range(careful, p),
                };
                tasks.spawn(mirror_partition(mirror.clone(), job, stop.clone()));
            }
        }
    }
    Ok(())
}

/// The input of Fluvio partition `p`: after the offset Kafka holds (`in_kafka`), else where
/// the consumer config says; read again from any offset on a plain stream when needed.
async fn fluvio_input(
    topic: &Arc<FluvioTopic>,
    p: u32,
    in_kafka: Option<i64>,
    end: input::PartitionEnd,
) -> Result<PartitionInput> {
    let start = match in_kafka {
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
    let stream = topic
        .partition_stream(p, start)
        .await
        .map_err(|e| FluvioFailed(format!("{e:#}")))?;
    let expected = match start {
        StartAt::Absolute(o) => Some(o),
        StartAt::Config => None,
    };
    let reopen_topic = topic.clone();
    let reopen: input::Reopen = Box::new(move |offset| {
        let topic = reopen_topic.clone();
        Box::pin(async move {
            let stream = topic.plain_stream(p, offset).await?;
            Ok(Box::new(stream) as input::FluvioStream)
        })
    });
    Ok(PartitionInput::fluvio(
        p,
        Box::new(stream),
        expected,
        reopen,
        end,
    ))
}

/// The error that says most: a refused record, then a takeover, then a stalled producer (what
/// its purged deliveries made the partitions say follows from it), then the first.
fn most_telling(mut errors: Vec<anyhow::Error>) -> Result<()> {
    let rank = |e: &anyhow::Error| {
        if e.is::<Refused>() {
            0
        } else if e.is::<Fenced>() {
            1
        } else if e.is::<ProducerStalled>() {
            2
        } else if e.is::<TransactionFailed>() {
            4
        } else {
            3
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
    topic: &FluvioTopic,
    cfg: &KafkaConfig,
    fluvio_topic: &str,
    resumed: &mut HashMap<u32, i64>,
) -> Result<()> {
    if resumed.is_empty() {
        return Ok(());
    }
    let ends = cluster::partition_ends(&topic.fluvio, fluvio_topic)
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
