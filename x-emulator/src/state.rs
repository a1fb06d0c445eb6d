//! The emulator's state, shared by the HTTP handlers and the stream sessions: its config,
//! the cursors over the corpus (one per dialect, one per partition of a partitioned stream),
//! the app's rules, the queued fault plans, the connection log, and what was missed.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{Method, Uri};
use serde::Serialize;
use serde_json::{json, Value};

use crate::corpus::{Corpus, Dialect, Item};
use crate::faults::{now_ms, ConnectionPlan};
use crate::oauth::Verifier;
use crate::rules::{Candidate, RuleSet};

/// Credentials the emulated app accepts.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub bearer_token: String,
    pub consumer_key: String,
    pub consumer_secret: String,
    pub access_token: String,
    pub access_token_secret: String,
}

impl Default for Credentials {
    fn default() -> Self {
        Self {
            bearer_token: "emulator-bearer-token".into(),
            consumer_key: "emulator-consumer-key".into(),
            consumer_secret: "emulator-consumer-secret".into(),
            access_token: "emulator-access-token".into(),
            access_token_secret: "emulator-access-token-secret".into(),
        }
    }
}

/// Everything the emulator can be told at start.
pub struct EmulatorConfig {
    pub corpus: Corpus,
    /// Messages per second per connection (0: as fast as the client reads).
    pub rate: f64,
    /// Stop after this many tweets per dialect (then keep-alives only).
    pub limit: Option<u64>,
    pub keepalive_v2: Duration,
    pub keepalive_v1: Duration,
    pub credentials: Credentials,
    pub plans: Vec<ConnectionPlan>,
    /// Rules present at start: (value, tag).
    pub rules: Vec<(String, Option<String>)>,
    /// Cut the bytes into chunks of random sizes (true), or send 64 KiB chunks.
    pub random_chunks: bool,
    /// Concurrent stream connections allowed (0: unlimited); one more gets 429 TooManyConnections.
    pub max_connections: usize,
    /// Keep every sent id in the log (turn off for long benchmarks).
    pub record_ids: bool,
    /// The most rules one page of `GET .../rules` holds (X: `max_results`, at most 1,000);
    /// smaller to exercise pagination.
    pub rules_page_size: usize,
    /// Act as an X-compatible server that honours no `dry_run`: a validation adds the rules.
    pub ignore_dry_run: bool,
    /// The app's rule limits: how many rules, how many characters each (default
    /// pay-per-use: 1,000 of 1,024; enterprise: 25,000 of 2,048).
    pub rule_limits: (usize, usize),
    /// The Bluesky Jetstream network `/subscribe` serves.
    pub jetstream: crate::jetstream::timeline::JetstreamConfig,
    /// Each connection's kernel send buffer in bytes (SO_SNDBUF); small, a slow client's
    /// backlog waits in the server, as on a congested path. None: the system's, autotuned.
    pub send_buffer: Option<usize>,
}

impl EmulatorConfig {
    pub fn new(corpus: Corpus) -> Self {
        Self {
            corpus,
            rate: 0.0,
            limit: None,
            keepalive_v2: Duration::from_secs(20),
            keepalive_v1: Duration::from_secs(30),
            credentials: Credentials::default(),
            plans: Vec::new(),
            rules: Vec::new(),
            random_chunks: true,
            max_connections: 0,
            record_ids: true,
            rules_page_size: 1000,
            ignore_dry_run: false,
            rule_limits: (1000, 1024),
            jetstream: Default::default(),
            send_buffer: None,
        }
    }
}

/// One connection attempt, as the log shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionRecord {
    pub index: usize,
    pub method: String,
    pub path: String,
    pub query: String,
    /// Milliseconds since the emulator started.
    pub at_ms: u64,
    pub status: u16,
    /// Ids of the tweets fully sent on this connection, in order.
    pub sent: Vec<String>,
    /// When each of them was sent (Unix ms), for latency measurements.
    pub sent_at_ms: Vec<i64>,
    /// When each tweet this connection took from its cursor was taken (sent, or cut off by
    /// the connection's end): what a backfill gives back.
    #[serde(skip)]
    pub taken_at_ms: Vec<i64>,
    pub sent_count: u64,
    pub injected: u64,
    pub end: Option<String>,
}

/// Tweets a plan let go by unread, on a stream (`None`) or a partition (path, index).
pub(crate) struct Missed {
    pub(crate) stream: Option<(String, u8)>,
    pub(crate) at_ms: i64,
    pub(crate) count: u64,
}

