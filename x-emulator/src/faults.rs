//! Faults on demand. Each new stream connection takes the next [`ConnectionPlan`] from a queue
//! (filled from the command line or `POST /_emulator/plans`); with the queue empty it streams
//! normally. A plan can answer with an HTTP error, end the stream in one of the ways X streams
//! end, drip bytes, or inject bad and unusual messages between the good ones.

use serde::{Deserialize, Serialize};
use serde_json::json;

/// What happens to one stream connection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionPlan {
    /// Answer with this HTTP status (and X's body and headers for it) instead of streaming.
    #[serde(default)]
    pub status: Option<u16>,
    /// With `status: 429`: the TooManyConnections flavour instead of a rate limit.
    #[serde(default)]
    pub too_many_connections: bool,
    /// With `status: 429`: the pay-per-use cap is spent (`UsageCapExceeded`).
    #[serde(default)]
    pub usage_capped: bool,
    /// With `status`: this problem `type` URL instead of X's for the status.
    #[serde(default)]
    pub problem_type: Option<String>,
    /// With 420/429: seconds until `x-rate-limit-reset`.
    #[serde(default)]
    pub reset_in_secs: Option<u64>,
    /// How many messages to send before `end` happens.
    #[serde(default)]
    pub after: Option<u64>,
    #[serde(default)]
    pub end: Option<End>,
    /// For `end: stall`: how long to stay silent before closing (default: until the client
    /// leaves); for `end: keepalives_only`: how long to send keep-alives before closing.
    #[serde(default)]
    pub secs: Option<f64>,
    /// For `end: disconnect` (v1.1): the disconnect code (1-12).
    #[serde(default)]
    pub code: Option<u32>,
    /// Send the stream this slowly (bytes per second).
    #[serde(default)]
    pub drip_bytes_per_sec: Option<u64>,
    /// Bad or unusual messages to slip in.
    #[serde(default)]
    pub inject: Vec<Injection>,
    /// Before this connection streams, this many tweets went by unread, as if published while
    /// the client was away: lost, unless a `backfill_minutes` or `start_time` covers them.
    #[serde(default)]
    pub missed: Option<u64>,
    /// After this connection ends, refuse new ones with 429 TooManyConnections for this long
    /// (the "phantom" connection X keeps after an abrupt disconnect).
    #[serde(default)]
    pub phantom_secs: Option<f64>,
}

/// How a stream ends after `after` messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum End {
    /// Close cleanly between two messages.
    Close,
    /// Send half of the next message, then close: a truncated read.
    CloseMidMessage,
    /// Go silent: not even keep-alives.
    Stall,
    /// Keep the connection with keep-alives only.
    KeepalivesOnly,
    /// v1.1 in-band `{"disconnect": {...}}`, then close.
    Disconnect,
    /// v2 in-band operational-disconnect error, then close.
    OperationalDisconnect,
}

/// Something slipped in after `after` good messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Injection {
    pub after: u64,
    pub what: Inject,
    /// For `huge`: the size of the line.
    #[serde(default)]
    pub bytes: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Inject {
    /// A line that is not JSON (a cut-off object).
    Malformed,
    /// A JSON line with bytes that are not UTF-8.
    InvalidUtf8,
    /// A valid JSON line over the size limit.
    Huge,
    /// The previous message again.
    Duplicate,
    /// The next two tweets swapped (ids out of order).
    OutOfOrder,
    /// A message type no client knows.
    UnknownType,
    /// v1.1 `delete` notice for the previous tweet.
    Delete,
    ScrubGeo,
    Limit,
    StatusWithheld,
    UserWithheld,
    /// v1.1 FALLING_BEHIND stall warning.
    Warning,
    /// A v2 message with only partial `errors` (no `data`).
    V2Errors,
}

/// The bytes of an injected message (without the `\r\n`), given the previous tweet's id.
pub fn injected_message(what: Inject, prev_id: &str, bytes: Option<usize>) -> Vec<u8> {
    let user = "478569062";
    match what {
        Inject::Malformed => br#"{"data":{"id":"1","text":"this line was cut o"#.to_vec(),
        Inject::InvalidUtf8 => {
            let mut v = br#"{"data":{"id":"2","text":""#.to_vec();
            v.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28]);
            v.extend_from_slice(br#""}}"#);
            v
        }
        Inject::Huge => {
            let size = bytes.unwrap_or(2_000_000);
            let mut v = br#"{"data":{"id":"3","text":""#.to_vec();
            v.resize(size.saturating_sub(3).max(v.len()), b'a');
            v.extend_from_slice(br#""}}"#);
            v
        }
        Inject::Duplicate | Inject::OutOfOrder => Vec::new(), // done by the streamer
        Inject::UnknownType => json!({"brand_new_message": {"hello": "world", "id_str": prev_id}}).to_string().into_bytes(),
        Inject::Delete => json!({"delete": {"status": {"id": prev_id.parse::<u64>().unwrap_or(0), "id_str": prev_id, "user_id": 478569062u64, "user_id_str": user}, "timestamp_ms": now_ms().to_string()}}).to_string().into_bytes(),
        Inject::ScrubGeo => json!({"scrub_geo": {"user_id": 14090452u64, "user_id_str": "14090452", "up_to_status_id": prev_id.parse::<u64>().unwrap_or(0), "up_to_status_id_str": prev_id}}).to_string().into_bytes(),
        Inject::Limit => json!({"limit": {"track": 1234, "timestamp_ms": now_ms().to_string()}}).to_string().into_bytes(),
        Inject::StatusWithheld => json!({"status_withheld": {"id": prev_id.parse::<u64>().unwrap_or(0), "user_id": 123456u64, "withheld_in_countries": ["DE", "AR"], "timestamp_ms": now_ms().to_string()}}).to_string().into_bytes(),
        Inject::UserWithheld => json!({"user_withheld": {"id": 123456u64, "withheld_in_countries": ["DE", "AR"], "timestamp_ms": now_ms().to_string()}}).to_string().into_bytes(),
        Inject::Warning => json!({"warning": {"code": "FALLING_BEHIND", "message": "Your connection is falling behind and messages are being queued for delivery to you. Your queue is now over 60% full. You will be disconnected when the queue is full.", "percent_full": 60}}).to_string().into_bytes(),
        Inject::V2Errors => json!({"errors": [{"value": prev_id, "detail": "Could not find tweet with referenced_tweets.id: [1].", "title": "Not Found Error", "resource_type": "tweet", "parameter": "referenced_tweets.id", "resource_id": "1", "type": "https://api.twitter.com/2/problems/resource-not-found"}]}).to_string().into_bytes(),
    }
}

