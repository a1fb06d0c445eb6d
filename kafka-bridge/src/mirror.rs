//! The Kafka side: an idempotent producer writing each Fluvio record with its key, value,
//! timestamp and `fluvio.*` headers, and per-partition pipes that keep deliveries in order and
//! know the highest offset acknowledged with every earlier one (what may be committed).
//! A failed delivery is retried in order; a broker that is away is waited for; a record Kafka
//! can never take (too large, not authorised) stops the bridge with its offset, never skipped.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use connector_runtime::metrics::{Counter, Gauge, Metrics};
use futures_util::FutureExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use tokio_util::sync::CancellationToken;

use crate::config::{KafkaConfig, Partitioning};
use crate::resume::newest_offsets;

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
    m: MirrorMetrics,
}

#[derive(Clone)]
struct MirrorMetrics {
    metrics: Metrics,
    records: Counter,
    bytes: Counter,
    retries: Counter,
    latency_ms_total: Counter,
    latency_ms_max: Gauge,
    timestamps_dropped: Counter,
    found_in_kafka: Counter,
}

impl MirrorMetrics {
    fn new(m: &Metrics) -> Self {
        Self {
            metrics: m.clone(),
            records: m.counter("records_mirrored_total", "records acknowledged by Kafka"),
            bytes: m.counter("bytes_mirrored_total", "value bytes acknowledged by Kafka"),
            retries: m.counter(
                "delivery_retries_total",
                "records sent again after a failed delivery",
            ),
            latency_ms_total: m.counter(
                "delivery_latency_ms_total",
                "sum of send-to-acknowledgement times (ms)",
            ),
            latency_ms_max: m.gauge(
                "delivery_latency_ms_max",
                "the longest send-to-acknowledgement time (ms)",
            ),
            timestamps_dropped: m.counter(
                "timestamps_dropped_total",
                "records whose time was more than 55 min ahead (sent without one)",
            ),
            found_in_kafka: m.counter(
                "found_in_kafka_total",
                "records whose delivery failed but which Kafka held anyway (not sent again)",
            ),
        }
    }
}

/// The producer's client context: remembers an authentication failure, which librdkafka only
/// reports as a global error while every request just waits for a broker.
#[derive(Clone, Default)]
pub struct AuthWatch {
    failure: Arc<Mutex<Option<String>>>,
}

impl AuthWatch {
    /// Why Kafka refused the credentials, if it did.
    fn failure(&self) -> Option<String> {
        self.failure.lock().expect("auth watch").clone()
    }

    /// Stop on an authentication failure: waiting cannot fix it.
    fn check(&self) -> Result<()> {
        match self.failure() {
            Some(reason) => bail!("kafka: authentication failed (check kafka.security): {reason}"),
            None => Ok(()),
        }
    }
}

