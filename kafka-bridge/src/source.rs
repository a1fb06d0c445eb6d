//! Where the bridge's records come from: the Fluvio topic's partitions, with the task that
//! reports their lag, or a capture file (`--input-file`); and connecting to Fluvio again after
//! it failed under the streams.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use connector_runtime::launch::Launched;
use connector_runtime::sink::{self, SinkContext};
use connector_runtime::transforms::ModuleSpec;
use tokio_util::sync::CancellationToken;

use crate::config::KafkaConfig;
use crate::lag::{self, Watch};

/// Where the records come from.
pub(crate) enum Source {
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
pub(crate) struct LagTask {
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
    pub(crate) fn partitions(&self) -> Vec<u32> {
        match self {
            Source::File(..) => vec![0],
            Source::Fluvio { partitions, .. } => partitions.clone(),
        }
    }

    /// Connect to the Fluvio cluster again (after it failed under a stream), waiting with
    /// backoff until it answers or `shutdown`.
    pub(crate) async fn reconnect(
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
pub(crate) const FLUVIO_OPEN: &str = "Fluvio stream open";

impl Source {
    /// Open the input: the capture file of `--input-file`, else the Fluvio topic's partitions
    /// (which needs `meta.consumer.id`), and start reporting the lag.
    pub(crate) async fn open(launched: &Launched<KafkaConfig>) -> Result<Self> {
        let meta = &launched.config.meta;
        // Met while the Fluvio stream is open (a capture file is always open).
        let fluvio_open = launched.metrics.readiness(FLUVIO_OPEN);
        if let Some(file) = launched.args.input_file.clone() {
            let config = &launched.config;
            let modules = sink::sink_transforms(&config.transforms, &config.dir(), None).await?;
            fluvio_open.set(true);
            return Ok(Source::File(file, modules));
        }
        let Some(consumer_id) = meta.consumer.as_ref().and_then(|c| c.id.clone()) else {
            return Err(anyhow!(
                "meta.consumer.id: required (without it, records produced while the bridge is down would be skipped); e.g. `consumer: {{id: kafka-bridge, offset: {{start: beginning, strategy: manual}}}}`"
            ));
        };
        let ctx = Arc::new(sink::connect(launched).await?);
        let partitions = ctx.partitions().await?;
        fluvio_open.set(true);
        // The lag is reported from now on, also while Kafka is still awaited.
        let watches: HashMap<u32, Watch> =
            partitions.iter().map(|p| (*p, Watch::default())).collect();
        let mut lag = LagTask {
            topic: meta.topic.name.clone(),
            consumer_id,
            metrics: launched.metrics.clone(),
            shutdown: launched.shutdown.clone(),
            stop: CancellationToken::new(),
        };
        lag.spawn(&ctx, &watches);
        Ok(Source::Fluvio {
            ctx,
            partitions,
            watches,
            lag,
        })
    }
}
