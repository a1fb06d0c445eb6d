//! Fluvio: connect with the current profile, create the topic, build the producer of a source
//! and the per-partition consumers of a sink, all from `meta`.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use fluvio::consumer::{ConsumerConfigExtBuilder, OffsetManagementStrategy, RetryMode};
use fluvio::metadata::objects::Metadata;
use fluvio::metadata::partition::{PartitionResolution, PartitionSpec};
use fluvio::metadata::topic::{
    CleanupPolicy, CompressionAlgorithm, SegmentBasedPolicy, TopicSpec, TopicStorageConfig,
};
use fluvio::{Fluvio, FluvioClusterConfig, Offset, TopicProducerConfigBuilder, TopicProducerPool};

use crate::config::{
    Compression, ConsumerParams, MetaConfig, OffsetStart, OffsetStrategy, PartitionSelection,
    TopicConfig, DEFAULT_CONSUMER_MAX_BYTES,
};

/// How long a listing request may wait for the SC's answer. Fluvio 0.50's client waits 60 s
/// (seen when the SC was stopped just after the bridge reconnected: the bridge sat a minute
/// before trying again); the callers retry on a new connection instead.
const SC_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// `call` to Fluvio, failed when it is not answered within `limit`.
pub(crate) async fn within<T>(
    limit: Duration,
    call: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout(limit, call)
        .await
        .map_err(|_| anyhow!("no answer from Fluvio in {limit:?}"))?
}

/// `request` to the SC, failing as "cannot `what`" when it fails or is not answered within
/// [`SC_REQUEST_TIMEOUT`].
async fn sc_request<T, E: Into<anyhow::Error>>(
    what: &str,
    request: impl std::future::Future<Output = std::result::Result<T, E>>,
) -> Result<T> {
    within(SC_REQUEST_TIMEOUT, async {
        request.await.map_err(Into::into)
    })
    .await
    .with_context(|| format!("cannot {what}"))
}

/// Connect with the current profile (`~/.fluvio/config` or `$FLV_PROFILE_PATH`), client id
/// `fluvio_connector_<name>`.
pub async fn connect(connector_name: &str) -> Result<Fluvio> {
    let mut config = FluvioClusterConfig::load().context(
        "no Fluvio profile: start a cluster (`fluvio cluster start --local`) or set FLV_PROFILE_PATH",
    )?;
    config.client_id = Some(format!("fluvio_connector_{connector_name}"));
    let endpoint = config.endpoint.clone();
    let fluvio = Fluvio::connect_with_config(&config)
        .await
        .with_context(|| format!("cannot connect to the Fluvio cluster at {endpoint}"))?;
    tracing::info!(%endpoint, "connected to Fluvio");
    Ok(fluvio)
}

/// Create the topic unless it exists; a concurrent creation by someone else is fine.
pub async fn ensure_topic(fluvio: &Fluvio, topic: &TopicConfig) -> Result<()> {
    let admin = fluvio.admin().await;
    if topic_exists(&admin, &topic.name).await? {
        return Ok(());
    }
    let spec = topic_spec(topic)?;
    match admin.create(topic.name.clone(), false, spec).await {
        Ok(()) => {
            tracing::info!(topic = %topic.name, partitions = topic.partitions, "created topic");
            Ok(())
        }
        Err(e) if topic_exists(&admin, &topic.name).await.unwrap_or(false) => {
            tracing::debug!(topic = %topic.name, error = %e, "topic created concurrently");
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("cannot create topic `{}`", topic.name)),
    }
}

