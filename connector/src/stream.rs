//! The live streams (v2 filtered, sample, sample10; v1.1 sample and filter): connect, read
//! with a stall timer, decode, hand messages to [`Ingest`], and reconnect by the official
//! policy ([`crate::backoff`]) until shutdown or a configuration error.

use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Result};
use connector_runtime::metrics::{Counter, Gauge};
use connector_runtime::SourceContext;

use crate::auth::{form, Auth};
use crate::backoff::{is_fatal_status, Backoff, Failure};
use crate::config::{Mode, TwitterConfig};
use crate::framing::{Decoder, Frame, Framing};
use crate::ingest::{Ingest, Next};
use crate::message::excerpt;
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
}

impl Endpoint {
    pub fn for_config(cfg: &TwitterConfig) -> Self {
        let base = cfg.base_url.trim_end_matches('/');
        let mut params: Vec<(String, String)> = Vec::new();
        let mut push = |k: &str, v: &str| {
            if !v.is_empty() {
                params.push((k.to_string(), v.to_string()));
            }
        };
        let (method, path, form_body) = match cfg.mode {
            Mode::Filtered | Mode::Sample | Mode::Sample10 => {
                if cfg.mode == Mode::Sample10 {
                    push("partition", &cfg.partition.unwrap_or(1).to_string());
                }
                push("tweet.fields", &cfg.tweet_fields);
                push("expansions", &cfg.expansions);
                push("user.fields", &cfg.user_fields);
                push("media.fields", &cfg.media_fields);
                push("place.fields", &cfg.place_fields);
                push("poll.fields", cfg.poll_fields.as_deref().unwrap_or(""));
                if let Some(m) = cfg.backfill_minutes.filter(|m| *m > 0) {
                    push("backfill_minutes", &m.to_string());
                }
                let path = match cfg.mode {
                    Mode::Filtered => "/2/tweets/search/stream",
                    Mode::Sample => "/2/tweets/sample/stream",
                    _ => "/2/tweets/sample10/stream",
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
                    ("POST", "/1.1/statuses/filter.json", true)
                } else {
                    ("GET", "/1.1/statuses/sample.json", false)
                }
            }
            Mode::Replay => ("GET", "", false),
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
        }
    }

    fn request(&self, client: &reqwest::Client, auth: &Auth) -> reqwest::RequestBuilder {
        let authorization = auth.header(self.method, &self.url, &self.params);
        let query = form(&self.params);
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

/// The short reason of an X error body: v2 problem `title: detail`, or v1.1 `errors[].message`.
pub fn problem_detail(body: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return excerpt(body.as_bytes());
    };
    let mut parts = Vec::new();
    if let Some(t) = v["title"].as_str() {
        parts.push(t.to_string());
    }
    if let Some(d) = v["detail"].as_str() {
        parts.push(d.to_string());
    }
    if let Some(errors) = v["errors"].as_array() {
        for e in errors.iter().take(3) {
            if let Some(m) = e["message"].as_str().or_else(|| e["detail"].as_str()) {
                parts.push(m.to_string());
            }
        }
    }
    if let Some(c) = v["connection_issue"].as_str() {
        parts.push(format!("connection_issue: {c}"));
    }
    if parts.is_empty() {
        excerpt(body.as_bytes())
    } else {
        parts.join(": ")
    }
}

enum Outcome {
    Shutdown,
    Fatal(anyhow::Error),
    Failed(Failure, String),
}

struct StreamMetrics {
    connected: Gauge,
    backoff_ms: Gauge,
    keepalives: Counter,
    stalls: Counter,
    connects: Counter,
    ctx: SourceContext,
}

impl StreamMetrics {
    fn new(ctx: &SourceContext) -> Self {
        let m = &ctx.metrics;
        Self {
            connected: m.gauge("connected", "1 while a stream connection is open"),
            backoff_ms: m.gauge("backoff_ms", "the current wait before reconnecting"),
            keepalives: m.counter("keepalives_total", "keep-alive newlines received"),
            stalls: m.counter(
                "stalls_total",
                "connections closed because nothing arrived in time",
            ),
            connects: m.counter("connections_total", "stream connection attempts"),
            ctx: ctx.clone(),
        }
    }