pub struct Shared {
    pub config: EmulatorConfig,
    pub(crate) started: Instant,
    pub(crate) cursors: [AtomicU64; 2],
    /// Set once a stream without partitions took a tweet.
    pub(crate) main_cursor_used: AtomicBool,
    /// The cursors of partitioned streams (v2), by (endpoint, partition).
    pub(crate) partition_cursors: Mutex<HashMap<(String, u8), Arc<AtomicU64>>>,
    /// Tweets that went by while no client read them (a plan's `missed`).
    pub(crate) missed: Mutex<Vec<Missed>>,
    pub(crate) in_flight: AtomicU64,
    pub(crate) rules: Mutex<RuleSet>,
    pub(crate) plans: Mutex<VecDeque<ConnectionPlan>>,
    pub(crate) log: Mutex<Vec<ConnectionRecord>>,
    pub(crate) verifier: Verifier,
    pub(crate) active: AtomicUsize,
    pub(crate) phantom_until: Mutex<Option<Instant>>,
    /// Bumped by `DELETE /2/connections/all`: every open stream ends.
    pub(crate) terminate_all: tokio::sync::watch::Sender<u64>,
    /// The Jetstream timeline this instance serves.
    pub(crate) jetstream: crate::jetstream::timeline::Timeline,
}

fn dialect_index(d: Dialect) -> usize {
    match d {
        Dialect::V1 => 0,
        Dialect::V2 => 1,
    }
}

impl Shared {
    pub(crate) fn new(config: EmulatorConfig) -> Self {
        let c = &config.credentials;
        let verifier = Verifier::new(
            &c.consumer_key,
            &c.consumer_secret,
            &c.access_token,
            &c.access_token_secret,
        );
        let mut rules = RuleSet::default();
        (rules.max_rules, rules.max_rule_len) = config.rule_limits;
        let adds: Vec<Value> = config
            .rules
            .iter()
            .map(|(v, t)| json!({"value": v, "tag": t}))
            .collect();
        if !adds.is_empty() {
            rules.add(&adds, false);
        }
        let plans = config.plans.iter().cloned().collect();
        let jetstream =
            crate::jetstream::timeline::Timeline::new(&config.jetstream, now_ms() * 1000);
        Self {
            jetstream,
            config,
            started: Instant::now(),
            cursors: [AtomicU64::new(0), AtomicU64::new(0)],
            main_cursor_used: AtomicBool::new(false),
            partition_cursors: Mutex::new(HashMap::new()),
            missed: Mutex::new(Vec::new()),
            in_flight: AtomicU64::new(0),
            rules: Mutex::new(rules),
            plans: Mutex::new(plans),
            log: Mutex::new(Vec::new()),
            verifier,
            active: AtomicUsize::new(0),
            phantom_until: Mutex::new(None),
            terminate_all: tokio::sync::watch::Sender::new(0),
        }
    }

