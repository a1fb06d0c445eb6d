//! The live streams (v2 filtered, sample, sample10, firehose and language firehoses; v1.1
//! sample and filter): connect, read with a stall timer, decode, hand messages to [`Ingest`],
//! and reconnect by the official policy ([`crate::backoff`]) until shutdown or a configuration
//! error. A partitioned stream (firehose, compliance) is one connection per partition, each
//! with its own reconnect state, stall timer and metrics (labelled `partition`), all into one
//! [`Ingest`] (one deduplication, one topic).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Result};
use connector_runtime::metrics::{Counter, FloatCounter, FloatGauge, Gauge, Ready};
use connector_runtime::SourceContext;

use crate::auth::{form, Auth};
use crate::backoff::{is_fatal_status, Backoff, Failure};
use crate::config::{Mode, TwitterConfig};
use crate::framing::{Decoder, Frame, Framing};
use crate::ingest::{Ingest, Next};
use crate::problem::Problem;
use crate::resume::Resume;
use crate::rules::RulesApi;

/// Where and how to connect for a mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub method: &'static str,
    pub url: String,
    pub params: Vec<(String, String)>,
    /// Parameters go in a form body (v1.1 filter) instead of the query.
    pub form_body: bool,
    pub framing: Framing,
    /// Which partition this connection reads, of a partitioned stream: `7` (firehose), or
    /// `tweets-compliance-2`; the `partition` label of its metrics.
    pub partition: Option<String>,
}

impl Endpoint {
    /// The connections a config makes: the mode's (one, or one per partition), then one per
    /// compliance stream partition.
    pub fn for_config(cfg: &TwitterConfig) -> Vec<Self> {
        let mut all = Vec::new();
        if cfg.mode != Mode::Compliance {
            let one = Self::single(cfg);
            let partitions = cfg.partitions_to_read();
            all.extend(partitions.iter().map(|p| one.partition(*p, p.to_string())));
            if partitions.is_empty() {
                all.push(one);
            }
        }
        let base = cfg.base_url.trim_end_matches('/');
        let compliance = cfg.compliance.clone().unwrap_or_default();
        for (kind, partitions) in [("tweets", compliance.tweets), ("users", compliance.users)] {
            let stream = Self {
                method: "GET",
                url: format!("{base}/2/{kind}/compliance/stream"),
                params: Vec::new(),
                form_body: false,
                framing: Framing::Lines,
                partition: None,
            };
            all.extend(
                partitions
                    .into_iter()
                    .map(|p| stream.partition(p, format!("{kind}-compliance-{p}"))),
            );
        }
        all
    }

    /// This endpoint's connection to partition `p`.
    fn partition(&self, p: u8, label: String) -> Self {
        let mut e = self.clone();
        e.params.insert(0, ("partition".into(), p.to_string()));
        e.partition = Some(label);
        e
    }

