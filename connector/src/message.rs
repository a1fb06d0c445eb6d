//! What a stream message is: a tweet (with its id and time), or one of the non-tweet messages
//! X sends in both dialects. Only the few fields needed are read (everything else is skipped
//! by the parser, which still checks the whole message is valid JSON and UTF-8); the record
//! value is always the message exactly as received.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::Deserialize;

/// Twitter's snowflake epoch (ms).
const SNOWFLAKE_EPOCH_MS: i64 = 1_288_834_974_657;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A tweet: v1.1 status or v2 `data`. `time_ms` from `timestamp_ms`, else the snowflake id.
    Tweet {
        id: String,
        time_ms: Option<i64>,
    },
    /// The author deleted a tweet: downstream storage must remove it.
    Delete {
        tweet_id: String,
        user_id: Option<String>,
    },
    ScrubGeo {
        user_id: String,
    },
    Limit,
    StatusWithheld {
        tweet_id: String,
    },
    UserWithheld {
        user_id: String,
    },
    /// FALLING_BEHIND and similar.
    Warning {
        code: String,
    },
    /// v1.1 in-band disconnect: the server closes next.
    Disconnect {
        code: u32,
        reason: String,
    },
    /// v2 in-band operational disconnect: the server closes next.
    OperationalDisconnect {
        detail: String,
    },
    /// A v2 compliance stream event (`delete`, `tweet_edit`, `withheld`, `drop`, `undrop`,
    /// `user_delete`, `user_protect`, ...), keyed by the tweet's or the user's id.
    Compliance {
        event: &'static str,
        key: String,
    },
    /// v2 message with `errors` and no `data`.
    Errors {
        summary: String,
    },
    /// Valid JSON of a type nobody knows (yet): counted, skipped.
    Unknown,
}

impl Message {
    /// A short name for metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Tweet { .. } => "tweet",
            Message::Delete { .. } => "delete",
            Message::ScrubGeo { .. } => "scrub_geo",
            Message::Limit => "limit",
            Message::StatusWithheld { .. } => "status_withheld",
            Message::UserWithheld { .. } => "user_withheld",
            Message::Warning { .. } => "warning",
            Message::Disconnect { .. } => "disconnect",
            Message::OperationalDisconnect { .. } => "operational_disconnect",
            Message::Compliance { .. } => "compliance",
            Message::Errors { .. } => "errors",
            Message::Unknown => "unknown",
        }
    }
}

/// Why a message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadMessage {
    #[error("invalid UTF-8 at byte {offset}")]
    InvalidUtf8 { offset: usize },
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("not a JSON object")]
    NotObject,
}

impl BadMessage {
    pub fn kind(&self) -> &'static str {
        match self {
            BadMessage::InvalidUtf8 { .. } => "invalid_utf8",
            BadMessage::Json(_) | BadMessage::NotObject => "malformed_json",
        }
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    // v1.1 status
    #[serde(borrow, default)]
    id_str: Option<Cow<'a, str>>,
    #[serde(default)]
    id: Option<IdValue>,
    #[serde(borrow, default)]
    timestamp_ms: Option<Cow<'a, str>>,
    #[serde(default)]
    text: Option<IgnoredAny>,
    #[serde(default)]
    full_text: Option<IgnoredAny>,
    #[serde(default)]
    user: Option<IgnoredAny>,
    // v2
    #[serde(borrow, default)]
    data: Option<V2Data<'a>>,
    #[serde(borrow, default)]
    errors: Option<Vec<V2Error<'a>>>,
    // v1.1 non-tweet messages
    #[serde(borrow, default)]
    delete: Option<Delete<'a>>,
    #[serde(borrow, default)]
    scrub_geo: Option<UserRef<'a>>,
    #[serde(default)]
    limit: Option<IgnoredAny>,
    #[serde(borrow, default)]
    status_withheld: Option<Withheld<'a>>,
    #[serde(borrow, default)]
    user_withheld: Option<Withheld<'a>>,
    #[serde(borrow, default)]
    warning: Option<Warning<'a>>,
    #[serde(borrow, default)]
    disconnect: Option<Disconnect<'a>>,
}

/// An id as a JSON number (exact: integers are parsed as u64, never as floats) or string.
/// Read by a visitor, not `#[serde(untagged)]`, which buffers every value first (hot path).
enum IdValue {
    Num(u64),
    Str(String),
}

