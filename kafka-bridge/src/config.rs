//! The `kafka:` section of the bridge config: where to write, how to map records, how to
//! deliver, and how to authenticate. Defaults follow the mirroring rules of Kafka Connect and
//! MirrorMaker 2 (transactional producer for exactly-once, `acks=all`, commit after Kafka).

use std::collections::BTreeMap;
use std::time::Duration;

use connector_runtime::config::{invalid, InvalidField, Section};
use connector_runtime::SecretString;
use serde::{Deserialize, Deserializer};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port...]`.
    pub brokers: String,
    /// The Kafka topic (default `tweets`).
    #[serde(default = "default_topic")]
    pub topic: String,
    /// Create the topic when missing (default true).
    #[serde(default = "yes")]
    pub create_topic: bool,
    /// Partitions of a created topic (default: as many as the Fluvio topic has).
    #[serde(default)]
    pub partitions: Option<i32>,
    /// Replication of a created topic (default 1).
    #[serde(default = "one_i32")]
    pub replication: i32,
    /// Topic configs of a created topic (e.g. `retention.ms`).
    #[serde(default)]
    pub topic_config: BTreeMap<String, String>,
    /// `same` (Fluvio partition p to Kafka partition p, the default), `key` (Kafka's key hash),
    /// or `{fixed: N}`.
    #[serde(default)]
    pub partitioning: Partitioning,
    /// Add `fluvio.topic`, `fluvio.partition`, `fluvio.offset` headers (default true; needed to
    /// resume without duplicates).
    #[serde(default = "yes")]
    pub headers: bool,
    /// Fluvio record time to Kafka CreateTime (default true); a time Kafka cannot live with
    /// goes to the `fluvio.timestamp` header instead (see `timestamps.rs`).
    #[serde(default = "yes")]
    pub timestamps: bool,
    /// `gzip` (default, at level 1: every Kafka client decodes it without extras, kafka-python
    /// included), `none`, `snappy`, `lz4` or `zstd` (faster or smaller, but kafka-python then
    /// needs `python-snappy`, `lz4` or `zstandard`). Trade-off measured in docs/BENCHMARKS.md.
    #[serde(default)]
    pub compression: Compression,
    /// Producer linger (default 20ms).
    #[serde(
        default = "d_20ms",
        deserialize_with = "connector_runtime::units::duration"
    )]
    pub linger: Duration,
    /// Producer batch size in bytes (default 1 MiB).
    #[serde(default = "default_batch")]
    pub batch_size: u64,
    /// Records sent but not yet acknowledged, per partition, before reading waits (default 20000).
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Value bytes sent but not yet acknowledged, per partition, before reading waits
    /// (default 16 MiB: bounds memory whatever the record size).
    #[serde(default = "default_in_flight_bytes")]
    pub max_in_flight_bytes: usize,
    /// How often to commit the Fluvio offset (default 2s; also on shutdown).
    #[serde(
        default = "d_2s",
        deserialize_with = "connector_runtime::units::duration"
    )]
    pub commit_interval: Duration,
    /// Stop (exit 1) when Kafka has not acknowledged a record this long after it was read.
    /// Default: never; librdkafka sends it again, in order and without duplicates, until a
    /// broker takes it. Either way nothing is skipped: the next start resumes from Kafka.
    #[serde(default, deserialize_with = "connector_runtime::units::opt_duration")]
    pub delivery_timeout: Option<Duration>,
    /// Resume each Fluvio partition after the `fluvio.offset` header of the last record in
    /// Kafka (default true; required by `exactly-once`).
    #[serde(default = "yes")]
    pub resume_from_kafka: bool,
    /// `exactly-once` (default): Kafka transactions; `read_committed` readers see each record
    /// once, a second instance with the same consumer id fences the first, and a refused
    /// record makes nothing after it visible. `at-least-once`: an idempotent producer, for
    /// readers that cannot read committed (no duplicates either, except with `key`
    /// partitioning after a crash with `resume_from_kafka: false`).
    #[serde(default)]
    pub delivery: Delivery,
    /// How often the open transaction commits (default 100ms): `read_committed` readers see
    /// records this much later at most, plus the commit itself.
    #[serde(
        default = "d_100ms",
        deserialize_with = "connector_runtime::units::duration"
    )]
    pub transaction_interval: Duration,
    /// With transactions: when Kafka acknowledges none of the records in flight for this long
    /// (default 30s), the producer is replaced by a new one with the same `transactional.id`,
    /// which fences the stalled one and aborts its open transaction; mirroring goes on from
    /// what Kafka has committed. librdkafka's transactional producer can stay stuck after a
    /// broker restart ("No brokers available for Transactions") with records queued for good.
    /// Not with `delivery_timeout` set: the records then fail after it, and the bridge stops.
    #[serde(
        default = "d_30s",
        deserialize_with = "connector_runtime::units::duration"
    )]
    pub stalled_producer_timeout: Duration,
    /// Mirror an events topic (the source's `events_topic`) as deletions: a delete event
    /// (v1.1 `delete`, v2 compliance `delete`) becomes a record with the post's id as key and no
    /// value (a Kafka tombstone), so compacted topics and feature stores drop the post; other
    /// events are skipped (counted in `filtered_total`). Default false.
    #[serde(default)]
    pub tombstones: bool,
    /// What to do with a record Kafka refuses (too large for the topic, invalid): `stop`
    /// (default; exit 1 naming it, everything before it mirrored, every restart stops there
    /// until the cause is fixed) or `dead-letter` (write it to `dead_letter_topic`, with
    /// `error.*` headers saying why, and go on).
    #[serde(default)]
    pub on_refused: OnRefused,
    /// The dead-letter topic (default `<topic>-dead-letter`, created with one partition).
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// What to do when Kafka holds a Fluvio offset past the end of its Fluvio partition (the
    /// Fluvio topic was deleted and re-created): `stop` (default; exit 1 saying so) or
    /// `start-over` (mirror that partition from the start of the new topic).
    #[serde(default)]
    pub on_fluvio_reset: OnFluvioReset,
    #[serde(default)]
    pub security: Security,
    /// Raw librdkafka settings, passed through (they win over everything above).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    #[default]
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// librdkafka's `compression.type`.
    fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    #[default]
    #[serde(alias = "PLAINTEXT")]
    Plaintext,
    #[serde(alias = "SSL")]
    Ssl,
    #[serde(alias = "SASL_PLAINTEXT")]
    SaslPlaintext,
    #[serde(alias = "SASL_SSL")]
    SaslSsl,
}

impl Protocol {
    /// librdkafka's `security.protocol`.
    fn as_str(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }

    fn is_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// librdkafka's `sasl.mechanism`.
    fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    #[default]
    ExactlyOnce,
    AtLeastOnce,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnRefused {
    #[default]
    Stop,
    DeadLetter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFluvioReset {
    #[default]
    Stop,
    StartOver,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Partitioning {
    #[default]
    Same,
    Key,
    Fixed(i32),
}

impl Partitioning {
    /// The one Kafka partition every record of a Fluvio partition goes to (`None` with `key`,
    /// where each record goes where its key hashes).
    pub fn kafka_partition(self, fluvio_partition: u32) -> Option<i32> {
        match self {
            Self::Same => Some(fluvio_partition as i32),
            Self::Fixed(p) => Some(p),
            Self::Key => None,
        }
    }
}

impl<'de> Deserialize<'de> for Partitioning {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_yaml::Value::deserialize(d)? {
            serde_yaml::Value::String(s) if s == "same" => Ok(Self::Same),
            serde_yaml::Value::String(s) if s == "key" => Ok(Self::Key),
            serde_yaml::Value::Mapping(m) => m
                .get("fixed")
                .and_then(|v| v.as_i64())
                .and_then(|n| i32::try_from(n).ok())
                .filter(|n| *n >= 0)
                .map(Self::Fixed)
                .ok_or_else(|| D::Error::custom("expected `same`, `key` or `{fixed: N}`")),
            _ => Err(D::Error::custom("expected `same`, `key` or `{fixed: N}`")),
        }
    }
}

/// How to talk to the brokers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Security {
    /// `plaintext` (default), `ssl`, `sasl_plaintext` or `sasl_ssl`.
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(default)]
    pub ssl: Option<Ssl>,
    #[serde(default)]
    pub sasl: Option<Sasl>,
}

/// TLS material, as files or inline PEM.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ssl {
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(default)]
    pub ca_pem: Option<String>,
    #[serde(default)]
    pub cert_file: Option<String>,
    #[serde(default)]
    pub cert_pem: Option<String>,
    #[serde(default)]
    pub key_file: Option<String>,
    #[serde(default)]
    pub key_pem: Option<SecretString>,
    #[serde(default)]
    pub key_password: Option<SecretString>,
    /// Check the broker's host name against its certificate (default true).
    #[serde(default = "yes")]
    pub verify_hostname: bool,
}

/// SASL credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sasl {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: SaslMechanism,
    pub username: SecretString,
    pub password: SecretString,
}

impl Section for KafkaConfig {
    /// Cross-field checks, with the field path in each message.
    fn validate(&self) -> Result<(), InvalidField> {
        if self.brokers.trim().is_empty() {
            return invalid("kafka.brokers", "empty");
        }
        if self.topic.trim().is_empty() {
            return invalid("kafka.topic", "empty");
        }
        if self.security.protocol.is_sasl() && self.security.sasl.is_none() {
            return invalid(
                "kafka.security.sasl",
                format!(
                    "protocol `{}` needs {{mechanism, username, password}}",
                    self.security.protocol.as_str()
                ),
            );
        }
        if let Some(ssl) = &self.security.ssl {
            if ssl.ca_file.is_some() && ssl.ca_pem.is_some() {
                return invalid("kafka.security.ssl", "give ca_file or ca_pem, not both");
            }
            if ssl.key_file.is_some() && ssl.key_pem.is_some() {
                return invalid("kafka.security.ssl", "give key_file or key_pem, not both");
            }
        }
        if self.max_in_flight == 0 {
            return invalid("kafka.max_in_flight", "expected at least 1");
        }
        if self.replication < 1 {
            return invalid("kafka.replication", "expected at least 1");
        }
        if self.delivery == Delivery::ExactlyOnce && !(self.headers && self.resume_from_kafka) {
            return invalid("kafka.delivery", "`exactly-once` resumes from the fluvio.* headers in Kafka: it needs headers: true and resume_from_kafka: true (or set delivery: at-least-once)");
        }
        if self.on_refused == OnRefused::DeadLetter && self.delivery != Delivery::ExactlyOnce {
            return invalid("kafka.on_refused", "`dead-letter` needs delivery: exactly-once (the records after a refused one must not become visible before it is set aside)");
        }
        if self.on_refused == OnRefused::DeadLetter && self.dead_letter_topic() == self.topic {
            return invalid("kafka.dead_letter_topic", "must differ from kafka.topic");
        }
        if self.transaction_interval.is_zero() {
            return invalid("kafka.transaction_interval", "expected more than 0");
        }
        if self.stalled_producer_timeout < Duration::from_secs(1) {
            return invalid("kafka.stalled_producer_timeout", "expected at least 1s");
        }
        Ok(())
    }
}

impl KafkaConfig {
    /// How long a transactional producer may make no progress before it is replaced; `None`
    /// with a `delivery_timeout`: the records then fail after it, and the bridge stops.
    pub fn producer_stall(&self) -> Option<Duration> {
        self.delivery_timeout
            .is_none()
            .then_some(self.stalled_producer_timeout)
    }

    /// Where refused records go with `on_refused: dead-letter`.
    pub fn dead_letter_topic(&self) -> String {
        self.dead_letter_topic
            .clone()
            .unwrap_or_else(|| format!("{}-dead-letter", self.topic))
    }

    /// The `transactional.id`: one per consumer id and Fluvio topic, so that a second instance
    /// reading the same records fences the first.
    pub fn transactional_id(consumer_id: &str, fluvio_topic: &str) -> String {
        format!("kafka-bridge-sink.{consumer_id}.{fluvio_topic}")
    }

    /// The librdkafka producer settings (secrets included: never log the result).
    pub fn producer_settings(
        &self,
        client_id: &str,
        transactional_id: &str,
    ) -> Vec<(String, String)> {
        let mut s: Vec<(String, String)> = vec![
            ("bootstrap.servers".into(), self.brokers.clone()),
            ("client.id".into(), client_id.into()),
            ("enable.idempotence".into(), "true".into()),
            ("acks".into(), "all".into()),
            ("compression.type".into(), self.compression.as_str().into()),
            ("linger.ms".into(), self.linger.as_millis().to_string()),
            (
                "batch.size".into(),
                self.batch_size.min(i32::MAX as u64).to_string(),
            ),
            (
                "message.timeout.ms".into(),
                self.delivery_timeout
                    .map_or(0, |t| t.as_millis().max(1))
                    .to_string(),
            ),
            ("queue.buffering.max.messages".into(), "1000000".into()),
            // For the `kafka_request_failures` metric.
            ("statistics.interval.ms".into(), "1000".into()),
        ];
        if self.compression == Compression::Gzip {
            // Level 1: most of gzip's ratio on JSON at a fraction of the default level's cost.
            s.push(("compression.level".into(), "1".into()));
        }
        if self.partitioning == Partitioning::Key {
            // Keys land where the Java client (and the Scala producer this replaces) put them.
            s.push(("partitioner".into(), "murmur2_random".into()));
        }
        if self.delivery == Delivery::ExactlyOnce {
            s.push(("transactional.id".into(), transactional_id.into()));
            // The broker answers the first record of a transaction that follows a commit
            // with CONCURRENT_TRANSACTIONS until the commit's markers are written; librdkafka's
            // default 100 ms retry backoff would idle the producer that long after each commit.
            s.push(("retry.backoff.ms".into(), "5".into()));
        }
        if self.delivery == Delivery::AtLeastOnce {
            // A batch that failed (refused by the broker, or timed out) must stop the
            // producer: later ones written after it would leave a gap that the resume from
            // Kafka's tail would never fill, or break the order when it is sent again.
            s.push(("enable.gapless.guarantee".into(), "true".into()));
        }
        s.extend(self.security_settings());
        for (k, v) in &self.options {
            s.retain(|(name, _)| name != k);
            s.push((k.clone(), v.clone()));
        }
        s
    }

    /// Settings shared by every client (producer, admin, the resume reader).
    pub fn security_settings(&self) -> Vec<(String, String)> {
        let mut s = vec![(
            "security.protocol".to_string(),
            self.security.protocol.as_str().to_string(),
        )];
        if let Some(ssl) = &self.security.ssl {
            let mut put = |k: &str, v: &Option<String>| {
                if let Some(v) = v {
                    s.push((k.to_string(), v.clone()));
                }
            };
            put("ssl.ca.location", &ssl.ca_file);
            put("ssl.ca.pem", &ssl.ca_pem);
            put("ssl.certificate.location", &ssl.cert_file);
            put("ssl.certificate.pem", &ssl.cert_pem);
            put("ssl.key.location", &ssl.key_file);
            put(
                "ssl.key.pem",
                &ssl.key_pem.as_ref().map(|k| k.expose().to_string()),
            );
            put(
                "ssl.key.password",
                &ssl.key_password.as_ref().map(|k| k.expose().to_string()),
            );
            if !ssl.verify_hostname {
                s.push((
                    "ssl.endpoint.identification.algorithm".into(),
                    "none".into(),
                ));
            }
        }
        if let Some(sasl) = &self.security.sasl {
            s.push(("sasl.mechanism".into(), sasl.mechanism.as_str().into()));
            s.push(("sasl.username".into(), sasl.username.expose().into()));
            s.push(("sasl.password".into(), sasl.password.expose().into()));
        }
        for (k, v) in &self.options {
            if !k.starts_with("queue.") && !k.starts_with("linger") && !k.starts_with("batch") {
                s.retain(|(name, _)| name != k);
                s.push((k.clone(), v.clone()));
            }
        }
        s
    }
}

fn default_topic() -> String {
    "tweets".into()
}
fn default_batch() -> u64 {
    1 << 20
}
fn default_in_flight() -> usize {
    20_000
}
fn default_in_flight_bytes() -> usize {
    16 << 20
}
fn yes() -> bool {
    true
}
fn one_i32() -> i32 {
    1
}
fn d_20ms() -> Duration {
    Duration::from_millis(20)
}
fn d_100ms() -> Duration {
    Duration::from_millis(100)
}
fn d_30s() -> Duration {
    Duration::from_secs(30)
}

fn d_2s() -> Duration {
    Duration::from_secs(2)
}
#[cfg(test)]
mod tests {
    use super::*;

    fn parse(y: &str) -> KafkaConfig {
        serde_yaml::from_str(y).unwrap()
    }

    #[test]
    fn connector_toml_lists_every_field() {
        testkit::connector_toml::assert_lists_every_field::<KafkaConfig>(
            &testkit::workspace_root().join("kafka-bridge/Connector.toml"),
        );
    }

    #[test]
    fn defaults_and_settings() {
        let c = parse("brokers: 127.0.0.1:9092\n");
        assert_eq!(c.topic, "tweets");
        assert_eq!(c.partitioning, Partitioning::Same);
        c.validate().unwrap();
        let s = c.producer_settings("fluvio_connector_x", "t.id");
        let get = |k: &str| s.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("enable.idempotence").as_deref(), Some("true"));
        assert_eq!(get("acks").as_deref(), Some("all"));
        assert_eq!(get("transactional.id").as_deref(), Some("t.id"));
        let c = parse("brokers: b\ndelivery: at-least-once\n");
        let s = c.producer_settings("x", "t.id");
        assert!(!s.iter().any(|(k, _)| k == "transactional.id"));
        assert_eq!(get("security.protocol").as_deref(), Some("plaintext"));
        let c = parse("brokers: b\noptions:\n  acks: '1'\n  socket.timeout.ms: '5000'\n");
        let s = c.producer_settings("x", "t.id");
        assert_eq!(
            s.iter().filter(|(k, _)| k == "acks").count(),
            1,
            "options win"
        );
        assert!(s.contains(&("acks".into(), "1".into())));
    }

    #[test]
    fn security_and_partitioning() {
        let c = parse("brokers: b\npartitioning: {fixed: 3}\nsecurity:\n  protocol: SASL_SSL\n  sasl: {mechanism: SCRAM-SHA-512, username: u, password: p4ss}\n  ssl: {ca_pem: \"-----BEGIN\"}\n");
        c.validate().unwrap();
        assert_eq!(c.partitioning, Partitioning::Fixed(3));
        let s = c.security_settings();
        assert!(s.contains(&("security.protocol".into(), "sasl_ssl".into())));
        assert!(s.contains(&("sasl.mechanism".into(), "SCRAM-SHA-512".into())));
        assert!(
            !format!("{c:?}").contains("p4ss"),
            "Debug hides the password"
        );
    }

    #[test]
    fn shipped_configs_parse() {
        let root = testkit::workspace_root().join("kafka-bridge");
        for path in [
            root.join("config.yaml"),
            root.join("../compose/bridge.yaml"),
        ] {
            let c = connector_runtime::ConnectorConfig::<KafkaConfig>::load(
                &path,
                &connector_runtime::secrets::SecretStore::from_env(),
                "kafka",
            )
            .unwrap_or_else(|e| panic!("{e}"));
            c.custom.validate().unwrap();
            assert!(
                c.meta.consumer.and_then(|c| c.id).is_some(),
                "{}",
                path.display()
            );
        }
    }

    #[test]
    fn bad_values_name_the_field() {
        let refused = |y: &str| {
            serde_yaml::from_str::<KafkaConfig>(y)
                .unwrap_err()
                .to_string()
        };
        let e = refused("brokers: b\ncompression: brotli\n");
        assert!(e.contains("brotli") && e.contains("zstd"), "{e}");
        assert_eq!(
            parse("brokers: b\nsecurity: {protocol: sasl_plaintext}\n")
                .validate()
                .unwrap_err()
                .field,
            "kafka.security.sasl"
        );
        let e = refused("brokers: b\nsecurity: {protocol: sasl_plaintext, sasl: {mechanism: GSSAPI, username: u, password: p}}\n");
        assert!(e.contains("GSSAPI") && e.contains("SCRAM-SHA-512"), "{e}");
        let e = refused("brokers: b\nsecurity: {protocol: tls}\n");
        assert!(e.contains("sasl_ssl"), "{e}");
        assert!(serde_yaml::from_str::<KafkaConfig>("brokers: b\npartitioning: random\n").is_err());
        assert!(
            serde_yaml::from_str::<KafkaConfig>("brokers: b\ndelivery: twice\n")
                .unwrap_err()
                .to_string()
                .contains("exactly-once")
        );
        assert_eq!(
            parse("brokers: b\nresume_from_kafka: false\n")
                .validate()
                .unwrap_err()
                .field,
            "kafka.delivery"
        );
        parse("brokers: b\nresume_from_kafka: false\ndelivery: at-least-once\n")
            .validate()
            .unwrap();
        assert_eq!(
            parse("brokers: b\non_refused: dead-letter\ndead_letter_topic: tweets\n")
                .validate()
                .unwrap_err()
                .field,
            "kafka.dead_letter_topic"
        );
        assert_eq!(
            parse("brokers: b\nstalled_producer_timeout: 200ms\n")
                .validate()
                .unwrap_err()
                .field,
            "kafka.stalled_producer_timeout"
        );
        assert!(
            serde_yaml::from_str::<KafkaConfig>("brokers: b\nbrokerz: c\n")
                .unwrap_err()
                .to_string()
                .contains("brokerz")
        );
    }
}