    fn single(cfg: &TwitterConfig) -> Self {
        let base = cfg.base_url.trim_end_matches('/');
        let mut params: Vec<(String, String)> = Vec::new();
        let mut push = |k: &str, v: &str| {
            if !v.is_empty() {
                params.push((k.to_string(), v.to_string()));
            }
        };
        let (method, path, form_body) = match cfg.mode {
            Mode::Filtered
            | Mode::Sample
            | Mode::Sample10
            | Mode::Firehose
            | Mode::FirehoseLang => {
                if cfg.mode == Mode::Sample10 {
                    push("partition", &cfg.partition.unwrap_or(1).to_string());
                }
                push("tweet.fields", &cfg.tweet_fields);
                push("expansions", &cfg.expansions);
                push("user.fields", &cfg.user_fields);
                push("media.fields", &cfg.media_fields);
                push("place.fields", &cfg.place_fields);
                push("poll.fields", cfg.poll_fields.as_deref().unwrap_or(""));
                let path = match cfg.mode {
                    Mode::Filtered => "/2/tweets/search/stream".to_string(),
                    Mode::Sample => "/2/tweets/sample/stream".to_string(),
                    Mode::Firehose => "/2/tweets/firehose/stream".to_string(),
                    Mode::FirehoseLang => format!(
                        "/2/tweets/firehose/stream/lang/{}",
                        cfg.lang.as_deref().unwrap_or("en")
                    ),
                    _ => "/2/tweets/sample10/stream".to_string(),
                };
                ("GET", path, false)
            }
            Mode::V1Sample | Mode::V1Filter => {
                if cfg.delimited {
                    push("delimited", "length");
                }
                if cfg.stall_warnings {
                    push("stall_warnings", "true");
                }
                push("language", &cfg.language.join(","));
                if cfg.mode == Mode::V1Filter {
                    push("track", &cfg.track.join(","));
                    push("follow", &cfg.follow.join(","));
                    push("locations", &cfg.locations.join(","));
                    ("POST", "/1.1/statuses/filter.json".to_string(), true)
                } else {
                    ("GET", "/1.1/statuses/sample.json".to_string(), false)
                }
            }
            Mode::Replay | Mode::Compliance | Mode::Bluesky => ("GET", String::new(), false),
        };
        let framing = if cfg.mode.is_v1() && cfg.delimited {
            Framing::Length
        } else {
            Framing::Lines
        };
        Self {
            method,
            url: format!("{base}{path}"),
            params,
            form_body,
            framing,
            partition: None,
        }
    }

    /// The request, with `resume` (backfill or recovery) after the endpoint's parameters.
    fn request(
        &self,
        client: &reqwest::Client,
        auth: &Auth,
        resume: &[(String, String)],
    ) -> reqwest::RequestBuilder {
        let params: Vec<(String, String)> = self.params.iter().chain(resume).cloned().collect();
        let authorization = auth.header(self.method, &self.url, &params);
        let query = form(&params);
        let req = if self.form_body {
            client
                .post(&self.url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(query)
        } else if query.is_empty() {
            client.get(&self.url)
        } else {
            client.get(format!("{}?{query}", self.url))
        };
        req.header("authorization", authorization)
    }
}

/// What one frame did.
enum Handled {
    /// A tweet written.
    Tweet,
    /// Anything else (a keep-alive, an event, a duplicate, a bad message counted).
    Other,
    /// A message said to connect again (e.g. an operational disconnect).
    Reconnect(String),
    /// The records' queue closed: the connector is stopping.
    QueueClosed,
}

enum Outcome {
    Shutdown,
    Fatal(anyhow::Error),
    Failed(Failure, String),
    /// 429 `TooManyConnections`: a rate limit, unless the stale connection can be cleared.
    TooManyConnections(Failure, String),
}

/// The `cause` labels of `reconnects_total`: [`Failure::cause`]'s and a cleared stale connection.
const RECONNECT_CAUSES: [&str; 5] = [
    "dropped",
    "network",
    "http",
    "rate_limited",
    "stale_connection_cleared",
];

/// One connection's metrics; labelled `partition` on a partitioned stream.
pub(crate) struct StreamMetrics {
    pub(crate) connected: Gauge,
    /// `/ready` waits for every connection.
    pub(crate) ready: Ready,
    pub(crate) backoff: FloatGauge,
    pub(crate) keepalives: Counter,
    pub(crate) stalls: Counter,
    pub(crate) connects: Counter,
    /// Seconds from a connection's end to the next one's start.
    pub(crate) without_stream: FloatCounter,
    /// Tweets from before a reconnection that X sent again and were new here.
    pub(crate) recovered: Counter,
    partition: Option<String>,
    ctx: SourceContext,
}

impl StreamMetrics {
    /// The metrics of one connection to `stream` ("X stream", "Bluesky Jetstream").
    pub(crate) fn new(ctx: &SourceContext, stream: &str, partition: Option<String>) -> Self {
        let m = &ctx.metrics;
        let l: Vec<(&str, &str)> = partition
            .as_deref()
            .map(|p| vec![("partition", p)])
            .unwrap_or_default();
        let what = match &partition {
            Some(p) => format!("{stream} connected (partition {p})"),
            None => format!("{stream} connected"),
        };
        let metrics = Self {
            connected: m.gauge_with("connected", &l, "1 while a stream connection is open"),
            ready: m.readiness(&what),
            backoff: m.float_gauge_with("backoff_seconds", &l, "the current wait before reconnecting"),
            keepalives: m.counter_with("keepalives_total", &l, "keep-alive newlines received"),
            stalls: m.counter_with(
                "stalls_total",
                &l,
                "connections closed because nothing arrived in time",
            ),
            connects: m.counter_with("connections_total", &l, "stream connection attempts"),
            without_stream: m.float_counter_with(
                "seconds_without_stream_total",
                &l,
                "time between a connection's end and the next one's start",
            ),
            recovered: m.counter_with(
                "tweets_recovered_total",
                &l,
                "tweets from before a reconnection, sent again by backfill or recovery, that were new",
            ),
            partition,
            ctx: ctx.clone(),
        };
        // Every cause is served from the start, at 0: dashboards and alerts see a series.
        for cause in RECONNECT_CAUSES {
            metrics.reconnects(cause);
        }
        metrics
    }