impl<'de> Deserialize<'de> for IdValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = IdValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an id (integer or string)")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<IdValue, E> {
                Ok(IdValue::Num(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<IdValue, E> {
                Ok(IdValue::Str(v.to_string()))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<IdValue, E> {
                Ok(IdValue::Str(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl IdValue {
    fn into_string(self) -> String {
        match self {
            IdValue::Num(n) => n.to_string(),
            IdValue::Str(s) => s,
        }
    }
}

/// v2 `data`: a tweet (with `id`), or one compliance event.
#[derive(Deserialize)]
struct V2Data<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    delete: Option<ComplianceEvent<'a>>,
    #[serde(borrow, default)]
    tweet_edit: Option<ComplianceEvent<'a>>,
    #[serde(borrow, default)]
    withheld: Option<ComplianceEvent<'a>>,
    #[serde(borrow, default)]
    drop: Option<ComplianceEvent<'a>>,
    #[serde(borrow, default)]
    undrop: Option<ComplianceEvent<'a>>,
    #[serde(borrow, default)]
    user_delete: Option<ComplianceEvent<'a>>,
    #[serde(borrow, default)]
    user_undelete: Option<ComplianceEvent<'a>>,
    #[serde(borrow, default)]
    user_protect: Option<ComplianceEvent<'a>>,
    #[serde(borrow, default)]
    user_unprotect: Option<ComplianceEvent<'a>>,
    #[serde(borrow, default)]
    user_withheld: Option<ComplianceEvent<'a>>,
    #[serde(borrow, default)]
    user_suspend: Option<ComplianceEvent<'a>>,
    #[serde(borrow, default)]
    user_unsuspend: Option<ComplianceEvent<'a>>,
    #[serde(borrow, default)]
    user_profile_modification: Option<ComplianceEvent<'a>>,
}

impl<'a> V2Data<'a> {
    /// The compliance event this `data` holds: its name and the tweet's or user's id.
    fn compliance(self) -> Option<(&'static str, String)> {
        let events = [
            ("delete", self.delete),
            ("tweet_edit", self.tweet_edit),
            ("withheld", self.withheld),
            ("drop", self.drop),
            ("undrop", self.undrop),
            ("user_delete", self.user_delete),
            ("user_undelete", self.user_undelete),
            ("user_protect", self.user_protect),
            ("user_unprotect", self.user_unprotect),
            ("user_withheld", self.user_withheld),
            ("user_suspend", self.user_suspend),
            ("user_unsuspend", self.user_unsuspend),
            ("user_profile_modification", self.user_profile_modification),
        ];
        events.into_iter().find_map(|(name, e)| {
            let e = e?;
            let id = e.tweet.or(e.user)?.id?;
            Some((name, id.into_owned()))
        })
    }
}

#[derive(Deserialize)]
struct ComplianceEvent<'a> {
    #[serde(borrow, default)]
    tweet: Option<IdRef<'a>>,
    #[serde(borrow, default)]
    user: Option<IdRef<'a>>,
}

#[derive(Deserialize)]
struct IdRef<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct V2Error<'a> {
    #[serde(borrow, default)]
    title: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    disconnect_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    detail: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delete<'a> {
    #[serde(borrow, default)]
    status: Option<StatusRef<'a>>,
}

#[derive(Deserialize)]
struct StatusRef<'a> {
    #[serde(borrow, default)]
    id_str: Option<Cow<'a, str>>,
    #[serde(default)]
    id: Option<IdValue>,
    #[serde(borrow, default)]
    user_id_str: Option<Cow<'a, str>>,
    #[serde(default)]
    user_id: Option<IdValue>,
}

#[derive(Deserialize)]
struct UserRef<'a> {
    #[serde(borrow, default)]
    user_id_str: Option<Cow<'a, str>>,
    #[serde(default)]
    user_id: Option<IdValue>,
}

#[derive(Deserialize)]
struct Withheld<'a> {
    #[serde(borrow, default)]
    id_str: Option<Cow<'a, str>>,
    #[serde(default)]
    id: Option<IdValue>,
}

#[derive(Deserialize)]
struct Warning<'a> {
    #[serde(borrow, default)]
    code: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Disconnect<'a> {
    #[serde(default)]
    code: Option<u32>,
    #[serde(borrow, default)]
    reason: Option<Cow<'a, str>>,
}

fn id_of(s: Option<Cow<'_, str>>, n: Option<IdValue>) -> Option<String> {
    s.map(Cow::into_owned)
        .or_else(|| n.map(IdValue::into_string))
}

/// The time (ms) a snowflake id encodes, for ids after 2010.
pub fn snowflake_time_ms(id: &str) -> Option<i64> {
    let n: u64 = id.parse().ok()?;
    let t = (n >> 22) as i64 + SNOWFLAKE_EPOCH_MS;
    // Pre-snowflake ids (before Nov 2010) are small sequential numbers: no time in them.
    (n > 1 << 40).then_some(t)
}

