//! The Kafka side: a transactional (default) or idempotent producer writing each Fluvio record
//! with its key, value, timestamp and `fluvio.*` headers, and per-partition pipes that keep
//! deliveries in order and know the highest offset Kafka holds with every earlier one (what may
//! be committed): acknowledged, and with transactions also committed.
//! librdkafka retries every delivery in order, without duplicates (idempotence), for as long as
//! a broker is away (waited for, with progress in the log); a record Kafka can never take (too
//! large, not authorised) or an unacknowledged one past `delivery_timeout` stops the bridge
//! with its offset ([`Refused`]), never skipped: the next start resumes from what Kafka holds.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use connector_runtime::metrics::{Counter, FloatGauge, Gauge, Histogram, Metrics, Ready};
use futures_util::FutureExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use tokio_util::sync::CancellationToken;

use crate::config::{Delivery, KafkaConfig, Partitioning};
use crate::input::SourceRecord;
use crate::timestamps::{Stamp, TimestampRule, DEFAULT_PRODUCER_EXPIRY_MS};
use crate::transactions::{is_fatal, is_fenced, Fenced, TransactionFailed, Transactions};

/// A record Kafka can never take (too large for the topic, not authorised, ...), or that the
/// sink transforms reject: it is not skipped; the bridge stops on it, or writes it to the
/// dead-letter topic.
#[derive(Debug, thiserror::Error)]
#[error("{} refused Fluvio partition {} offset {}: {reason} (the record is not committed, and with transactions nothing after it is visible; fix the cause and restart, or set kafka.on_refused: dead-letter)", by.name(), record.partition, record.offset)]
pub struct Refused {
    pub by: RefusedBy,
    /// The first record refused (a broker refuses whole batches: with other records, unless
    /// `isolated`).
    pub record: SourceRecord,
    /// The last offset of the partition refused with it.
    pub through: i64,
    /// Whether it was sent alone, so that it is the record at fault.
    pub isolated: bool,
    pub reason: String,
}

/// Who refused a record (the dead-letter topic's `error.class` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedBy {
    Kafka,
    Transforms,
}

impl RefusedBy {
    fn name(self) -> &'static str {
        match self {
            RefusedBy::Kafka => "kafka",
            RefusedBy::Transforms => "the sink transforms",
        }
    }

    fn class(self) -> &'static str {
        match self {
            RefusedBy::Kafka => "refused",
            RefusedBy::Transforms => "transform",
        }
    }
}

/// The producer and what every pipe shares.
pub struct Mirror {
    producer: FutureProducer<AuthWatch>,
    auth: AuthWatch,
    txn: Option<Transactions>,
    transactional_id: String,
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
    /// From a send to Kafka's acknowledgement.
    delivery: Histogram,
    delivery_max: FloatGauge,
    /// From a record's Fluvio timestamp to Kafka's acknowledgement.
    fluvio_to_kafka: Histogram,
    /// Met while Kafka acknowledges what is sent.
    kafka_writable: Ready,
    timestamps_replaced: Counter,
    dead_lettered: Counter,
}