    /// Wait `delay` before connecting again, shown by the backoff gauge. False on shutdown.
    pub(crate) async fn back_off(&self, delay: Duration) -> bool {
        let shutdown = &self.ctx.shutdown;
        if !delay.is_zero() {
            self.backoff.set(delay.as_secs_f64());
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.cancelled() => return false,
            }
            self.backoff.set(0.0);
        }
        !shutdown.is_cancelled()
    }

    pub(crate) fn reconnect(&self, cause: &str) {
        self.reconnects(cause).inc();
    }

    fn reconnects(&self, cause: &str) -> Counter {
        let mut l = vec![("cause", cause)];
        if let Some(p) = &self.partition {
            l.push(("partition", p));
        }
        self.ctx
            .metrics
            .counter_with("reconnects_total", &l, "reconnects by cause")
    }
}

/// What every connection of a run shares.
struct Streams {
    client: reqwest::Client,
    auth: Auth,
    cfg: TwitterConfig,
    ctx: SourceContext,
    ingest: tokio::sync::Mutex<Ingest>,
    /// The time of the last tweet in the topic at start: where a restart takes up.
    restart_from: Option<SystemTime>,
}

/// A start-up call (the token exchange, the rules) tried again while X cannot be reached (no
/// route, DNS, refused, timed out), with the network-error backoff of the streams, as a lost
/// connection would be: the connector may start before the network does. `None` after a
/// shutdown signal; answers of X (a status) are returned as they are.
async fn while_unreachable<T, F, Fut>(
    what: &str,
    cfg: &TwitterConfig,
    ctx: &SourceContext,
    mut call: F,
) -> Result<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut backoff = Backoff::new(cfg.reconnect.clone());
    loop {
        let e = match call().await {
            Ok(v) => return Ok(Some(v)),
            Err(e) => e,
        };
        let unreachable = e.chain().any(|c| {
            c.downcast_ref::<reqwest::Error>()
                .is_some_and(|r| r.is_connect() || r.is_timeout())
        });
        let delay = backoff.next_delay(&Failure::Network, SystemTime::now());
        if !unreachable
            || backoff
                .max_attempts()
                .is_some_and(|m| backoff.consecutive >= m)
        {
            return Err(e);
        }
        tracing::warn!(error = %format!("{e:#}"), retry_in = ?delay, "{what}: X cannot be reached; trying again");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = ctx.shutdown.cancelled() => return Ok(None),
        }
    }
}

