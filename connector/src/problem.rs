//! X's error answers: the problem body (v2 `type`/`title`/`detail`, v1.1 `errors[].message`)
//! read once, and what each documented kind means for the connector: a spent usage cap stops
//! it, a stale connection can be cleared, an unknown problem type is named in the log.

use anyhow::{bail, Context};
use serde_json::Value;

use crate::message::excerpt;

/// X's problem type URLs end with these (the host is api.twitter.com or api.x.com).
const USAGE_CAPPED: &str = "/2/problems/usage-capped";
const STREAMING_CONNECTION: &str = "/2/problems/streaming-connection";
/// Problem types this connector knows; any other is logged with its URL.
const KNOWN_TYPES: &[&str] = &[
    "about:blank",
    USAGE_CAPPED,
    STREAMING_CONNECTION,
    "/2/problems/invalid-request",
    "/2/problems/client-forbidden",
    "/2/problems/resource-not-found",
    "/2/problems/not-authorized-for-resource",
    "/2/problems/unsupported-authentication",
    "/2/problems/rule-cap",
    "/2/problems/duplicate-rules",
    "/2/problems/operational-disconnect",
];

/// Send one API request (not a stream); its body, or an error `{what} answered {status}:
/// {X's reason}`. `what` names the call (`POST https://api.x.com/oauth2/token`); transport
/// errors do not repeat the request's URL.
pub async fn call(what: &str, request: reqwest::RequestBuilder) -> anyhow::Result<String> {
    let resp = request
        .send()
        .await
        .map_err(reqwest::Error::without_url)
        .with_context(|| what.to_string())?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!(
            "{what} answered {status}: {}",
            Problem::parse(&body).summary
        );
    }
    Ok(body)
}

/// One error answer of X, as far as its body says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problem {
    /// The v2 problem `type` URL.
    pub type_url: Option<String>,
    /// v2 `title` (`UsageCapExceeded`, `ConnectionException`, ...).
    pub title: Option<String>,
    /// v2 `connection_issue` (`TooManyConnections`).
    pub connection_issue: Option<String>,
    /// A usage cap's `period` (`Daily`, `Monthly`) and `scope` (`Account`, `Product`).
    pub period: Option<String>,
    pub scope: Option<String>,
    /// The short reason: `title: detail`, or the v1.1 messages, or an excerpt of the body.
    pub summary: String,
}

impl Problem {
    pub fn parse(body: &str) -> Self {
        let Ok(v) = serde_json::from_str::<Value>(body) else {
            return Self {
                summary: excerpt(body.as_bytes()),
                ..Self::default()
            };
        };
        let text = |k: &str| v[k].as_str().map(str::to_string);
        let mut parts: Vec<String> = ["title", "detail"].iter().filter_map(|k| text(k)).collect();
        if let Some(errors) = v["errors"].as_array() {
            parts.extend(errors.iter().take(3).filter_map(|e| {
                e["message"]
                    .as_str()
                    .or_else(|| e["detail"].as_str())
                    .map(str::to_string)
            }));
        }
        if let Some(c) = text("connection_issue") {
            parts.push(format!("connection_issue: {c}"));
        }
        let summary = if parts.is_empty() {
            excerpt(body.as_bytes())
        } else {
            parts.join(": ")
        };
        Self {
            type_url: text("type"),
            title: text("title"),
            connection_issue: text("connection_issue"),
            period: text("period"),
            scope: text("scope"),
            summary,
        }
    }

    /// 429 `UsageCapExceeded`: the pay-per-use cap is spent; retrying cannot help before the
    /// next period.
    pub fn is_usage_capped(&self) -> bool {
        self.type_url
            .as_deref()
            .is_some_and(|t| t.ends_with(USAGE_CAPPED))
            || self.title.as_deref() == Some("UsageCapExceeded")
    }

    /// 429 `TooManyConnections`: the app's connection slot is taken (often by a stale
    /// connection X still holds after an abrupt disconnect).
    pub fn is_too_many_connections(&self) -> bool {
        self.connection_issue.as_deref() == Some("TooManyConnections")
    }

    /// A v2 problem type this connector does not know (to be named in the log).
    pub fn unknown_type(&self) -> Option<&str> {
        self.type_url
            .as_deref()
            .filter(|t| !KNOWN_TYPES.iter().any(|k| t.ends_with(k)))
    }

    /// Why the connector stops on a spent usage cap, and when the cap resets. (The answer's
    /// `x-rate-limit-reset` is the rate-limit window's, not the cap's.)
    pub fn usage_cap_message(&self) -> String {
        let period = self.period.as_deref().unwrap_or("usage");
        let scope = self
            .scope
            .as_deref()
            .map(|s| format!(", scope {s}"))
            .unwrap_or_default();
        let reset = match period {
            "Daily" => "it resets at 00:00 UTC",
            "Monthly" => "it resets with the next monthly billing period",
            _ => "it resets with the next billing period",
        };
        format!(
            "X's {} cap for reading posts is spent (UsageCapExceeded{scope}): no reconnect can succeed before it resets, so the connector stops; {reset} (see the X developer console, where the cap can be raised). X said: {}",
            period.to_lowercase(),
            self.summary
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_of_v2_and_v1_bodies() {
        assert_eq!(
            Problem::parse(r#"{"title":"Unauthorized","detail":"Unauthorized","status":401}"#)
                .summary,
            "Unauthorized: Unauthorized"
        );
        assert_eq!(
            Problem::parse(r#"{"errors":[{"code":32,"message":"Could not authenticate you."}]}"#)
                .summary,
            "Could not authenticate you."
        );
        assert_eq!(Problem::parse("<html>").summary, "<html>");
    }

    #[test]
    fn kinds_of_problem() {
        let capped = Problem::parse(
            r#"{"title":"UsageCapExceeded","detail":"Usage cap exceeded: Monthly product cap","type":"https://api.x.com/2/problems/usage-capped","period":"Monthly","scope":"Product","status":429}"#,
        );
        assert!(capped.is_usage_capped() && !capped.is_too_many_connections());
        assert_eq!(capped.unknown_type(), None);
        let msg = capped.usage_cap_message();
        assert!(msg.contains("monthly cap"), "{msg}");
        assert!(msg.contains("scope Product"), "{msg}");
        assert!(msg.contains("next monthly billing period"), "{msg}");
        let daily = Problem::parse(
            r#"{"title":"UsageCapExceeded","type":"https://api.x.com/2/problems/usage-capped","period":"Daily"}"#,
        );
        assert!(daily.usage_cap_message().contains("00:00 UTC"));

        let phantom = Problem::parse(
            r#"{"title":"ConnectionException","detail":"This stream is currently at the maximum allowed connection limit.","connection_issue":"TooManyConnections","type":"https://api.twitter.com/2/problems/streaming-connection"}"#,
        );
        assert!(phantom.is_too_many_connections() && !phantom.is_usage_capped());
        assert!(phantom.summary.contains("TooManyConnections"));

        let novel = Problem::parse(
            r#"{"title":"Something New","type":"https://api.x.com/2/problems/something-new"}"#,
        );
        assert_eq!(
            novel.unknown_type(),
            Some("https://api.x.com/2/problems/something-new")
        );
    }
}
