//! The sink driver: connects to Fluvio and hands the connector a [`SinkContext`] from which it
//! opens one offset-managed consumer stream per partition, with the `transforms:` applied on the
//! SPU. The connector decides when a record is durable and commits its offset itself.

use std::future::Future;
use std::process::ExitCode;

use anyhow::{Context, Result};
use fluvio::consumer::ConsumerStream;
use fluvio::{
    Fluvio, SmartModuleExtraParams, SmartModuleInvocation, SmartModuleInvocationWasm,
    SmartModuleKind,
};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::cluster::{self, PartitionStreamOptions, StartAt};
use crate::config::{ConnectorConfig, MetaConfig, TransformStep};
use crate::launch::{self, ConnectorInfo, Launched};
use crate::metrics::Metrics;
use crate::transforms::{module_source, ModuleSource};

/// How long a sink waits at start for the topic's partitions to have a leader.
const PARTITIONS_ONLINE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// What a sink connector gets to work with.
pub struct SinkContext {
    pub fluvio: Fluvio,
    pub meta: MetaConfig,
    pub smartmodules: Vec<SmartModuleInvocation>,
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
            PartitionStreamOptions {
                partition,
                start,
                smartmodules: self.smartmodules.clone(),
            },
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

/// Connect a sink to Fluvio: check the direction, prepare the SPU transforms, create the topic.
pub async fn connect<C>(launched: &Launched<C>) -> Result<SinkContext> {
    let config = &launched.config;
    anyhow::ensure!(
        !config.meta.is_source(),
        "meta.type `{}` is a source, but this connector is a sink",
        config.meta.kind
    );
    let config_dir = config.dir();
    let smartmodules = spu_invocations(&config.transforms, &config_dir)?;
    let fluvio = cluster::connect(&config.meta.name).await?;
    cluster::ensure_topic(&fluvio, &config.meta.topic).await?;
    cluster::wait_until_online(&fluvio, &config.meta.topic.name, PARTITIONS_ONLINE_TIMEOUT).await?;
    crate::quick_ack::spawn();
    Ok(SinkContext {
        fluvio,
        meta: config.meta.clone(),
        smartmodules,
        shutdown: launched.shutdown.clone(),
        metrics: launched.metrics.clone(),
    })
}

/// Sink transforms run on the SPU: registered names go by name, local `.wasm` files ad hoc.
pub fn spu_invocations(
    steps: &[TransformStep],
    config_dir: &std::path::Path,
) -> Result<Vec<SmartModuleInvocation>> {
    steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let wasm = match module_source(&step.uses, config_dir) {
                ModuleSource::Registered(name) => SmartModuleInvocationWasm::Predefined(name),
                ModuleSource::File(path) => {
                    let bytes = std::fs::read(&path).with_context(|| {
                        format!("transforms[{i}].uses: cannot read {}", path.display())
                    })?;
                    SmartModuleInvocationWasm::adhoc_from_bytes(&bytes)?
                }
            };
            let lookback =
                step.lookback
                    .map(|l| fluvio_smartmodule::dataplane::smartmodule::Lookback {
                        last: l.last.unwrap_or(0),
                        age: l.age,
                    });
            Ok(SmartModuleInvocation {
                wasm,
                kind: SmartModuleKind::Generic(Default::default()),
                params: SmartModuleExtraParams::new(step.with.clone(), lookback),
                name: Some(step.uses.clone()),
            })
        })
        .collect()
}
