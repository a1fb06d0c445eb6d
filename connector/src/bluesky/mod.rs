//! `mode: bluesky`: Bluesky's Jetstream, the whole network's public events as JSON over a
//! WebSocket, no account needed. Connect to an instance with `wantedCollections`,
//! `wantedDids` and a `cursor`, hand each event to [`Ingest`] (posts keyed by at-uri,
//! deduplicated; deletes, updates, identity and account events to the events topic), and
//! survive everything the X streams survive, by the same reconnect policy and stall timer.
//!
//! Nothing is lost or written twice across a reconnect, an instance failover or a restart:
//! every connection resumes from the `time_us` of the last event read (at start, from the
//! last record in the topic, minus `cursor_overlap`, since instances' clocks differ), and the
//! dedup window, seeded at start with the keys of the topic's last records, drops what comes
//! again (size it above `cursor_overlap` times the event rate). The connector pings the
//! instance; a connection silent past the stall timeout (no event, no pong) is dropped. A
//! failed or dropped connection moves to the next instance, `cursor_overlap` earlier.

mod event;
mod resume;

pub use resume::{resume_ms, RESUME_SCAN};

use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Result};
use bytes::Bytes;
use connector_runtime::source::QueueClosed;
use connector_runtime::SourceContext;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{self, Message as Frame};

use crate::backoff::{is_fatal_status, Backoff, Failure};
use crate::config::{BlueskyConfig, TwitterConfig};
use crate::ingest::{Ingest, Next};
use crate::stream::StreamMetrics;

/// The URL of a subscription to `instance` from `cursor` (Unix µs); the instance skips
/// events over `max_bytes` (`maxMessageSizeBytes`).
fn subscribe_url(
    instance: &str,
    b: &BlueskyConfig,
    max_bytes: usize,
    cursor: Option<i64>,
) -> Result<url::Url> {
    let mut url = url::Url::parse(instance)?;
    url.set_path(&format!("{}/subscribe", url.path().trim_end_matches('/')));
    {
        let mut q = url.query_pairs_mut();
        for c in &b.wanted_collections {
            q.append_pair("wantedCollections", c);
        }
        for d in &b.wanted_dids {
            q.append_pair("wantedDids", d);
        }
        q.append_pair("maxMessageSizeBytes", &max_bytes.to_string());
        if b.zstd_dictionary.is_some() {
            q.append_pair("compress", "true");
        }
        if let Some(c) = cursor {
            q.append_pair("cursor", &c.to_string());
        }
    }
    Ok(url)
}

/// How a connection ended.
enum Ended {
    Shutdown,
    Failed(Failure, String),
}