/// Wait until every partition of `topic` has a leader online. A consumer opened on a topic just
/// created gets "not the leader for the partition", and Fluvio 0.50's own reconnect then opens a
/// stream that never yields (seen with a source and a sink started together): sinks wait here
/// first, and their streams do not reconnect by themselves (see [`partition_stream`]).
pub async fn wait_until_online(fluvio: &Fluvio, topic: &str, timeout: Duration) -> Result<()> {
    let admin = fluvio.admin().await;
    let started = std::time::Instant::now();
    let mut reported = started;
    loop {
        let ours = topic_partitions(&admin, topic).await?;
        let offline: Vec<&str> = ours
            .iter()
            .filter(|(_, p)| p.status.resolution != PartitionResolution::Online)
            .map(|(_, p)| p.name.as_str())
            .collect();
        if !ours.is_empty() && offline.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            anyhow::bail!(
                "topic `{topic}`: partitions not online after {timeout:?}: {}",
                if ours.is_empty() {
                    "none listed".to_string()
                } else {
                    offline.join(", ")
                }
            );
        }
        if reported.elapsed() >= Duration::from_secs(5) {
            tracing::info!(topic, offline = ?offline, "waiting for the topic's partitions to have a leader");
            reported = std::time::Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The end of each partition of `topic` (its high watermark: the offset after the last record
/// consumers can read), as the cluster last heard from the partition leaders.
pub async fn partition_ends(fluvio: &Fluvio, topic: &str) -> Result<HashMap<u32, i64>> {
    let admin = fluvio.admin().await;
    Ok(topic_partitions(&admin, topic)
        .await?
        .into_iter()
        .map(|(n, p)| (n, p.status.leader.hw))
        .collect())
}

/// The keys of the last `per_partition` records of each partition of `topic` (records without
/// a key are left out).
pub async fn last_keys(fluvio: &Fluvio, topic: &str, per_partition: i64) -> Result<Vec<Vec<u8>>> {
    Ok(last_records(fluvio, topic, per_partition, false)
        .await?
        .into_iter()
        .filter_map(|r| r.key.map(|k| k.to_vec()))
        .collect())
}

/// The last `per_partition` records of each partition of `topic` (records without a key are
/// left out), with Fluvio's timestamp (when the producer batched them, Unix ms), and their
/// values only `with_values` (else empty: thousands of keys stay small), read with a plain consumer
/// positioned from the end by the SPU itself (the ends the SC reports can lag right after a
/// restart) that stops at the partition's end.
pub async fn last_records(
    fluvio: &Fluvio,
    topic: &str,
    per_partition: i64,
    with_values: bool,
) -> Result<Vec<crate::Record>> {
    let mut records = Vec::new();
    let partitions: Vec<u32> = partition_ends(fluvio, topic).await?.into_keys().collect();
    for partition in partitions {
        let from_end = Offset::from_end(per_partition.max(0) as u32);
        read_to_end(fluvio, topic, partition, from_end, |r| {
            if let Some(k) = r.key() {
                let value = if with_values {
                    bytes::Bytes::copy_from_slice(r.value())
                } else {
                    bytes::Bytes::new()
                };
                records.push(crate::Record {
                    key: Some(bytes::Bytes::copy_from_slice(k)),
                    value,
                    timestamp_ms: Some(r.timestamp()),
                });
            }
        })
        .await?;
    }
    Ok(records)
}

/// Every record of a partition from `start` to its end, in order, each once, handed to `keep`.
///
/// Fluvio 0.50 drops the batch that straddles the end of a fetch (`max-bytes`) when it reads
/// a backlog: the stream jumps over its records, or ends without them. A stream opened where
/// the records stopped starts with that batch, so after a jump, and after the stream ends,
/// the rest is read with a new stream from the next offset; the read is over when such a
/// stream has nothing more. (A new stream that starts past that offset finds the records gone,
/// by retention: they are passed over.)
async fn read_to_end(
    fluvio: &Fluvio,
    topic: &str,
    partition: u32,
    start: Offset,
    mut keep: impl FnMut(&fluvio::consumer::Record),
) -> Result<()> {
    use futures_util::StreamExt;
    let context = || format!("reading the end of `{topic}` partition {partition}");
    let mut from = start;
    let mut next: Option<i64> = None;
    loop {
        let mut builder = ConsumerConfigExtBuilder::default();
        builder
            .topic(topic.to_string())
            .partition(partition)
            .offset_start(from)
            .disable_continuous(true)
            .max_bytes(i32::try_from(DEFAULT_CONSUMER_MAX_BYTES).unwrap_or(i32::MAX))
            .retry_mode(RetryMode::Disabled);
        let config = builder.build().map_err(|e| anyhow!("tail reader: {e}"))?;
        let mut stream = fluvio
            .consumer_with_config(config)
            .await
            .with_context(|| format!("cannot {}", context()))?;
        // Nothing read from this stream yet (whatever offset it starts at is accepted).
        let mut first = true;
        loop {
            let item = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .map_err(|_| anyhow!("{}: no answer in 10 s", context()))?;
            let r = match item {
                None => break,
                Some(Err(e)) => return Err(anyhow!("{}: {e:?}", context())),
                Some(Ok(r)) => r,
            };
            match next {
                Some(want) if r.offset() < want => continue,
                Some(want) if r.offset() > want && !first => {
                    tracing::debug!(
                        topic,
                        partition,
                        expected = want,
                        got = r.offset(),
                        "the consumer skipped records; reading them again"
                    );
                    break;
                }
                _ => {}
            }
            first = false;
            next = Some(r.offset() + 1);
            keep(&r);
        }
        match next {
            Some(offset) if !first => from = Offset::absolute(offset)?,
            _ => return Ok(()),
        }
    }
}

/// The partitions of `topic` (named `<topic>-<n>`), with their number.
async fn topic_partitions(
    admin: &fluvio::FluvioAdmin,
    topic: &str,
) -> Result<Vec<(u32, Metadata<PartitionSpec>)>> {
    let all = sc_request("list partitions", admin.all::<PartitionSpec>()).await?;
    Ok(all
        .into_iter()
        .filter_map(|p| {
            let (t, n) = p.name.rsplit_once('-')?;
            let n = n.parse().ok().filter(|_| t == topic)?;
            Some((n, p))
        })
        .collect())
}

async fn topic_exists(admin: &fluvio::FluvioAdmin, name: &str) -> Result<bool> {
    let topics = sc_request(
        "list topics",
        admin.list::<TopicSpec, String>(vec![name.to_string()]),
    )
    .await?;
    Ok(topics.iter().any(|t| t.name == name))
}

fn topic_spec(topic: &TopicConfig) -> Result<TopicSpec> {
    let mut spec = TopicSpec::new_computed(
        topic.partitions,
        topic.replication,
        Some(topic.ignore_rack_assignment),
    );
    if let Some(retention) = topic.retention {
        let secs = u32::try_from(retention.as_secs())
            .map_err(|_| anyhow!("meta.topic.retention.time: too long"))?;
        spec.set_cleanup_policy(CleanupPolicy::Segment(SegmentBasedPolicy {
            time_in_seconds: secs,
        }));
    }
    if topic.segment_size.is_some() || topic.max_partition_size.is_some() {
        let segment_size = topic
            .segment_size
            .map(u32::try_from)
            .transpose()
            .map_err(|_| anyhow!("meta.topic.retention.segment-size: over 4 GiB"))?;
        spec.set_storage(TopicStorageConfig {
            segment_size,
            max_partition_size: topic.max_partition_size,
        });
    }
    if let Some(c) = &topic.compression {
        let algo = match c.as_str() {
            "none" => CompressionAlgorithm::None,
            "gzip" => CompressionAlgorithm::Gzip,
            "snappy" => CompressionAlgorithm::Snappy,
            "lz4" => CompressionAlgorithm::Lz4,
            "zstd" => CompressionAlgorithm::Zstd,
            _ => CompressionAlgorithm::Any,
        };
        spec.set_compression_type(algo);
    }
    Ok(spec)
}

/// The producer of a source, from `meta.producer`.
pub async fn producer(fluvio: &Fluvio, meta: &MetaConfig) -> Result<TopicProducerPool> {
    let p = &meta.producer;
    let mut builder = TopicProducerConfigBuilder::default();
    if let Some(linger) = p.linger {
        builder.linger(linger);
    }
    builder.batch_size(p.effective_batch_size() as usize);
    if let Some(size) = p.max_request_size {
        builder.max_request_size(size as usize);
    }
    if let Some(c) = p.compression {
        builder.compression(match c {
            Compression::None => fluvio::Compression::None,
            Compression::Gzip => fluvio::Compression::Gzip,
            Compression::Snappy => fluvio::Compression::Snappy,
            Compression::Lz4 => fluvio::Compression::Lz4,
            Compression::Zstd => fluvio::Compression::Zstd,
        });
    }
    let config = builder.build().map_err(|e| anyhow!("meta.producer: {e}"))?;
    // A topic created a moment ago may not be known to the client's metadata yet.
    let started = std::time::Instant::now();
    loop {
        match fluvio
            .topic_producer_with_config(meta.topic.name.clone(), config.clone())
            .await
        {
            Ok(p) => return Ok(p),
            Err(e)
                if e.to_string().contains("not found")
                    && started.elapsed() < TOPIC_PROVISIONING =>
            {
                tracing::debug!(topic = %meta.topic.name, error = %e, "topic not ready yet");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot create a producer for topic `{}`", meta.topic.name)
                })
            }
        }
    }
}

/// How long a topic just created may take to appear to producers.
const TOPIC_PROVISIONING: Duration = Duration::from_secs(15);

/// The partitions a sink reads: `meta.consumer.partition`, or all the topic has.
pub async fn consumer_partitions(fluvio: &Fluvio, meta: &MetaConfig) -> Result<Vec<u32>> {
    let selection = meta
        .consumer
        .as_ref()
        .map(|c| c.partition.clone())
        .unwrap_or_default();
    match selection {
        PartitionSelection::Some(list) => Ok(list),
        PartitionSelection::All => {
            let admin = fluvio.admin().await;
            let topics = admin
                .list::<TopicSpec, String>(vec![meta.topic.name.clone()])
                .await
                .context("cannot list topics")?;
            let topic = topics
                .iter()
                .find(|t| t.name == meta.topic.name)
                .ok_or_else(|| anyhow!("topic `{}` does not exist", meta.topic.name))?;
            let count = topic.spec.partitions();
            Ok((0..count).collect())
        }
    }
}

/// Where a consumer starts: an explicit offset, or `start` from the config (default: the
/// stored offset of the consumer id, else the beginning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Config,
    Absolute(i64),
}

