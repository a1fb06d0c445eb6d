//! The Kafka side: an idempotent producer writing each Fluvio record with its key, value,
//! timestamp and `fluvio.*` headers, and per-partition pipes that keep deliveries in order and
//! know the highest offset acknowledged with every earlier one (what may be committed).
//! librdkafka retries every delivery in order, without duplicates (idempotence), for as long as
//! a broker is away (waited for, with progress in the log); a record Kafka can never take (too
//! large, not authorised) or an unacknowledged one past `delivery_timeout` stops the bridge
//! with its offset, never skipped: the next start resumes from what Kafka holds.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use connector_runtime::metrics::{Counter, Gauge, Metrics};
use futures_util::FutureExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use tokio_util::sync::CancellationToken;

use crate::config::{KafkaConfig, Partitioning};
use crate::timestamps::{Stamp, TimestampRule, DEFAULT_PRODUCER_EXPIRY_MS};

/// One record read from Fluvio (or the input file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecord {
    pub partition: u32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub timestamp_ms: Option<i64>,
}

/// The producer and what every pipe shares.
pub struct Mirror {
    producer: FutureProducer<AuthWatch>,
    auth: AuthWatch,
    cfg: KafkaConfig,
    fluvio_topic: String,
    timestamps: TimestampRule,
    m: MirrorMetrics,
}

#[derive(Clone)]
struct MirrorMetrics {
    metrics: Metrics,
    records: Counter,
    bytes: Counter,
    latency_ms_total: Counter,
    latency_ms_max: Gauge,
    timestamps_replaced: Counter,
}

impl MirrorMetrics {
    fn new(m: &Metrics) -> Self {
        Self {
            metrics: m.clone(),
            records: m.counter("records_mirrored_total", "records acknowledged by Kafka"),
            bytes: m.counter("bytes_mirrored_total", "value bytes acknowledged by Kafka"),
            latency_ms_total: m.counter(
                "delivery_latency_ms_total",
                "sum of send-to-acknowledgement times (ms)",
            ),
            latency_ms_max: m.gauge(
                "delivery_latency_ms_max",
                "the longest send-to-acknowledgement time (ms)",
            ),
            timestamps_replaced: m.counter(
                "timestamps_replaced_total",
                "records written with the current time as CreateTime, their Fluvio time (too old or too far ahead for Kafka) in the fluvio.timestamp header",
            ),
        }
    }
}

/// The producer's client context: remembers an authentication or TLS handshake failure,
/// which librdkafka only reports as a global error while every request just waits for a
/// broker, and publishes librdkafka's count of failed requests (its statistics, every second):
/// after each, the records concerned are sent again.
#[derive(Clone)]
pub struct AuthWatch {
    failure: Arc<Mutex<Option<String>>>,
    request_failures: Gauge,
}

impl AuthWatch {
    /// Why Kafka refused the credentials or the TLS session, if it did.
    fn failure(&self) -> Option<String> {
        self.failure.lock().expect("auth watch").clone()
    }

    /// Stop on an authentication or TLS failure: waiting cannot fix it.
    fn check(&self) -> Result<()> {
        match self.failure() {
            Some(reason) => bail!("kafka: {reason} (check kafka.security)"),
            None => Ok(()),
        }
    }
}

/// What a client error says about the credentials or the TLS set-up, if anything.
fn security_failure(code: Option<RDKafkaErrorCode>, reason: &str) -> Option<String> {
    use RDKafkaErrorCode::*;
    let lower = reason.to_ascii_lowercase();
    match code {
        Some(Authentication | SaslAuthenticationFailed) => {
            Some(format!("authentication failed: {reason}"))
        }
        // A refused certificate or a failed handshake comes as a transport failure whose
        // reason names SSL; a broker that is merely down does not.
        Some(SSL | BrokerTransportFailure)
            if lower.contains("ssl")
                && (lower.contains("certificate") || lower.contains("handshake")) =>
        {
            Some(format!("TLS handshake failed: {reason}"))
        }
        _ => None,
    }
}