/// Read Jetstream until shutdown (Ok) or a configuration error (Err).
pub async fn run(
    cfg: TwitterConfig,
    ctx: SourceContext,
    mut ingest: Ingest,
    resume_ms: Option<i64>,
) -> Result<()> {
    let b = &cfg.bluesky;
    let stall = cfg.stall_timeout();
    let m = StreamMetrics::new(&ctx, "Bluesky Jetstream", None);
    let mut inflate = Inflate::from_config(b, cfg.max_message_bytes)?;
    let mut backoff = Backoff::new(cfg.reconnect.clone());
    // Where a restart takes up: shortly before the last record in the topic.
    let overlap_us = b.cursor_overlap.as_micros() as i64;
    let mut cursor = resume_ms.map(|ms| ms.saturating_mul(1000).saturating_sub(overlap_us));
    if let Some(c) = cursor {
        tracing::info!(
            cursor = c,
            "resuming from the last records in the topic, {:?} earlier",
            b.cursor_overlap
        );
    }
    let mut instance = 0;
    loop {
        let url = subscribe_url(&b.instances[instance], b, cfg.max_message_bytes, cursor)?;
        tracing::info!(instance = %b.instances[instance], cursor, "connecting to Jetstream");
        m.connects.inc();
        let ended = read(
            &url,
            stall,
            &ctx,
            Reader {
                ingest: &mut ingest,
                backoff: &mut backoff,
                cursor: &mut cursor,
                inflate: &mut inflate,
            },
            &m,
        )
        .await;
        m.connected.set(0);
        m.ready.set(false);
        let (failure, reason) = match ended {
            Ok(Ended::Shutdown) | Err(QueueClosed) => return Ok(()),
            Ok(Ended::Failed(Failure::Http { status }, reason)) if is_fatal_status(status) => {
                return Err(anyhow!(
                    "Jetstream instance {} refused the subscription: {reason}",
                    b.instances[instance]
                ));
            }
            Ok(Ended::Failed(failure, reason)) => (failure, reason),
        };
        if let Some(e) = backoff.give_up(&reason) {
            return Err(e);
        }
        let delay = backoff.next_delay(&failure, SystemTime::now());
        m.reconnect(failure.cause());
        if b.instances.len() > 1 {
            // The next instance's clock is not this one's: ask again from a little earlier.
            instance = (instance + 1) % b.instances.len();
            cursor = cursor.map(|c| c.saturating_sub(overlap_us));
        }
        tracing::warn!(cause = failure.cause(), %reason, next_instance = %b.instances[instance], next_attempt_in = ?delay, "Jetstream connection ended");
        let ended_at = Instant::now();
        if !m.back_off(delay).await {
            return Ok(());
        }
        m.without_stream.add(ended_at.elapsed().as_secs_f64());
    }
}

/// Compressed events (`compress=true`) back to JSON, with Jetstream's dictionary.
struct Inflate {
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
    max_bytes: usize,
}

impl Inflate {
    /// With the dictionary file of `zstd_dictionary`, if any.
    fn from_config(b: &BlueskyConfig, max_bytes: usize) -> Result<Self> {
        let dictionary = match &b.zstd_dictionary {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                anyhow!(
                    "twitter.bluesky.zstd_dictionary: cannot read {}: {e}",
                    path.display()
                )
            })?),
            None => None,
        };
        Self::new(dictionary.as_deref(), max_bytes)
    }

    fn new(dictionary: Option<&[u8]>, max_bytes: usize) -> Result<Self> {
        let decompressor = match dictionary {
            Some(d) => Some(zstd::bulk::Decompressor::with_dictionary(d).map_err(|e| {
                anyhow!("twitter.bluesky.zstd_dictionary: not a zstd dictionary: {e}")
            })?),
            None => None,
        };
        Ok(Self {
            decompressor,
            max_bytes,
        })
    }

    /// The event in a binary message; `None` (counted, logged) when it cannot be read.
    fn event(&mut self, data: &[u8], ingest: &Ingest) -> Option<Bytes> {
        let Some(d) = self.decompressor.as_mut() else {
            ingest.m.error("unexpected_binary");
            tracing::warn!(
                "skipped a binary Jetstream message: no zstd_dictionary to read it with"
            );
            return None;
        };
        match d.decompress(data, self.max_bytes) {
            Ok(json) => Some(Bytes::from(json)),
            Err(e) => {
                ingest.m.error("bad_compression");
                tracing::warn!(error = %e, bytes = data.len(), "skipped a compressed Jetstream message that does not decompress with the dictionary");
                None
            }
        }
    }
}

/// What a connection reads into, and the state it carries over to the next.
struct Reader<'a> {
    ingest: &'a mut Ingest,
    backoff: &'a mut Backoff,
    /// The `time_us` of the last event read.
    cursor: &'a mut Option<i64>,
    inflate: &'a mut Inflate,
}

