//! Where the bridge's records come from: the Fluvio topic's partitions, with the task that
//! reports their lag, or a capture file (`--input-file`); and connecting to Fluvio again after
//! it failed under the streams.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use connector_runtime::metrics::Metrics;
use connector_runtime::sink::{FluvioTopic, SinkContext, SinkInput, INPUT_OPEN};
use connector_runtime::transforms::ModuleSpec;
use tokio_util::sync::CancellationToken;

use crate::lag::{self, Watch};

/// Where the records come from, and the sink transforms to run on them.
pub(crate) struct Source {
    pub(crate) origin: Origin,
    pub(crate) transforms: Vec<ModuleSpec>,
}

/// The input itself.
pub(crate) enum Origin {
    /// A capture file, read as partition 0.
    File(PathBuf),
    /// The Fluvio topic's partitions, each with its lag watch (the partition ends the input
    /// checks its streams against, read by a task on the current client).
    Fluvio {
        topic: Arc<FluvioTopic>,
        partitions: Vec<u32>,
        watches: HashMap<u32, Watch>,
        lag: LagTask,
    },
}

/// What the lag task reads with, and the handle that stops it.
pub(crate) struct LagTask {
    topic: String,
    consumer_id: String,
    metrics: Metrics,
    shutdown: CancellationToken,
    /// Stops the task running now.
    stop: CancellationToken,
}

impl LagTask {
    /// Watch the partition ends and the lag with `topic`'s client, until `stop` or a newer task.
    fn spawn(&mut self, topic: &Arc<FluvioTopic>, watches: &HashMap<u32, Watch>) {
        self.stop.cancel();
        self.stop = self.shutdown.child_token();
        let (fluvio_topic, name, consumer_id, metrics, stop) = (
            topic.clone(),
            self.topic.clone(),
            self.consumer_id.clone(),
            self.metrics.clone(),
            self.stop.clone(),
        );
        let w = watches.iter().map(|(p, w)| (*p, w.clone())).collect();
        tokio::spawn(async move {
            lag::report(
                &fluvio_topic.fluvio,
                &name,
                &consumer_id,
                w,
                &metrics,
                &stop,
            )
            .await
        });
    }
}

impl Source {
    /// Take the sink's input: the capture file of `--input-file`, else the Fluvio topic's
    /// partitions (which needs `meta.consumer.id`), and start reporting the lag.
    pub(crate) async fn open(ctx: SinkContext) -> Result<Self> {
        let SinkContext {
            input,
            meta,
            transforms,
            shutdown,
            metrics,
        } = ctx;
        let topic = match input {
            SinkInput::File(path) => {
                return Ok(Source {
                    origin: Origin::File(path),
                    transforms,
                })
            }
            SinkInput::Fluvio(topic) => Arc::new(*topic),
        };
        let partitions = topic.partitions().await?;
        // The lag is reported from now on, also while Kafka is still awaited.
        let watches: HashMap<u32, Watch> =
            partitions.iter().map(|p| (*p, Watch::default())).collect();
        let mut lag = LagTask {
            topic: meta.topic.name.clone(),
            consumer_id: topic.consumer_id().to_string(),
            metrics,
            shutdown,
            stop: CancellationToken::new(),
        };
        lag.spawn(&topic, &watches);
        Ok(Source {
            origin: Origin::Fluvio {
                topic,
                partitions,
                watches,
                lag,
            },
            transforms,
        })
    }

    pub(crate) fn partitions(&self) -> Vec<u32> {
        match &self.origin {
            Origin::File(..) => vec![0],
            Origin::Fluvio { partitions, .. } => partitions.clone(),
        }
    }

    /// Connect to the Fluvio cluster again (after it failed under a stream), waiting with
    /// backoff until it answers or `shutdown`.
    pub(crate) async fn reconnect(
        &mut self,
        metrics: &Metrics,
        shutdown: &CancellationToken,
    ) -> Result<()> {
        let Origin::Fluvio {
            topic,
            watches,
            lag,
            ..
        } = &mut self.origin
        else {
            return Ok(());
        };
        let input_open = metrics.readiness(INPUT_OPEN);
        input_open.set(false);
        let mut pause = Duration::from_millis(500);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.cancelled() => return Ok(()),
            }
            match topic.reconnect().await {
                Ok(new) => {
                    tracing::info!("connected to the Fluvio cluster again");
                    input_open.set(true);
                    *topic = Arc::new(new);
                    // The partition ends too are read anew: the old client's are stale.
                    lag.spawn(topic, watches);
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
