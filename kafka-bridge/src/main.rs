//! # kafka-bridge-sink
//!
//! A Fluvio sink connector that mirrors a Fluvio topic into a Kafka topic (default `tweets`),
//! exactly once for `read_committed` readers (Kafka transactions; `delivery: at-least-once`
//! keeps the idempotent producer alone): each Fluvio offset is committed only after Kafka
//! committed it and every earlier one, and on start each Fluvio partition resumes after the
//! `fluvio.offset` header of the last committed record in Kafka.
//!
//! The data path: [`source`] (the Fluvio partitions or a capture file) -> [`input`] (streams,
//! gaps read again) -> [`partition`] (sink transforms, in-order sends, commit after Kafka) ->
//! [`mirror`] (the producer and its Kafka transactions); [`session`] runs every partition and
//! starts again after what can be recovered from; [`resume`] decides where each partition starts and
//! [`timestamps`] which time each record carries.

mod config;
mod input;
mod lag;
mod mirror;
mod partition;
mod resume;
mod session;
mod source;
mod timestamps;
mod transform;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use connector_runtime::launch::ConnectorInfo;
use connector_runtime::sink::{self, SinkContext};
use connector_runtime::ConnectorConfig;

use crate::config::KafkaConfig;
use crate::mirror::Mirror;
use crate::session::mirror_until_stopped;
use crate::source::Source;

const INFO: ConnectorInfo = ConnectorInfo {
    name: "kafka-bridge-sink",
    version: env!("CARGO_PKG_VERSION"),
    about: "Fluvio sink connector mirroring a Fluvio topic into Kafka, exactly once",
    section: "kafka",
};

fn main() -> ExitCode {
    sink::main(INFO, run)
}

async fn run(config: ConnectorConfig<KafkaConfig>, ctx: SinkContext) -> Result<()> {
    let cfg = config.custom;
    let meta = &config.meta;
    let client_id = format!("fluvio_connector_{}", meta.name);
    let (shutdown, metrics) = (ctx.shutdown.clone(), ctx.metrics.clone());
    let fluvio_topic = meta.topic.name.clone();
    let mut source = Source::open(ctx).await?;
    let transactional_id =
        KafkaConfig::transactional_id(meta.consumer_id().unwrap_or("capture-file"), &fluvio_topic);
    let Some(mirror) = Mirror::connect(
        cfg,
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
    let mut mirror = Arc::new(mirror);
    let result =
        mirror_until_stopped(&mut mirror, &mut source, &metrics, &fluvio_topic, &shutdown).await;
    mirror.flush(Duration::from_secs(10));
    result
}
