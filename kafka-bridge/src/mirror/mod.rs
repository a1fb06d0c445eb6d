//! The Kafka side: a transactional (default) or idempotent producer writing each Fluvio record
//! with its key, value, timestamp and `fluvio.*` headers, and per-partition pipes that keep
//! deliveries in order and know the highest offset Kafka holds with every earlier one (what may
//! be committed): acknowledged, and with transactions also committed.
//! librdkafka retries every delivery in order, without duplicates (idempotence), for as long as
//! a broker is away (waited for, with progress in the log); a record Kafka can never take (too
//! large, not authorised) or an unacknowledged one past `delivery_timeout` stops the bridge
//! with its offset ([`Refused`]), never skipped: the next start resumes from what Kafka holds.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use connector_runtime::metrics::{Counter, FloatGauge, Histogram, Metrics, Ready};
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, Producer};
use tokio_util::sync::CancellationToken;

use crate::config::{Delivery, KafkaConfig, Partitioning};
use crate::input::SourceRecord;
use crate::timestamps::{Stamp, TimestampRule};

mod errors;
mod pipe;
mod record;
mod topic;
mod transactions;

use errors::is_permanent;
pub use errors::{AuthWatch, Refused, RefusedBy};
use pipe::outcome;
pub use pipe::PartitionPipe;
use record::Encoding;
pub use topic::client_config;
use topic::{ensure_topic, producer_expiry_ms, TopicSpec};
use transactions::{is_fatal, is_fenced};
pub use transactions::{Fenced, ProducerStalled, TransactionFailed, Transactions};

/// The producer and what every pipe shares.
pub struct Mirror {
    producer: FutureProducer<AuthWatch>,
    auth: AuthWatch,
    txn: Option<Transactions>,
    client_id: String,
    transactional_id: String,
    cfg: KafkaConfig,
    fluvio_topic: String,
    fluvio_partitions: usize,
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

/// Which time each record carries, from the broker's producer expiry.
async fn timestamp_rule(
    cfg: &KafkaConfig,
    admin: &AdminClient<DefaultClientContext>,
    broker: Option<i32>,
) -> TimestampRule {
    let rule = TimestampRule::new(producer_expiry_ms(admin, broker).await);
    if cfg.timestamps {
        tracing::info!(
            max_age = ?Duration::from_millis(rule.max_age_ms() as u64),
            "Fluvio times older than this (half the broker's producer.id.expiration.ms) are kept in the fluvio.timestamp header, not as CreateTime"
        );
    }
    rule
}

/// The dead-letter topic of `on_refused: dead-letter`, created with the broker's defaults
/// (the mirror topic's own limits refused the records). False on shutdown.
async fn ensure_dead_letter_topic(
    producer: &FutureProducer<AuthWatch>,
    admin: &AdminClient<DefaultClientContext>,
    auth: &AuthWatch,
    cfg: &KafkaConfig,
    shutdown: &CancellationToken,
) -> Result<bool> {
    let dlq = cfg.dead_letter_topic();
    let wanted = TopicSpec {
        name: &dlq,
        partitions: 1,
        config: &Default::default(),
    };
    if ensure_topic(producer, admin, auth, cfg, wanted, shutdown)
        .await?
        .is_none()
    {
        return Ok(false);
    }
    tracing::info!(topic = %dlq, "records Kafka refuses go to the dead-letter topic");
    Ok(true)
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
        let auth = AuthWatch::new(metrics);
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
        let timestamps = timestamp_rule(&cfg, &admin, broker).await;
        if cfg.on_refused == crate::config::OnRefused::DeadLetter
            && !ensure_dead_letter_topic(&producer, &admin, &auth, &cfg, shutdown).await?
        {
            return Ok(None);
        }
        let txn = match cfg.delivery {
            Delivery::AtLeastOnce => None,
            Delivery::ExactlyOnce => {
                let stall = cfg.producer_stall();
                match Transactions::init(&producer, transactional_id, stall, metrics, shutdown)
                    .await?
                {
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
            client_id: client_id.to_string(),
            transactional_id: transactional_id.to_string(),
            cfg,
            fluvio_topic: fluvio_topic.to_string(),
            fluvio_partitions,
            timestamps,
            m,
        }))
    }

    /// A new producer with this one's settings and `transactional.id`, to replace this one
    /// when it stalled: its `init_transactions` fences this producer and aborts the transaction
    /// it left open (so the session goes on from what Kafka has committed). `None` on shutdown.
    pub async fn replacement(&self, shutdown: &CancellationToken) -> Result<Option<Self>> {
        Self::connect(
            self.cfg.clone(),
            &self.client_id,
            &self.transactional_id,
            &self.fluvio_topic,
            self.fluvio_partitions,
            &self.m.metrics,
            shutdown,
        )
        .await
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
        let stamp = if self.cfg.timestamps {
            self.timestamps
                .stamp(rec.timestamp_ms, connector_runtime::now_ms())
        } else {
            Stamp::default()
        };
        if stamp.replaced.is_some() {
            self.m.timestamps_replaced.inc();
        }
        let encoding = Encoding {
            cfg: &self.cfg,
            fluvio_topic: &self.fluvio_topic,
            topic,
            extra,
            stamp,
        };
        loop {
            let record = encoding.record(rec);
            let permit = match &self.txn {
                Some(t) => Some(t.permit().await),
                None => None,
            };
            let number = permit.as_ref().map_or(0, |p| p.number);
            if self.txn.as_ref().is_some_and(Transactions::has_failed) {
                // The open transaction can only be aborted (and a stalled producer's queue
                // was purged): nothing more goes into it.
                return Err(KafkaError::MessageProduction(RDKafkaErrorCode::PurgeQueue));
            }
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
