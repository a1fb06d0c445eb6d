//! Topic admin: the mirror's topic (and the dead-letter topic) exist with the partitions
//! wanted, waiting for the brokers; the broker's producer expiry, which decides the timestamps.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::types::RDKafkaRespErr;
use tokio_util::sync::CancellationToken;

use super::AuthWatch;
use crate::config::KafkaConfig;
use crate::timestamps::DEFAULT_PRODUCER_EXPIRY_MS;

/// The broker's `producer.id.expiration.ms` (Kafka's default when it cannot be read, e.g. not
/// authorised to describe the broker).
pub(super) async fn producer_expiry_ms(
    admin: &AdminClient<DefaultClientContext>,
    broker: Option<i32>,
) -> i64 {
    const NAME: &str = "producer.id.expiration.ms";
    let read = async {
        let id = broker.ok_or_else(|| anyhow!("no broker in the metadata"))?;
        let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
        let results = admin
            .describe_configs(&[ResourceSpecifier::Broker(id)], &opts)
            .await?;
        let resource = results
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("no answer"))?
            .map_err(|e| anyhow!("{e}"))?;
        let value = resource
            .get(NAME)
            .and_then(|e| e.value.clone())
            .ok_or_else(|| anyhow!("not in the broker's config"))?;
        Ok::<i64, anyhow::Error>(value.parse()?)
    };
    match read.await {
        Ok(ms) if ms > 0 => ms,
        Ok(_) => DEFAULT_PRODUCER_EXPIRY_MS,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the broker's {NAME}; assuming Kafka's default (1 day)");
            DEFAULT_PRODUCER_EXPIRY_MS
        }
    }
}

/// A Kafka topic to have: its name, and its partitions and configs if it must be created.
pub(super) struct TopicSpec<'a> {
    pub name: &'a str,
    pub partitions: i32,
    pub config: &'a std::collections::BTreeMap<String, String>,
}

/// Make sure `topic` exists (creating it with `partitions` when allowed), waiting for the
/// brokers with progress in the log until `shutdown` (then `None`). Returns its partition count
/// and a broker id.
pub(super) async fn ensure_topic(
    producer: &FutureProducer<AuthWatch>,
    admin: &AdminClient<DefaultClientContext>,
    auth: &AuthWatch,
    cfg: &KafkaConfig,
    wanted: TopicSpec<'_>,
    shutdown: &CancellationToken,
) -> Result<Option<(usize, Option<i32>)>> {
    let started = Instant::now();
    loop {
        // A topic just created is ready within moments; an unreachable cluster is asked
        // again every second.
        let pause = match fetch_topic(producer, wanted.name).await? {
            Ok((None, n, broker)) if n > 0 => return Ok(Some((n, broker))),
            Ok(_) => {
                if !cfg.create_topic {
                    bail!("kafka.topic: Kafka topic `{}` does not exist and kafka.create_topic is false", wanted.name);
                }
                create_topic(admin, cfg, &wanted).await?;
                Duration::from_millis(20)
            }
            Err(e) => {
                if let KafkaError::MetadataFetch(code) = &e {
                    if matches!(
                        code,
                        RDKafkaErrorCode::SaslAuthenticationFailed
                            | RDKafkaErrorCode::Authentication
                            | RDKafkaErrorCode::TopicAuthorizationFailed
                    ) {
                        bail!("kafka: {e} (check kafka.security)");
                    }
                }
                auth.check()?;
                tracing::warn!(brokers = %cfg.brokers, error = %e, waited = ?started.elapsed(), "Kafka is not reachable yet; waiting");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.cancelled() => return Ok(None),
        }
    }
}

/// What the cluster says of `topic`: its error, partition count, and a broker id.
type TopicMetadata = (Option<RDKafkaRespErr>, usize, Option<i32>);

/// Ask the cluster for `topic`'s metadata (on a blocking thread: librdkafka's call blocks).
async fn fetch_topic(
    producer: &FutureProducer<AuthWatch>,
    topic: &str,
) -> Result<Result<TopicMetadata, KafkaError>> {
    let (p, topic) = (producer.clone(), topic.to_string());
    let fetched = tokio::task::spawn_blocking(move || {
        p.client()
            .fetch_metadata(Some(&topic), Duration::from_secs(5))
            .map(|md| {
                let broker = md.brokers().first().map(|b| b.id());
                md.topics()
                    .first()
                    .map(|t| (t.error(), t.partitions().len(), broker))
                    .unwrap_or((None, 0, broker))
            })
    })
    .await?;
    Ok(fetched)
}

/// Create the topic as `wanted` says; one that exists already is fine, a refusal that will
/// not change (authorisation, policy, a bad setting) is an error, anything else is retried.
async fn create_topic(
    admin: &AdminClient<DefaultClientContext>,
    cfg: &KafkaConfig,
    wanted: &TopicSpec<'_>,
) -> Result<()> {
    let (topic, partitions) = (wanted.name, wanted.partitions);
    let mut new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(cfg.replication));
    for (k, v) in wanted.config {
        new_topic = new_topic.set(k, v);
    }
    let results = admin
        .create_topics(
            &[new_topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .map_err(|e| anyhow!("kafka: cannot create topic `{topic}`: {e}"))?;
    for r in results {
        match r {
            Ok(_) => tracing::info!(topic, partitions, "created the Kafka topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e))
                if matches!(
                    e,
                    RDKafkaErrorCode::TopicAuthorizationFailed
                        | RDKafkaErrorCode::ClusterAuthorizationFailed
                        | RDKafkaErrorCode::PolicyViolation
                        | RDKafkaErrorCode::InvalidReplicationFactor
                        | RDKafkaErrorCode::InvalidPartitions
                        | RDKafkaErrorCode::InvalidConfig
                ) =>
            {
                bail!("kafka: cannot create topic `{t}`: {e}")
            }
            Err((t, e)) => {
                tracing::warn!(topic = %t, error = %e, "topic creation failed; retrying")
            }
        }
    }
    Ok(())
}

pub fn client_config(settings: &[(String, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in settings {
        c.set(k, v);
    }
    c
}
