//! From one message to records: classify it, key tweets by id, drop duplicates, route deletes
//! and withholdings to the events topic, count everything, and report in-band disconnects.
//! Shared by the live streams and archive replay, so both treat every message the same way.

use bytes::Bytes;
use connector_runtime::metrics::{Counter, FloatGauge, Metrics};
use connector_runtime::source::QueueClosed;
use connector_runtime::{Record, RecordSender};

use crate::billing::Billing;
use crate::dedup::DedupWindow;
use crate::framing::Frame;
use crate::message::{classify, excerpt, BadMessage, Message};

/// What the reader should do after a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Continue,
    /// The server announced it is closing this stream (in-band disconnect).
    Reconnect(String),
}

const MESSAGE_TYPES: &[&str] = &[
    "tweet",
    "delete",
    "scrub_geo",
    "limit",
    "status_withheld",
    "user_withheld",
    "warning",
    "disconnect",
    "operational_disconnect",
    "compliance",
    "errors",
    "unknown",
];
const ERROR_KINDS: &[&str] = &["malformed_json", "invalid_utf8", "oversized", "bad_length"];

/// The metrics of the ingest path.
#[derive(Clone)]
pub struct IngestMetrics {
    metrics: Metrics,
    /// Counters by message type and by error kind, looked up once (hot path).
    by_type: Vec<(&'static str, Counter)>,
    by_error: Vec<(&'static str, Counter)>,
    pub tweets: Counter,
    pub bytes: Counter,
    pub duplicates: Counter,
    pub lag: FloatGauge,
}

impl IngestMetrics {
    pub fn new(metrics: &Metrics) -> Self {
        let by_type = MESSAGE_TYPES
            .iter()
            .map(|t| {
                (
                    *t,
                    metrics.counter_with(
                        "messages_total",
                        &[("type", t)],
                        "stream messages by type",
                    ),
                )
            })
            .collect();
        let by_error = ERROR_KINDS
            .iter()
            .map(|k| {
                (
                    *k,
                    metrics.counter_with("errors_total", &[("kind", k)], "skipped input by kind"),
                )
            })
            .collect();
        Self {
            metrics: metrics.clone(),
            by_type,
            by_error,
            tweets: metrics.counter("tweets_total", "tweets handed to the producer"),
            bytes: metrics.counter(
                "tweet_bytes_total",
                "bytes of tweets handed to the producer",
            ),
            duplicates: metrics.counter(
                "duplicates_total",
                "repeated tweet ids dropped by the dedup window",
            ),
            lag: metrics.float_gauge("stream_lag_seconds", "now minus the time of the last tweet"),
        }
    }

    pub fn message(&self, kind: &str) {
        match self.by_type.iter().find(|(t, _)| *t == kind) {
            Some((_, c)) => c.inc(),
            None => self
                .metrics
                .counter_with(
                    "messages_total",
                    &[("type", kind)],
                    "stream messages by type",
                )
                .inc(),
        }
    }

    /// Count and log what the framing skipped: a message over `max_message_bytes`, or a line
    /// that should have been a length (keep-alives and messages are not skipped).
    pub fn skipped(&self, frame: &Frame) {
        match frame {
            Frame::Oversized { len, excerpt: ex } => {
                self.error("oversized");
                tracing::warn!(len, excerpt = %excerpt(ex), "skipped a message over max_message_bytes");
            }
            Frame::BadLength { excerpt: ex } => {
                self.error("bad_length");
                tracing::warn!(excerpt = %excerpt(ex), "skipped a line that is not a length (resynced)");
            }
            Frame::KeepAlive | Frame::Message(_) => {}
        }
    }

    pub fn error(&self, kind: &str) {
        match self.by_error.iter().find(|(k, _)| *k == kind) {
            Some((_, c)) => c.inc(),
            None => self
                .metrics
                .counter_with("errors_total", &[("kind", kind)], "skipped input by kind")
                .inc(),
        }
    }
}

pub struct Ingest {
    records: RecordSender,
    events: Option<RecordSender>,
    dedup: DedupWindow,
    billing: Option<Billing>,
    /// The time of the last tweet handed over (not a duplicate), when it had one.
    pub last_tweet_ms: Option<i64>,
    pub m: IngestMetrics,
}

impl Ingest {
    pub fn new(
        records: RecordSender,
        events: Option<RecordSender>,
        dedup_window: usize,
        metrics: &Metrics,
    ) -> Self {
        Self {
            records,
            events,
            dedup: DedupWindow::new(dedup_window),
            billing: None,
            last_tweet_ms: None,
            m: IngestMetrics::new(metrics),
        }
    }

    /// Count what the delivered posts cost (pay-per-use).
    pub fn with_billing(mut self, billing: Billing) -> Self {
        self.billing = Some(billing);
        self
    }

    /// Seed deduplication with the ids already at the end of the topic (keys of the last
    /// records), so that a backfill after a restart writes nothing twice.
    pub fn seed_dedup(&mut self, keys: &[Vec<u8>]) -> usize {
        self.dedup
            .seed(keys.iter().filter_map(|k| std::str::from_utf8(k).ok()))
    }

    /// Handle one framed message; errors only when the producer side is gone.
    pub async fn message(&mut self, bytes: Bytes) -> Result<Next, QueueClosed> {
        let classified = classify(&bytes);
        self.handle(bytes, classified).await
    }

    /// Handle a message already classified (replay reads the time first, to pace).
    pub async fn handle(
        &mut self,
        bytes: Bytes,
        classified: Result<Message, BadMessage>,
    ) -> Result<Next, QueueClosed> {
        let msg = match classified {
            Ok(m) => m,
            Err(e) => {
                self.m.error(e.kind());
                tracing::warn!(error = %e, excerpt = %excerpt(&bytes), "skipped a bad message");
                return Ok(Next::Continue);
            }
        };
        self.m.message(msg.kind());
        match msg {
            Message::Tweet { id, time_ms } => {
                if !self.dedup.first_time(&id) {
                    self.m.duplicates.inc();
                    tracing::debug!(%id, "duplicate tweet dropped");
                    return Ok(Next::Continue);
                }
                let now = connector_runtime::now_ms();
                if let Some(t) = time_ms {
                    self.m.lag.set(now.saturating_sub(t).max(0) as f64 / 1000.0);
                }
                if let Some(b) = &mut self.billing {
                    b.post(now);
                }
                self.last_tweet_ms = time_ms;
                self.m.tweets.inc();
                self.m.bytes.add(bytes.len() as u64);
                let record = Record {
                    key: Some(Bytes::from(id.into_bytes())),
                    value: bytes,
                    timestamp_ms: time_ms,
                };
                self.records.send(record).await?;
            }
            Message::Delete { ref tweet_id, .. } | Message::StatusWithheld { ref tweet_id } => {
                tracing::info!(kind = msg.kind(), %tweet_id, "compliance event");
                self.event(tweet_id, bytes).await?;
            }
            Message::UserWithheld { ref user_id } | Message::ScrubGeo { ref user_id } => {
                tracing::info!(kind = msg.kind(), %user_id, "compliance event");
                self.event(user_id, bytes).await?;
            }
            Message::Compliance { event, ref key } => {
                tracing::debug!(event, %key, "compliance stream event");
                self.event(key, bytes).await?;
            }
            Message::Limit => tracing::debug!(excerpt = %excerpt(&bytes), "limit notice"),
            Message::Warning { code } => {
                tracing::warn!(%code, excerpt = %excerpt(&bytes), "stall warning from X: this connector reads too slowly")
            }
            Message::Errors { summary } => tracing::info!(%summary, "partial errors from X"),
            Message::Unknown => {
                tracing::debug!(excerpt = %excerpt(&bytes), "unknown message type, skipped")
            }
            Message::Disconnect { code, reason } => {
                tracing::warn!(code, %reason, "X disconnects this stream");
                return Ok(Next::Reconnect(format!(
                    "disconnect code {code} ({reason})"
                )));
            }
            Message::OperationalDisconnect { detail } => {
                tracing::warn!(%detail, "X operational disconnect");
                return Ok(Next::Reconnect(format!("operational disconnect: {detail}")));
            }
        }
        Ok(Next::Continue)
    }

    async fn event(&mut self, key: &str, bytes: Bytes) -> Result<(), QueueClosed> {
        if let Some(events) = &self.events {
            events
                .send(Record::new(
                    Some(Bytes::copy_from_slice(key.as_bytes())),
                    bytes,
                ))
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tweets_keyed_deduped_events_routed_bad_input_counted() {
        let metrics = Metrics::new("t");
        let (tx, mut rx) = RecordSender::channel(16);
        let (etx, mut erx) = RecordSender::channel(16);
        let mut ing = Ingest::new(tx, Some(etx), 10, &metrics);
        let tweet = Bytes::from_static(br#"{"data":{"id":"1507070437557096461","text":"x"}}"#);
        assert_eq!(ing.message(tweet.clone()).await.unwrap(), Next::Continue);
        ing.message(tweet.clone()).await.unwrap();
        ing.message(Bytes::from_static(b"{\"broken")).await.unwrap();
        ing.message(Bytes::from_static(
            br#"{"delete":{"status":{"id_str":"42","user_id_str":"7"}}}"#,
        ))
        .await
        .unwrap();
        let next = ing
            .message(Bytes::from_static(
                br#"{"disconnect":{"code":4,"reason":"Stall"}}"#,
            ))
            .await
            .unwrap();
        assert!(matches!(next, Next::Reconnect(_)));
        drop(ing);

        let r = rx.recv().await.unwrap();
        assert_eq!(r.key.as_deref(), Some(&b"1507070437557096461"[..]));
        assert_eq!(r.value, tweet, "value is the message as received");
        assert!(rx.recv().await.is_none(), "the duplicate was dropped");
        let e = erx.recv().await.unwrap();
        assert_eq!(e.key.as_deref(), Some(&b"42"[..]));
        assert_eq!(metrics.value("duplicates_total", &[]), 1);
        assert_eq!(
            metrics.value("errors_total", &[("kind", "malformed_json")]),
            1
        );
        assert_eq!(metrics.value("messages_total", &[("type", "delete")]), 1);
    }
}