/// Read a live stream until shutdown (Ok) or a configuration error (Err).
pub async fn run(cfg: TwitterConfig, ctx: SourceContext, ingest: Ingest) -> Result<()> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .tcp_keepalive(Duration::from_secs(30))
        .user_agent(concat!("twitter-source/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let auth = if cfg.mode.is_v1() {
        Auth::oauth1(&cfg.auth)?
    } else {
        let exchange = || Auth::app_only(&client, &cfg.base_url, &cfg.auth);
        let Some(auth) = while_unreachable("the token exchange", &cfg, &ctx, exchange).await?
        else {
            return Ok(());
        };
        auth
    };
    if cfg.mode == Mode::Filtered {
        let api = RulesApi {
            client: &client,
            url: format!(
                "{}/2/tweets/search/stream/rules",
                cfg.base_url.trim_end_matches('/')
            ),
            auth: &auth,
        };
        let reconcile = || api.reconcile(&cfg.rules, cfg.keep_unowned_rules);
        if while_unreachable("the rules", &cfg, &ctx, reconcile)
            .await?
            .is_none()
        {
            return Ok(());
        }
    }
    let endpoints = Endpoint::for_config(&cfg);
    if endpoints.len() > 1 {
        tracing::info!(
            connections = endpoints.len(),
            "one connection per partition"
        );
    }
    let restart_from = ingest
        .last_tweet_ms
        .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64));
    let streams = Arc::new(Streams {
        client,
        auth,
        cfg,
        ctx,
        ingest: tokio::sync::Mutex::new(ingest),
        restart_from,
    });
    // The first configuration error ends every connection.
    futures_util::future::try_join_all(
        endpoints
            .into_iter()
            .map(|e| keep_reading(streams.clone(), e)),
    )
    .await?;
    Ok(())
}

/// One connection (of a partition, or the stream's only one), reconnected until shutdown.
async fn keep_reading(streams: Arc<Streams>, endpoint: Endpoint) -> Result<()> {
    let Streams { cfg, ctx, .. } = &*streams;
    let stall = cfg.stall_timeout();
    let mut backoff = Backoff::new(cfg.reconnect.clone());
    let mut decoder = Decoder::new(endpoint.framing, cfg.max_message_bytes);
    let m = StreamMetrics::new(ctx, "X stream", endpoint.partition.clone());
    let mut delay = Duration::ZERO;
    let mut first = true;
    // `DELETE /2/connections/all` is tried once per run of refusals, not in a loop.
    let mut cleared_stale = false;
    let resume = Resume::new(cfg);
    let mut last_tweet: Option<SystemTime> = streams.restart_from;
    let mut ended_at: Option<std::time::Instant> = None;
    loop {
        if !delay.is_zero() {
            tracing::info!(delay = ?delay, partition = endpoint.partition.as_deref(), "reconnecting after a wait");
        }
        if !m.back_off(delay).await {
            return Ok(());
        }
        if !first {
            tracing::info!(url = %endpoint.url, partition = endpoint.partition.as_deref(), "reconnecting");
        }
        first = false;
        m.connects.inc();
        if let Some(at) = ended_at.take() {
            m.without_stream.add(at.elapsed().as_secs_f64());
        }
        let now = SystemTime::now();
        let resume = resume.params(last_tweet, now);
        let connection = Connection {
            streams: &streams,
            endpoint: &endpoint,
            stall,
            m: &m,
            resume: &resume,
            resumed_at_ms: Resume::asks_again(&resume).then(|| {
                now.duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0)
            }),
        };
        let outcome = connection
            .read(&mut decoder, &mut backoff, &mut last_tweet)
            .await;
        m.connected.set(0);
        m.ready.set(false);
        ended_at = Some(std::time::Instant::now());
        let (failure, reason) = match outcome {
            Outcome::Shutdown => return Ok(()),
            Outcome::Fatal(e) => return Err(e),
            Outcome::TooManyConnections(failure, reason)
                if cfg.clear_stale_connections && !cleared_stale =>
            {
                cleared_stale = true;
                if clear_stale_connections(&streams, &endpoint, &m, &reason).await {
                    delay = Duration::ZERO;
                    continue;
                }
                (failure, reason)
            }
            Outcome::TooManyConnections(failure, reason) | Outcome::Failed(failure, reason) => {
                (failure, reason)
            }
        };
        if failure == (Failure::Dropped { delivered: true }) {
            cleared_stale = false;
        }
        if let Some(e) = backoff.give_up(&reason) {
            return Err(e);
        }
        delay = backoff.next_delay(&failure, SystemTime::now());
        m.reconnect(failure.cause());
        tracing::warn!(cause = failure.cause(), %reason, partition = endpoint.partition.as_deref(), next_attempt_in = ?delay, "stream connection ended");
    }
}

