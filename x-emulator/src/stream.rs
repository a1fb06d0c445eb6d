//! One stream connection: takes tweets from the shared cursor, frames them (`\r\n`, or v1.1
//! `delimited=length`), paces them, cuts the bytes into chunks at arbitrary boundaries, sends
//! keep-alives when idle, and plays the connection's fault plan.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::corpus::Item;
use crate::faults::{injected_message, ConnectionPlan, End, Inject};
use crate::state::{Selection, Shared, StreamSpec};
use crate::wire::Wire;

pub type Chunk = Result<Bytes, std::io::Error>;

/// Why the session ended (for the connection log).
fn ended(shared: &Shared, conn: usize, why: &str) {
    shared.log_end(conn, why);
}

/// Run one stream session until the plan ends it or the client goes away.
pub async fn run(
    shared: Arc<Shared>,
    spec: StreamSpec,
    plan: ConnectionPlan,
    tx: mpsc::Sender<Chunk>,
) {
    let mut session = Session::new(shared, spec, &plan, tx);
    loop {
        if !session.inject_due().await {
            return session.ended("client closed");
        }
        if let (Some(after), Some(end)) = (plan.after, plan.end) {
            if session.sent >= after {
                let Session {
                    shared, spec, w, ..
                } = session;
                return finish(&shared, &spec, &plan, end, w).await;
            }
        }
        let alive = match session.next_item() {
            Some(item) => session.send(item).await,
            None => session.idle().await,
        };
        if !alive {
            return session.ended("client closed");
        }
    }
}

/// One connection's state: what it sent, its pace, the injections to come.
struct Session {
    shared: Arc<Shared>,
    spec: StreamSpec,
    w: Writer,
    sent: u64,
    prev: Option<Item>,
    last_write: Instant,
    /// The time between tweets (`--rate`), and when the next is due.
    interval: Option<Duration>,
    next_at: Instant,
    injections: std::iter::Peekable<std::vec::IntoIter<crate::faults::Injection>>,
    /// Tweets to send before taking new ones (an out-of-order injection's pair).
    swapped: std::collections::VecDeque<Item>,
}

