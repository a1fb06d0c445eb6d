//! `GET /subscribe`: a subscription's filters and cursor, and one WebSocket session playing
//! the timeline and the connection's fault plan.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};

use super::timeline::Event;
use crate::faults::{now_ms, ConnectionPlan, End};
use crate::state::Shared;

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
    use crate::jetstream::timeline::timeline;

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
