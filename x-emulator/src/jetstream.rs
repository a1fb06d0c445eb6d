//! Bluesky's Jetstream, emulated: `GET /subscribe` upgrades to a WebSocket and sends the
//! network's events as JSON text messages, one per message, as the public instances do.
//!
//! The network is a timeline: event `i` is published at `epoch + i / rate` and is always
//! the same event (a generated post, repost, like, delete, identity or account event), so two
//! emulators given the same `epoch_us` are two instances of one network. Each instance stamps
//! `time_us` with its own clock skew, as real instances do (their cursors are close, not
//! equal). A client resumes with `cursor` (Unix µs): every event stamped at or after it is
//! sent again. Without one it starts at the live end (what is published by now).
//!
//! Queries: `wantedCollections` (repeatable, `prefix.*` allowed; identity and account events
//! always pass), `wantedDids` (repeatable), `cursor`, `compress=true` (each event a binary
//! message, zstd with the configured dictionary). Connection plans (the same queue as X's
//! streams) answer with an HTTP status, or end the socket after `after` events: `close`
//! (a close frame), `close_mid_message` (the TCP connection dropped) or `stall` (silence:
//! no events, no pong).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

use crate::faults::{now_ms, ConnectionPlan, End};
use crate::generator::{rfc3339, Generator};
use crate::state::Shared;

/// The emulated Jetstream network.
#[derive(Debug, Clone)]
pub struct JetstreamConfig {
    /// Events the network publishes per second (0: as fast as clients read).
    pub rate: f64,
    /// Events in the timeline; after the last, instances send nothing (but answer pings).
    pub limit: Option<u64>,
    /// When event 0 was published (Unix µs); instances sharing it share the timeline.
    /// Default: the emulator's start.
    pub epoch_us: Option<i64>,
    /// This instance's clock skew, added to every `time_us` it stamps.
    pub skew_us: i64,
    /// The zstd dictionary `compress=true` compresses each event with (Jetstream has its
    /// own; tests train one with [`train_dictionary`]); without one, `compress=true` is
    /// refused with 400.
    pub zstd_dictionary: Option<Arc<Vec<u8>>>,
}

impl Default for JetstreamConfig {
    fn default() -> Self {
        Self {
            rate: 0.0,
            limit: None,
            epoch_us: None,
            skew_us: 0,
            zstd_dictionary: None,
        }
    }
}

impl JetstreamConfig {
    /// `limit` events at `rate` a second, the first published `delay` from now (a client
    /// started meanwhile is connected by then, so "live" is the start of the timeline).
    pub fn starting_in(delay: Duration, rate: f64, limit: u64) -> Self {
        Self {
            rate,
            limit: Some(limit),
            epoch_us: Some(now_ms() * 1000 + delay.as_micros() as i64),
            ..Self::default()
        }
    }
}

/// A zstd dictionary trained on `n` events of the timeline (as Jetstream trained its own on
/// real events), for `compress=true`.
pub fn train_dictionary(n: u64) -> Vec<u8> {
    let t = Timeline::new(&JetstreamConfig::default(), 1_764_000_000_000_000);
    let samples: Vec<Vec<u8>> = (0..n).map(|i| t.event(i).json.into_bytes()).collect();
    zstd::dict::from_samples(&samples, 32 * 1024).expect("a dictionary from the samples")
}

/// One event of the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub time_us: i64,
    pub did: String,
    /// For a commit: its collection; `None` for identity and account events.
    pub collection: Option<&'static str>,
    /// For a create or update: the record's at-uri (the key the connector gives it).
    pub key: Option<String>,
    pub json: String,
}

/// The timeline an instance serves.
pub struct Timeline {
    epoch_us: i64,
    step_us: f64,
    skew_us: i64,
    limit: Option<u64>,
    generator: Generator,
}

const TID_ALPHABET: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";

