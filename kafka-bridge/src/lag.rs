//! Lag per Fluvio partition: how many records the partition holds that Kafka has not
//! acknowledged yet (`lag{partition}`), from the partition ends the Fluvio cluster reports
//! every [`LAG_INTERVAL`] and each partition's progress. Until a partition mirrors anything in
//! this run (Kafka still away at start), the consumer id's committed offset stands for it.
//! The ends are also handed to the inputs ([`PartitionEnd`]): a consumer that stays idle short
//! of a partition's end has skipped its last records.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use connector_runtime::cluster;
use connector_runtime::metrics::Metrics;

use fluvio::Fluvio;
use tokio_util::sync::CancellationToken;

use crate::input::PartitionEnd;

/// How often the partition ends are asked for.
pub const LAG_INTERVAL: Duration = Duration::from_secs(2);

/// The highest Fluvio offset of a partition known to be in Kafka (-1: none). Only goes up.
#[derive(Clone, Debug)]
pub struct Progress(Arc<AtomicI64>);

impl Default for Progress {
    fn default() -> Self {
        Self(Arc::new(AtomicI64::new(-1)))
    }
}

impl Progress {
    pub fn raise_to(&self, offset: i64) {
        self.0.fetch_max(offset, Ordering::Relaxed);
    }

    fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One partition's view: what Kafka holds, where the partition ends.
#[derive(Clone, Debug, Default)]
pub struct Watch {
    pub progress: Progress,
    pub end: PartitionEnd,
}

/// Records of a partition ending at `end` (the offset after its last record) not yet in Kafka.
fn lag(end: i64, progress: i64) -> u64 {
    (end - progress - 1).max(0) as u64
}

/// Publish `lag{partition}` and the ends of `partitions` of `topic` until `shutdown`.
pub async fn report(
    fluvio: &Fluvio,
    topic: &str,
    consumer_id: &str,
    partitions: Vec<(u32, Watch)>,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) {
    match fluvio.consumer_offsets().await {
        Ok(offsets) => {
            for o in offsets
                .iter()
                .filter(|o| o.consumer_id == consumer_id && o.topic == topic)
            {
                if let Some((_, watch)) = partitions.iter().find(|(p, _)| *p == o.partition) {
                    watch.progress.raise_to(o.offset);
                }
            }
        }
        Err(e) => tracing::debug!(error = %e, "cannot read the committed offsets for the lag"),
    }
    let gauges: Vec<_> = partitions
        .iter()
        .map(|(p, watch)| {
            let gauge = metrics.gauge_with(
                "lag",
                &[("partition", &p.to_string())],
                "records of the Fluvio partition not yet acknowledged by Kafka",
            );
            (*p, watch.clone(), gauge)
        })
        .collect();
    let mut warned = false;
    loop {
        match cluster::partition_ends(fluvio, topic).await {
            Ok(ends) => {
                for (p, watch, gauge) in &gauges {
                    if let Some(end) = ends.get(p) {
                        watch.end.set(*end);
                        gauge.set(lag(*end, watch.progress.get()));
                    }
                }
            }
            Err(e) if !warned => {
                tracing::warn!(error = %format!("{e:#}"), "cannot read the Fluvio partition ends; the lag metric is not updated");
                warned = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(LAG_INTERVAL) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_counts_records_after_the_progress() {
        assert_eq!(lag(100, -1), 100, "nothing in Kafka");
        assert_eq!(lag(100, 49), 50);
        assert_eq!(lag(100, 99), 0, "caught up");
        assert_eq!(lag(0, -1), 0, "empty partition");
        assert_eq!(
            lag(90, 99),
            0,
            "an end reported before the last acknowledgement"
        );
    }

    #[test]
    fn progress_only_goes_up() {
        let p = Progress::default();
        assert_eq!(p.get(), -1);
        p.raise_to(10);
        p.raise_to(4);
        assert_eq!(p.get(), 10);
    }
}