/// After X refused the connection with TooManyConnections: end the app's stale connections
/// with `DELETE /2/connections/all`. True when it did (reconnect at once).
async fn clear_stale_connections(
    streams: &Streams,
    endpoint: &Endpoint,
    m: &StreamMetrics,
    reason: &str,
) -> bool {
    let cfg = &streams.cfg;
    match crate::connections::clear_all(&streams.client, &cfg.base_url, &streams.auth).await {
        Ok(answer) => {
            m.reconnect("stale_connection_cleared");
            tracing::warn!(%reason, %answer, partition = endpoint.partition.as_deref(), "X refused the connection (TooManyConnections): ended the app's stale connections with DELETE /2/connections/all; reconnecting at once");
            true
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "could not clear the stale connections; backing off as from a rate limit");
            false
        }
    }
}

/// One connection attempt and its reading.
struct Connection<'a> {
    streams: &'a Streams,
    endpoint: &'a Endpoint,
    stall: Duration,
    m: &'a StreamMetrics,
    /// The backfill or recovery parameters of this attempt.
    resume: &'a [(String, String)],
    /// When it asks for tweets again: the time they are from before (Unix ms).
    resumed_at_ms: Option<i64>,
}

impl Connection<'_> {
    /// Connect, then read until the stream ends; `last_tweet` is when a tweet last came.
    async fn read(
        &self,
        decoder: &mut Decoder,
        backoff: &mut Backoff,
        last_tweet: &mut Option<SystemTime>,
    ) -> Outcome {
        match self.connect().await {
            Ok(resp) => self.read_body(resp, decoder, backoff, last_tweet).await,
            Err(outcome) => outcome,
        }
    }

    /// The stream's response, or what its absence or error status means.
    async fn connect(&self) -> Result<reqwest::Response, Outcome> {
        let (endpoint, stall) = (self.endpoint, self.stall);
        let Streams {
            client, auth, ctx, ..
        } = self.streams;
        let send = tokio::time::timeout(stall, endpoint.request(client, auth, self.resume).send());
        let resp = tokio::select! {
            r = send => r,
            _ = ctx.shutdown.cancelled() => return Err(Outcome::Shutdown),
        };
        let resp = match resp {
            Err(_) => {
                return Err(Outcome::Failed(
                    Failure::Network,
                    format!("no response within {stall:?}"),
                ))
            }
            Ok(Err(e)) => return Err(Outcome::Failed(Failure::Network, format!("{e}"))),
            Ok(Ok(r)) => r,
        };
        let status = resp.status().as_u16();
        if status == 200 {
            return Ok(resp);
        }
        let reset_at = resp
            .headers()
            .get("x-rate-limit-reset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        let body = tokio::time::timeout(Duration::from_secs(10), resp.text())
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or_default();
        Err(endpoint.refused(status, &Problem::parse(&body), reset_at))
    }

    /// Read frames into the ingest until the stream ends, stalls or shutdown.
    async fn read_body(
        &self,
        mut resp: reqwest::Response,
        decoder: &mut Decoder,
        backoff: &mut Backoff,
        last_tweet: &mut Option<SystemTime>,
    ) -> Outcome {
        let (endpoint, stall, m) = (self.endpoint, self.stall, self.m);
        let ctx = &self.streams.ctx;
        m.connected.set(1);
        m.ready.set(true);
        tracing::info!(url = %endpoint.url, partition = endpoint.partition.as_deref(), "stream connected");
        decoder.reset();
        // The backoff starts over only once this connection proved healthy: it delivered
        // tweets, or stayed up a minute. Keep-alives alone do not count: a server that accepts
        // and drops at once (X answers a reconnect storm with 429 TooManyConnections) is
        // backed off from.
        let mut delivered = false;
        let connected_at = std::time::Instant::now();
        loop {
            let chunk = tokio::select! {
                biased;
                _ = ctx.shutdown.cancelled() => return Outcome::Shutdown,
                c = tokio::time::timeout(stall, resp.chunk()) => c,
            };
            let bytes = match chunk {
                Err(_) => {
                    m.stalls.inc();
                    return Outcome::Failed(
                        Failure::Dropped { delivered },
                        format!("stall: nothing, not even a keep-alive, for {stall:?}"),
                    );
                }
                Ok(Err(e)) => {
                    return Outcome::Failed(
                        Failure::Dropped { delivered },
                        format!("read error: {e}"),
                    )
                }
                Ok(Ok(None)) => {
                    let lost = decoder.pending();
                    let why = if lost > 0 {
                        format!("the server closed the stream mid-message ({lost} bytes dropped)")
                    } else {
                        "the server closed the stream".to_string()
                    };
                    return Outcome::Failed(Failure::Dropped { delivered }, why);
                }
                Ok(Ok(Some(b))) => b,
            };
            decoder.feed(&bytes);
            while let Some(frame) = decoder.next_frame() {
                let tweet = match self.frame(frame, last_tweet).await {
                    Handled::Other => false,
                    Handled::Tweet => true,
                    Handled::Reconnect(reason) => {
                        return Outcome::Failed(Failure::Dropped { delivered }, reason)
                    }
                    Handled::QueueClosed => return Outcome::Shutdown,
                };
                if !delivered && (tweet || connected_at.elapsed() >= HEALTHY_AFTER) {
                    delivered = true;
                    backoff.delivered();
                }
            }
        }
    }

    /// Hand one frame to the ingest.
    async fn frame(&self, frame: Frame, last_tweet: &mut Option<SystemTime>) -> Handled {
        let (m, ingest) = (self.m, &self.streams.ingest);
        let msg = match frame {
            Frame::KeepAlive => {
                m.keepalives.inc();
                return Handled::Other;
            }
            Frame::Message(msg) => msg,
            skipped => {
                ingest.lock().await.m.skipped(&skipped);
                return Handled::Other;
            }
        };
        let mut ingest = ingest.lock().await;
        let before = ingest.m.tweets.get();
        let next = ingest.message(msg).await;
        let tweet = ingest.m.tweets.get() > before;
        if tweet {
            *last_tweet = Some(SystemTime::now());
            let from_before = self
                .resumed_at_ms
                .zip(ingest.last_tweet_ms)
                .is_some_and(|(resumed, t)| t < resumed);
            if from_before {
                m.recovered.inc();
            }
        }
        match next {
            Ok(Next::Continue) if tweet => Handled::Tweet,
            Ok(Next::Continue) => Handled::Other,
            Ok(Next::Reconnect(reason)) => Handled::Reconnect(reason),
            Err(_) => Handled::QueueClosed,
        }
    }
}

