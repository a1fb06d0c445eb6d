//! The HTTP server: X's v2 and v1.1 stream endpoints, the v2 rules API, `/oauth2/token`, and
//! the emulator's own control endpoints (`/_emulator/log`, `/_emulator/plans`).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodRouter};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::corpus::Dialect;
use crate::faults::{error_body, now_ms, ConnectionPlan};
use crate::oauth::{self, SignedRequest};
use crate::state::{ConnectionRecord, EmulatorConfig, Partition, Selection, Shared, StreamSpec};
use crate::stream;
use crate::wire::{CountingListener, Wire};

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
        let listener = CountingListener {
            listener,
            send_buffer: config.send_buffer,
        };
        let shared = Arc::new(Shared::new(config));
        let app = router(shared.clone()).into_make_service_with_connect_info::<Wire>();
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

    /// The ids sent on the connections to `path` (a stream's tweets, or a compliance stream's
    /// event keys), in order.
    pub fn sent_on(&self, path: &str) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|c| c.path == path)
            .flat_map(|c| c.sent)
            .collect()
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
        self.shared.partitions_exhausted(path, partitions)
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
        .route("/subscribe", get(crate::jetstream::subscribe))
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

async fn v2_filtered(State(s): State<Arc<Shared>>, head: Head, headers: HeaderMap) -> Response {
    if !bearer_ok(&s, &headers) {
        return head.logged(&s, error_response(401, true, false, None));
    }
    if s.rules.lock().expect("rules").rules().is_empty() {
        return head.logged(&s, error_response(409, true, false, None));
    }
    open_stream(s, head, Dialect::V2, Selection::Rules, false)
}

async fn v2_sample(State(s): State<Arc<Shared>>, head: Head, headers: HeaderMap) -> Response {
    if !bearer_ok(&s, &headers) {
        return head.logged(&s, error_response(401, true, false, None));
    }
    open_stream(s, head, Dialect::V2, Selection::Sample, false)
}

async fn v2_sample10(
    State(s): State<Arc<Shared>>,
    head: Head,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    if !bearer_ok(&s, &headers) {
        return head.logged(&s, error_response(401, true, false, None));
    }
    if let Err(body) = partition_param(q.as_slice(), 2) {
        return head.logged(&s, json_response(400, body));
    }
    open_stream(s, head, Dialect::V2, Selection::Sample, false)
}

/// `GET /2/tweets/firehose/stream/lang/{en,ja,ko,pt}?partition=N`: one language's posts,
/// in 8 partitions for English, 2 for the others.
async fn v2_firehose_lang(
    State(s): State<Arc<Shared>>,
    Path(lang): Path<String>,
    head: Head,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let of = match lang.as_str() {
        "en" => 8,
        "ja" | "ko" | "pt" => 2,
        _ => return head.logged(&s, error_response(404, true, false, None)),
    };
    partitioned(s, head, headers, &q, Selection::Lang(lang), of)
}

/// `GET` of a stream in `of` partitions: the firehose (`Sample`, 20), the compliance streams
/// (4 each).
fn partitioned_stream(selection: Selection, of: u8) -> MethodRouter<Arc<Shared>> {
    get(
        move |State(s): State<Arc<Shared>>,
              head: Head,
              headers: HeaderMap,
              Query(q): Query<Vec<(String, String)>>| {
            let selection = selection.clone();
            async move { partitioned(s, head, headers, &q, selection, of) }
        },
    )
}

/// The required `partition` query parameter of a stream in `of` partitions, or the body of
/// X's 400 answer.
fn partition_param(q: &[(String, String)], of: u8) -> Result<u8, Value> {
    let given = q
        .iter()
        .find(|(k, _)| k == "partition")
        .map(|(_, v)| v.as_str());
    // Only the plain digits of a partition that exists (not `01`, `+1`).
    given
        .and_then(|v| v.parse::<u8>().ok().filter(|i| i.to_string() == v))
        .filter(|i| (1..=of).contains(i))
        .ok_or_else(|| {
            let range = if of == 2 {
                "1 or 2".to_string()
            } else {
                format!("between 1 and {of}")
            };
            json!({"errors": [{"parameters": {"partition": [given]}, "message": format!("The `partition` query parameter is required and must be {range}")}],
                    "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.", "type": "https://api.twitter.com/2/problems/invalid-request"})
        })
}

/// A partitioned stream's connection: its `partition` (required, 1 to `of`) and its share.
fn partitioned(
    s: Arc<Shared>,
    head: Head,
    headers: HeaderMap,
    q: &[(String, String)],
    selection: Selection,
    of: u8,
) -> Response {
    if !bearer_ok(&s, &headers) {
        return head.logged(&s, error_response(401, true, false, None));
    }
    let index = match partition_param(q, of) {
        Ok(index) => index,
        Err(body) => return head.logged(&s, json_response(400, body)),
    };
    let partition = Partition {
        stream: head.uri.path().to_string(),
        index,
        of,
    };
    // The stream's partitions exist from its first connection on (`exhausted` waits for all).
    s.partition_cursor(&partition);
    open_partition(s, head, Dialect::V2, selection, false, Some(partition))
}

fn logged(s: &Shared, method: &Method, uri: &Uri, r: Response) -> Response {
    s.log_connection(method, uri, r.status().as_u16());
    r
}

/// A stream request's method and URI, and what its connection's socket has taken.
struct Head {
    method: Method,
    uri: Uri,
    wire: Wire,
}