/// Options a sink adds to `meta.consumer` for one partition stream.
pub struct PartitionStreamOptions {
    pub partition: u32,
    pub start: StartAt,
}

/// One consumer stream for one partition, offset-managed by `meta.consumer.id`.
pub async fn partition_stream(
    fluvio: &Fluvio,
    meta: &MetaConfig,
    options: PartitionStreamOptions,
) -> Result<
    impl fluvio::consumer::ConsumerStream<
        Item = Result<fluvio::consumer::Record, fluvio::dataplane::link::ErrorCode>,
    >,
> {
    let params: ConsumerParams = meta.consumer.clone().unwrap_or_default();
    let mut builder = ConsumerConfigExtBuilder::default();
    builder.topic(meta.topic.name.clone());
    builder.partition(options.partition);
    let offset = match options.start {
        StartAt::Absolute(n) => Offset::absolute(n).map_err(|e| anyhow!("offset {n}: {e}"))?,
        StartAt::Config => match params.offset.start.unwrap_or(OffsetStart::Beginning) {
            OffsetStart::Beginning => Offset::beginning(),
            OffsetStart::End => Offset::end(),
            OffsetStart::Absolute(n) => {
                Offset::absolute(n).map_err(|e| anyhow!("offset {n}: {e}"))?
            }
            OffsetStart::FromBeginning(n) => Offset::from_beginning(n),
            OffsetStart::FromEnd(n) => Offset::from_end(n),
        },
    };
    builder.offset_start(offset);
    if let Some(id) = &params.id {
        builder.offset_consumer(id.clone());
        builder.offset_strategy(match params.offset.strategy {
            OffsetStrategy::None | OffsetStrategy::Manual => OffsetManagementStrategy::Manual,
            OffsetStrategy::Auto => OffsetManagementStrategy::Auto,
        });
    }
    if let Some(period) = params.offset.flush_period {
        builder.offset_flush(period);
    }
    // A batch larger than a fetch is never delivered, and Fluvio 0.50 drops the batch that
    // straddles a fetch's end when it reads a backlog (sinks must check that offsets follow each
    // other and read skipped ones again): fetches of 4 MB fit any batch a producer makes by
    // default while keeping the client's queue of 10 fetches small.
    let max_bytes = params.max_bytes.unwrap_or(DEFAULT_CONSUMER_MAX_BYTES);
    builder.max_bytes(i32::try_from(max_bytes).unwrap_or(i32::MAX));
    // Errors reach the sink, which stops loudly (a restart resumes from its commits, and the
    // bridge from Kafka) instead of Fluvio 0.50's reconnect, whose new stream can hang.
    builder.retry_mode(RetryMode::Disabled);
    let config = builder.build().map_err(|e| anyhow!("meta.consumer: {e}"))?;
    fluvio.consumer_with_config(config).await.with_context(|| {
        format!(
            "cannot consume partition {} of `{}`",
            options.partition, meta.topic.name
        )
    })
}

/// A bounded wait used between retries of cluster operations.
pub const RETRY_DELAY: Duration = Duration::from_secs(1);