/// A Jetstream connection.
type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The WebSocket handshake within `stall`, or why it failed (what to back off from).
async fn handshake(url: &url::Url, stall: Duration, ctx: &SourceContext) -> Result<Socket, Ended> {
    let connect = tokio::time::timeout(stall, tokio_tungstenite::connect_async(url.as_str()));
    let connected = tokio::select! {
        r = connect => r,
        _ = ctx.shutdown.cancelled() => return Err(Ended::Shutdown),
    };
    match connected {
        Err(_) => Err(Ended::Failed(
            Failure::Network,
            format!("no handshake within {stall:?}"),
        )),
        Ok(Err(tungstenite::Error::Http(resp))) => {
            let status = resp.status().as_u16();
            let body = resp
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            let failure = match status {
                420 | 429 => Failure::RateLimited { reset_at: None },
                _ => Failure::Http { status },
            };
            Err(Ended::Failed(
                failure,
                format!("HTTP {status}: {}", body.trim()),
            ))
        }
        Ok(Err(e)) => Err(Ended::Failed(Failure::Network, e.to_string())),
        Ok(Ok((ws, _))) => Ok(ws),
    }
}

/// One connection: connect, then read events into the ingest until it ends.
async fn read(
    url: &url::Url,
    stall: Duration,
    ctx: &SourceContext,
    mut r: Reader<'_>,
    m: &StreamMetrics,
) -> Result<Ended, QueueClosed> {
    let mut ws = match handshake(url, stall, ctx).await {
        Ok(ws) => ws,
        Err(ended) => return Ok(ended),
    };
    m.connected.set(1);
    m.ready.set(true);
    let mut delivered = false;
    let mut last_frame = Instant::now();
    // One timer for pings and the stall check (a timer per event would cost more than the
    // event): a stall is noticed within a third of `stall` of its end.
    let mut tick = tokio::time::interval(stall / 3);
    let shutdown = ctx.shutdown.cancelled();
    tokio::pin!(shutdown);
    loop {
        let frame = tokio::select! {
            _ = &mut shutdown => {
                let _ = ws.close(None).await;
                return Ok(Ended::Shutdown);
            }
            _ = tick.tick() => {
                if last_frame.elapsed() >= stall {
                    m.stalls.inc();
                    let why = format!("stall: no event and no pong for {stall:?}");
                    return Ok(Ended::Failed(Failure::Dropped { delivered }, why));
                }
                if let Err(e) = ws.send(Frame::Ping(Bytes::new())).await {
                    return Ok(Ended::Failed(Failure::Dropped { delivered }, e.to_string()));
                }
                continue;
            }
            f = ws.next() => f,
        };
        last_frame = Instant::now();
        let text = match frame {
            None => {
                return Ok(Ended::Failed(
                    Failure::Dropped { delivered },
                    "connection closed".into(),
                ))
            }
            Some(Err(e)) => {
                return Ok(Ended::Failed(Failure::Dropped { delivered }, e.to_string()))
            }
            Some(Ok(Frame::Close(frame))) => {
                let why = frame
                    .map(|f| format!("closed by the instance: {} {}", f.code, f.reason))
                    .unwrap_or_else(|| "closed by the instance".into());
                return Ok(Ended::Failed(Failure::Dropped { delivered }, why));
            }
            Some(Ok(Frame::Text(text))) => Bytes::from(text),
            Some(Ok(Frame::Binary(data))) => match r.inflate.event(&data, r.ingest) {
                Some(json) => json,
                None => continue,
            },
            Some(Ok(_)) => continue, // ping, pong
        };
        if let Next::Reconnect(why) = r.event(text, &mut delivered).await? {
            return Ok(Ended::Failed(Failure::Dropped { delivered }, why));
        }
    }
}