    fn reconnect(&self, cause: &str) {
        self.ctx
            .metrics
            .counter_with(
                "reconnects_total",
                &[("cause", cause)],
                "reconnects by cause",
            )
            .inc();
    }
}

/// Read a live stream until shutdown (Ok) or a configuration error (Err).
pub async fn run(cfg: TwitterConfig, ctx: SourceContext, mut ingest: Ingest) -> Result<()> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .tcp_keepalive(Duration::from_secs(30))
        .user_agent(concat!("twitter-source/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let auth = if cfg.mode.is_v1() {
        Auth::oauth1(&cfg.auth)?
    } else {
        Auth::app_only(&client, &cfg.base_url, &cfg.auth).await?
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
        api.reconcile(&cfg.rules, cfg.keep_unowned_rules).await?;
    }
    let endpoint = Endpoint::for_config(&cfg);
    let stall = cfg.stall_timeout();
    let mut backoff = Backoff::new(cfg.reconnect.clone());
    let mut decoder = Decoder::new(endpoint.framing, cfg.max_message_bytes);
    let m = StreamMetrics::new(&ctx);
    let mut delay = Duration::ZERO;
    let mut first = true;
    loop {
        if !delay.is_zero() {
            m.backoff_ms.set(delay.as_millis() as u64);
            tracing::info!(delay = ?delay, "reconnecting after a wait");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = ctx.shutdown.cancelled() => return Ok(()),
            }
            m.backoff_ms.set(0);
        }
        if ctx.shutdown.is_cancelled() {
            return Ok(());
        }
        if !first {
            tracing::info!(url = %endpoint.url, "reconnecting");
        }
        first = false;
        m.connects.inc();
        let outcome = connect_and_read(
            &client,
            &auth,
            &endpoint,
            stall,
            &mut decoder,
            &mut ingest,
            &mut backoff,
            &ctx,
            &m,
        )
        .await;
        m.connected.set(0);
        match outcome {
            Outcome::Shutdown => return Ok(()),
            Outcome::Fatal(e) => return Err(e),
            Outcome::Failed(failure, reason) => {
                if backoff
                    .max_attempts()
                    .is_some_and(|max| backoff.consecutive + 1 >= max)
                {
                    return Err(anyhow!(
                        "giving up after {} failed attempts in a row; last: {reason}",
                        backoff.consecutive + 1
                    ));
                }
                delay = backoff.next_delay(&failure, SystemTime::now());
                m.reconnect(failure.cause());
                tracing::warn!(cause = failure.cause(), %reason, next_attempt_in = ?delay, "stream connection ended");
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn connect_and_read(
    client: &reqwest::Client,
    auth: &Auth,
    endpoint: &Endpoint,
    stall: Duration,
    decoder: &mut Decoder,
    ingest: &mut Ingest,
    backoff: &mut Backoff,
    ctx: &SourceContext,
    m: &StreamMetrics,
) -> Outcome {
    let send = tokio::time::timeout(stall, endpoint.request(client, auth).send());
    let resp = tokio::select! {
        r = send => r,
        _ = ctx.shutdown.cancelled() => return Outcome::Shutdown,
    };
    let mut resp = match resp {
        Err(_) => {
            return Outcome::Failed(Failure::Network, format!("no response within {stall:?}"))
        }
        Ok(Err(e)) => return Outcome::Failed(Failure::Network, format!("{e}")),
        Ok(Ok(r)) => r,
    };
    let status = resp.status().as_u16();
    if status != 200 {
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
        let detail = problem_detail(&body);
        if is_fatal_status(status) {
            let hint = match status {
                401 if endpoint.framing == Framing::Length || endpoint.url.contains("/1.1/") => {
                    " (check the four OAuth 1.0a keys, and this machine's clock)"
                }
                401 => " (check the bearer token)",
                409 => " (the app has no filtered-stream rules)",
                _ => "",
            };
            return Outcome::Fatal(anyhow!(
                "{} {} answered {status}: {detail}{hint}",
                endpoint.method,
                endpoint.url
            ));
        }
        let failure = if status == 420 || status == 429 {
            Failure::RateLimited { reset_at }
        } else {
            Failure::Http { status }
        };
        return Outcome::Failed(failure, format!("HTTP {status}: {detail}"));
    }
    m.connected.set(1);
    tracing::info!(url = %endpoint.url, "stream connected");
    decoder.reset();
    // The backoff starts over only once this connection proved healthy: it delivered tweets,
    // or stayed up a minute. Keep-alives alone do not count: a server that accepts and drops
    // at once (X answers a reconnect storm with 429 TooManyConnections) is backed off from.
    let mut delivered = false;
    let tweets_before = ingest.m.tweets.get();
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
                return Outcome::Failed(Failure::Dropped { delivered }, format!("read error: {e}"))
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
            match frame {
                Frame::KeepAlive => m.keepalives.inc(),
                Frame::Message(msg) => match ingest.message(msg).await {
                    Ok(Next::Continue) => {}
                    Ok(Next::Reconnect(reason)) => {
                        return Outcome::Failed(Failure::Dropped { delivered }, reason)
                    }
                    Err(_) => return Outcome::Shutdown,
                },
                Frame::Oversized { len, excerpt: ex } => {
                    ingest.m.error("oversized");
                    tracing::warn!(len, excerpt = %excerpt(&ex), "skipped a message over max_message_bytes");
                }
                Frame::BadLength { excerpt: ex } => {
                    ingest.m.error("bad_length");
                    tracing::warn!(excerpt = %excerpt(&ex), "skipped a line that is not a length (resynced)");
                }
            }
            if !delivered
                && (ingest.m.tweets.get() > tweets_before
                    || connected_at.elapsed() >= HEALTHY_AFTER)
            {
                delivered = true;
                backoff.delivered();
            }
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
        let e = Endpoint::for_config(&cfg(
            "mode: filtered\nbase_url: http://h:1/\nbackfill_minutes: 2\n",
        ));
        assert_eq!(e.url, "http://h:1/2/tweets/search/stream");
        assert!(e
            .params
            .iter()
            .any(|(k, v)| k == "tweet.fields" && v.contains("note_tweet")));
        assert!(e.params.contains(&("backfill_minutes".into(), "2".into())));
        assert!(e.params.contains(&("expansions".into(), "author_id,referenced_tweets.id,referenced_tweets.id.author_id,attachments.media_keys,geo.place_id".into())));
        let e = Endpoint::for_config(&cfg("mode: sample10\npartition: 2\n"));
        assert_eq!(e.url, "https://api.x.com/2/tweets/sample10/stream");
        assert_eq!(e.params[0], ("partition".into(), "2".into()));
        let e = Endpoint::for_config(&cfg(
            "mode: v1-filter\ntrack: [rust, data model]\nfollow: ['12']\nlanguage: [en]\n",
        ));
        assert_eq!(
            (e.method, e.form_body, e.framing),
            ("POST", true, Framing::Length)
        );
        assert!(e
            .params
            .contains(&("track".into(), "rust,data model".into())));
        assert!(e.params.contains(&("stall_warnings".into(), "true".into())));
        let e = Endpoint::for_config(&cfg("mode: v1-sample\ndelimited: false\n"));
        assert_eq!((e.method, e.framing), ("GET", Framing::Lines));
    }

    #[test]
    fn problem_details() {
        assert_eq!(
            problem_detail(r#"{"title":"Unauthorized","detail":"Unauthorized","status":401}"#),
            "Unauthorized: Unauthorized"
        );
        assert_eq!(
            problem_detail(r#"{"errors":[{"code":32,"message":"Could not authenticate you."}]}"#),
            "Could not authenticate you."
        );
        assert!(problem_detail(
            r#"{"title":"ConnectionException","connection_issue":"TooManyConnections"}"#
        )
        .contains("TooManyConnections"));
        assert_eq!(problem_detail("<html>"), "<html>");
    }
}