impl Endpoint {
    /// What an error status from this endpoint means: stop (a configuration error or a
    /// spent usage cap), or back off and retry.
    fn refused(&self, status: u16, problem: &Problem, reset_at: Option<SystemTime>) -> Outcome {
        if let Some(kind) = problem.unknown_type() {
            tracing::warn!(status, problem_type = kind, detail = %problem.summary, "X answered with a problem type this connector does not know");
        }
        if status == 429 && problem.is_usage_capped() {
            return Outcome::Fatal(anyhow!(problem.usage_cap_message()));
        }
        let detail = &problem.summary;
        if is_fatal_status(status) {
            let hint = match status {
                401 if self.framing == Framing::Length || self.url.contains("/1.1/") => {
                    " (check the four OAuth 1.0a keys, and this machine's clock)"
                }
                401 => " (check the bearer token)",
                409 => " (the app has no filtered-stream rules)",
                _ => "",
            };
            return Outcome::Fatal(anyhow!(
                "{} {} answered {status}: {detail}{hint}",
                self.method,
                self.url
            ));
        }
        let failure = if status == 420 || status == 429 {
            Failure::RateLimited { reset_at }
        } else {
            Failure::Http { status }
        };
        let reason = format!("HTTP {status}: {detail}");
        if problem.is_too_many_connections() {
            Outcome::TooManyConnections(failure, reason)
        } else {
            Outcome::Failed(failure, reason)
        }
    }
}