/// An atproto TID (record key): 13 base32-sortable characters of time (µs) and clock id.
pub fn tid(time_us: i64, clock: u64) -> String {
    let v = ((time_us.max(0) as u64) << 10 | (clock & 0x3ff)) & (u64::MAX >> 1);
    (0..13)
        .map(|i| TID_ALPHABET[((v >> (60 - 5 * i)) & 31) as usize] as char)
        .collect()
}

/// A `did:plc:` identifier for a user number.
fn did(user: u64) -> String {
    let mut v = user.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let s: String = (0..24)
        .map(|_| {
            let c = TID_ALPHABET[(v & 31) as usize] as char;
            v = v.rotate_right(5) ^ user;
            c
        })
        .collect();
    format!("did:plc:{s}")
}

impl Timeline {
    pub fn new(config: &JetstreamConfig, started_us: i64) -> Self {
        let epoch_us = config.epoch_us.unwrap_or(started_us);
        Self {
            epoch_us,
            step_us: if config.rate > 0.0 {
                1e6 / config.rate
            } else {
                1.0
            },
            skew_us: config.skew_us,
            limit: config.limit,
            generator: Generator::spaced(epoch_us / 1000, 1),
        }
    }

    /// When event `i` is published (Unix µs, without skew).
    fn published_us(&self, i: u64) -> i64 {
        self.epoch_us + (i as f64 * self.step_us) as i64
    }

    /// The first event stamped at or after `cursor`, or the live end without one.
    pub fn first_index(&self, cursor: Option<i64>, now_us: i64) -> u64 {
        let at = cursor.map(|c| c - self.skew_us).unwrap_or(now_us);
        let i = ((at - self.epoch_us) as f64 / self.step_us).ceil().max(0.0) as u64;
        // Rounding may land one off: step back while the event before still qualifies.
        let mut i = i;
        while i > 0 && self.published_us(i - 1) >= at {
            i -= 1;
        }
        i
    }

    fn ended(&self, i: u64) -> bool {
        self.limit.is_some_and(|l| i >= l)
    }

    /// Event `i`, the same for every instance but for the skew of `time_us`.
    pub fn event(&self, i: u64) -> Event {
        let time_us = self.published_us(i) + self.skew_us;
        let facts = self.generator.facts(i);
        let mut rng = fastrand::Rng::with_seed(i ^ 0x6a65_7473_7472_6561);
        let did = did(facts.user_id);
        let roll = rng.u8(0..100);
        let (collection, operation) = match roll {
            0..=79 => (Some("app.bsky.feed.post"), "create"),
            80..=84 => (Some("app.bsky.feed.repost"), "create"),
            85..=91 => (Some("app.bsky.feed.like"), "create"),
            92..=95 => (Some("app.bsky.feed.post"), "delete"),
            96..=97 => (None, "identity"),
            _ => (None, "account"),
        };
        let Some(collection) = collection else {
            let body = if operation == "identity" {
                json!({"did": did, "handle": format!("{}.bsky.social", facts.screen_name.to_lowercase()), "seq": i, "time": rfc3339(time_us / 1000)})
            } else {
                json!({"active": true, "did": did, "seq": i, "time": rfc3339(time_us / 1000)})
            };
            let json = json!({"did": did, "time_us": time_us, "kind": operation, operation: body});
            return Event {
                time_us,
                did,
                collection: None,
                key: None,
                json: json.to_string(),
            };
        };
        let rkey = tid(time_us - self.skew_us, i);
        let mut commit = json!({"rev": tid(time_us - self.skew_us, i + 1), "operation": operation, "collection": collection, "rkey": rkey});
        if operation == "create" {
            let created = rfc3339((time_us - rng.i64(0..3_000_000)) / 1000);
            let record = match collection {
                "app.bsky.feed.post" => post(&facts, &created, i, &mut rng),
                _ => json!({"$type": collection, "createdAt": created,
                    "subject": {"uri": earlier_post(i, &mut rng), "cid": cid(&mut rng)}}),
            };
            commit["record"] = record;
            commit["cid"] = json!(cid(&mut rng));
        }
        let key = (operation == "create").then(|| format!("at://{did}/{collection}/{rkey}"));
        let json = json!({"did": did, "time_us": time_us, "kind": "commit", "commit": commit});
        Event {
            time_us,
            did,
            collection: Some(collection),
            key,
            json: json.to_string(),
        }
    }
}

