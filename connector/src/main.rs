//! # twitter-source
//!
//! A Fluvio source connector for the Twitter/X streaming API: v2 filtered (with rules), sample
//! and sample10 streams, v1.1 sample and filter streams (OAuth 1.0a), replay of recorded
//! tweet archives, and Bluesky's Jetstream. Each tweet becomes one record keyed by its id, its value the message exactly
//! as received. It survives every disconnect, stall and rate limit by X's official reconnect
//! policy, drops duplicate ids, skips and counts bad input, and stops cleanly on SIGTERM.
//!
//! The data path: [`stream`] (or [`replay`]) -> [`framing`] -> [`message`] -> [`ingest`]
//! (dedup, events) -> the runtime's queue, transforms and producer. `mode: bluesky` reads
//! Bluesky's Jetstream instead ([`bluesky`]: WebSocket events -> [`ingest`]), into the same
//! records.

mod auth;
mod backoff;
mod billing;
mod bluesky;
mod config;
mod connections;
mod dedup;
mod framing;
mod ingest;
mod message;
mod problem;
mod replay;
mod resume;
mod rules;
mod stream;

use std::process::ExitCode;

use connector_runtime::{source, ConnectorConfig, ConnectorInfo, SourceContext};

use crate::config::{Mode, TwitterConfig};
use crate::ingest::Ingest;

const INFO: ConnectorInfo = ConnectorInfo {
    name: "twitter-source",
    version: env!("CARGO_PKG_VERSION"),
    about: "Fluvio source connector for the Twitter/X streaming API and tweet archives",
    section: "twitter",
};

/// At most this many ids per partition seed deduplication at start (5 minutes of a sampled
/// stream, X's longest backfill, fit well within it).
const DEDUP_SEED_MAX: usize = 20_000;

fn main() -> ExitCode {
    source::main(INFO, run)
}

async fn run(config: ConnectorConfig<TwitterConfig>, ctx: SourceContext) -> anyhow::Result<()> {
    let cfg = config.custom;
    let events = match &cfg.events_topic {
        Some(topic) => Some(ctx.side_output(topic).await?),
        None => None,
    };
    let mut ingest = Ingest::new(ctx.records.clone(), events, cfg.dedup_window, &ctx.metrics);
    if let Some(billing) = cfg.billing() {
        ingest = ingest.with_billing(billing::Billing::new(&billing, &ctx.metrics));
    }
    if cfg.dedup_window > 0 && cfg.mode != Mode::Replay {
        let recent = ctx
            .last_records(cfg.dedup_window.min(DEDUP_SEED_MAX), false)
            .await?;
        let keys: Vec<Vec<u8>> = recent
            .iter()
            .filter_map(|r| r.key.as_ref().map(|k| k.to_vec()))
            .collect();
        let seeded = ingest.seed_dedup(&keys);
        // Where the topic ends is where a restart takes up the stream (backfill, recovery):
        // the time of the newest post there, which its id says. Fluvio stamps a record when
        // the producer batches it, later than the post by the source's lag: resuming from the
        // stamp would skip what went by in that lag.
        ingest.last_tweet_ms = last_post_time(&recent);
        tracing::info!(
            seeded,
            last_tweet_ms = ingest.last_tweet_ms,
            "deduplication seeded with the ids at the end of the topic (a backfill writes none of them again)"
        );
    }
    tracing::info!(mode = ?cfg.mode, "twitter-source running");
    match cfg.mode {
        Mode::Replay => {
            let replay = cfg.replay.clone().expect("validated");
            replay::run(replay, cfg.max_message_bytes, ctx, ingest).await
        }
        Mode::Bluesky => {
            let last = ctx.last_records(bluesky::RESUME_SCAN, true).await?;
            let resume_ms = bluesky::resume_ms(&last);
            bluesky::run(cfg, ctx, ingest, resume_ms).await
        }
        _ => stream::run(cfg, ctx, ingest).await,
    }
}

/// The time of the newest post among `records`: from the snowflake ids in their keys, else
/// (keys that are no snowflakes) their timestamps.
fn last_post_time(records: &[connector_runtime::Record]) -> Option<i64> {
    let from_ids = records
        .iter()
        .filter_map(|r| r.key.as_ref())
        .filter_map(|k| std::str::from_utf8(k).ok())
        .filter_map(message::snowflake_time_ms)
        .max();
    from_ids.or_else(|| {
        records
            .iter()
            .filter_map(|r| r.timestamp_ms)
            .filter(|t| *t > 0)
            .max()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use connector_runtime::Record;

    fn record(key: &str, stamp: i64) -> Record {
        Record {
            key: Some(Bytes::copy_from_slice(key.as_bytes())),
            value: Bytes::new(),
            timestamp_ms: Some(stamp),
        }
    }

    #[test]
    fn a_restart_takes_up_from_the_newest_post_id_not_the_producer_stamp() {
        // Two posts created at 1,700,000,000,000 and 1,700,000,001,000 (ms), stamped by the
        // producer a minute later (the source's lag).
        let id = |ms: i64| (((ms - 1_288_834_974_657) as u64) << 22).to_string();
        let recs = [
            record(&id(1_700_000_001_000), 1_700_000_061_000),
            record(&id(1_700_000_000_000), 1_700_000_062_000),
        ];
        assert_eq!(last_post_time(&recs), Some(1_700_000_001_000));
        // Keys that are no snowflakes (at-uris): the stamps.
        let recs = [record(
            "at://did:plc:x/app.bsky.feed.post/3k",
            1_700_000_062_000,
        )];
        assert_eq!(last_post_time(&recs), Some(1_700_000_062_000));
        assert_eq!(last_post_time(&[]), None);
    }
}