/// How long a connection must stay up, without tweets, to count as healthy.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> TwitterConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn endpoints_per_mode() {
        let one = |yaml: &str| {
            let mut all = Endpoint::for_config(&cfg(yaml));
            assert_eq!(all.len(), 1);
            all.remove(0)
        };
        let e = one("mode: filtered\nbase_url: http://h:1/\nbackfill_minutes: 2\n");
        assert!(
            !e.params.iter().any(|(k, _)| k == "backfill_minutes"),
            "backfill is the resume's, per connection"
        );
        assert_eq!(e.url, "http://h:1/2/tweets/search/stream");
        assert!(e
            .params
            .iter()
            .any(|(k, v)| k == "tweet.fields" && v.contains("note_tweet")));
        assert!(e.params.contains(&("expansions".into(), "author_id,referenced_tweets.id,referenced_tweets.id.author_id,attachments.media_keys,geo.place_id".into())));
        let e = one("mode: sample10\npartition: 2\n");
        assert_eq!(e.url, "https://api.x.com/2/tweets/sample10/stream");
        assert_eq!(e.params[0], ("partition".into(), "2".into()));
        let e = one("mode: v1-filter\ntrack: [rust, data model]\nfollow: ['12']\nlanguage: [en]\n");
        assert_eq!(
            (e.method, e.form_body, e.framing),
            ("POST", true, Framing::Length)
        );
        assert!(e
            .params
            .contains(&("track".into(), "rust,data model".into())));
        assert!(e.params.contains(&("stall_warnings".into(), "true".into())));
        let e = one("mode: v1-sample\ndelimited: false\n");
        assert_eq!((e.method, e.framing), ("GET", Framing::Lines));
        let fire = Endpoint::for_config(&cfg("mode: firehose\npartitions: [3, 7]\n"));
        assert_eq!(fire.len(), 2);
        assert_eq!(fire[1].url, "https://api.x.com/2/tweets/firehose/stream");
        assert_eq!(fire[1].params[0], ("partition".into(), "7".into()));
        assert_eq!(fire[1].partition.as_deref(), Some("7"));
        let with = Endpoint::for_config(&cfg(
            "mode: sample\ncompliance: {tweets: [1, 2], users: [4]}\nevents_topic: e\n",
        ));
        assert_eq!(
            with.len(),
            4,
            "the sample stream and 3 compliance partitions"
        );
        assert_eq!(with[2].url, "https://api.x.com/2/tweets/compliance/stream");
        assert_eq!(with[2].params, vec![("partition".into(), "2".into())]);
        assert_eq!(with[3].partition.as_deref(), Some("users-compliance-4"));
        let alone = Endpoint::for_config(&cfg(
            "mode: compliance\ncompliance: {users: [1]}\nevents_topic: e\n",
        ));
        assert_eq!(alone.len(), 1);
        assert_eq!(alone[0].url, "https://api.x.com/2/users/compliance/stream");
        let ja = Endpoint::for_config(&cfg("mode: firehose-lang\nlang: ja\n"));
        assert_eq!(
            ja.iter().map(|e| e.url.as_str()).collect::<Vec<_>>(),
            vec!["https://api.x.com/2/tweets/firehose/stream/lang/ja"; 2]
        );
    }
}