fn cid(rng: &mut fastrand::Rng) -> String {
    let tail: String = (0..52)
        .map(|_| TID_ALPHABET[rng.usize(0..32)] as char)
        .collect();
    format!("bafyrei{tail}")
}

fn earlier_post(i: u64, rng: &mut fastrand::Rng) -> String {
    let j = i.saturating_sub(rng.u64(1..500));
    format!(
        "at://{}/app.bsky.feed.post/{}",
        did(j),
        tid(j as i64 * 1000, j)
    )
}

/// A post record: the generated text with hashtags, maybe a mention and a link, all marked
/// by facets (UTF-8 byte ranges), and now and then a reply, images, a link card or a quote.
fn post(
    facts: &crate::generator::Generated,
    created: &str,
    i: u64,
    rng: &mut fastrand::Rng,
) -> Value {
    let mut text = facts.text.replace("&amp;", "&");
    let mut facets = Vec::new();
    let mut search = 0;
    for tag in &facts.hashtags {
        if let Some(at) = text[search..].find(&format!("#{tag}")) {
            let start = search + at;
            let end = start + tag.len() + 1;
            facets.push(json!({"index": {"byteStart": start, "byteEnd": end},
                "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": tag}]}));
            search = end;
        }
    }
    if rng.u8(0..4) == 0 {
        let handle = format!(
            "@{}.bsky.social",
            crate::generator::NAMES[rng.usize(0..10)].to_lowercase()
        );
        text.push(' ');
        let start = text.len();
        text.push_str(&handle);
        facets.push(json!({"index": {"byteStart": start, "byteEnd": text.len()},
            "features": [{"$type": "app.bsky.richtext.facet#mention", "did": did(rng.u64(0..1_000_000))}]}));
    }
    if rng.u8(0..5) == 0 {
        let url = format!("https://example.com/articles/{i}");
        text.push(' ');
        let start = text.len();
        text.push_str(&url[8..]);
        facets.push(json!({"index": {"byteStart": start, "byteEnd": text.len()},
            "features": [{"$type": "app.bsky.richtext.facet#link", "uri": url}]}));
    }
    let mut record = json!({"$type": "app.bsky.feed.post", "createdAt": created,
        "langs": [facts.lang], "text": text});
    if !facets.is_empty() {
        record["facets"] = json!(facets);
    }
    if rng.u8(0..5) == 0 {
        let parent = earlier_post(i, rng);
        record["reply"] = json!({"parent": {"uri": parent, "cid": cid(rng)}, "root": {"uri": earlier_post(i, rng), "cid": cid(rng)}});
    }
    let images = |rng: &mut fastrand::Rng| {
        let n = rng.usize(1..5);
        json!({"$type": "app.bsky.embed.images", "images": (0..n).map(|_| json!({"alt": "",
            "aspectRatio": {"height": 1080, "width": 1920},
            "image": {"$type": "blob", "ref": {"$link": cid(rng)}, "mimeType": "image/jpeg", "size": rng.u32(20_000..900_000)}})).collect::<Vec<_>>()})
    };
    match rng.u8(0..100) {
        0..=14 => record["embed"] = images(rng),
        15..=19 => {
            record["embed"] = json!({"$type": "app.bsky.embed.external", "external": {
                "uri": format!("https://news.example.org/{i}"), "title": "A headline", "description": "What it says"}})
        }
        20..=27 => {
            record["embed"] = json!({"$type": "app.bsky.embed.record",
                "record": {"uri": earlier_post(i, rng), "cid": cid(rng)}})
        }
        28..=30 => {
            record["embed"] = json!({"$type": "app.bsky.embed.recordWithMedia",
                "record": {"$type": "app.bsky.embed.record", "record": {"uri": earlier_post(i, rng), "cid": cid(rng)}},
                "media": images(rng)})
        }
        _ => {}
    }
    record
}