impl ClientContext for AuthWatch {
    fn error(&self, error: KafkaError, reason: &str) {
        if let Some(failure) = security_failure(error.rdkafka_error_code(), reason) {
            *self.failure.lock().expect("auth watch") = Some(failure);
        }
        tracing::error!(error = %error, reason, "kafka client error");
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        self.request_failures.set(
            statistics
                .brokers
                .values()
                .map(|b| b.txretries + b.txerrs + b.rxerrs + b.req_timeouts)
                .sum(),
        );
    }
}

/// Kafka errors that no retry can fix: the bridge stops (the record is not committed).
fn is_permanent(e: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        e.rdkafka_error_code(),
        Some(
            MessageSizeTooLarge
                | InvalidMessageSize
                | MessageBatchTooLarge
                | TopicAuthorizationFailed
                | ClusterAuthorizationFailed
                | SaslAuthenticationFailed
                | Authentication
                | InvalidRecord
                | UnknownTopic
                | InvalidConfig
                | UnsupportedVersion
        )
    )
}

/// The broker's `producer.id.expiration.ms` (Kafka's default when it cannot be read, e.g. not
/// authorised to describe the broker).
async fn producer_expiry_ms(admin: &AdminClient<DefaultClientContext>, broker: Option<i32>) -> i64 {
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

pub fn client_config(settings: &[(String, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in settings {
        c.set(k, v);
    }
    c
}

impl Mirror {
    /// Build the producer and make sure the topic exists (waiting for the brokers, with
    /// progress in the log, until `shutdown`).
    pub async fn connect(
        cfg: KafkaConfig,
        client_id: &str,
        fluvio_topic: &str,
        fluvio_partitions: usize,
        metrics: &Metrics,
        shutdown: &CancellationToken,
    ) -> Result<Option<Self>> {
        let auth = AuthWatch {
            failure: Arc::default(),
            request_failures: metrics.gauge(
                "kafka_request_failures",
                "requests to Kafka that failed, timed out or were retried (their records are sent again, in order, without duplicates)",
            ),
        };
        let producer: FutureProducer<AuthWatch> = client_config(&cfg.producer_settings(client_id))
            .create_with_context(auth.clone())
            .map_err(|e| anyhow!("kafka: cannot create the producer: {e}"))?;
        let mut admin_settings = vec![("bootstrap.servers".to_string(), cfg.brokers.clone())];
        admin_settings.extend(cfg.security_settings());
        let admin: AdminClient<DefaultClientContext> = client_config(&admin_settings)
            .create()
            .map_err(|e| anyhow!("kafka: cannot create the admin client: {e}"))?;
        let started = Instant::now();
        let (partitions, broker) = loop {
            // A topic just created is ready within moments; an unreachable cluster is asked
            // again every second.
            let mut pause = Duration::from_secs(1);
            let fetched = {
                let p = producer.clone();
                let topic = cfg.topic.clone();
                tokio::task::spawn_blocking(move || {
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
                .await?
            };
            match fetched {
                Ok((None, n, broker)) if n > 0 => break (n, broker),
                Ok(_) => {
                    if !cfg.create_topic {
                        bail!("kafka.topic: Kafka topic `{}` does not exist and kafka.create_topic is false", cfg.topic);
                    }
                    let n = cfg.partitions.unwrap_or(fluvio_partitions.max(1) as i32);
                    let mut topic =
                        NewTopic::new(&cfg.topic, n, TopicReplication::Fixed(cfg.replication));
                    for (k, v) in &cfg.topic_config {
                        topic = topic.set(k, v);
                    }
                    pause = Duration::from_millis(20);
                    let results = admin
                        .create_topics(
                            &[topic],
                            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
                        )
                        .await
                        .map_err(|e| anyhow!("kafka: cannot create topic `{}`: {e}", cfg.topic))?;
                    for r in results {
                        match r {
                            Ok(_) => {
                                tracing::info!(topic = %cfg.topic, partitions = n, "created the Kafka topic")
                            }
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
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.cancelled() => return Ok(None),
            }
        };
        if cfg.partitioning == Partitioning::Same && partitions < fluvio_partitions {
            bail!(
                "kafka.partitioning: `same` maps Fluvio partition p to Kafka partition p, but `{}` has {partitions} partitions for {fluvio_partitions} Fluvio partitions",
                cfg.topic
            );
        }
        tracing::info!(topic = %cfg.topic, partitions, "Kafka topic ready");
        let timestamps = TimestampRule::new(producer_expiry_ms(&admin, broker).await);
        if cfg.timestamps {
            tracing::info!(
                max_age = ?Duration::from_millis(timestamps.max_age_ms() as u64),
                "Fluvio times older than this (half the broker's producer.id.expiration.ms) are kept in the fluvio.timestamp header, not as CreateTime"
            );
        }
        Ok(Some(Self {
            producer,
            auth,
            cfg,
            fluvio_topic: fluvio_topic.to_string(),
            timestamps,
            m: MirrorMetrics::new(metrics),
        }))
    }

    pub fn config(&self) -> &KafkaConfig {
        &self.cfg
    }

    /// Hand one record to the producer (waits while its queue is full).
    async fn send(&self, rec: &SourceRecord) -> Result<DeliveryFuture, KafkaError> {
        let partition_s = rec.partition.to_string();
        let offset_s = rec.offset.to_string();
        let stamp = if self.cfg.timestamps {
            self.timestamps
                .stamp(rec.timestamp_ms, connector_runtime::now_ms())
        } else {
            Stamp::default()
        };
        let replaced_s = stamp.replaced.map(|t| t.to_string());
        if stamp.replaced.is_some() {
            self.m.timestamps_replaced.inc();
        }
        loop {
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&self.cfg.topic).payload(&rec.value[..]);
            if let Some(k) = &rec.key {
                record = record.key(&k[..]);
            }
            if let Some(p) = self.cfg.partitioning.kafka_partition(rec.partition) {
                record = record.partition(p);
            }
            if let Some(ts) = stamp.create_time {
                record = record.timestamp(ts);
            }
            if self.cfg.headers {
                let mut headers = OwnedHeaders::new_with_capacity(4)
                    .insert(Header {
                        key: "fluvio.topic",
                        value: Some(self.fluvio_topic.as_bytes()),
                    })
                    .insert(Header {
                        key: "fluvio.partition",
                        value: Some(partition_s.as_bytes()),
                    })
                    .insert(Header {
                        key: "fluvio.offset",
                        value: Some(offset_s.as_bytes()),
                    });
                if let Some(t) = &replaced_s {
                    headers = headers.insert(Header {
                        key: "fluvio.timestamp",
                        value: Some(t.as_bytes()),
                    });
                }
                record = record.headers(headers);
            }
            match self.producer.send_result(record) {
                Ok(f) => return Ok(f),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Wait for everything sent to be acknowledged (or to fail).
    pub fn flush(&self, timeout: Duration) {
        let _ = self.producer.flush(timeout);
    }

    pub fn metrics(&self) -> &Metrics {
        &self.m.metrics
    }
}

/// A record handed to Kafka: its acknowledgement to come, or arrived and not yet taken.
enum Sent {
    Pending(DeliveryFuture),
    /// The outcome arrived while the pipe was waiting for it (see [`PartitionPipe::front_arrived`]).
    Arrived(Outcome),
}

/// The outcome of one delivery.
type Outcome = Result<(), KafkaError>;

/// How often a wait for Kafka's acknowledgement says so in the log.
const WAIT_REPORT: Duration = Duration::from_secs(10);

impl Sent {
    fn now_or_never(&mut self) -> Option<Outcome> {
        match self {
            Sent::Pending(fut) => fut.now_or_never().map(outcome),
            Sent::Arrived(o) => Some(o.clone()),
        }
    }

    /// The outcome, once Kafka gave it; a long wait (a broker away) is reported every
    /// [`WAIT_REPORT`]. Cancel-safe.
    async fn wait(&mut self, rec: &SourceRecord, sent_at: Instant) -> Outcome {
        let fut = match self {
            Sent::Arrived(o) => return o.clone(),
            Sent::Pending(fut) => fut,
        };
        loop {
            match tokio::time::timeout(WAIT_REPORT, &mut *fut).await {
                Ok(result) => {
                    let o = outcome(result);
                    *self = Sent::Arrived(o.clone());
                    return o;
                }
                Err(_) => tracing::warn!(
                    partition = rec.partition,
                    offset = rec.offset,
                    waited = ?sent_at.elapsed(),
                    "Kafka has not acknowledged this record yet (a broker away?); librdkafka keeps sending it, in order"
                ),
            }
        }
    }
}

fn outcome(result: <DeliveryFuture as std::future::Future>::Output) -> Outcome {
    match result {
        Ok(Ok(_delivery)) => Ok(()),
        Ok(Err((e, _msg))) => Err(e),
        Err(_) => Err(KafkaError::Canceled),
    }
}

/// In-order deliveries of one Fluvio partition.
pub struct PartitionPipe {
    in_flight: VecDeque<(SourceRecord, Sent, Instant)>,
    /// Value bytes of `in_flight`.
    in_flight_bytes: usize,
    /// The highest offset acknowledged, every earlier one too.
    acked: Option<i64>,
    in_flight_gauge: Gauge,
    acked_gauge: Gauge,
}

impl PartitionPipe {
    /// `acked`: what is known to be in Kafka already (where the partition resumes), if anything.
    pub fn new(partition: u32, metrics: &Metrics, acked: Option<i64>) -> Self {
        let p = partition.to_string();
        let pipe = Self {
            in_flight: VecDeque::new(),
            in_flight_bytes: 0,
            acked,
            in_flight_gauge: metrics.gauge_with(
                "in_flight",
                &[("partition", &p)],
                "records sent, not yet acknowledged",
            ),
            acked_gauge: metrics.gauge_with(
                "acked_offset",
                &[("partition", &p)],
                "highest Fluvio offset acknowledged by Kafka with all earlier ones",
            ),
        };
        if let Some(a) = acked {
            pipe.acked_gauge.set(a.max(0) as u64);
        }
        pipe
    }

    pub fn acked(&self) -> Option<i64> {
        self.acked
    }

    /// Send a record; waits for the oldest acknowledgements when too many are in flight.
    pub async fn push(&mut self, mirror: &Mirror, rec: SourceRecord) -> Result<()> {
        while self.in_flight.len() >= mirror.cfg.max_in_flight
            || (self.in_flight_bytes >= mirror.cfg.max_in_flight_bytes
                && !self.in_flight.is_empty())
        {
            self.complete_front(mirror).await?;
        }
        self.collect_ready(mirror).await?;
        let fut = self.send_with_retry(mirror, &rec).await?;
        self.in_flight_bytes += rec.value.len();
        self.in_flight
            .push_back((rec, Sent::Pending(fut), Instant::now()));
        self.in_flight_gauge.set(self.in_flight.len() as u64);
        Ok(())
    }

    async fn send_with_retry(
        &mut self,
        mirror: &Mirror,
        rec: &SourceRecord,
    ) -> Result<DeliveryFuture> {
        loop {
            match mirror.send(rec).await {
                Ok(f) => return Ok(f),
                Err(e) if is_permanent(&e) => {
                    bail!("kafka refused Fluvio partition {} offset {}: {e} (the record is not committed; fix and restart)", rec.partition, rec.offset)
                }
                Err(e) => {
                    tracing::warn!(partition = rec.partition, offset = rec.offset, error = %e, "send failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Take the acknowledgements that have already arrived, without waiting.
    pub async fn collect_ready(&mut self, mirror: &Mirror) -> Result<()> {
        while let Some((_, sent, _)) = self.in_flight.front_mut() {
            match sent.now_or_never() {
                None => break,
                Some(result) => self.settle_front(mirror, result).await?,
            }
        }
        Ok(())
    }

    /// Records sent and not yet settled.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Wait until the oldest delivery has an outcome, keeping it in the pipe for
    /// [`PartitionPipe::collect_ready`]: cancel-safe, so it can race a read of the input (an idle
    /// input must not keep acknowledgements unseen).
    pub async fn front_arrived(&mut self) {
        let Some((rec, sent, sent_at)) = self.in_flight.front_mut() else {
            return std::future::pending().await;
        };
        // The outcome stays in the pipe (`Sent::Arrived`) for `collect_ready` to settle.
        let _ = sent.wait(rec, *sent_at).await;
    }

    /// Wait for the oldest record's acknowledgement.
    pub async fn complete_front(&mut self, mirror: &Mirror) -> Result<()> {
        let Some((rec, sent, sent_at)) = self.in_flight.front_mut() else {
            return Ok(());
        };
        let result = sent.wait(rec, *sent_at).await;
        self.settle_front(mirror, result).await
    }

    /// Wait until every record sent is acknowledged.
    pub async fn drain(&mut self, mirror: &Mirror) -> Result<()> {
        while !self.in_flight.is_empty() {
            self.complete_front(mirror).await?;
        }
        Ok(())
    }

    async fn settle_front(&mut self, mirror: &Mirror, outcome: Outcome) -> Result<()> {
        match outcome {
            Ok(()) => {
                let (rec, _, sent_at) = self.in_flight.pop_front().expect("front exists");
                self.in_flight_bytes -= rec.value.len();
                let ms = sent_at.elapsed().as_millis() as u64;
                mirror.m.latency_ms_total.add(ms);
                if ms > mirror.m.latency_ms_max.get() {
                    mirror.m.latency_ms_max.set(ms);
                }
                mirror.m.records.inc();
                mirror.m.bytes.add(rec.value.len() as u64);
                self.acked = Some(rec.offset);
                self.acked_gauge.set(rec.offset.max(0) as u64);
                self.in_flight_gauge.set(self.in_flight.len() as u64);
                Ok(())
            }
            Err(e) => {
                let (first, _, _) = self.in_flight.front().expect("front exists");
                let (partition, offset) = (first.partition, first.offset);
                mirror.auth.check()?;
                if is_permanent(&e) {
                    bail!("kafka refused Fluvio partition {partition} offset {offset}: {e} (the record is not committed; fix and restart)");
                }
                bail!("kafka did not take Fluvio partition {partition} offset {offset}: {e} (the record is not committed; the next start resumes after what Kafka holds, so nothing is lost or written twice)")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_failures_are_told_from_a_broker_that_is_down() {
        use RDKafkaErrorCode::*;
        let tls = "ssl://127.0.0.1:9093/bootstrap: Receive failed: error:0A000412:SSL routines::sslv3 alert bad certificate: SSL alert number 42";
        assert!(security_failure(Some(BrokerTransportFailure), tls)
            .unwrap()
            .starts_with("TLS handshake failed"));
        let verify = "SSL handshake failed: error:0A000086:SSL routines::certificate verify failed";
        assert!(security_failure(Some(SSL), verify).is_some());
        let down =
            "127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused";
        assert_eq!(security_failure(Some(BrokerTransportFailure), down), None);
        assert_eq!(
            security_failure(Some(AllBrokersDown), "1/1 brokers are down"),
            None
        );
        assert!(
            security_failure(Some(SaslAuthenticationFailed), "bad password")
                .unwrap()
                .starts_with("authentication failed")
        );
    }
}