impl Session {
    fn new(
        shared: Arc<Shared>,
        spec: StreamSpec,
        plan: &ConnectionPlan,
        tx: mpsc::Sender<Chunk>,
    ) -> Self {
        let w = Writer::new(tx, shared.config.random_chunks, plan.drip_bytes_per_sec);
        let rate = shared.config.rate;
        let interval = (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
        let mut injections = plan.inject.clone();
        injections.sort_by_key(|i| i.after);
        Self {
            shared,
            spec,
            w,
            sent: 0,
            prev: None,
            last_write: Instant::now(),
            interval,
            next_at: Instant::now(),
            injections: injections.into_iter().peekable(),
            swapped: Default::default(),
        }
    }

    fn ended(&self, why: &str) {
        ended(&self.shared, self.spec.conn, why)
    }

    /// Play the injections due at this count; false when the client went away.
    async fn inject_due(&mut self) -> bool {
        let (shared, spec) = (&self.shared, &self.spec);
        while self.injections.peek().is_some_and(|i| i.after <= self.sent) {
            let inj = self.injections.next().expect("peeked");
            if inj.what == Inject::OutOfOrder {
                // The next two tweets go out swapped.
                let first = shared.next_item(spec);
                let second = first.as_ref().and_then(|_| shared.next_item(spec));
                self.swapped.extend(second.into_iter().chain(first));
                continue;
            }
            let body = if inj.what == Inject::Duplicate {
                match &self.prev {
                    Some(p) => {
                        shared.log_sent(spec.conn, &p.id);
                        p.json.to_vec()
                    }
                    None => continue,
                }
            } else {
                let prev_id = self.prev.as_ref().map_or("1", |p| p.id.as_str());
                shared.log_injected(spec.conn);
                injected_message(inj.what, prev_id, inj.bytes)
            };
            if !self.w.message(&body, spec.delimited).await {
                return false;
            }
        }
        true
    }

    /// The next tweet this stream selects, or none (limit reached / corpus exhausted).
    fn next_item(&mut self) -> Option<Item> {
        if let Some(item) = self.swapped.pop_front() {
            Some(item)
        } else if self.shared.exhausted(self.spec.dialect) {
            None
        } else {
            self.shared.next_item(&self.spec)
        }
    }

    /// Send one tweet at the configured pace; false when the client went away.
    async fn send(&mut self, item: Item) -> bool {
        let mut ok = true;
        if let Some(iv) = self.interval {
            self.next_at += iv;
            let now = Instant::now();
            if self.next_at > now {
                ok = self.w.flush().await;
                tokio::time::sleep_until(self.next_at).await;
            } else if now.duration_since(self.next_at) > Duration::from_secs(1) {
                self.next_at = now; // do not burst to catch up after a long pause
            }
        }
        let (bytes, key) = decorate(&self.shared, &self.spec, &item);
        ok = ok && self.w.message(&bytes, self.spec.delimited).await;
        if ok {
            self.shared.log_sent(self.spec.conn, &key);
        }
        self.shared.item_done();
        if ok {
            self.sent += 1;
            self.prev = Some(item);
            self.last_write = Instant::now();
        }
        ok
    }

    /// Nothing to send: keep-alives until something happens; false when the client went away.
    async fn idle(&mut self) -> bool {
        if !self.w.flush().await {
            return false;
        }
        let due = self.last_write + self.spec.keepalive;
        tokio::select! {
            _ = tokio::time::sleep_until(due.min(Instant::now() + Duration::from_millis(50))) => {}
            _ = self.w.tx.closed() => return false,
        }
        if Instant::now() >= due {
            if !self.w.raw(b"\r\n").await || !self.w.flush().await {
                return false;
            }
            self.last_write = Instant::now();
        }
        true
    }
}

async fn finish(
    shared: &Shared,
    spec: &StreamSpec,
    plan: &ConnectionPlan,
    end: End,
    mut w: Writer,
) {
    match end {
        End::Close => {
            w.flush().await;
            ended(shared, spec.conn, "closed by plan");
        }
        End::CloseMidMessage => {
            if let Some(item) = shared.next_item(spec) {
                let mut framed = Vec::new();
                frame(&mut framed, &item.json, spec.delimited);
                let half = framed.len() / 2;
                w.raw(&framed[..half]).await;
                shared.item_done();
            }
            w.flush().await;
            // A reset drops what the server still holds: the whole messages before the cut
            // were logged as sent, so they (and the half) reach the socket first.
            w.until_on_the_wire(&spec.wire).await;
            let _ =
                w.tx.send(Err(std::io::Error::other("emulated abrupt close")))
                    .await;
            ended(shared, spec.conn, "closed mid-message");
        }
        End::Stall => {
            w.flush().await;
            let limit = plan
                .secs
                .map(Duration::from_secs_f64)
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                _ = tokio::time::sleep(limit) => ended(shared, spec.conn, "stall ended by plan"),
                _ = w.tx.closed() => ended(shared, spec.conn, "client closed during stall"),
            }
        }
        End::KeepalivesOnly => {
            // With `secs`: close after that long (a server that accepts and drops).
            let until = plan
                .secs
                .map(|s| Instant::now() + Duration::from_secs_f64(s));
            loop {
                let ok = w.raw(b"\r\n").await && w.flush().await;
                if !ok {
                    return ended(shared, spec.conn, "client closed");
                }
                let next = Instant::now() + spec.keepalive;
                let wake = until.map_or(next, |u| u.min(next));
                tokio::select! {
                    _ = tokio::time::sleep_until(wake) => {}
                    _ = w.tx.closed() => return ended(shared, spec.conn, "client closed"),
                }
                if until.is_some_and(|u| Instant::now() >= u) {
                    return ended(shared, spec.conn, "closed by plan after keep-alives");
                }
            }
        }
        End::Disconnect => {
            let code = plan.code.unwrap_or(4);
            let msg = serde_json::json!({"disconnect": {"code": code, "stream_name": "emulated-stream", "reason": disconnect_reason(code)}});
            w.message(msg.to_string().as_bytes(), spec.delimited).await;
            w.flush().await;
            ended(shared, spec.conn, "in-band disconnect");
        }
        End::OperationalDisconnect => {
            let msg = serde_json::json!({"errors": [{"title": "operational-disconnect", "disconnect_type": "UpstreamOperationalDisconnect",
                "detail": "This stream has been disconnected upstream for operational reasons.",
                "type": "https://api.twitter.com/2/problems/operational-disconnect"}]});
            w.message(msg.to_string().as_bytes(), spec.delimited).await;
            w.flush().await;
            ended(shared, spec.conn, "operational disconnect");
        }
    }
}