/// What a subscriber asked for.
#[derive(Debug, Default)]
struct Subscription {
    collections: Vec<String>,
    dids: Vec<String>,
    cursor: Option<i64>,
    compress: bool,
}

impl Subscription {
    fn parse(query: &str) -> Result<Self, String> {
        let mut s = Subscription::default();
        for (k, v) in url_pairs(query) {
            match k.as_str() {
                "wantedCollections" => s.collections.push(v),
                "wantedDids" => s.dids.push(v),
                "cursor" => s.cursor = Some(v.parse().map_err(|_| format!("invalid cursor: {v}"))?),
                "compress" => s.compress = v == "true",
                _ => {}
            }
        }
        Ok(s)
    }

    fn wants(&self, e: &Event) -> bool {
        let collection_ok = match e.collection {
            None => true,
            Some(c) => {
                self.collections.is_empty()
                    || self.collections.iter().any(|w| match w.strip_suffix('*') {
                        Some(prefix) => c.starts_with(prefix),
                        None => w == c,
                    })
            }
        };
        collection_ok && (self.dids.is_empty() || self.dids.contains(&e.did))
    }
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), crate::query::percent_decode(v)))
        .collect()
}

/// `GET /subscribe`.
pub(crate) async fn subscribe(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    ws: WebSocketUpgrade,
) -> Response {
    let plan = s.next_plan();
    let sub = Subscription::parse(uri.query().unwrap_or("")).and_then(|sub| {
        if sub.compress && s.config.jetstream.zstd_dictionary.is_none() {
            return Err(
                "compress=true: this emulator has no zstd dictionary (--jetstream-zstd-dictionary)"
                    .into(),
            );
        }
        Ok(sub)
    });
    let status = plan.status.or(sub.is_err().then_some(400));
    let conn = s.log_connection(&method, &uri, status.unwrap_or(101));
    if let Some(status) = status {
        let detail = sub.err().unwrap_or_else(|| "planned failure".into());
        let code =
            axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::BAD_REQUEST);
        return (code, detail).into_response();
    }
    let sub = sub.expect("checked");
    ws.on_upgrade(move |socket| async move {
        let why = session(&s, conn, socket, sub, plan).await;
        s.log_end(conn, why);
    })
}

/// End a session as its plan says: stall, drop, or close. Returns why it ended.
async fn end_by_plan(
    plan: &ConnectionPlan,
    tx: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    reader: &tokio::task::JoinHandle<()>,
) -> &'static str {
    match plan.end {
        Some(End::Stall) => {
            reader.abort();
            let secs = plan.secs.unwrap_or(3600.0);
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            "stall"
        }
        Some(End::CloseMidMessage) => {
            reader.abort();
            "dropped"
        }
        _ => {
            let _ = tx.send(Message::Close(None)).await;
            "closed"
        }
    }
}

