//! What a Kafka error means for a record: refused for good ([`Refused`], naming who refused
//! it), a security failure librdkafka only reports globally ([`AuthWatch`]), or a delay that
//! librdkafka retries by itself.

use std::sync::{Arc, Mutex};

use anyhow::{bail, Result};
use connector_runtime::metrics::{Gauge, Metrics};
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::input::SourceRecord;

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
    pub(super) fn name(self) -> &'static str {
        match self {
            RefusedBy::Kafka => "kafka",
            RefusedBy::Transforms => "the sink transforms",
        }
    }

    pub(super) fn class(self) -> &'static str {
        match self {
            RefusedBy::Kafka => "refused",
            RefusedBy::Transforms => "transform",
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
    pub(super) fn new(metrics: &Metrics) -> Self {
        Self {
            failure: Arc::default(),
            request_failures: metrics.gauge(
                "kafka_request_failures",
                "requests to Kafka that failed, timed out or were retried (their records are sent again, in order, without duplicates)",
            ),
        }
    }

    /// Why Kafka refused the credentials or the TLS session, if it did.
    pub(super) fn failure(&self) -> Option<String> {
        self.failure.lock().expect("auth watch").clone()
    }

    /// Stop on an authentication or TLS failure: waiting cannot fix it.
    pub(super) fn check(&self) -> Result<()> {
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
pub(super) fn is_permanent(e: &KafkaError) -> bool {
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