/// The message as text, if it is UTF-8 and looks like a JSON object (the parse checks the rest).
pub fn object_text(bytes: &[u8]) -> Result<&str, BadMessage> {
    let text = std::str::from_utf8(bytes).map_err(|e| BadMessage::InvalidUtf8 {
        offset: e.valid_up_to(),
    })?;
    if !text.trim_start().starts_with('{') {
        return Err(match serde_json::from_str::<IgnoredAny>(text) {
            Ok(_) => BadMessage::NotObject,
            Err(e) => BadMessage::Json(e.to_string()),
        });
    }
    Ok(text)
}

/// Read one message.
pub fn classify(bytes: &[u8]) -> Result<Message, BadMessage> {
    let text = object_text(bytes)?;
    let mut env: Envelope<'_> =
        serde_json::from_str(text).map_err(|e| BadMessage::Json(e.to_string()))?;
    match v2_message(&mut env) {
        Some(message) => Ok(message),
        None => Ok(v1_message(env)),
    }
}

/// A v2 message: a post or compliance event under `data`, or `errors` (an operational
/// disconnect among them first).
fn v2_message(env: &mut Envelope<'_>) -> Option<Message> {
    if let Some(mut data) = env.data.take() {
        if let Some(id) = data.id.take() {
            let id = id.into_owned();
            let time_ms = snowflake_time_ms(&id);
            return Some(Message::Tweet { id, time_ms });
        }
        if let Some((event, key)) = data.compliance() {
            return Some(Message::Compliance { event, key });
        }
    }
    let errors = env.errors.take()?;
    if let Some(op) = errors.iter().find(|e| {
        e.title.as_deref() == Some("operational-disconnect") || e.disconnect_type.is_some()
    }) {
        return Some(Message::OperationalDisconnect {
            detail: op
                .detail
                .as_deref()
                .unwrap_or("operational disconnect")
                .to_string(),
        });
    }
    let summary = errors
        .iter()
        .filter_map(|e| e.detail.as_deref().or(e.title.as_deref()))
        .take(3)
        .collect::<Vec<_>>()
        .join("; ");
    Some(Message::Errors { summary })
}

/// A v1.1 message: a status, or one of the stream's notices (or unknown).
fn v1_message(env: Envelope<'_>) -> Message {
    let is_status = env.user.is_some() && (env.text.is_some() || env.full_text.is_some());
    if is_status {
        if let Some(id) = id_of(env.id_str, env.id) {
            let time_ms = env
                .timestamp_ms
                .and_then(|t| t.parse().ok())
                .or_else(|| snowflake_time_ms(&id));
            return Message::Tweet { id, time_ms };
        }
    }
    if let Some(d) = env.delete {
        if let Some(status) = d.status {
            if let Some(tweet_id) = id_of(status.id_str, status.id) {
                return Message::Delete {
                    tweet_id,
                    user_id: id_of(status.user_id_str, status.user_id),
                };
            }
        }
    }
    if let Some(s) = env.scrub_geo {
        return Message::ScrubGeo {
            user_id: id_of(s.user_id_str, s.user_id).unwrap_or_default(),
        };
    }
    if env.limit.is_some() {
        return Message::Limit;
    }
    if let Some(w) = env.status_withheld {
        return Message::StatusWithheld {
            tweet_id: id_of(w.id_str, w.id).unwrap_or_default(),
        };
    }
    if let Some(w) = env.user_withheld {
        return Message::UserWithheld {
            user_id: id_of(w.id_str, w.id).unwrap_or_default(),
        };
    }
    if let Some(w) = env.warning {
        return Message::Warning {
            code: w.code.as_deref().unwrap_or("").to_string(),
        };
    }
    if let Some(d) = env.disconnect {
        return Message::Disconnect {
            code: d.code.unwrap_or(0),
            reason: d.reason.as_deref().unwrap_or("").to_string(),
        };
    }
    Message::Unknown
}

