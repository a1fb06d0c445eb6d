//! Which time a record gets as Kafka CreateTime. The Fluvio record time is kept when Kafka can
//! live with it; otherwise the record is written with the current time and keeps its Fluvio
//! time in the `fluvio.timestamp` header (nothing is lost either way):
//! - over 55 minutes ahead: Kafka may refuse it or keep it for ever;
//! - older than half the broker's `producer.id.expiration.ms`: a broker judges an idempotent
//!   producer's age by the CreateTime of its last batch, and on restart it forgets a producer
//!   older than that expiry, then writes again the batches that the producer re-sends after
//!   lost acknowledgements (duplicates). The other half of the expiry is the broker outage that
//!   a record may wait through and still be deduplicated. The same records would also be
//!   deleted at once by a topic's time retention.

/// How far ahead of now a Fluvio time may be and still be used.
const MAX_AHEAD_MS: i64 = 55 * 60 * 1000;

/// Kafka's default `producer.id.expiration.ms` (1 day), when the broker's cannot be read.
pub const DEFAULT_PRODUCER_EXPIRY_MS: i64 = 86_400_000;

/// What a record is written with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamp {
    /// The CreateTime to send, or `None` for the current time.
    pub create_time: Option<i64>,
    /// The Fluvio time, to be kept in the `fluvio.timestamp` header because it is not the
    /// CreateTime.
    pub replaced: Option<i64>,
}

/// The rule above, for a broker whose producer state expires after `producer_expiry_ms`.
#[derive(Debug, Clone, Copy)]
pub struct TimestampRule {
    max_age_ms: i64,
}

impl TimestampRule {
    pub fn new(producer_expiry_ms: i64) -> Self {
        Self {
            max_age_ms: producer_expiry_ms.max(2) / 2,
        }
    }

    pub fn max_age_ms(&self) -> i64 {
        self.max_age_ms
    }

    /// The stamp for a record with Fluvio time `fluvio_ms` (none or 0: unknown) at `now_ms`.
    pub fn stamp(&self, fluvio_ms: Option<i64>, now_ms: i64) -> Stamp {
        match fluvio_ms.filter(|t| *t > 0) {
            None => Stamp {
                create_time: None,
                replaced: None,
            },
            Some(t) if t > now_ms + MAX_AHEAD_MS || t < now_ms - self.max_age_ms => Stamp {
                create_time: None,
                replaced: Some(t),
            },
            Some(t) => Stamp {
                create_time: Some(t),
                replaced: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;
    const HOUR: i64 = 3_600_000;

    #[test]
    fn recent_times_are_kept_as_create_time() {
        let rule = TimestampRule::new(DEFAULT_PRODUCER_EXPIRY_MS);
        for t in [NOW, NOW - HOUR, NOW - 11 * HOUR, NOW + 50 * 60 * 1000] {
            assert_eq!(
                rule.stamp(Some(t), NOW),
                Stamp {
                    create_time: Some(t),
                    replaced: None
                }
            );
        }
    }

    #[test]
    fn times_kafka_cannot_deduplicate_or_keep_go_to_the_header() {
        let rule = TimestampRule::new(DEFAULT_PRODUCER_EXPIRY_MS);
        for t in [NOW - 13 * HOUR, 1_600_000_000_000, NOW + 2 * HOUR] {
            assert_eq!(
                rule.stamp(Some(t), NOW),
                Stamp {
                    create_time: None,
                    replaced: Some(t)
                },
                "{t}"
            );
        }
    }

    #[test]
    fn the_age_limit_follows_the_broker_expiry() {
        let rule = TimestampRule::new(2 * HOUR);
        assert_eq!(rule.max_age_ms(), HOUR);
        assert_eq!(
            rule.stamp(Some(NOW - HOUR + 1), NOW).create_time,
            Some(NOW - HOUR + 1)
        );
        assert_eq!(
            rule.stamp(Some(NOW - HOUR - 1), NOW).replaced,
            Some(NOW - HOUR - 1)
        );
    }

    #[test]
    fn unknown_times_take_the_current_time_without_a_header() {
        let rule = TimestampRule::new(DEFAULT_PRODUCER_EXPIRY_MS);
        for t in [None, Some(0), Some(-5)] {
            assert_eq!(
                rule.stamp(t, NOW),
                Stamp {
                    create_time: None,
                    replaced: None
                }
            );
        }
    }
}
