//! The sink driver: connects to Fluvio and hands the connector a [`SinkContext`] from which it
//! opens one offset-managed consumer stream per partition, and the `transforms:` resolved to
//! wasm for the connector to run in-process (Fluvio 0.18's SPU does not apply them to a
//! consumer-id stream). The connector decides when a record is durable and commits its offset.

use std::future::Future;
use std::process::ExitCode;

use anyhow::{Context, Result};
use fluvio::consumer::ConsumerStream;
use fluvio::Fluvio;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::cluster::{self, PartitionStreamOptions, StartAt};
use crate::config::{ConnectorConfig, MetaConfig, TransformStep};
use crate::launch::{self, ConnectorInfo, Launched};
use crate::metrics::Metrics;
use crate::transforms::{self, ModuleSpec};

/// How long a sink waits at start for the topic's partitions to have a leader.
const PARTITIONS_ONLINE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// What a sink connector gets to work with.
pub struct SinkContext {
    pub fluvio: Fluvio,
    pub meta: MetaConfig,
    /// The `transforms:` chain, to run in-process on each record read (see [`transforms`]).
    pub transforms: Vec<ModuleSpec>,
    pub shutdown: CancellationToken,
    pub metrics: Metrics,
}

impl SinkContext {
    /// The partitions this sink reads (`meta.consumer.partition`, default all).
    pub async fn partitions(&self) -> Result<Vec<u32>> {
        cluster::consumer_partitions(&self.fluvio, &self.meta).await
    }

    /// An offset-managed stream of one partition, starting at `start`.
    pub async fn partition_stream(
        &self,
        partition: u32,
        start: StartAt,
    ) -> Result<impl ConsumerStream<Item = StreamItem>> {
        self.stream(&self.meta, partition, start).await
    }

    /// A stream of one partition from an absolute offset without offset management (the
    /// consumer id's stream cannot be repositioned): for reading records again.
    pub async fn plain_stream(
        &self,
        partition: u32,
        offset: i64,
    ) -> Result<impl ConsumerStream<Item = StreamItem>> {
        let mut meta = self.meta.clone();
        if let Some(consumer) = meta.consumer.as_mut() {
            consumer.id = None;
        }
        self.stream(&meta, partition, StartAt::Absolute(offset))
            .await
    }

    async fn stream(
        &self,
        meta: &MetaConfig,
        partition: u32,
        start: StartAt,
    ) -> Result<impl ConsumerStream<Item = StreamItem>> {
        cluster::partition_stream(
            &self.fluvio,
            meta,
            PartitionStreamOptions { partition, start },
        )
        .await
    }
}

/// What a partition stream yields.
type StreamItem = Result<fluvio::consumer::Record, fluvio::dataplane::link::ErrorCode>;

/// Run a sink connector process around `sink`; returns the exit code.
pub fn main<C, F, Fut>(info: ConnectorInfo, sink: F) -> ExitCode
where
    C: DeserializeOwned + Send + 'static,
    F: FnOnce(ConnectorConfig<C>, SinkContext) -> Fut + Send + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    launch::run(info, move |launched: Launched<C>| async move {
        let ctx = connect(&launched).await?;
        sink(launched.config, ctx).await
    })
}

/// Connect a sink to Fluvio: check the direction, resolve the transforms, create the topic.
pub async fn connect<C>(launched: &Launched<C>) -> Result<SinkContext> {
    let config = &launched.config;
    anyhow::ensure!(
        !config.meta.is_source(),
        "meta.type `{}` is a source, but this connector is a sink",
        config.meta.kind
    );
    let fluvio = cluster::connect(&config.meta.name).await?;
    let transforms = sink_transforms(&config.transforms, &config.dir(), Some(&fluvio)).await?;
    cluster::ensure_topic(&fluvio, &config.meta.topic).await?;
    cluster::wait_until_online(&fluvio, &config.meta.topic.name, PARTITIONS_ONLINE_TIMEOUT).await?;
    crate::quick_ack::spawn();
    Ok(SinkContext {
        fluvio,
        meta: config.meta.clone(),
        transforms,
        shutdown: launched.shutdown.clone(),
        metrics: launched.metrics.clone(),
    })
}

/// Resolve a sink's `transforms:` to wasm (registered names need `fluvio`). `lookback` needs
/// the SPU, which sinks no longer run transforms on: it is refused, not ignored.
pub async fn sink_transforms(
    steps: &[TransformStep],
    config_dir: &std::path::Path,
    fluvio: Option<&Fluvio>,
) -> Result<Vec<ModuleSpec>> {
    if let Some(i) = steps.iter().position(|s| s.lookback.is_some()) {
        anyhow::bail!("transforms[{i}].lookback: not supported by sink transforms (they run in the connector, one record at a time)");
    }
    transforms::resolve(steps, config_dir, fluvio)
        .await
        .context("sink transforms")
}
