//! Where a restart takes up Jetstream: the event time of the last records in the topic.
//!
//! Fluvio stamps a record when the producer batches it, which is later than the event, by
//! as much as the connector lagged behind (catching up a backlog, minutes). Resuming from
//! that stamp would skip what was still behind it, so the event time is read from the
//! records themselves: `time_us` of a raw Jetstream event, or `created_at_ms` of a shaped
//! post (the author's clock: capped at the record's stamp, and the latest of many records
//! taken, so one post dated in the past or the future does not move the cursor).

use connector_runtime::Record;

/// How many of the topic's last records (per partition) are read for their event time.
pub const RESUME_SCAN: usize = 64;

/// The event time (Unix ms) a restart resumes from, if the topic holds records.
pub fn resume_ms(last: &[Record]) -> Option<i64> {
    last.iter().filter_map(event_ms).max()
}

/// A record's event time, no later than its stamp.
fn event_ms(r: &Record) -> Option<i64> {
    let stamped = r.timestamp_ms.filter(|t| *t > 0);
    let event = match super::event::classify(&r.value) {
        Ok(e) => Some(e.time_us.div_euclid(1000)),
        Err(_) => tweet_model::shape(&r.value)
            .ok()
            .flatten()
            .filter(|t| t.source_api == "bluesky")
            .and_then(|t| t.created_at_ms),
    };
    match (event, stamped) {
        (Some(e), Some(s)) => Some(e.min(s)),
        (e, s) => e.or(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn record(value: &str, stamp: i64) -> Record {
        Record {
            key: Some(Bytes::from_static(b"k")),
            value: Bytes::copy_from_slice(value.as_bytes()),
            timestamp_ms: Some(stamp),
        }
    }

    #[test]
    fn the_event_time_wins_over_the_later_stamp() {
        let raw = r#"{"did":"did:plc:a","time_us":1000000000,"kind":"commit","commit":{"operation":"create","collection":"app.bsky.feed.post","rkey":"k","record":{}}}"#;
        // Produced a minute after the event (a backlog): resume from the event.
        assert_eq!(resume_ms(&[record(raw, 1_060_000)]), Some(1_000_000));
        let shaped = |created: i64| {
            let mut t = tweet_model::shape(
                r#"{"did":"did:plc:a","time_us":1,"kind":"commit","commit":{"operation":"create","collection":"app.bsky.feed.post","rkey":"k","record":{"text":"x"}}}"#.as_bytes(),
            )
            .unwrap()
            .unwrap();
            t.created_at_ms = Some(created);
            serde_json::to_string(&t).unwrap()
        };
        // A post dated in the future is capped at its stamp; one dated in the past is
        // outvoted by the others.
        let last = [
            record(&shaped(5_000), 6_000),
            record(&shaped(9_999_999), 7_000),
            record(&shaped(10), 8_000),
        ];
        assert_eq!(resume_ms(&last), Some(7_000));
        assert_eq!(resume_ms(&[]), None);
        assert_eq!(
            resume_ms(&[record("not json", 4_000)]),
            Some(4_000),
            "else the stamp"
        );
    }
}