impl Head {
    fn logged(&self, s: &Shared, r: Response) -> Response {
        logged(s, &self.method, &self.uri, r)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Head {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ConnectInfo(wire) = ConnectInfo::<Wire>::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "served without a CountingListener",
                )
            })?;
        Ok(Head {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            wire,
        })
    }
}

fn open_stream(
    s: Arc<Shared>,
    head: Head,
    dialect: Dialect,
    selection: Selection,
    delimited: bool,
) -> Response {
    open_partition(s, head, dialect, selection, delimited, None)
}

fn open_partition(
    s: Arc<Shared>,
    head: Head,
    dialect: Dialect,
    selection: Selection,
    delimited: bool,
    partition: Option<Partition>,
) -> Response {
    let v2 = dialect == Dialect::V2;
    if let Some(refused) = too_many_connections(&s, v2) {
        return head.logged(&s, refused);
    }
    let plan = s.next_plan();
    if let Some(status) = plan.status {
        return head.logged(&s, planned_error(&plan, status, v2));
    }
    if let Some(n) = plan.missed {
        s.skip_missed(dialect, partition.as_ref(), n);
    }
    rewind(&s, &head.uri, dialect, partition.as_ref());
    let conn = s.log_connection(&head.method, &head.uri, 200);
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
        wire: head.wire,
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

/// A phantom connection (kept after an abrupt disconnect) or the connection cap: the
/// TooManyConnections refusal, its reset announced for when the phantom goes away.
fn too_many_connections(s: &Shared, v2: bool) -> Option<Response> {
    let phantom_left = s
        .phantom_until
        .lock()
        .expect("phantom")
        .and_then(|t| t.checked_duration_since(Instant::now()));
    let max = s.config.max_connections;
    if phantom_left.is_none() && (max == 0 || s.active.load(Ordering::SeqCst) < max) {
        return None;
    }
    let reset_in = phantom_left.map(|d| d.as_secs() + 1).unwrap_or(1);
    Some(error_response(
        if v2 { 429 } else { 420 },
        v2,
        v2,
        Some(reset_in),
    ))
}

/// `backfill_minutes` or `start_time`: the stream starts again with the tweets sent (or
/// missed) since then.
fn rewind(s: &Shared, uri: &Uri, dialect: Dialect, partition: Option<&Partition>) {
    let query = uri.query().unwrap_or("");
    let backfill = crate::query::param(query, "backfill_minutes")
        .and_then(|m| m.parse::<i64>().ok())
        .filter(|m| *m > 0)
        .map(|m| now_ms() - m * 60_000);
    let start_time =
        crate::query::param(query, "start_time").and_then(|t| tweet_model::time::parse_rfc3339(&t));
    if let Some(since) = backfill.into_iter().chain(start_time).min() {
        let again = s.rewind_since(dialect, partition, since);
        tracing::info!(
            since = %tweet_model::time::rfc3339(since),
            again,
            "backfill or recovery: the stream starts with tweets sent (or missed) since then"
        );
    }
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
    head: Head,
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
        method: head.method.as_str(),
        scheme: "http",
        host,
        path: head.uri.path(),
        query: head.uri.query(),
        form_body: is_form.then_some(body_text.as_str()),
        authorization: headers.get("authorization").and_then(|v| v.to_str().ok()),
        now_secs: now_ms() / 1000,
    });
    if let Err(reason) = verdict {
        let r = json_response(401, json!({"errors": [{"code": 32, "message": reason}]}));
        return head.logged(&s, r);
    }
    let mut params = head.uri.query().map(oauth::parse_form).unwrap_or_default();
    if is_form {
        params.extend(oauth::parse_form(&body_text));
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let delimited = get("delimited").as_deref() == Some("length");
    let selection = match v1_selection(head.uri.path().ends_with("filter.json"), get) {
        Ok(selection) => selection,
        Err(status) => {
            let body = serde_json::from_str(&error_body(status, false, false));
            let r = json_response(status, body.unwrap_or(Value::Null));
            return head.logged(&s, r);
        }
    };
    open_stream(s, head, Dialect::V1, selection, delimited)
}

/// The tweets a v1.1 request selects (`track`, `follow`, `locations`, `language`; the sample
/// stream only `language`), or the status X refuses it with: 406 for nothing to filter on or
/// bad locations, 413 for too much.
fn v1_selection(filter: bool, get: impl Fn(&str) -> Option<String>) -> Result<Selection, u16> {
    let list = |k: &str| -> Vec<String> {
        get(k)
            .map(|v| {
                v.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    let language = list("language");
    if !filter {
        return Ok(Selection::V1Filter {
            track: Vec::new(),
            follow: Vec::new(),
            language,
        });
    }
    let track: Vec<Vec<String>> = list("track")
        .iter()
        .map(|alt| alt.split_whitespace().map(str::to_lowercase).collect())
        .collect();
    let follow = list("follow");
    if track.is_empty() && follow.is_empty() && get("locations").is_none() {
        return Err(406);
    }
    let coordinates: Vec<Option<f64>> = get("locations")
        .map(|l| l.split(',').map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_default();
    if !coordinates.len().is_multiple_of(4) || coordinates.iter().any(Option::is_none) {
        return Err(406);
    }
    if track.len() > 400 || follow.len() > 5000 || coordinates.len() / 4 > 25 {
        return Err(413);
    }
    Ok(Selection::V1Filter {
        track,
        follow,
        language,
    })
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
