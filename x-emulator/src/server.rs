//! The HTTP server: X's v2 and v1.1 stream endpoints, the v2 rules API, `/oauth2/token`, and
//! the emulator's own control endpoints (`/_emulator/log`, `/_emulator/plans`).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodRouter};
use axum::Router;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::corpus::{Corpus, Dialect, Item};
use crate::faults::{error_body, now_ms, ConnectionPlan};
use crate::oauth::{self, SignedRequest, Verifier};
use crate::rules::{Candidate, RuleSet};
use crate::stream::{self, Partition, Selection, StreamSpec};

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
struct Missed {
    stream: Option<(String, u8)>,
    at_ms: i64,
    count: u64,
}

pub struct Shared {
    pub config: EmulatorConfig,
    started: Instant,
    cursors: [AtomicU64; 2],
    /// Set once a stream without partitions took a tweet.
    main_cursor_used: AtomicBool,
    /// The cursors of partitioned streams (v2), by (endpoint, partition).
    partition_cursors: Mutex<HashMap<(String, u8), Arc<AtomicU64>>>,
    /// Tweets that went by while no client read them (a plan's `missed`).
    missed: Mutex<Vec<Missed>>,
    in_flight: AtomicU64,
    rules: Mutex<RuleSet>,
    plans: Mutex<VecDeque<ConnectionPlan>>,
    log: Mutex<Vec<ConnectionRecord>>,
    verifier: Verifier,
    active: AtomicUsize,
    phantom_until: Mutex<Option<Instant>>,
    /// Bumped by `DELETE /2/connections/all`: every open stream ends.
    terminate_all: tokio::sync::watch::Sender<u64>,
}

fn dialect_index(d: Dialect) -> usize {
    match d {
        Dialect::V1 => 0,
        Dialect::V2 => 1,
    }
}