/// The body X sends with an HTTP error on a stream endpoint.
pub fn error_body(status: u16, v2: bool, too_many_connections: bool) -> String {
    if v2 {
        let (title, detail, kind) = match status {
            401 => ("Unauthorized", "Unauthorized", "about:blank"),
            403 => ("Client Forbidden", "When authenticating requests to the Twitter API v2 endpoints, you must use keys and tokens from a Twitter developer App that is attached to a Project.", "https://api.twitter.com/2/problems/client-forbidden"),
            404 => ("Not Found Error", "The requested resource could not be found.", "https://api.twitter.com/2/problems/resource-not-found"),
            406 => ("Not Acceptable", "One or more parameters to your request was invalid.", "https://api.twitter.com/2/problems/invalid-request"),
            409 => ("ConnectionException", "There are no rules for this stream. Add rules with POST /2/tweets/search/stream/rules before connecting.", "https://api.twitter.com/2/problems/streaming-connection"),
            413 => ("Payload Too Large", "The request parameters are too long.", "https://api.twitter.com/2/problems/invalid-request"),
            416 => ("Range Not Satisfiable", "The backfill_minutes value is out of range.", "https://api.twitter.com/2/problems/invalid-request"),
            429 if too_many_connections => ("ConnectionException", "This stream is currently at the maximum allowed connection limit.", "https://api.twitter.com/2/problems/streaming-connection"),
            429 => ("Too Many Requests", "Too Many Requests", "about:blank"),
            500 => ("Internal Server Error", "Internal error", "about:blank"),
            503 => ("Service Unavailable", "Service Unavailable", "about:blank"),
            _ => ("Error", "Error", "about:blank"),
        };
        let mut body = json!({"title": title, "detail": detail, "type": kind, "status": status});
        if too_many_connections {
            body["connection_issue"] = json!("TooManyConnections");
        }
        body.to_string()
    } else {
        let (code, message) = match status {
            401 => (32, "Could not authenticate you."),
            403 => (87, "Client is not permitted to perform this action."),
            404 => (34, "Sorry, that page does not exist."),
            406 => (44, "Parameter track is invalid."),
            413 => (325, "Too many track terms."),
            416 => (133, "Count parameter out of range."),
            420 => (420, "Enhance Your Calm"),
            429 => (88, "Rate limit exceeded"),
            503 => (130, "Over capacity"),
            _ => (131, "Internal error"),
        };
        json!({"errors": [{"code": code, "message": message}]}).to_string()
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_parse_from_json() {
        let p: ConnectionPlan = serde_json::from_str(
            r#"{"after": 5, "end": "close_mid_message", "inject": [{"after": 1, "what": "invalid_utf8"}]}"#,
        )
        .unwrap();
        assert_eq!(p.end, Some(End::CloseMidMessage));
        assert_eq!(p.inject[0].what, Inject::InvalidUtf8);
        assert!(serde_json::from_str::<ConnectionPlan>(r#"{"bogus": 1}"#).is_err());
    }

    #[test]
    fn injected_messages_are_what_they_claim() {
        assert!(
            serde_json::from_slice::<serde_json::Value>(&injected_message(
                Inject::Malformed,
                "1",
                None
            ))
            .is_err()
        );
        assert!(std::str::from_utf8(&injected_message(Inject::InvalidUtf8, "1", None)).is_err());
        assert_eq!(injected_message(Inject::Huge, "1", Some(5000)).len(), 5000);
        let d: serde_json::Value =
            serde_json::from_slice(&injected_message(Inject::Delete, "77", None)).unwrap();
        assert_eq!(d["delete"]["status"]["id_str"], "77");
        let e: serde_json::Value = serde_json::from_str(&error_body(429, true, true)).unwrap();
        assert_eq!(e["connection_issue"], "TooManyConnections");
    }
}
