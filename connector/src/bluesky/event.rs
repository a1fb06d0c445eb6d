//! What a Jetstream event is, in the terms the ingest path knows: a created record (a post)
//! is a [`Message::Tweet`] keyed by its at-uri, a delete a [`Message::Delete`], an update or
//! an identity or account event a [`Message::Compliance`] event for the events topic. Only the
//! envelope is read (the parser still checks the whole message is valid JSON); the record
//! value stays the event exactly as received.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::Deserialize;
use tweet_model::bluesky::at_uri;

use crate::message::{object_text, BadMessage, Message};

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    did: Option<Cow<'a, str>>,
    #[serde(default)]
    time_us: Option<i64>,
    #[serde(borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    commit: Option<Commit<'a>>,
}

#[derive(Deserialize)]
struct Commit<'a> {
    #[serde(borrow, default)]
    operation: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    collection: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    rkey: Option<Cow<'a, str>>,
    #[serde(default)]
    #[allow(dead_code)]
    record: Option<IgnoredAny>,
}

/// An event and its `time_us` (the instance's clock, what a cursor resumes from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub message: Message,
    pub time_us: i64,
}

fn missing(field: &str) -> BadMessage {
    BadMessage::Json(format!("a Jetstream event without `{field}`"))
}

/// Read one Jetstream event.
pub fn classify(bytes: &[u8]) -> Result<Event, BadMessage> {
    let text = object_text(bytes)?;
    let env: Envelope<'_> =
        serde_json::from_str(text).map_err(|e| BadMessage::Json(e.to_string()))?;
    let did = env.did.ok_or_else(|| missing("did"))?;
    let time_us = env.time_us.ok_or_else(|| missing("time_us"))?;
    let message = match env.kind.as_deref() {
        Some("commit") => {
            let c = env.commit.ok_or_else(|| missing("commit"))?;
            let collection = c.collection.ok_or_else(|| missing("commit.collection"))?;
            let rkey = c.rkey.ok_or_else(|| missing("commit.rkey"))?;
            let uri = at_uri(&did, &collection, &rkey);
            match c.operation.as_deref() {
                Some("create") => Message::Tweet {
                    id: uri,
                    time_ms: Some(time_us.div_euclid(1000)),
                },
                Some("delete") => Message::Delete {
                    tweet_id: uri,
                    user_id: Some(did.into_owned()),
                },
                Some("update") => Message::Compliance {
                    event: "update",
                    key: uri,
                },
                _ => Message::Unknown,
            }
        }
        Some("identity") => Message::Compliance {
            event: "identity",
            key: did.into_owned(),
        },
        Some("account") => Message::Compliance {
            event: "account",
            key: did.into_owned(),
        },
        _ => Message::Unknown,
    };
    Ok(Event { message, time_us })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_map_to_messages() {
        let post = br#"{"did":"did:plc:a","time_us":1725911162329308,"kind":"commit","commit":{"rev":"r","operation":"create","collection":"app.bsky.feed.post","rkey":"3l3q","record":{"text":"hi"},"cid":"c"}}"#;
        let e = classify(post).unwrap();
        assert_eq!(e.time_us, 1_725_911_162_329_308);
        assert_eq!(
            e.message,
            Message::Tweet {
                id: "at://did:plc:a/app.bsky.feed.post/3l3q".into(),
                time_ms: Some(1_725_911_162_329)
            }
        );
        let delete = br#"{"did":"did:plc:a","time_us":5,"kind":"commit","commit":{"operation":"delete","collection":"app.bsky.feed.post","rkey":"3l3q"}}"#;
        assert!(matches!(
            classify(delete).unwrap().message,
            Message::Delete { ref tweet_id, .. } if tweet_id == "at://did:plc:a/app.bsky.feed.post/3l3q"
        ));
        let identity = br#"{"did":"did:plc:a","time_us":5,"kind":"identity","identity":{"did":"did:plc:a","handle":"a.bsky.social"}}"#;
        assert_eq!(
            classify(identity).unwrap().message,
            Message::Compliance {
                event: "identity",
                key: "did:plc:a".into()
            }
        );
        let future = br#"{"did":"did:plc:a","time_us":5,"kind":"labels"}"#;
        assert_eq!(classify(future).unwrap().message, Message::Unknown);
    }

    #[test]
    fn bad_events_name_what_is_wrong() {
        let no_time = br#"{"did":"did:plc:a","kind":"identity"}"#;
        assert!(classify(no_time)
            .unwrap_err()
            .to_string()
            .contains("`time_us`"));
        let no_rkey = br#"{"did":"d","time_us":1,"kind":"commit","commit":{"operation":"create","collection":"c"}}"#;
        assert!(classify(no_rkey)
            .unwrap_err()
            .to_string()
            .contains("`commit.rkey`"));
        assert_eq!(classify(b"[1]").unwrap_err(), BadMessage::NotObject);
        assert!(matches!(
            classify(b"{\"did\":\"\xff\"}").unwrap_err(),
            BadMessage::InvalidUtf8 { offset: 8 }
        ));
    }
}