fn disconnect_reason(code: u32) -> &'static str {
    match code {
        1 => "Shutdown",
        2 => "Duplicate stream",
        4 => "Stall",
        5 => "Normal",
        7 => "Admin logout",
        9 => "Max message limit",
        10 => "Stream exception",
        11 => "Broker stall",
        12 => "Shed load",
        _ => "Unknown",
    }
}

/// The bytes sent for an item, and the id they are about: the tweet as recorded (plus
/// `matching_rules` on the v2 filtered stream), or a compliance event about it or its author.
fn decorate(shared: &Shared, spec: &StreamSpec, item: &Item) -> (Vec<u8>, String) {
    match spec.selection {
        Selection::Rules => {
            let matching = shared.matching_rules(item);
            let text = String::from_utf8_lossy(&item.json);
            if let Some(stripped) = text.trim_end().strip_suffix('}') {
                let bytes = format!(
                    "{stripped},\"matching_rules\":{}}}",
                    serde_json::Value::Array(matching)
                )
                .into_bytes();
                return (bytes, item.id.clone());
            }
        }
        Selection::TweetCompliance => {
            return (tweet_compliance_event(item).into_bytes(), item.id.clone())
        }
        Selection::UserCompliance => {
            return (
                user_compliance_event(item).into_bytes(),
                item.user_id.clone(),
            )
        }
        _ => {}
    }
    (item.json.to_vec(), item.id.clone())
}

/// An id's bits mixed (snowflake ids end in sequence bits that repeat).
fn spread(id: u64) -> u64 {
    id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32
}

/// One of X's tweet compliance events about `item` (the kind follows from its id).
fn tweet_compliance_event(item: &Item) -> String {
    let at = crate::generator::rfc3339(crate::faults::now_ms());
    let tweet = serde_json::json!({"id": item.id, "author_id": item.user_id});
    let n: u64 = item.id.parse().unwrap_or(0);
    let event = match spread(n) % 5 {
        0 => serde_json::json!({"delete": {"tweet": tweet, "event_at": at}}),
        1 => {
            let initial = n.saturating_sub(4096).to_string();
            serde_json::json!({"tweet_edit": {"tweet": tweet, "initial_tweet_id": initial,
                "edit_tweet_ids": [initial, item.id], "event_at": at}})
        }
        2 => {
            serde_json::json!({"withheld": {"tweet": tweet, "withheld_in_countries": ["DE", "FR"], "event_at": at}})
        }
        3 => serde_json::json!({"drop": {"tweet": tweet, "event_at": at}}),
        _ => serde_json::json!({"undrop": {"tweet": tweet, "event_at": at}}),
    };
    serde_json::json!({ "data": event }).to_string()
}

/// One of X's user compliance events about `item`'s author.
fn user_compliance_event(item: &Item) -> String {
    let at = crate::generator::rfc3339(crate::faults::now_ms());
    let user = serde_json::json!({"id": item.user_id});
    let kinds = [
        "user_delete",
        "user_undelete",
        "user_protect",
        "user_unprotect",
        "user_suspend",
        "user_unsuspend",
        "user_withheld",
        "user_profile_modification",
    ];
    let n: u64 = item.id.parse().unwrap_or(0);
    let kind = kinds[(spread(n) % kinds.len() as u64) as usize];
    let mut event = serde_json::json!({"user": user, "event_at": at});
    match kind {
        "user_withheld" => event["withheld_in_countries"] = serde_json::json!(["IN"]),
        "user_profile_modification" => {
            event["profile_field"] = serde_json::json!("description");
            event["new_value"] = serde_json::json!("data and rust");
        }
        _ => {}
    }
    serde_json::json!({ "data": { kind: event } }).to_string()
}

