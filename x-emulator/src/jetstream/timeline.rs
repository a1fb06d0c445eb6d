//! The emulated network: a deterministic timeline of generated events (posts, reposts,
//! likes, deletes, identity and account events), each instance stamping them with its skew.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::faults::now_ms;
use crate::generator::{rfc3339, Generator};

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
    pub(crate) fn published_us(&self, i: u64) -> i64 {
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

    pub(crate) fn ended(&self, i: u64) -> bool {
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

/// A 1,000-event network at `rate` events/s from a fixed epoch, seen by an instance `skew_us`
/// ahead (for tests).
#[cfg(test)]
pub(crate) fn timeline(rate: f64, skew_us: i64) -> Timeline {
    let c = JetstreamConfig {
        rate,
        limit: Some(1000),
        epoch_us: Some(1_764_000_000_000_000),
        skew_us,
        zstd_dictionary: None,
    };
    Timeline::new(&c, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
