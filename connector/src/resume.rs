//! What a (re)connection asks X to send again. The first connection may ask for a fixed
//! `backfill_minutes` (a restart: what came before is in the topic and deduplicated). With
//! `backfill: true`, a reconnection asks for the gap since the last tweet received, in whole
//! minutes (X keeps 5); with `recovery: true` (Enterprise) a longer gap is asked for with
//! `start_time`, up to 24 hours back. X does not deduplicate what it sends again: the
//! connector's dedup window does.

use std::time::{Duration, SystemTime};

use crate::config::TwitterConfig;

/// X's longest backfill, and how far back `start_time` may reach.
const BACKFILL_MAX: Duration = Duration::from_secs(5 * 60);
const RECOVERY_MAX: Duration = Duration::from_secs(24 * 3600);
/// Asked for on top of the gap: tweets in flight when the connection broke.
const MARGIN: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Resume {
    fixed_minutes: Option<u8>,
    backfill: bool,
    recovery: bool,
}

impl Resume {
    pub fn new(cfg: &TwitterConfig) -> Self {
        Self {
            fixed_minutes: cfg.backfill_minutes.filter(|m| *m > 0),
            backfill: cfg.backfill,
            recovery: cfg.recovery,
        }
    }

    /// The query parameters for a connection made at `now`, the last tweet having come at
    /// `last_tweet` (None: no tweet yet in this process).
    pub fn params(&self, last_tweet: Option<SystemTime>, now: SystemTime) -> Vec<(String, String)> {
        let fixed = || {
            self.fixed_minutes
                .map(|m| vec![("backfill_minutes".to_string(), m.to_string())])
                .unwrap_or_default()
        };
        let Some(last) = last_tweet.filter(|_| self.backfill || self.recovery) else {
            return fixed();
        };
        let gap = now.duration_since(last).unwrap_or_default() + MARGIN;
        if gap <= BACKFILL_MAX {
            let minutes = gap.as_secs().div_ceil(60).clamp(1, 5);
            return vec![("backfill_minutes".to_string(), minutes.to_string())];
        }
        if self.recovery {
            let from = (last - MARGIN).max(now - RECOVERY_MAX);
            if now.duration_since(last).unwrap_or_default() > RECOVERY_MAX {
                tracing::warn!(gap = ?gap, "the gap is longer than the 24 hours X can recover: the tweets before are missing");
            }
            let ms = from
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            // Whole seconds: X takes YYYY-MM-DDTHH:mm:ssZ.
            let text = tweet_model::time::rfc3339(ms - ms.rem_euclid(1000));
            let text = text.replace(".000Z", "Z");
            return vec![("start_time".to_string(), text)];
        }
        tracing::warn!(gap = ?gap, "the gap is longer than X's 5-minute backfill: tweets before it may be missing (`recovery: true`, Enterprise, asks with start_time)");
        vec![("backfill_minutes".to_string(), "5".to_string())]
    }

    /// Whether a connection with these parameters gets tweets again.
    pub fn asks_again(params: &[(String, String)]) -> bool {
        params
            .iter()
            .any(|(k, _)| k == "backfill_minutes" || k == "start_time")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resume(yaml: &str) -> Resume {
        Resume::new(&serde_yaml::from_str(&format!("mode: filtered\n{yaml}")).unwrap())
    }

    #[test]
    fn fixed_backfill_gap_backfill_and_recovery() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_083_200);
        let ago = |secs: u64| Some(now - Duration::from_secs(secs));
        let p = |r: &Resume, last| r.params(last, now);
        let kv = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];

        let fixed = resume("backfill_minutes: 2\n");
        assert_eq!(p(&fixed, None), kv("backfill_minutes", "2"));
        assert_eq!(
            p(&fixed, ago(1)),
            kv("backfill_minutes", "2"),
            "as configured"
        );
        assert!(p(&resume(""), ago(30)).is_empty());

        let gap = resume("backfill: true\n");
        assert!(
            p(&gap, None).is_empty(),
            "a first connection asks for nothing"
        );
        assert_eq!(p(&gap, ago(10)), kv("backfill_minutes", "1"));
        assert_eq!(p(&gap, ago(130)), kv("backfill_minutes", "3"));
        assert_eq!(
            p(&gap, ago(3600)),
            kv("backfill_minutes", "5"),
            "the most X keeps"
        );

        let rec = resume("recovery: true\n");
        assert_eq!(p(&rec, ago(10)), kv("backfill_minutes", "1"));
        assert_eq!(
            p(&rec, ago(3600)),
            kv("start_time", "2026-11-30T22:59:55Z"),
            "an hour back, less the margin"
        );
        assert_eq!(
            p(&rec, ago(48 * 3600)),
            kv("start_time", "2026-11-30T00:00:00Z"),
            "at most 24 hours back"
        );
        assert!(Resume::asks_again(&kv("start_time", "x")));
        assert!(!Resume::asks_again(&[]));
    }
}