impl MirrorMetrics {
    fn new(m: &Metrics) -> Self {
        Self {
            metrics: m.clone(),
            records: m.counter("records_mirrored_total", "records acknowledged by Kafka"),
            bytes: m.counter("bytes_mirrored_total", "value bytes acknowledged by Kafka"),
            delivery: m.histogram(
                "delivery_seconds",
                "from a record's send to Kafka's acknowledgement",
            ),
            delivery_max: m.float_gauge(
                "delivery_seconds_max",
                "the longest time from a send to Kafka's acknowledgement",
            ),
            fluvio_to_kafka: m.histogram(
                "fluvio_to_kafka_seconds",
                "from a record's Fluvio timestamp to Kafka's acknowledgement",
            ),
            kafka_writable: m.readiness("Kafka writable"),
            timestamps_replaced: m.counter(
                "timestamps_replaced_total",
                "records written with the current time as CreateTime, their Fluvio time (too old or too far ahead for Kafka) in the fluvio.timestamp header",
            ),
            dead_lettered: m.counter(
                "dead_lettered_total",
                "records Kafka refused, written to the dead-letter topic instead (kafka.on_refused: dead-letter)",
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

/// A Kafka topic to have: its name, and its partitions and configs if it must be created.
struct TopicSpec<'a> {
    name: &'a str,
    partitions: i32,
    config: &'a std::collections::BTreeMap<String, String>,
}

/// Make sure `topic` exists (creating it with `partitions` when allowed), waiting for the
/// brokers with progress in the log until `shutdown` (then `None`). Returns its partition count
/// and a broker id.
async fn ensure_topic(
    producer: &FutureProducer<AuthWatch>,
    admin: &AdminClient<DefaultClientContext>,
    auth: &AuthWatch,
    cfg: &KafkaConfig,
    wanted: TopicSpec<'_>,
    shutdown: &CancellationToken,
) -> Result<Option<(usize, Option<i32>)>> {
    let TopicSpec {
        name: topic,
        partitions,
        config: topic_config,
    } = wanted;
    let started = Instant::now();
    let found = loop {
        // A topic just created is ready within moments; an unreachable cluster is asked
        // again every second.
        let mut pause = Duration::from_secs(1);
        let fetched = {
            let p = producer.clone();
            let topic = topic.to_string();
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
                    bail!("kafka.topic: Kafka topic `{topic}` does not exist and kafka.create_topic is false");
                }
                let mut new_topic =
                    NewTopic::new(topic, partitions, TopicReplication::Fixed(cfg.replication));
                for (k, v) in topic_config {
                    new_topic = new_topic.set(k, v);
                }
                pause = Duration::from_millis(20);
                let results = admin
                    .create_topics(
                        &[new_topic],
                        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
                    )
                    .await
                    .map_err(|e| anyhow!("kafka: cannot create topic `{topic}`: {e}"))?;
                for r in results {
                    match r {
                        Ok(_) => {
                            tracing::info!(topic, partitions, "created the Kafka topic")
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
    Ok(Some(found))
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
        transactional_id: &str,
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
        let producer: FutureProducer<AuthWatch> =
            client_config(&cfg.producer_settings(client_id, transactional_id))
                .create_with_context(auth.clone())
                .map_err(|e| anyhow!("kafka: cannot create the producer: {e}"))?;
        let mut admin_settings = vec![("bootstrap.servers".to_string(), cfg.brokers.clone())];
        admin_settings.extend(cfg.security_settings());
        let admin: AdminClient<DefaultClientContext> = client_config(&admin_settings)
            .create()
            .map_err(|e| anyhow!("kafka: cannot create the admin client: {e}"))?;
        let n = cfg.partitions.unwrap_or(fluvio_partitions.max(1) as i32);
        let wanted = TopicSpec {
            name: &cfg.topic,
            partitions: n,
            config: &cfg.topic_config,
        };
        let Some((partitions, broker)) =
            ensure_topic(&producer, &admin, &auth, &cfg, wanted, shutdown).await?
        else {
            return Ok(None);
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
        if cfg.on_refused == crate::config::OnRefused::DeadLetter {
            let dlq = cfg.dead_letter_topic();
            // Created with the broker's defaults (the topic's own limits refused the records).
            let wanted = TopicSpec {
                name: &dlq,
                partitions: 1,
                config: &Default::default(),
            };
            if ensure_topic(&producer, &admin, &auth, &cfg, wanted, shutdown)
                .await?
                .is_none()
            {
                return Ok(None);
            }
            tracing::info!(topic = %dlq, "records Kafka refuses go to the dead-letter topic");
        }
        let txn = match cfg.delivery {
            Delivery::AtLeastOnce => None,
            Delivery::ExactlyOnce => {
                match Transactions::init(&producer, transactional_id, metrics, shutdown).await? {
                    Some(t) => Some(t),
                    None => return Ok(None),
                }
            }
        };
        // Connected, the topic checked and the transactions initialised: writable.
        let m = MirrorMetrics::new(metrics);
        m.kafka_writable.set(true);
        Ok(Some(Self {
            producer,
            auth,
            txn,
            transactional_id: transactional_id.to_string(),
            cfg,
            fluvio_topic: fluvio_topic.to_string(),
            timestamps,
            m,
        }))
    }

    pub fn config(&self) -> &KafkaConfig {
        &self.cfg
    }

    /// Hand one record to the producer (waits while its queue is full), into `topic` (the
    /// mirror's, or the dead-letter topic with `extra` headers). Returns the delivery to come and
    /// the transaction it belongs to (0 without transactions).
    async fn send(
        &self,
        rec: &SourceRecord,
        topic: &str,
        extra: &[(&str, &str)],
    ) -> Result<(DeliveryFuture, u64), KafkaError> {
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
        let dead_letter = topic != self.cfg.topic;
        loop {
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
            // An empty value is a tombstone (no value) where tombstones are asked for.
            if !(self.cfg.tombstones && rec.value.is_empty() && !dead_letter) {
                record = record.payload(&rec.value[..]);
            }
            if let Some(k) = &rec.key {
                record = record.key(&k[..]);
            }
            if let Some(p) = self.cfg.partitioning.kafka_partition(rec.partition) {
                if !dead_letter {
                    record = record.partition(p);
                }
            }
            if let Some(ts) = stamp.create_time {
                record = record.timestamp(ts);
            }
            if self.cfg.headers || dead_letter {
                let mut headers = OwnedHeaders::new_with_capacity(4 + extra.len())
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
                for (k, v) in extra {
                    headers = headers.insert(Header {
                        key: k,
                        value: Some(v.as_bytes()),
                    });
                }
                record = record.headers(headers);
            }
            let permit = match &self.txn {
                Some(t) => Some(t.permit().await),
                None => None,
            };
            let number = permit.as_ref().map_or(0, |p| p.number);
            match self.producer.send_result(record) {
                Ok(f) => return Ok((f, number)),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    drop(permit);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Write a record Kafka refused into the dead-letter topic, with headers saying why (as
    /// Kafka Connect's `errors.deadletterqueue` does), in a transaction of its own when
    /// transactions are on. Its `fluvio.*` headers let the next resume go on after it.
    pub async fn dead_letter(&self, refused: &Refused) -> Result<()> {
        let topic = self.cfg.dead_letter_topic();
        let extra = [
            ("error.reason", refused.reason.as_str()),
            ("error.topic", self.cfg.topic.as_str()),
            ("error.class", refused.by.class()),
        ];
        let rec = &refused.record;
        let (delivery, number) = self
            .send(rec, &topic, &extra)
            .await
            .map_err(|e| anyhow!("kafka: dead-letter topic `{topic}`: {e}"))?;
        outcome(delivery.await)
            .map_err(|e| anyhow!("kafka: dead-letter topic `{topic}` refused it too: {e}"))?;
        if let Some(t) = &self.txn {
            t.commit_open().await?;
            t.committed(number).await?;
        }
        self.m.dead_lettered.inc();
        tracing::warn!(
            partition = rec.partition,
            offset = rec.offset,
            topic,
            reason = %refused.reason,
            refused_by = refused.by.name(),
            "a record was refused: written to the dead-letter topic instead"
        );
        Ok(())
    }

    /// A send or delivery of the open transaction failed: it can only be aborted.
    fn doom(&self) {
        if let Some(t) = &self.txn {
            t.doom();
        }
    }

    /// The open transaction, when delivery is exactly once.
    pub fn transactions(&self) -> Option<&Transactions> {
        self.txn.as_ref()
    }

    /// What a send or delivery error means: the record is refused, the instance fenced, the
    /// transaction failed (then the bridge aborts it and goes on), or Kafka did not take it.
    fn classify(&self, rec: &SourceRecord, e: KafkaError) -> anyhow::Error {
        if let Some(fatal) = self.txn.as_ref().and_then(Transactions::fatal) {
            return fatal;
        }
        if is_fenced(&e) || is_fatal(&e) {
            return Fenced::new(&self.transactional_id, &e).into();
        }
        if let Err(auth) = self.auth.check() {
            return auth;
        }
        if is_permanent(&e) {
            return Refused {
                by: RefusedBy::Kafka,
                record: rec.clone(),
                through: rec.offset,
                isolated: false,
                reason: e.to_string(),
            }
            .into();
        }
        if self.txn.is_some() && self.cfg.delivery_timeout.is_none() {
            return TransactionFailed(format!(
                "Fluvio partition {} offset {}: {e}",
                rec.partition, rec.offset
            ))
            .into();
        }
        anyhow!("kafka did not take Fluvio partition {} offset {}: {e} (the record is not committed; the next start resumes after what Kafka holds, so nothing is lost or written twice)", rec.partition, rec.offset)
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
            Sent::Pending(fut) => {
                let o = fut.now_or_never().map(outcome)?;
                *self = Sent::Arrived(o.clone());
                Some(o)
            }
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

/// One record in a pipe: what was sent, its delivery, when, and its transaction (0: none).
struct InFlight {
    rec: SourceRecord,
    sent: Sent,
    at: Instant,
    txn: u64,
    /// Filtered out by the sink transforms: nothing was sent, the offset is done in turn.
    filtered: bool,
}

/// In-order deliveries of one Fluvio partition.
pub struct PartitionPipe {
    in_flight: VecDeque<InFlight>,
    /// Value bytes of `in_flight`.
    in_flight_bytes: usize,
    /// The highest offset Kafka holds (acknowledged, and committed with transactions), every
    /// earlier one too.
    acked: Option<i64>,
    in_flight_gauge: Gauge,
    acked_gauge: Gauge,
}

impl PartitionPipe {
    /// `acked`: what is known to be in Kafka already (where the partition resumes), if anything.
    pub fn new(partition: u32, metrics: &Metrics, acked: Option<i64>) -> Self {
        let p = partition.to_string();
        let mut pipe = Self {
            in_flight: VecDeque::new(),
            in_flight_bytes: 0,
            acked: None,
            in_flight_gauge: metrics.gauge_with(
                "in_flight",
                &[("partition", &p)],
                "records sent, not yet acknowledged (and committed, with transactions)",
            ),
            acked_gauge: metrics.gauge_with(
                "acked_offset",
                &[("partition", &p)],
                "highest Fluvio offset Kafka holds with all earlier ones (acknowledged, and committed with transactions)",
            ),
        };
        if let Some(a) = acked {
            pipe.mark_acked(a);
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
            if let Some(t) = &mirror.txn {
                t.hurry();
            }
            self.complete_front(mirror).await?;
        }
        self.collect_ready(mirror).await?;
        let (fut, txn) = match self.send_with_retry(mirror, &rec).await {
            Ok(sent) => sent,
            Err(e) if e.is::<TransactionFailed>() => {
                // The transaction failed under a record sent earlier: name it when it was
                // refused (its delivery reports the reason).
                return Err(self.failed_delivery(mirror).await.unwrap_or(e));
            }
            Err(e) => {
                // Refused before it left (too large for the producer): isolated, and what
                // came before it still goes to Kafka.
                if let Some(refused) = e.downcast_ref::<Refused>() {
                    if mirror.txn.is_some() && refused.record.offset == rec.offset {
                        self.drain(mirror).await?;
                        let mut refused = e.downcast::<Refused>().expect("refused");
                        refused.isolated = true;
                        return Err(refused.into());
                    }
                }
                // A send refused because the transaction failed under earlier records: the
                // first of them Kafka did not take (if its outcome is in) says what happened.
                if mirror.txn.is_some() {
                    if let Some((first, why)) = self.first_failed() {
                        mirror.doom();
                        return Err(self.widen(mirror.classify(&first, why)));
                    }
                }
                return Err(e);
            }
        };
        self.in_flight_bytes += rec.value.len();
        self.in_flight.push_back(InFlight {
            rec,
            sent: Sent::Pending(fut),
            at: Instant::now(),
            txn,
            filtered: false,
        });
        self.in_flight_gauge.set(self.in_flight.len() as u64);
        Ok(())
    }

    /// A record the sink transforms filtered out: its offset is done once every record
    /// before it is in Kafka.
    pub fn skip(&mut self, rec: SourceRecord) {
        if self.in_flight.is_empty() {
            self.mark_acked(rec.offset);
            return;
        }
        self.in_flight.push_back(InFlight {
            rec: SourceRecord {
                key: None,
                value: Vec::new(),
                ..rec
            },
            sent: Sent::Arrived(Ok(())),
            at: Instant::now(),
            txn: 0,
            filtered: true,
        });
        self.in_flight_gauge.set(self.in_flight.len() as u64);
    }

    async fn send_with_retry(
        &mut self,
        mirror: &Mirror,
        rec: &SourceRecord,
    ) -> Result<(DeliveryFuture, u64)> {
        loop {
            match mirror.send(rec, &mirror.cfg.topic, &[]).await {
                Ok(f) => return Ok(f),
                // Refused before it left: the transaction holds nothing of it.
                Err(e) if is_permanent(&e) => return Err(mirror.classify(rec, e)),
                Err(e) if mirror.txn.is_some() => {
                    mirror.doom();
                    return Err(mirror.classify(rec, e));
                }
                // The producer stopped for good (at least once: a refused batch under the
                // gap-less guarantee): the first delivery that failed says why.
                Err(e) if let Some((code, reason)) = mirror.producer.client().fatal_error() => {
                    if let Some((first, why)) = self.first_failed() {
                        return Err(self.widen(mirror.classify(&first, why)));
                    }
                    return Err(anyhow!("kafka: the producer stopped for good at Fluvio partition {} offset {}: {code}: {reason} ({e}; nothing Kafka did not acknowledge is committed, and the next start resumes from Kafka)", rec.partition, rec.offset));
                }
                Err(e) => {
                    tracing::warn!(partition = rec.partition, offset = rec.offset, error = %e, "send failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Take the records Kafka already holds, without waiting.
    pub async fn collect_ready(&mut self, mirror: &Mirror) -> Result<()> {
        while let Some(front) = self.in_flight.front_mut() {
            let Some(result) = front.sent.now_or_never() else {
                break;
            };
            let txn = front.txn;
            if result.is_ok() && !self.committed(mirror, txn)? {
                break;
            }
            self.settle_front(mirror, result)?;
        }
        Ok(())
    }

    /// Whether transaction `txn` committed; when it failed, the error names the record Kafka
    /// refused, if one of ours was (a commit fails only after every delivery has an outcome).
    fn committed(&mut self, mirror: &Mirror, txn: u64) -> Result<bool> {
        let Some(t) = &mirror.txn else {
            return Ok(true);
        };
        match t.is_committed(txn) {
            Ok(done) => Ok(done),
            Err(why) => match self.first_failed() {
                Some((rec, e)) => Err(self.widen(mirror.classify(&rec, e))),
                None => Err(TransactionFailed(format!("{why:#}")).into()),
            },
        }
    }

    /// Kafka holds `offset` and every earlier one.
    fn mark_acked(&mut self, offset: i64) {
        self.acked = Some(offset);
        self.acked_gauge.set(offset.max(0) as u64);
    }

    /// The first record in flight whose delivery failed, among the outcomes already in.
    fn first_failed(&mut self) -> Option<(SourceRecord, KafkaError)> {
        self.in_flight
            .iter_mut()
            .find_map(|f| match f.sent.now_or_never() {
                Some(Err(e)) => Some((f.rec.clone(), e)),
                _ => None,
            })
    }

    /// Records sent and not yet settled.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Wait until the oldest delivery has an outcome (and its transaction committed), keeping
    /// it in the pipe for [`PartitionPipe::collect_ready`]: cancel-safe, so it can race a read
    /// of the input (an idle input must not keep acknowledgements unseen).
    pub async fn front_arrived(&mut self, mirror: &Mirror) {
        let Some(f) = self.in_flight.front_mut() else {
            return std::future::pending().await;
        };
        // The outcome stays in the pipe (`Sent::Arrived`) for `collect_ready` to settle.
        if f.sent.wait(&f.rec, f.at).await.is_ok() {
            if let Some(t) = &mirror.txn {
                let _ = t.committed(f.txn).await;
            }
        }
    }

    /// Wait for the oldest record to be in Kafka.
    pub async fn complete_front(&mut self, mirror: &Mirror) -> Result<()> {
        let Some(f) = self.in_flight.front_mut() else {
            return Ok(());
        };
        let result = f.sent.wait(&f.rec, f.at).await;
        let txn = f.txn;
        if result.is_ok() {
            if let Some(t) = &mirror.txn {
                if t.committed(txn).await.is_err() {
                    self.committed(mirror, txn)?;
                }
            }
        }
        self.settle_front(mirror, result)
    }

    /// Wait until every record sent is in Kafka (with transactions: committed now).
    pub async fn drain(&mut self, mirror: &Mirror) -> Result<()> {
        if let (Some(t), false) = (&mirror.txn, self.in_flight.is_empty()) {
            t.hurry();
        }
        while !self.in_flight.is_empty() {
            self.complete_front(mirror).await?;
        }
        Ok(())
    }

    fn settle_front(&mut self, mirror: &Mirror, outcome: Outcome) -> Result<()> {
        match outcome {
            Ok(()) => {
                let f = self.in_flight.pop_front().expect("front exists");
                self.in_flight_bytes -= f.rec.value.len();
                self.mark_acked(f.rec.offset);
                self.in_flight_gauge.set(self.in_flight.len() as u64);
                if f.filtered {
                    return Ok(());
                }
                let took = f.at.elapsed();
                mirror.m.delivery.observe(took);
                mirror.m.delivery_max.raise_to(took.as_secs_f64());
                mirror.m.kafka_writable.set(true);
                if let Some(t) = f.rec.timestamp_ms {
                    mirror.m.fluvio_to_kafka.observe_since(t);
                }
                mirror.m.records.inc();
                mirror.m.bytes.add(f.rec.value.len() as u64);
                Ok(())
            }
            Err(e) => {
                mirror.doom();
                mirror.m.kafka_writable.set(false);
                let f = self.in_flight.front().expect("front exists");
                Err(self.widen(mirror.classify(&f.rec, e)))
            }
        }
    }

    /// The error of the first record in flight whose delivery failed, waiting (bounded) for
    /// the outcomes still to come.
    async fn failed_delivery(&mut self, mirror: &Mirror) -> Option<anyhow::Error> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut failed = None;
        for f in self.in_flight.iter_mut() {
            let left = deadline.saturating_duration_since(Instant::now());
            let outcome = match f.sent.now_or_never() {
                Some(o) => o,
                None => match tokio::time::timeout(left, f.sent.wait(&f.rec, f.at)).await {
                    Ok(o) => o,
                    Err(_) => break,
                },
            };
            if let Err(e) = outcome {
                failed = Some((f.rec.clone(), e));
                break;
            }
        }
        let (rec, e) = failed?;
        mirror.doom();
        Some(self.widen(mirror.classify(&rec, e)))
    }

    /// A refused record's error, with the last offset of this pipe refused with it.
    fn widen(&mut self, e: anyhow::Error) -> anyhow::Error {
        match e.downcast::<Refused>() {
            Ok(mut refused) => {
                for f in self.in_flight.iter_mut() {
                    if let Some(Err(_)) = f.sent.now_or_never() {
                        refused.through = refused.through.max(f.rec.offset);
                    }
                }
                refused.into()
            }
            Err(e) => e,
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