    pub(crate) fn limit(&self, d: Dialect) -> Option<u64> {
        match (self.config.limit, self.config.corpus.len(d)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The tweets are used up and none is still being sent: by the streams without
    /// partitions, and (v2) by every partition of each partitioned stream connected so far.
    pub fn exhausted(&self, d: Dialect) -> bool {
        let Some(l) = self.limit(d) else {
            return false;
        };
        let partitions = self.partition_cursors.lock().expect("cursors");
        let partitioned = d == Dialect::V2 && !partitions.is_empty();
        let main_done = self.cursors[dialect_index(d)].load(Ordering::SeqCst) >= l
            || (partitioned && !self.main_cursor_used.load(Ordering::SeqCst));
        let partitions_done =
            !partitioned || partitions.values().all(|c| c.load(Ordering::SeqCst) >= l);
        main_done && partitions_done && self.in_flight.load(Ordering::SeqCst) == 0
    }

    /// These partitions of the v2 stream at `path` have sent all their tweets, and none is
    /// still being sent.
    pub(crate) fn partitions_exhausted(&self, path: &str, partitions: &[u8]) -> bool {
        let Some(l) = self.limit(Dialect::V2) else {
            return false;
        };
        let cursors = self.partition_cursors.lock().expect("cursors");
        partitions.iter().all(|p| {
            cursors
                .get(&(path.to_string(), *p))
                .is_some_and(|c| c.load(Ordering::SeqCst) >= l)
        }) && self.in_flight.load(Ordering::SeqCst) == 0
    }

    /// The cursor of a partition and the step between its tweets; the first connection to
    /// a partitioned stream makes the cursors of all its partitions.
    pub(crate) fn partition_cursor(&self, p: &Partition) -> Arc<AtomicU64> {
        let mut cursors = self.partition_cursors.lock().expect("cursors");
        for i in 1..=p.of {
            cursors
                .entry((p.stream.clone(), i))
                .or_insert_with(|| Arc::new(AtomicU64::new(u64::from(i - 1))));
        }
        cursors[&(p.stream.clone(), p.index)].clone()
    }

    /// A tweet taken with [`Shared::next_item`] was sent (or given up).
    pub fn item_done(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// The next tweet the stream selects (skipping those it filters out), or `None`.
    pub fn next_item(&self, spec: &StreamSpec) -> Option<Item> {
        // Counted in flight before the cursor moves, so that `exhausted` never sees the
        // cursor at the end while the last tweet is taken but not yet sent.
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let item = self.select_next(spec);
        match &item {
            Some(_) if self.config.record_ids => self.log.lock().expect("log")[spec.conn]
                .taken_at_ms
                .push(now_ms()),
            Some(_) => {}
            None => self.item_done(),
        }
        item
    }

    pub(crate) fn select_next(&self, spec: &StreamSpec) -> Option<Item> {
        let own;
        let (cursor, step) = match &spec.partition {
            Some(p) => {
                own = self.partition_cursor(p);
                (&*own, u64::from(p.of))
            }
            None => {
                self.main_cursor_used.store(true, Ordering::SeqCst);
                (&self.cursors[dialect_index(spec.dialect)], 1)
            }
        };
        for _ in 0..10_000 {
            let seq = cursor.fetch_add(step, Ordering::SeqCst);
            if self.limit(spec.dialect).is_some_and(|l| seq >= l) {
                cursor.fetch_sub(step, Ordering::SeqCst);
                return None;
            }
            let item = self.config.corpus.item(spec.dialect, seq)?;
            if self.selects(&spec.selection, &item) {
                return Some(item);
            }
        }
        None
    }

    /// Run `f` on the cursor a stream reads from, and its step.
    pub(crate) fn with_cursor<R>(
        &self,
        dialect: Dialect,
        partition: Option<&Partition>,
        f: impl FnOnce(&AtomicU64, u64) -> R,
    ) -> R {
        match partition {
            Some(p) => f(&self.partition_cursor(p), u64::from(p.of)),
            None => f(&self.cursors[dialect_index(dialect)], 1),
        }
    }

    /// A plan's `missed`: `n` tweets go by unread, as if published while the client was away.
    pub(crate) fn skip_missed(&self, dialect: Dialect, partition: Option<&Partition>, n: u64) {
        self.with_cursor(dialect, partition, |cursor, step| {
            cursor.fetch_add(n * step, Ordering::SeqCst)
        });
        self.missed.lock().expect("missed").push(Missed {
            stream: partition.map(|p| (p.stream.clone(), p.index)),
            at_ms: now_ms(),
            count: n,
        });
    }

    /// X's `backfill_minutes` and `start_time`: the next connection starts with the tweets of
    /// this stream (partition) since `since_ms`: taken before (sent, or cut off) or missed
    /// (X does not deduplicate them). Returns how many come again.
    pub(crate) fn rewind_since(
        &self,
        dialect: Dialect,
        partition: Option<&Partition>,
        since_ms: i64,
    ) -> u64 {
        let v2 = dialect == Dialect::V2;
        let stream = partition.map(|p| (p.stream.clone(), p.index));
        let sent: u64 = self
            .log
            .lock()
            .expect("log")
            .iter()
            .filter(|c| match &stream {
                Some((path, index)) => {
                    &c.path == path
                        && crate::query::param(&c.query, "partition") == Some(index.to_string())
                }
                None => c.path.starts_with("/2/") == v2,
            })
            .map(|c| c.taken_at_ms.iter().filter(|t| **t >= since_ms).count() as u64)
            .sum();
        let missed: u64 = self
            .missed
            .lock()
            .expect("missed")
            .iter()
            .filter(|m| m.stream == stream && m.at_ms >= since_ms)
            .map(|m| m.count)
            .sum();
        self.with_cursor(dialect, partition, |cursor, step| {
            let again = (sent + missed).min(cursor.load(Ordering::SeqCst) / step);
            cursor.fetch_sub(again * step, Ordering::SeqCst);
            again
        })
    }

    pub(crate) fn selects(&self, selection: &Selection, item: &Item) -> bool {
        match selection {
            Selection::Sample => true,
            Selection::Lang(lang) => &item.lang == lang,
            Selection::TweetCompliance | Selection::UserCompliance => true,
            Selection::Rules => !self.matching_rules(item).is_empty(),
            Selection::V1Filter {
                track,
                follow,
                language,
            } => {
                if !language.is_empty() && !language.iter().any(|l| l == &item.lang) {
                    return false;
                }
                if track.is_empty() && follow.is_empty() {
                    return true;
                }
                let text = item.text.to_lowercase();
                let words: Vec<&str> = text
                    .split(|c: char| !(c.is_alphanumeric() || c == '#' || c == '_'))
                    .filter(|w| !w.is_empty())
                    .collect();
                let tracked = track.iter().any(|all| {
                    all.iter().all(|t| {
                        words.contains(&t.as_str()) || words.contains(&format!("#{t}").as_str())
                    })
                });
                tracked || follow.iter().any(|f| f == &item.user_id)
            }
        }
    }

    pub fn matching_rules(&self, item: &Item) -> Vec<Value> {
        self.rules.lock().expect("rules").matching(&Candidate {
            text: &item.text,
            lang: &item.lang,
            username: &item.username,
        })
    }

    pub(crate) fn log_connection(&self, method: &Method, uri: &Uri, status: u16) -> usize {
        let mut log = self.log.lock().expect("log");
        let index = log.len();
        log.push(ConnectionRecord {
            index,
            method: method.to_string(),
            path: uri.path().to_string(),
            query: uri.query().unwrap_or("").to_string(),
            at_ms: self.started.elapsed().as_millis() as u64,
            status,
            sent: Vec::new(),
            sent_at_ms: Vec::new(),
            taken_at_ms: Vec::new(),
            sent_count: 0,
            injected: 0,
            end: None,
        });
        index
    }

    pub fn log_sent(&self, conn: usize, id: &str) {
        let mut log = self.log.lock().expect("log");
        let rec = &mut log[conn];
        rec.sent_count += 1;
        if self.config.record_ids {
            rec.sent.push(id.to_string());
            rec.sent_at_ms.push(now_ms());
        }
    }

    pub fn log_injected(&self, conn: usize) {
        self.log.lock().expect("log")[conn].injected += 1;
    }

    pub fn log_end(&self, conn: usize, why: &str) {
        self.log.lock().expect("log")[conn].end = Some(why.to_string());
    }

    pub(crate) fn next_plan(&self) -> ConnectionPlan {
        self.plans
            .lock()
            .expect("plans")
            .pop_front()
            .unwrap_or_default()
    }
}

/// How a stream selects and decorates tweets.
#[derive(Debug, Clone)]
pub enum Selection {
    /// v2 sample streams: every tweet.
    Sample,
    /// v2 filtered stream: tweets matching the app's rules, with `matching_rules` added.
    Rules,
    /// v2 language firehose: every tweet in this language.
    Lang(String),
    /// v2 tweet compliance stream: an event (delete, tweet_edit, withheld, drop, undrop) about
    /// each tweet.
    TweetCompliance,
    /// v2 user compliance stream: an event (user_delete, user_protect, user_withheld, ...)
    /// about each tweet's author.
    UserCompliance,
    /// v1.1 filter: `track` (comma = OR, space = AND), `follow` ids, `language`.
    V1Filter {
        track: Vec<Vec<String>>,
        follow: Vec<String>,
        language: Vec<String>,
    },
}

#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub dialect: Dialect,
    pub selection: Selection,
    pub delimited: bool,
    pub keepalive: Duration,
    pub conn: usize,
    /// Of a partitioned stream (firehose): which share of the tweets this connection gets.
    pub partition: Option<Partition>,
    /// What the connection's socket has taken.
    pub wire: crate::wire::Wire,
}

/// One partition of a partitioned stream: partition `index` (1-based) of `of` takes every
/// `of`-th tweet, from its own cursor, so the partitions together are the whole stream and
/// each tweet is in one of them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Partition {
    /// The endpoint's path: its partitions share nothing with another endpoint's.
    pub stream: String,
    pub index: u8,
    pub of: u8,
}
