//! The sink driver: connects to Fluvio (or opens the capture file of `--input-file`) and hands
//! the connector a [`SinkContext`] from which it opens one offset-managed consumer stream per
//! partition, and the `transforms:` resolved to wasm for the connector to run in-process
//! (Fluvio 0.18's SPU does not apply them to a consumer-id stream). The connector decides when
//! a record is durable and commits its offset.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use fluvio::consumer::ConsumerStream;
use fluvio::Fluvio;
use tokio_util::sync::CancellationToken;

use crate::cluster::{self, PartitionStreamOptions, StartAt};
use crate::config::{ConnectorConfig, MetaConfig, Section, TransformStep};
use crate::launch::{self, ConnectorInfo, Launched};
use crate::metrics::Metrics;
use crate::transforms::{self, ModuleSpec};

/// How long a sink waits at start for the topic's partitions to have a leader.
const PARTITIONS_ONLINE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// A sink's readiness condition on its input (`/ready`): met while the Fluvio topic is open
/// (a capture file is always open).
pub const INPUT_OPEN: &str = "Fluvio stream open";

/// What a sink connector gets to work with.
pub struct SinkContext {
    /// What it reads: the Fluvio topic, or the capture file of `--input-file`.
    pub input: SinkInput,
    pub meta: MetaConfig,
    /// The `transforms:` chain, to run in-process on each record read (see [`transforms`]).
    pub transforms: Vec<ModuleSpec>,
    pub shutdown: CancellationToken,
    pub metrics: Metrics,
}

/// Where a sink's records come from.
pub enum SinkInput {
    /// The topic `meta.topic` on the current Fluvio cluster.
    Fluvio(Box<FluvioTopic>),
    /// A capture file as sources write with `--capture` (`--input-file`), read as partition 0,
    /// without a Fluvio cluster.
    File(PathBuf),
}

/// A sink's connection to the Fluvio topic it reads.
pub struct FluvioTopic {
    pub fluvio: Fluvio,
    meta: MetaConfig,
}

impl FluvioTopic {
    /// Connect: the cluster of the current profile, the topic created if missing, its
    /// partitions online.
    async fn connect(meta: &MetaConfig) -> Result<Self> {
        // The partition streams are offset-managed: they resume where the consumer id
        // committed.
        if meta.consumer_id().is_none() {
            anyhow::bail!(
                "meta.consumer.id: required (without it, records produced while the connector is down would be skipped); e.g. `consumer: {{id: {}, offset: {{start: beginning, strategy: manual}}}}`",
                meta.name
            );
        }
        let fluvio = cluster::connect(&meta.name).await?;
        cluster::ensure_topic(&fluvio, &meta.topic).await?;
        cluster::wait_until_online(&fluvio, &meta.topic.name, PARTITIONS_ONLINE_TIMEOUT).await?;
        Ok(Self {
            fluvio,
            meta: meta.clone(),
        })
    }

    /// A new connection to the same topic (after the cluster failed under the streams).
    pub async fn reconnect(&self) -> Result<Self> {
        Self::connect(&self.meta).await
    }

    /// The consumer id whose offsets the partition streams commit (required to connect).
    pub fn consumer_id(&self) -> &str {
        self.meta.consumer_id().unwrap_or_default()
    }

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

/// Run a sink connector process around `sink`: parse the command line and config, open the
/// input (Fluvio, or the `--input-file`), then run `sink` until it returns. Returns the exit
/// code.
pub fn main<C, F, Fut>(info: ConnectorInfo, sink: F) -> ExitCode
where
    C: Section,
    F: FnOnce(ConnectorConfig<C>, SinkContext) -> Fut + Send + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    launch::run(info, move |launched: Launched<C>| async move {
        let ctx = open(&launched).await?;
        sink(launched.config, ctx).await
    })
}

/// Open a sink's input: check the direction, resolve the transforms (registered names need
/// Fluvio), and connect to the topic unless a capture file replaces it.
async fn open<C>(launched: &Launched<C>) -> Result<SinkContext> {
    let config = &launched.config;
    anyhow::ensure!(
        !config.meta.is_source(),
        "meta.type `{}` is a source, but this connector is a sink",
        config.meta.kind
    );
    let input_open = launched.metrics.readiness(INPUT_OPEN);
    let input = match &launched.args.input_file {
        Some(file) => SinkInput::File(file.clone()),
        None => {
            let topic = FluvioTopic::connect(&config.meta).await?;
            crate::quick_ack::spawn();
            SinkInput::Fluvio(Box::new(topic))
        }
    };
    let fluvio = match &input {
        SinkInput::Fluvio(topic) => Some(&topic.fluvio),
        SinkInput::File(_) => None,
    };
    let transforms = sink_transforms(&config.transforms, &config.dir(), fluvio).await?;
    input_open.set(true);
    Ok(SinkContext {
        input,
        meta: config.meta.clone(),
        transforms,
        shutdown: launched.shutdown.clone(),
        metrics: launched.metrics.clone(),
    })
}

/// Resolve a sink's `transforms:` to wasm (registered names need `fluvio`). `lookback` needs
/// the SPU, which sinks no longer run transforms on: it is refused, not ignored.
async fn sink_transforms(
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