impl Reader<'_> {
    /// Hand one event to the ingest and move the cursor to it; the first post of a
    /// connection proves it healthy (`delivered`, the backoff starts over).
    async fn event(&mut self, text: Bytes, delivered: &mut bool) -> Result<Next, QueueClosed> {
        let e = match event::classify(&text) {
            Ok(e) => e,
            Err(bad) => return self.ingest.handle(text, Err(bad)).await,
        };
        *self.cursor = Some(cursor_after(e.time_us, connector_runtime::now_ms() * 1000));
        let post = matches!(e.message, crate::message::Message::Tweet { .. });
        let next = self.ingest.handle(text, Ok(e.message)).await?;
        if post && !*delivered && matches!(next, Next::Continue) {
            *delivered = true;
            self.backoff.delivered();
        }
        Ok(next)
    }
}

/// Where the next connection resumes after an event stamped `time_us`: never ahead of this
/// clock. An event stamped in the future (a broken instance) would otherwise make the next
/// connection skip what is published until then; an instance whose clock runs a little ahead
/// sends those few events again, and the dedup window drops them.
fn cursor_after(time_us: i64, now_us: i64) -> i64 {
    time_us.min(now_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_never_runs_ahead_of_this_clock() {
        let now_us = 1_764_000_000_000_000;
        assert_eq!(cursor_after(now_us - 5, now_us), now_us - 5);
        // A day in the future: the next connection asks from now, not from tomorrow.
        assert_eq!(cursor_after(now_us + 86_400_000_000, now_us), now_us);
    }

    #[test]
    fn compressed_events_need_their_dictionary() {
        let metrics = connector_runtime::metrics::Metrics::new("t");
        let (tx, _rx) = connector_runtime::RecordSender::channel(1);
        let ingest = Ingest::new(tx, None, 0, &metrics);
        let ours = x_emulator::jetstream::train_dictionary(600);
        let event =
            br#"{"did":"did:plc:a","time_us":1,"kind":"identity","identity":{"did":"did:plc:a"}}"#;
        let packed = zstd::bulk::Compressor::with_dictionary(3, &ours)
            .unwrap()
            .compress(event)
            .unwrap();
        let mut inflate = Inflate::new(Some(&ours), 1 << 20).unwrap();
        assert_eq!(inflate.event(&packed, &ingest).as_deref(), Some(&event[..]));
        let other = x_emulator::jetstream::train_dictionary(2000);
        assert_ne!(other, ours);
        let mut wrong = Inflate::new(Some(&other), 1 << 20).unwrap();
        assert_eq!(wrong.event(&packed, &ingest), None);
        assert_eq!(
            metrics.value("errors_total", &[("kind", "bad_compression")]),
            1
        );
        let mut none = Inflate::new(None, 1 << 20).unwrap();
        assert_eq!(none.event(&packed, &ingest), None);
        assert_eq!(
            metrics.value("errors_total", &[("kind", "unexpected_binary")]),
            1
        );
        assert!(
            Inflate::new(Some(b"not a dictionary"), 1 << 20).is_err() || {
                // zstd takes any bytes as a raw-content dictionary: then it reads nothing of ours.
                let mut raw = Inflate::new(Some(b"not a dictionary"), 1 << 20).unwrap();
                raw.event(&packed, &ingest).is_none()
            }
        );
    }

    #[test]
    fn the_subscription_url_carries_collections_dids_and_cursor() {
        let b = BlueskyConfig {
            wanted_dids: vec!["did:plc:a".into()],
            ..BlueskyConfig::default()
        };
        let url =
            subscribe_url("wss://jetstream1.us-east.bsky.network", &b, 1024, Some(17)).unwrap();
        assert_eq!(
            url.as_str(),
            "wss://jetstream1.us-east.bsky.network/subscribe?wantedCollections=app.bsky.feed.post&wantedDids=did%3Aplc%3Aa&maxMessageSizeBytes=1024&cursor=17"
        );
        let url =
            subscribe_url("ws://127.0.0.1:9/js/", &BlueskyConfig::default(), 9, None).unwrap();
        assert_eq!(
            url.as_str(),
            "ws://127.0.0.1:9/js/subscribe?wantedCollections=app.bsky.feed.post&maxMessageSizeBytes=9"
        );
    }
}