/// Append one framed message.
pub fn frame(out: &mut Vec<u8>, json: &[u8], delimited: bool) {
    if delimited {
        out.extend_from_slice(format!("{}\r\n", json.len() + 2).as_bytes());
    }
    out.extend_from_slice(json);
    out.extend_from_slice(b"\r\n");
}

/// Buffers bytes and sends them as chunks whose boundaries fall anywhere.
struct Writer {
    tx: mpsc::Sender<Chunk>,
    buf: Vec<u8>,
    /// Bytes handed to the server so far.
    handed: u64,
    random: bool,
    rng: fastrand::Rng,
    drip: Option<u64>,
}

const FLUSH_AT: usize = 64 * 1024;
const ON_THE_WIRE_WITHIN: Duration = Duration::from_secs(10);

impl Writer {
    fn new(tx: mpsc::Sender<Chunk>, random: bool, drip: Option<u64>) -> Self {
        Self {
            tx,
            buf: Vec::with_capacity(FLUSH_AT * 2),
            handed: 0,
            random,
            rng: fastrand::Rng::new(),
            drip,
        }
    }

    async fn message(&mut self, json: &[u8], delimited: bool) -> bool {
        frame(&mut self.buf, json, delimited);
        if self.buf.len() >= FLUSH_AT || self.drip.is_some() {
            return self.flush().await;
        }
        true
    }

    async fn raw(&mut self, bytes: &[u8]) -> bool {
        self.buf.extend_from_slice(bytes);
        true
    }

    /// Wait until what was flushed is on the wire: the server took it from the channel, the
    /// socket took at least as many bytes, and no write waits for room, twice in a row. Gives
    /// up when the client goes, or after [`ON_THE_WIRE_WITHIN`] of a client that reads too little.
    async fn until_on_the_wire(&self, wire: &Wire) {
        let deadline = Instant::now() + ON_THE_WIRE_WITHIN;
        let mut settled = None;
        while !self.tx.is_closed() {
            let drained = self.tx.capacity() == self.tx.max_capacity();
            let written = wire.written();
            let now = (drained && written >= self.handed && !wire.blocked()).then_some(written);
            if now.is_some() && now == settled {
                return;
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    handed = self.handed,
                    written,
                    "the client read too little for {ON_THE_WIRE_WITHIN:?}: closing with bytes unsent"
                );
                return;
            }
            settled = now;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Send what is buffered; false when the client has gone.
    async fn flush(&mut self) -> bool {
        if self.buf.is_empty() {
            return !self.tx.is_closed();
        }
        let data = Bytes::from(std::mem::take(&mut self.buf));
        self.handed += data.len() as u64;
        self.buf.reserve(FLUSH_AT * 2);
        if let Some(bps) = self.drip {
            // A few bytes at a time, slowly.
            let step = (bps / 10).max(1) as usize;
            let mut i = 0;
            while i < data.len() {
                let end = (i + step).min(data.len());
                if self.tx.send(Ok(data.slice(i..end))).await.is_err() {
                    return false;
                }
                i = end;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            return true;
        }
        if !self.random {
            return self.tx.send(Ok(data)).await.is_ok();
        }
        let mut i = 0;
        while i < data.len() {
            // Mostly mid-sized pieces, sometimes tiny ones (splitting `\r\n` and UTF-8).
            let len = match self.rng.u8(0..8) {
                0 => self.rng.usize(1..4),
                1 => self.rng.usize(4..64),
                _ => self.rng.usize(64..16384),
            };
            let end = (i + len).min(data.len());
            if self.tx.send(Ok(data.slice(i..end))).await.is_err() {
                return false;
            }
            i = end;
        }
        true
    }
}
