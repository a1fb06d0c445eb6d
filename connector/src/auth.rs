//! Credentials on the wire: a bearer token (given, or exchanged for the consumer key and
//! secret at `POST /oauth2/token`), or an OAuth 1.0a `Authorization` header signed per request
//! with `oauth1-request`. Nothing here ever logs a credential.

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use connector_runtime::SecretString;

use crate::config::AuthConfig;

/// How requests are authorised.
#[derive(Clone)]
pub enum Auth {
    Bearer(SecretString),
    OAuth1 {
        consumer_key: SecretString,
        consumer_secret: SecretString,
        token: SecretString,
        token_secret: SecretString,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Bearer(_) => f.write_str("Auth::Bearer([redacted])"),
            Auth::OAuth1 { .. } => f.write_str("Auth::OAuth1([redacted])"),
        }
    }
}

impl Auth {
    /// v2 auth: the bearer token, or one obtained for the consumer key and secret.
    pub async fn app_only(
        client: &reqwest::Client,
        base_url: &str,
        cfg: &AuthConfig,
    ) -> Result<Self> {
        if let Some(t) = &cfg.bearer_token {
            return Ok(Auth::Bearer(t.clone()));
        }
        let (Some(key), Some(secret)) = (&cfg.consumer_key, &cfg.consumer_secret) else {
            bail!(
                "twitter.auth: no bearer_token, and no consumer_key/consumer_secret to obtain one"
            );
        };
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            urlencode(key.expose()),
            urlencode(secret.expose())
        ));
        let url = format!("{}/oauth2/token", base_url.trim_end_matches('/'));
        let body = crate::problem::call(
            &format!("POST {url}"),
            client
                .post(&url)
                .header("authorization", format!("Basic {basic}"))
                .header(
                    "content-type",
                    "application/x-www-form-urlencoded;charset=UTF-8",
                )
                .body("grant_type=client_credentials"),
        )
        .await?;
        let v: serde_json::Value =
            serde_json::from_str(&body).context("token response is not JSON")?;
        let token = v["access_token"]
            .as_str()
            .ok_or_else(|| anyhow!("token response has no access_token"))?;
        tracing::info!("obtained a bearer token from the consumer key and secret");
        Ok(Auth::Bearer(SecretString::new(token)))
    }

    /// v1.1 auth: the four OAuth 1.0a keys.
    pub fn oauth1(cfg: &AuthConfig) -> Result<Self> {
        match (&cfg.consumer_key, &cfg.consumer_secret, &cfg.access_token, &cfg.access_token_secret) {
            (Some(ck), Some(cs), Some(t), Some(ts)) => Ok(Auth::OAuth1 {
                consumer_key: ck.clone(),
                consumer_secret: cs.clone(),
                token: t.clone(),
                token_secret: ts.clone(),
            }),
            _ => bail!("twitter.auth: v1.1 needs consumer_key, consumer_secret, access_token, access_token_secret"),
        }
    }

    /// The `Authorization` header for a request. `params` are the query and form parameters
    /// (they are part of the OAuth signature).
    pub fn header(&self, method: &str, url: &str, params: &[(String, String)]) -> String {
        match self {
            Auth::Bearer(t) => format!("Bearer {}", t.expose()),
            Auth::OAuth1 {
                consumer_key,
                consumer_secret,
                token,
                token_secret,
            } => {
                let token = oauth1_request::Token::from_parts(
                    consumer_key.expose(),
                    consumer_secret.expose(),
                    token.expose(),
                    token_secret.expose(),
                );
                let list = oauth1_request::ParameterList::new(
                    params
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect::<Vec<_>>(),
                );
                let builder = oauth1_request::Builder::with_token(token, oauth1_request::HMAC_SHA1);
                builder.authorize(method, url, &list)
            }
        }
    }
}

/// RFC 3986 percent-encoding (what X expects in form bodies, queries and the Basic credentials).
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `k=v&...` with RFC 3986 encoding.
pub fn form(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_credentials() {
        let a = Auth::Bearer(SecretString::new("tok-123"));
        assert!(!format!("{a:?}").contains("tok-123"));
        let o = Auth::OAuth1 {
            consumer_key: SecretString::new("ck-1"),
            consumer_secret: SecretString::new("cs-1"),
            token: SecretString::new("t-1"),
            token_secret: SecretString::new("ts-1"),
        };
        let d = format!("{o:?}");
        assert!(!d.contains("ck-1") && !d.contains("ts-1"));
    }

    #[test]
    fn oauth1_header_verifies_with_the_emulators_independent_verifier() {
        use x_emulator::oauth::{SignedRequest, Verifier};
        let o = Auth::OAuth1 {
            consumer_key: SecretString::new("ck"),
            consumer_secret: SecretString::new("cs secret+/="),
            token: SecretString::new("tok"),
            token_secret: SecretString::new("ts"),
        };
        let params = vec![
            ("track".to_string(), "rust lang,café ☕".to_string()),
            ("delimited".to_string(), "length".to_string()),
        ];
        let header = o.header(
            "POST",
            "http://127.0.0.1:8089/1.1/statuses/filter.json",
            &params,
        );
        let v = Verifier::new("ck", "cs secret+/=", "tok", "ts");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let body = form(&params);
        let ok = v.verify(&SignedRequest {
            method: "POST",
            scheme: "http",
            host: "127.0.0.1:8089",
            path: "/1.1/statuses/filter.json",
            query: None,
            form_body: Some(&body),
            authorization: Some(&header),
            now_secs: now,
        });
        assert_eq!(ok, Ok(()));
    }

    #[test]
    fn encoding() {
        assert_eq!(urlencode("a b+c/é"), "a%20b%2Bc%2F%C3%A9");
        assert_eq!(form(&[("k".into(), "v w".into())]), "k=v%20w");
    }
}
