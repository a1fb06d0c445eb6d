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
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("invalid config: {}: {e}", config.file.display()))?;
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
        // Where the topic ends is where a restart takes up the stream (backfill, recovery).
        ingest.last_tweet_ms = recent
            .iter()
            .filter_map(|r| r.timestamp_ms)
            .filter(|t| *t > 0)
            .max();
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