impl Shared {
    fn new(config: EmulatorConfig) -> Self {
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
        Self {
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

    fn limit(&self, d: Dialect) -> Option<u64> {
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

    /// The cursor of a partition and the step between its tweets; the first connection to
    /// a partitioned stream makes the cursors of all its partitions.
    fn partition_cursor(&self, p: &Partition) -> Arc<AtomicU64> {
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

    fn select_next(&self, spec: &StreamSpec) -> Option<Item> {
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
    fn with_cursor<R>(
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
    fn skip_missed(&self, dialect: Dialect, partition: Option<&Partition>, n: u64) {
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
    fn rewind_since(&self, dialect: Dialect, partition: Option<&Partition>, since_ms: i64) -> u64 {
        let v2 = dialect == Dialect::V2;
        let stream = partition.map(|p| (p.stream.clone(), p.index));
        let sent: u64 = self
            .log
            .lock()
            .expect("log")
            .iter()
            .filter(|c| match &stream {
                Some((path, index)) => {
                    &c.path == path && query_param(&c.query, "partition") == Some(index.to_string())
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

    fn selects(&self, selection: &Selection, item: &Item) -> bool {
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

    fn log_connection(&self, method: &Method, uri: &Uri, status: u16) -> usize {
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

    fn next_plan(&self) -> ConnectionPlan {
        self.plans
            .lock()
            .expect("plans")
            .pop_front()
            .unwrap_or_default()
    }
}

/// A running emulator.
pub struct Emulator {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    _runtime: Option<Arc<tokio::runtime::Runtime>>,
}

impl Emulator {
    /// Serve on `addr` from the current tokio runtime.
    pub async fn start(config: EmulatorConfig, addr: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config));
        let app = router(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            shared,
            _runtime: None,
        })
    }

    /// Serve on a free loopback port from a runtime of its own (for synchronous tests).
    pub fn start_background(config: EmulatorConfig) -> std::io::Result<Self> {
        Self::start_background_on(config, "127.0.0.1:0".parse().expect("addr"))
    }

    /// Serve on `addr` from a runtime of its own.
    pub fn start_background_on(config: EmulatorConfig, addr: SocketAddr) -> std::io::Result<Self> {
        let rt = Arc::new(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()?,
        );
        let mut emu = rt.block_on(Self::start(config, addr))?;
        emu._runtime = Some(rt);
        Ok(emu)
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every connection attempt so far.
    pub fn log(&self) -> Vec<ConnectionRecord> {
        self.shared.log.lock().expect("log").clone()
    }

    /// Every tweet id sent, in order, across connections.
    pub fn sent_ids(&self) -> Vec<String> {
        self.log().into_iter().flat_map(|c| c.sent).collect()
    }

    /// Every tweet id sent with when it was sent (Unix ms), in order, across connections.
    pub fn sent_times(&self) -> Vec<(String, i64)> {
        self.log()
            .into_iter()
            .flat_map(|c| c.sent.into_iter().zip(c.sent_at_ms))
            .collect()
    }

    /// Queue a plan for the next stream connection.
    pub fn push_plan(&self, plan: ConnectionPlan) {
        self.shared.plans.lock().expect("plans").push_back(plan);
    }

    /// The app's current v2 rules: (id, value, tag).
    pub fn rules(&self) -> Vec<(String, String, Option<String>)> {
        self.shared
            .rules
            .lock()
            .expect("rules")
            .rules()
            .iter()
            .map(|r| (r.id.clone(), r.value.clone(), r.tag.clone()))
            .collect()
    }

    /// True once the tweet limit (or a finite corpus) is used up for `dialect`.
    pub fn exhausted(&self, dialect: Dialect) -> bool {
        self.shared.exhausted(dialect)
    }

    /// True once these partitions of the stream at `path` have sent all their tweets (the
    /// others may not be connected at all).
    pub fn partitions_exhausted(&self, path: &str, partitions: &[u8]) -> bool {
        let Some(l) = self.shared.limit(Dialect::V2) else {
            return false;
        };
        let cursors = self.shared.partition_cursors.lock().expect("cursors");
        partitions.iter().all(|p| {
            cursors
                .get(&(path.to_string(), *p))
                .is_some_and(|c| c.load(Ordering::SeqCst) >= l)
        }) && self.shared.in_flight.load(Ordering::SeqCst) == 0
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/2/tweets/search/stream", get(v2_filtered))
        .route("/2/tweets/sample/stream", get(v2_sample))
        .route("/2/tweets/sample10/stream", get(v2_sample10))
        .route(
            "/2/tweets/firehose/stream",
            partitioned_stream(Selection::Sample, 20),
        )
        .route(
            "/2/tweets/firehose/stream/lang/{lang}",
            get(v2_firehose_lang),
        )
        .route(
            "/2/tweets/compliance/stream",
            partitioned_stream(Selection::TweetCompliance, 4),
        )
        .route(
            "/2/users/compliance/stream",
            partitioned_stream(Selection::UserCompliance, 4),
        )
        .route(
            "/2/tweets/search/stream/rules",
            get(rules_list).post(rules_post),
        )
        .route("/2/connections", get(connections_list))
        .route("/2/connections/all", delete(connections_delete_all))
        .route("/oauth2/token", post(token))
        .route("/1.1/statuses/sample.json", get(v1_stream))
        .route("/1.1/statuses/filter.json", get(v1_stream).post(v1_stream))
        .route("/_emulator/log", get(control_log))
        .route("/_emulator/plans", post(control_plans))
        .with_state(shared)
}

fn json_response(status: u16, body: Value) -> Response {
    let mut r = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        body.to_string(),
    )
        .into_response();
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

fn bearer_ok(shared: &Shared, headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t.trim() == shared.config.credentials.bearer_token)
}

/// An HTTP error as X sends it, with rate-limit headers where X sets them.
fn error_response(
    status: u16,
    v2: bool,
    too_many_connections: bool,
    reset_in: Option<u64>,
) -> Response {
    problem_response(
        status,
        serde_json::from_str(&error_body(status, v2, too_many_connections)).unwrap_or(Value::Null),
        reset_in,
    )
}

/// An error body with status, and for 420/429 the rate-limit headers.
fn problem_response(status: u16, body: Value, reset_in: Option<u64>) -> Response {
    let mut r = json_response(status, body);
    let h = r.headers_mut();
    if status == 429 || status == 420 {
        let reset = now_ms() / 1000 + reset_in.unwrap_or(60) as i64;
        h.insert("x-rate-limit-limit", HeaderValue::from_static("50"));
        h.insert("x-rate-limit-remaining", HeaderValue::from_static("0"));
        h.insert(
            "x-rate-limit-reset",
            HeaderValue::from_str(&reset.to_string()).expect("digits"),
        );
    }
    r
}

/// The error a connection plan asks for: X's body for the status, or `UsageCapExceeded`,
/// with the problem type replaced where the plan names one.
fn planned_error(plan: &ConnectionPlan, status: u16, v2: bool) -> Response {
    let mut body = if plan.usage_capped {
        json!({"title": "UsageCapExceeded", "detail": "Usage cap exceeded: Monthly product cap",
            "type": "https://api.x.com/2/problems/usage-capped", "period": "Monthly", "scope": "Product", "status": status})
    } else {
        serde_json::from_str(&error_body(status, v2, plan.too_many_connections))
            .unwrap_or(Value::Null)
    };
    if let Some(t) = &plan.problem_type {
        body["type"] = json!(t);
    }
    problem_response(status, body, plan.reset_in_secs)
}

async fn v2_filtered(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if !bearer_ok(&s, &headers) {
        return logged(&s, &method, &uri, error_response(401, true, false, None));
    }
    if s.rules.lock().expect("rules").rules().is_empty() {
        return logged(&s, &method, &uri, error_response(409, true, false, None));
    }
    open_stream(s, method, uri, Dialect::V2, Selection::Rules, false)
}

async fn v2_sample(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if !bearer_ok(&s, &headers) {
        return logged(&s, &method, &uri, error_response(401, true, false, None));
    }
    open_stream(s, method, uri, Dialect::V2, Selection::Sample, false)
}

async fn v2_sample10(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    if !bearer_ok(&s, &headers) {
        return logged(&s, &method, &uri, error_response(401, true, false, None));
    }
    let partition = q
        .iter()
        .find(|(k, _)| k == "partition")
        .map(|(_, v)| v.as_str());
    if !matches!(partition, Some("1") | Some("2")) {
        let body = json!({"errors": [{"parameters": {"partition": [partition]}, "message": "The `partition` query parameter is required and must be 1 or 2"}],
            "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.", "type": "https://api.twitter.com/2/problems/invalid-request"});
        return logged(&s, &method, &uri, json_response(400, body));
    }
    open_stream(s, method, uri, Dialect::V2, Selection::Sample, false)
}

/// `GET /2/tweets/firehose/stream/lang/{en,ja,ko,pt}?partition=N`: one language's posts,
/// in 8 partitions for English, 2 for the others.
async fn v2_firehose_lang(
    State(s): State<Arc<Shared>>,
    Path(lang): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let of = match lang.as_str() {
        "en" => 8,
        "ja" | "ko" | "pt" => 2,
        _ => return logged(&s, &method, &uri, error_response(404, true, false, None)),
    };
    partitioned(s, method, uri, headers, &q, Selection::Lang(lang), of)
}

/// `GET` of a stream in `of` partitions: the firehose (`Sample`, 20), the compliance streams
/// (4 each).
fn partitioned_stream(selection: Selection, of: u8) -> MethodRouter<Arc<Shared>> {
    get(
        move |State(s): State<Arc<Shared>>,
              method: Method,
              uri: Uri,
              headers: HeaderMap,
              Query(q): Query<Vec<(String, String)>>| {
            let selection = selection.clone();
            async move { partitioned(s, method, uri, headers, &q, selection, of) }
        },
    )
}

/// A partitioned stream's connection: its `partition` (required, 1 to `of`) and its share.
fn partitioned(
    s: Arc<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    q: &[(String, String)],
    selection: Selection,
    of: u8,
) -> Response {
    if !bearer_ok(&s, &headers) {
        return logged(&s, &method, &uri, error_response(401, true, false, None));
    }
    let given = q
        .iter()
        .find(|(k, _)| k == "partition")
        .map(|(_, v)| v.as_str());
    let Some(index) = given
        .and_then(|v| v.parse::<u8>().ok())
        .filter(|i| (1..=of).contains(i))
    else {
        let body = json!({"errors": [{"parameters": {"partition": [given]}, "message": format!("The `partition` query parameter is required and must be between 1 and {of}")}],
            "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.", "type": "https://api.twitter.com/2/problems/invalid-request"});
        return logged(&s, &method, &uri, json_response(400, body));
    };
    let partition = Partition {
        stream: uri.path().to_string(),
        index,
        of,
    };
    // The stream's partitions exist from its first connection on (`exhausted` waits for all).
    s.partition_cursor(&partition);
    open_partition(
        s,
        method,
        uri,
        Dialect::V2,
        selection,
        false,
        Some(partition),
    )
}

fn logged(s: &Shared, method: &Method, uri: &Uri, r: Response) -> Response {
    s.log_connection(method, uri, r.status().as_u16());
    r
}

/// A query parameter's value, percent-decoded.
fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .map(percent_decode)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn open_stream(
    s: Arc<Shared>,
    method: Method,
    uri: Uri,
    dialect: Dialect,
    selection: Selection,
    delimited: bool,
) -> Response {
    open_partition(s, method, uri, dialect, selection, delimited, None)
}

fn open_partition(
    s: Arc<Shared>,
    method: Method,
    uri: Uri,
    dialect: Dialect,
    selection: Selection,
    delimited: bool,
    partition: Option<Partition>,
) -> Response {
    let v2 = dialect == Dialect::V2;
    // A phantom connection (kept after an abrupt disconnect) or the connection cap: refused
    // with TooManyConnections, the reset announced for when the phantom goes away.
    let phantom_left = s
        .phantom_until
        .lock()
        .expect("phantom")
        .and_then(|t| t.checked_duration_since(Instant::now()));
    let max = s.config.max_connections;
    if phantom_left.is_some() || (max > 0 && s.active.load(Ordering::SeqCst) >= max) {
        let reset_in = phantom_left.map(|d| d.as_secs() + 1).unwrap_or(1);
        return logged(
            &s,
            &method,
            &uri,
            error_response(if v2 { 429 } else { 420 }, v2, v2, Some(reset_in)),
        );
    }
    let plan = s.next_plan();
    if let Some(status) = plan.status {
        return logged(&s, &method, &uri, planned_error(&plan, status, v2));
    }
    if let Some(n) = plan.missed {
        s.skip_missed(dialect, partition.as_ref(), n);
    }
    let backfill = query_param(uri.query().unwrap_or(""), "backfill_minutes")
        .and_then(|m| m.parse::<i64>().ok())
        .filter(|m| *m > 0)
        .map(|m| now_ms() - m * 60_000);
    let start_time = query_param(uri.query().unwrap_or(""), "start_time")
        .and_then(|t| tweet_model::time::parse_rfc3339(&t));
    if let Some(since) = backfill.into_iter().chain(start_time).min() {
        let again = s.rewind_since(dialect, partition.as_ref(), since);
        tracing::info!(
            since = %tweet_model::time::rfc3339(since),
            again,
            "backfill or recovery: the stream starts with tweets sent (or missed) since then"
        );
    }
    let conn = s.log_connection(&method, &uri, 200);
    let spec = StreamSpec {
        dialect,
        selection,
        delimited,
        keepalive: if v2 {
            s.config.keepalive_v2
        } else {
            s.config.keepalive_v1
        },
        conn,
        partition,
    };
    let (tx, mut rx) = mpsc::channel::<stream::Chunk>(8);
    s.active.fetch_add(1, Ordering::SeqCst);
    let shared = s.clone();
    let phantom_secs = plan.phantom_secs;
    let mut terminated = s.terminate_all.subscribe();
    // The body ends when the last sender goes: this one is held until the connection's end is
    // accounted for (a phantom in place before the client can see the stream end).
    let held = tx.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = stream::run(shared.clone(), spec, plan, tx) => {}
            _ = terminated.changed() => shared.log_end(conn, "terminated by DELETE /2/connections/all"),
        }
        shared.active.fetch_sub(1, Ordering::SeqCst);
        if let Some(secs) = phantom_secs {
            *shared.phantom_until.lock().expect("phantom") =
                Some(Instant::now() + Duration::from_secs_f64(secs));
        }
        drop(held);
    });
    let body = Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert("x-rate-limit-limit", HeaderValue::from_static("50"));
    h.insert("x-rate-limit-remaining", HeaderValue::from_static("49"));
    h.insert(
        "x-rate-limit-reset",
        HeaderValue::from_str(&(now_ms() / 1000 + 900).to_string()).expect("digits"),
    );
    r
}

async fn rules_list(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    if !bearer_ok(&s, &headers) {
        return error_response(401, true, false, None);
    }
    let param = |name: &str| q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let max_results = match param("max_results").map(str::parse::<usize>) {
        None => 1000,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => {
            return json_response(
                400,
                json!({"errors": [{"parameters": {"max_results": [param("max_results")]}, "message": "The `max_results` query parameter value is not between 1 and 1000"}],
                    "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.", "type": "https://api.twitter.com/2/problems/invalid-request"}),
            )
        }
    };
    let page = max_results.min(s.config.rules_page_size.max(1));
    match s
        .rules
        .lock()
        .expect("rules")
        .list_page(page, param("pagination_token"))
    {
        Some(body) => json_response(200, body),
        None => json_response(
            400,
            json!({"errors": [{"message": "The `pagination_token` query parameter value is invalid"}],
                "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.", "type": "https://api.twitter.com/2/problems/invalid-request"}),
        ),
    }
}

/// `GET /2/connections`: the app's open streaming connections.
async fn connections_list(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !bearer_ok(&s, &headers) {
        return error_response(401, true, false, None);
    }
    let open = s.active.load(Ordering::SeqCst);
    let phantom = s.phantom_until.lock().expect("phantom").is_some();
    let data: Vec<Value> = (0..open + usize::from(phantom))
        .map(|i| json!({"endpoint_name": "stream", "status": "active", "stale": i >= open}))
        .collect();
    json_response(
        200,
        json!({"data": data, "meta": {"result_count": data.len()}}),
    )
}

/// `DELETE /2/connections/all`: ends every open stream and the stale one X still holds.
async fn connections_delete_all(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if !bearer_ok(&s, &headers) {
        return logged(&s, &method, &uri, error_response(401, true, false, None));
    }
    let stale = s.phantom_until.lock().expect("phantom").take().is_some();
    let open = s.active.load(Ordering::SeqCst);
    s.terminate_all.send_modify(|n| *n += 1);
    let killed = open + usize::from(stale);
    logged(
        &s,
        &method,
        &uri,
        json_response(200, json!({"data": {"killed_connections": killed}})),
    )
}

async fn rules_post(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    if !bearer_ok(&s, &headers) {
        return error_response(401, true, false, None);
    }
    let flag = |name: &str| q.iter().any(|(k, v)| k == name && v == "true");
    let dry_run = flag("dry_run") && !s.config.ignore_dry_run;
    let mut rules = s.rules.lock().expect("rules");
    if flag("delete_all") {
        let (status, body) = rules.delete(None, dry_run);
        return json_response(status, body);
    }
    let parsed: Result<Value, _> = serde_json::from_slice(&body);
    let invalid = |detail: &str| {
        json_response(
            400,
            json!({"errors": [{"message": detail}], "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.", "type": "https://api.twitter.com/2/problems/invalid-request"}),
        )
    };
    let Ok(v) = parsed else {
        return invalid("Request body is not valid JSON");
    };
    match (v.get("add"), v.get("delete")) {
        (Some(Value::Array(adds)), None) => {
            let (status, body) = rules.add(adds, dry_run);
            json_response(status, body)
        }
        (None, Some(del)) => {
            let ids: Vec<String> = del["ids"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if ids.is_empty() {
                return invalid("delete.ids must be a non-empty array of rule ids");
            }
            let (status, body) = rules.delete(Some(&ids), dry_run);
            json_response(status, body)
        }
        _ => invalid("The request must contain exactly one of `add` or `delete`"),
    }
}

async fn token(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let creds = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(oauth::parse_basic);
    let grant = oauth::parse_form(&String::from_utf8_lossy(&body));
    let c = &s.config.credentials;
    let ok = creds.is_some_and(|(k, sec)| k == c.consumer_key && sec == c.consumer_secret);
    if !ok {
        return json_response(
            403,
            json!({"errors": [{"code": 99, "label": "authenticity_token_error", "message": "Unable to verify your credentials"}]}),
        );
    }
    if !grant
        .iter()
        .any(|(k, v)| k == "grant_type" && v == "client_credentials")
    {
        return json_response(
            403,
            json!({"errors": [{"code": 170, "label": "forbidden_missing_parameter", "message": "Missing required parameter: grant_type"}]}),
        );
    }
    json_response(
        200,
        json!({"token_type": "bearer", "access_token": c.bearer_token}),
    )
}

async fn v1_stream(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let is_form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let body_text = String::from_utf8_lossy(&body).into_owned();
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let verdict = s.verifier.verify(&SignedRequest {
        method: method.as_str(),
        scheme: "http",
        host,
        path: uri.path(),
        query: uri.query(),
        form_body: is_form.then_some(body_text.as_str()),
        authorization: headers.get("authorization").and_then(|v| v.to_str().ok()),
        now_secs: now_ms() / 1000,
    });
    if let Err(reason) = verdict {
        let r = json_response(401, json!({"errors": [{"code": 32, "message": reason}]}));
        return logged(&s, &method, &uri, r);
    }
    let mut params = uri.query().map(oauth::parse_form).unwrap_or_default();
    if is_form {
        params.extend(oauth::parse_form(&body_text));
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let delimited = get("delimited").as_deref() == Some("length");
    let selection = if uri.path().ends_with("filter.json") {
        let track: Vec<Vec<String>> = get("track")
            .map(|t| {
                t.split(',')
                    .map(|alt| {
                        alt.split_whitespace()
                            .map(|w| w.to_lowercase())
                            .collect::<Vec<_>>()
                    })
                    .filter(|alt| !alt.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let follow: Vec<String> = get("follow")
            .map(|f| {
                f.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if track.is_empty() && follow.is_empty() && get("locations").is_none() {
            let r = json_response(
                406,
                serde_json::from_str(&error_body(406, false, false)).unwrap_or(Value::Null),
            );
            return logged(&s, &method, &uri, r);
        }
        let coordinates: Vec<Option<f64>> = get("locations")
            .map(|l| l.split(',').map(|x| x.trim().parse().ok()).collect())
            .unwrap_or_default();
        if !coordinates.len().is_multiple_of(4) || coordinates.iter().any(Option::is_none) {
            let r = json_response(
                406,
                serde_json::from_str(&error_body(406, false, false)).unwrap_or(Value::Null),
            );
            return logged(&s, &method, &uri, r);
        }
        if track.len() > 400 || follow.len() > 5000 || coordinates.len() / 4 > 25 {
            let r = json_response(
                413,
                serde_json::from_str(&error_body(413, false, false)).unwrap_or(Value::Null),
            );
            return logged(&s, &method, &uri, r);
        }
        let language = get("language")
            .map(|l| l.split(',').map(|x| x.trim().to_string()).collect())
            .unwrap_or_default();
        Selection::V1Filter {
            track,
            follow,
            language,
        }
    } else {
        let language = get("language")
            .map(|l| l.split(',').map(|x| x.trim().to_string()).collect())
            .unwrap_or_default();
        Selection::V1Filter {
            track: Vec::new(),
            follow: Vec::new(),
            language,
        }
    };
    open_stream(s, method, uri, Dialect::V1, selection, delimited)
}

async fn control_log(State(s): State<Arc<Shared>>) -> Response {
    let log = s.log.lock().expect("log").clone();
    json_response(200, serde_json::to_value(log).unwrap_or(Value::Null))
}

async fn control_plans(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let plans: Result<Vec<ConnectionPlan>, _> = serde_json::from_slice(&body)
        .or_else(|_| serde_json::from_slice::<ConnectionPlan>(&body).map(|p| vec![p]));
    match plans {
        Ok(plans) => {
            let n = plans.len();
            s.plans.lock().expect("plans").extend(plans);
            json_response(200, json!({"queued": n}))
        }
        Err(e) => json_response(400, json!({"error": e.to_string()})),
    }
}