/// Send the timeline from the subscription's start until the plan ends it or the client
/// leaves. Returns why it ended.
async fn session(
    s: &Shared,
    conn: usize,
    socket: WebSocket,
    sub: Subscription,
    plan: ConnectionPlan,
) -> &'static str {
    // `compress=true`: each event alone, zstd with the shared dictionary (as Jetstream does).
    let mut compressor = match (&s.config.jetstream.zstd_dictionary, sub.compress) {
        (Some(dict), true) => match zstd::bulk::Compressor::with_dictionary(3, dict) {
            Ok(c) => Some(c),
            Err(_) => return "bad zstd dictionary",
        },
        _ => None,
    };
    let timeline = &s.jetstream;
    let (mut tx, mut rx) = socket.split();
    // Reading answers the client's pings (queued, sent with the next write or read).
    let reader = tokio::spawn(async move {
        while let Some(Ok(m)) = rx.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    });
    let mut i = timeline.first_index(sub.cursor, now_ms() * 1000);
    let mut sent = 0u64;
    let why = loop {
        if plan.after.is_some_and(|a| sent >= a) {
            break end_by_plan(&plan, &mut tx, &reader).await;
        }
        if reader.is_finished() {
            break "client left";
        }
        if timeline.ended(i) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            // Keep the writer polled so queued pongs go out.
            if tx.flush().await.is_err() {
                break "client left";
            }
            continue;
        }
        let wait_us = timeline.published_us(i) - now_ms() * 1000;
        if wait_us > 1000 {
            tokio::time::sleep(Duration::from_micros(wait_us as u64)).await;
        }
        let e = timeline.event(i);
        i += 1;
        if !sub.wants(&e) {
            continue;
        }
        let message = match compressor.as_mut() {
            Some(c) => match c.compress(e.json.as_bytes()) {
                Ok(z) => Message::Binary(z.into()),
                Err(_) => break "compression failed",
            },
            None => Message::Text(e.json.into()),
        };

        if tx.send(message).await.is_err() {
            break "client left";
        }
        sent += 1;
        match &e.key {
            Some(key) => s.log_sent(conn, key),
            None => s.log_injected(conn),
        }
    };
    reader.abort();
    why
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline(rate: f64, skew_us: i64) -> Timeline {
        let c = JetstreamConfig {
            rate,
            limit: Some(1000),
            epoch_us: Some(1_764_000_000_000_000),
            skew_us,
            zstd_dictionary: None,
        };
        Timeline::new(&c, 0)
    }

    #[test]
    fn events_are_deterministic_and_instances_differ_only_by_skew() {
        let (a, b) = (timeline(100.0, 0), timeline(100.0, 1500));
        for i in [0, 1, 7, 500] {
            let (x, y) = (a.event(i), b.event(i));
            assert_eq!(x.key, y.key, "keys do not depend on the instance");
            assert_eq!(y.time_us - x.time_us, 1500);
            assert_eq!(x, a.event(i));
            serde_json::from_str::<Value>(&x.json).expect("valid JSON");
        }
        let posts = (0..1000)
            .filter(|i| a.event(*i).collection == Some("app.bsky.feed.post"))
            .count();
        assert!((700..900).contains(&posts), "{posts} posts in 1000 events");
    }

    #[test]
    fn a_cursor_starts_at_the_first_event_stamped_at_or_after_it() {
        let t = timeline(100.0, 250);
        for i in [0u64, 1, 99, 500] {
            let at = t.event(i).time_us;
            assert_eq!(t.first_index(Some(at), 0), i);
            assert_eq!(t.first_index(Some(at + 1), 0), i + 1);
        }
        assert_eq!(t.first_index(None, 1_764_000_000_000_000 + 1_000_000), 100);
    }

    #[test]
    fn tids_sort_as_time() {
        let a = tid(1_725_911_162_329_308, 5);
        let b = tid(1_725_911_162_329_309, 0);
        assert_eq!(a.len(), 13);
        assert!(a < b);
    }

    #[test]
    fn subscriptions_filter_by_collection_prefix_and_did() {
        let sub = Subscription::parse("wantedCollections=app.bsky.feed.*&wantedDids=did%3Aplc%3Ax")
            .unwrap();
        let mut e = timeline(1.0, 0).event(0);
        e.did = "did:plc:x".into();
        e.collection = Some("app.bsky.feed.like");
        assert!(sub.wants(&e));
        e.collection = Some("app.bsky.graph.follow");
        assert!(!sub.wants(&e));
        e.collection = None;
        assert!(sub.wants(&e), "identity and account events pass");
        e.did = "did:plc:y".into();
        assert!(!sub.wants(&e));
        assert!(Subscription::parse("cursor=abc").is_err());
    }
}