/// The first bytes of a message, printable, for logs.
pub fn excerpt(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(80)];
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if bytes.len() > 80 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_status_uses_id_str_and_timestamp() {
        let m = classify(br#"{"created_at":"x","id":1234567890123456789,"id_str":"1234567890123456789","text":"hi","user":{"id_str":"9"},"retweeted_status":{"id_str":"5","text":"x","user":{}},"timestamp_ms":"1500000000000"}"#).unwrap();
        assert_eq!(
            m,
            Message::Tweet {
                id: "1234567890123456789".into(),
                time_ms: Some(1_500_000_000_000)
            }
        );
    }

    #[test]
    fn numeric_ids_are_exact() {
        // 2^53 + 1 is not representable as a double.
        let m = classify(br#"{"id":9007199254740993,"text":"hi","user":{}}"#).unwrap();
        assert!(matches!(m, Message::Tweet { ref id, .. } if id == "9007199254740993"));
    }

    #[test]
    fn v2_tweet_and_errors() {
        let m = classify(br#"{"data":{"id":"1507070437557096461","text":"x"},"matching_rules":[{"id":"1","tag":"a"}]}"#).unwrap();
        match m {
            Message::Tweet { id, time_ms } => {
                assert_eq!(id, "1507070437557096461");
                assert_eq!(time_ms, Some(1_648_148_566_985));
            }
            other => panic!("{other:?}"),
        }
        let op = classify(br#"{"errors":[{"title":"operational-disconnect","disconnect_type":"UpstreamOperationalDisconnect","detail":"gone"}]}"#).unwrap();
        assert_eq!(
            op,
            Message::OperationalDisconnect {
                detail: "gone".into()
            }
        );
        let e = classify(br#"{"errors":[{"detail":"Could not find tweet"}]}"#).unwrap();
        assert_eq!(e.kind(), "errors");
    }

    #[test]
    fn v2_compliance_events_are_keyed_by_tweet_or_user() {
        let c = |json: &str| classify(json.as_bytes()).unwrap();
        assert_eq!(
            c(
                r#"{"data":{"delete":{"tweet":{"id":"1501","author_id":"7"},"event_at":"2026-11-30T00:00:00.000Z"}}}"#
            ),
            Message::Compliance {
                event: "delete",
                key: "1501".into()
            }
        );
        assert_eq!(
            c(
                r#"{"data":{"tweet_edit":{"tweet":{"id":"1502","author_id":"7"},"initial_tweet_id":"1500","edit_tweet_ids":["1500","1502"],"event_at":"2026-11-30T00:00:00.000Z"}}}"#
            ),
            Message::Compliance {
                event: "tweet_edit",
                key: "1502".into()
            }
        );
        assert_eq!(
            c(
                r#"{"data":{"user_withheld":{"user":{"id":"99"},"withheld_in_countries":["DE"],"event_at":"2026-11-30T00:00:00.000Z"}}}"#
            ),
            Message::Compliance {
                event: "user_withheld",
                key: "99".into()
            }
        );
        // A tweet with a `withheld` field is still a tweet.
        assert!(matches!(
            c(r#"{"data":{"id":"1507070437557096461","withheld":{"country_codes":["DE"]}}}"#),
            Message::Tweet { .. }
        ));
    }

    #[test]
    fn v1_non_tweet_messages() {
        let d = classify(br#"{"delete":{"status":{"id":272691609211117568,"user_id":478569062,"id_str":"272691609211117568","user_id_str":"478569062","deleted":true}}}"#).unwrap();
        assert_eq!(
            d,
            Message::Delete {
                tweet_id: "272691609211117568".into(),
                user_id: Some("478569062".into())
            }
        );
        assert_eq!(
            classify(br#"{"limit":{"track":1234}}"#).unwrap(),
            Message::Limit
        );
        assert_eq!(
            classify(br#"{"scrub_geo":{"user_id":14090452,"up_to_status_id":1}}"#).unwrap(),
            Message::ScrubGeo {
                user_id: "14090452".into()
            }
        );
        assert_eq!(
            classify(br#"{"status_withheld":{"id":1234567890,"user_id":1}}"#).unwrap(),
            Message::StatusWithheld {
                tweet_id: "1234567890".into()
            }
        );
        assert_eq!(
            classify(br#"{"user_withheld":{"id":123456}}"#).unwrap(),
            Message::UserWithheld {
                user_id: "123456".into()
            }
        );
        assert_eq!(
            classify(br#"{"warning":{"code":"FALLING_BEHIND","percent_full":60}}"#).unwrap(),
            Message::Warning {
                code: "FALLING_BEHIND".into()
            }
        );
        assert_eq!(
            classify(br#"{"disconnect":{"code":4,"reason":"Stall"}}"#).unwrap(),
            Message::Disconnect {
                code: 4,
                reason: "Stall".into()
            }
        );
        assert_eq!(
            classify(br#"{"something_new":{"a":1}}"#).unwrap(),
            Message::Unknown
        );
    }

    #[test]
    fn bad_input_is_named() {
        assert_eq!(
            classify(b"{\"a\":\"\xff\"}").unwrap_err(),
            BadMessage::InvalidUtf8 { offset: 6 }
        );
        assert!(matches!(
            classify(br#"{"data":{"id":"1","text":"cut"#).unwrap_err(),
            BadMessage::Json(_)
        ));
        assert_eq!(classify(b"[1,2]").unwrap_err(), BadMessage::NotObject);
        assert!(matches!(
            classify(b"nonsense").unwrap_err(),
            BadMessage::Json(_)
        ));
    }
}