impl ClientContext for AuthWatch {
    fn error(&self, error: KafkaError, reason: &str) {
        use RDKafkaErrorCode::*;
        if matches!(
            error.rdkafka_error_code(),
            Some(Authentication | SaslAuthenticationFailed)
        ) {
            *self.failure.lock().expect("auth watch") = Some(reason.to_string());
        }
        tracing::error!(error = %error, reason, "kafka client error");
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

/// Errors of an unreachable cluster: waited out without counting as retries.
fn is_unavailable(e: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        e.rdkafka_error_code(),
        Some(
            MessageTimedOut
                | AllBrokersDown
                | BrokerTransportFailure
                | NetworkException
                | RequestTimedOut
                | NotEnoughReplicas
                | NotEnoughReplicasAfterAppend
                | LeaderNotAvailable
                | NotLeaderForPartition
                | QueueFull
        )
    )
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
        let auth = AuthWatch::default();
        let producer: FutureProducer<AuthWatch> = client_config(&cfg.producer_settings(client_id))
            .create_with_context(auth.clone())
            .map_err(|e| anyhow!("kafka: cannot create the producer: {e}"))?;
        let mut admin_settings = vec![("bootstrap.servers".to_string(), cfg.brokers.clone())];
        admin_settings.extend(cfg.security_settings());
        let admin: AdminClient<DefaultClientContext> = client_config(&admin_settings)
            .create()
            .map_err(|e| anyhow!("kafka: cannot create the admin client: {e}"))?;
        let started = Instant::now();
        let partitions = loop {
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
                            md.topics()
                                .first()
                                .map(|t| (t.error(), t.partitions().len()))
                                .unwrap_or((None, 0))
                        })
                })
                .await?
            };
            match fetched {
                Ok((None, n)) if n > 0 => break n,
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
                    pause = Duration::from_millis(100);
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
        Ok(Some(Self {
            producer,
            auth,
            cfg,
            fluvio_topic: fluvio_topic.to_string(),
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
        loop {
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&self.cfg.topic).payload(&rec.value[..]);
            if let Some(k) = &rec.key {
                record = record.key(&k[..]);
            }
            if let Some(p) = self.cfg.partitioning.kafka_partition(rec.partition) {
                record = record.partition(p);
            }
            if self.cfg.timestamps {
                if let Some(ts) = rec.timestamp_ms.filter(|t| *t > 0) {
                    let now = connector_runtime::now_ms();
                    if ts > now + 55 * 60 * 1000 {
                        self.m.timestamps_dropped.inc();
                    } else {
                        record = record.timestamp(ts);
                    }
                }
            }
            if self.cfg.headers {
                let headers = OwnedHeaders::new_with_capacity(3)
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

    /// The Kafka partition a record goes to: fixed by the partitioning, or (with `key`) the one
    /// the producer reported for it.
    fn kafka_partition(&self, rec: &SourceRecord, reported: Option<i32>) -> Option<i32> {
        self.cfg
            .partitioning
            .kafka_partition(rec.partition)
            .or(reported)
    }

    /// For each of `kafka_partitions`, the newest offset of `fluvio_partition` Kafka holds
    /// there. Asks until Kafka answers (a record it holds must not be sent twice); the answer
    /// is empty only when resuming from Kafka is turned off.
    async fn newest_in_kafka(
        &self,
        fluvio_partition: u32,
        kafka_partitions: &BTreeSet<i32>,
    ) -> HashMap<i32, i64> {
        if !self.cfg.resume_from_kafka {
            return HashMap::new();
        }
        let started = Instant::now();
        loop {
            let pairs = kafka_partitions
                .iter()
                .map(|&k| (k, fluvio_partition))
                .collect();
            match newest_offsets(&self.cfg, &self.fluvio_topic, pairs).await {
                Ok(found) => return found.into_iter().map(|((k, _), o)| (k, o)).collect(),
                Err(e) => {
                    tracing::warn!(partition = fluvio_partition, error = %format!("{e:#}"), waited = ?started.elapsed(), "cannot read what Kafka holds yet; asking again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
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

/// A record handed to Kafka: its acknowledgement to come, or already known to be there.
enum Sent {
    Pending(DeliveryFuture),
    /// The outcome arrived while the pipe was waiting for it, not yet taken.
    Arrived(Outcome),
    /// Found in Kafka after a delivery whose outcome was unknown: not sent again.
    InKafka,
}

/// The outcome of one delivery; on failure, the Kafka partition the record was meant for.
type Outcome = Result<(), (KafkaError, Option<i32>)>;

impl Sent {
    fn now_or_never(&mut self) -> Option<Outcome> {
        match self {
            Sent::Pending(fut) => fut.now_or_never().map(outcome),
            Sent::Arrived(_) => Some(self.take_arrived()),
            Sent::InKafka => Some(Ok(())),
        }
    }

    async fn wait(&mut self) -> Outcome {
        match self {
            Sent::Pending(fut) => outcome(fut.await),
            Sent::Arrived(_) => self.take_arrived(),
            Sent::InKafka => Ok(()),
        }
    }

    fn take_arrived(&mut self) -> Outcome {
        match std::mem::replace(self, Sent::InKafka) {
            Sent::Arrived(o) => o,
            _ => unreachable!("only called on Arrived"),
        }
    }
}

fn outcome(result: <DeliveryFuture as std::future::Future>::Output) -> Outcome {
    use rdkafka::message::Message;
    match result {
        Ok(Ok(_delivery)) => Ok(()),
        Ok(Err((e, msg))) => Err((e, Some(msg.partition()).filter(|p| *p >= 0))),
        Err(_) => Err((KafkaError::Canceled, None)),
    }
}

/// In-order deliveries of one Fluvio partition.
pub struct PartitionPipe {
    in_flight: VecDeque<(SourceRecord, Sent, Instant)>,
    /// Value bytes of `in_flight`.
    in_flight_bytes: usize,
    /// The highest offset acknowledged, every earlier one too.
    acked: Option<i64>,
    failures: u32,
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
            failures: 0,
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
        let Some((_, sent, _)) = self.in_flight.front_mut() else {
            return std::future::pending().await;
        };
        if let Sent::Pending(fut) = sent {
            let o = outcome(fut.await);
            *sent = Sent::Arrived(o);
        }
    }

    /// Wait for the oldest record's acknowledgement.
    pub async fn complete_front(&mut self, mirror: &Mirror) -> Result<()> {
        let Some((_, sent, _)) = self.in_flight.front_mut() else {
            return Ok(());
        };
        let result = sent.wait().await;
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
                self.failures = 0;
                self.in_flight_gauge.set(self.in_flight.len() as u64);
                Ok(())
            }
            Err(e) => self.retry_from_front(mirror, e).await,
        }
    }

    /// The oldest delivery failed: let the later ones settle, ask Kafka which of the unsettled
    /// records it holds anyway (a delivery that timed out may have been written), and send the
    /// others again, in order. Permanent errors and too many retries stop the bridge.
    async fn retry_from_front(
        &mut self,
        mirror: &Mirror,
        (e, kafka_partition): (KafkaError, Option<i32>),
    ) -> Result<()> {
        let (first, _, _) = self.in_flight.front().expect("front exists");
        let (partition, offset) = (first.partition, first.offset);
        if is_permanent(&e) {
            bail!("kafka refused Fluvio partition {partition} offset {offset}: {e} (the record is not committed; fix and restart)");
        }
        mirror.auth.check()?;
        let unavailable = is_unavailable(&e);
        if !unavailable {
            self.failures += 1;
            if self.failures > mirror.cfg.max_retries {
                bail!(
                    "delivery of Fluvio partition {partition} offset {offset} failed {} times: {e}",
                    self.failures
                );
            }
        }
        tracing::warn!(partition, offset, error = %e, pending = self.in_flight.len(), unavailable, "delivery failed; sending again in order what Kafka lacks");
        let (failed, _, _) = self.in_flight.pop_front().expect("front exists");
        self.in_flight_bytes = 0;
        let k = mirror.kafka_partition(&failed, kafka_partition);
        let mut unsettled = vec![(failed, k)];
        while let Some((rec, mut sent, _)) = self.in_flight.pop_front() {
            let reported = match tokio::time::timeout(
                mirror.cfg.delivery_timeout + Duration::from_secs(5),
                sent.wait(),
            )
            .await
            {
                Ok(Ok(())) => {
                    tracing::error!(partition, offset = rec.offset, "a later record was acknowledged after an earlier one failed: order may be broken");
                    mirror.m.records.inc();
                    continue;
                }
                Ok(Err((_, reported))) => reported,
                Err(_) => None,
            };
            let k = mirror.kafka_partition(&rec, reported);
            unsettled.push((rec, k));
        }
        tokio::time::sleep(Duration::from_millis(if unavailable { 1000 } else { 500 })).await;
        let kafka_partitions = unsettled.iter().filter_map(|(_, k)| *k).collect();
        let in_kafka = mirror.newest_in_kafka(partition, &kafka_partitions).await;
        for (rec, k) in unsettled {
            let there = k
                .and_then(|k| in_kafka.get(&k))
                .is_some_and(|newest| rec.offset <= *newest);
            let sent = if there {
                mirror.m.found_in_kafka.inc();
                Sent::InKafka
            } else {
                mirror.m.retries.inc();
                Sent::Pending(self.send_with_retry(mirror, &rec).await?)
            };
            self.in_flight_bytes += rec.value.len();
            self.in_flight.push_back((rec, sent, Instant::now()));
        }
        Ok(())
    }
}
