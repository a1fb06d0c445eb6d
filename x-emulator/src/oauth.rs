//! OAuth 1.0a (RFC 5849, HMAC-SHA1) verification, written independently of the client's
//! signer so that a signing bug cannot hide behind the same code on both sides.
//!
//! Checked: the signature over query + form body + `oauth_*` parameters and the base URL with
//! its port, the consumer key and token, the timestamp window, and nonce replay.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// RFC 3986 unreserved characters stay; everything else is `%XX` (uppercase hex).
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, RFC3986).to_string()
}

/// The signature base string: `METHOD&enc(base_url)&enc(sorted params)`.
pub fn base_string(method: &str, base_url: &str, params: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> =
        params.iter().map(|(k, v)| (encode(k), encode(v))).collect();
    encoded.sort();
    let joined = encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        encode(base_url),
        encode(&joined)
    )
}

/// base64(HMAC-SHA1(enc(consumer_secret)&enc(token_secret), base_string)).
pub fn signature(base_string: &str, consumer_secret: &str, token_secret: &str) -> String {
    let key = format!("{}&{}", encode(consumer_secret), encode(token_secret));
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(base_string.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// `scheme://host[:port]/path`, the port left out when it is the scheme's default.
pub fn base_url(scheme: &str, host_header: &str, path: &str) -> String {
    let scheme = scheme.to_ascii_lowercase();
    let host = host_header.to_ascii_lowercase();
    let host = match (scheme.as_str(), host.rsplit_once(':')) {
        ("http", Some((h, "80"))) | ("https", Some((h, "443"))) => h.to_string(),
        _ => host,
    };
    format!("{scheme}://{host}{path}")
}

/// Parse `application/x-www-form-urlencoded` text (`+` is a space) into pairs.
pub fn parse_form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let dec = |s: &str| {
                percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

/// Parse an `Authorization: OAuth k="v", ...` header.
pub fn parse_authorization(header: &str) -> Option<Vec<(String, String)>> {
    let rest = header.trim().strip_prefix("OAuth ")?;
    let mut out = Vec::new();
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (k, v) = part.split_once('=')?;
        let v = v.trim().trim_matches('"');
        let dec = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
        out.push((dec(k.trim()), dec(v)));
    }
    Some(out)
}

/// The credentials the emulator accepts, and what it has seen.
pub struct Verifier {
    pub consumer_key: String,
    pub consumer_secret: String,
    pub token: String,
    pub token_secret: String,
    pub window_secs: i64,
    seen: Mutex<(HashSet<String>, VecDeque<String>)>,
}

/// A request as the verifier needs it.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub scheme: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The form body, when the request has one of type `application/x-www-form-urlencoded`.
    pub form_body: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub now_secs: i64,
}

impl Verifier {
    pub fn new(consumer_key: &str, consumer_secret: &str, token: &str, token_secret: &str) -> Self {
        Self {
            consumer_key: consumer_key.into(),
            consumer_secret: consumer_secret.into(),
            token: token.into(),
            token_secret: token_secret.into(),
            window_secs: 300,
            seen: Mutex::new((HashSet::new(), VecDeque::new())),
        }
    }

    /// Ok, or the reason for a 401 (worded like X's error messages).
    pub fn verify(&self, req: &SignedRequest<'_>) -> Result<(), String> {
        let header = req
            .authorization
            .ok_or("Authentication required: no Authorization header")?;
        let oauth = parse_authorization(header)
            .ok_or("Could not authenticate you: malformed OAuth header")?;
        let get = |name: &str| {
            oauth
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if get("oauth_signature_method") != Some("HMAC-SHA1") {
            return Err(
                "Could not authenticate you: oauth_signature_method must be HMAC-SHA1".into(),
            );
        }
        if get("oauth_consumer_key") != Some(self.consumer_key.as_str()) {
            return Err("Could not authenticate you: unknown consumer key".into());
        }
        if get("oauth_token") != Some(self.token.as_str()) {
            return Err("Invalid or expired token".into());
        }
        let timestamp: i64 = get("oauth_timestamp")
            .and_then(|t| t.parse().ok())
            .ok_or("Could not authenticate you: missing oauth_timestamp")?;
        if (timestamp - req.now_secs).abs() > self.window_secs {
            return Err(format!(
                "Timestamp out of bounds: request {timestamp}, server {} (check the client clock)",
                req.now_secs
            ));
        }
        let nonce = get("oauth_nonce").ok_or("Could not authenticate you: missing oauth_nonce")?;
        let given =
            get("oauth_signature").ok_or("Could not authenticate you: missing oauth_signature")?;

        let mut params: Vec<(String, String)> = Vec::new();
        if let Some(q) = req.query {
            params.extend(parse_form(q));
        }
        if let Some(body) = req.form_body {
            params.extend(parse_form(body));
        }
        params.extend(
            oauth
                .iter()
                .filter(|(k, _)| k != "oauth_signature" && k != "realm")
                .cloned(),
        );
        let base = base_string(
            req.method,
            &base_url(req.scheme, req.host, req.path),
            &params,
        );
        let expected = signature(&base, &self.consumer_secret, &self.token_secret);
        if expected != given {
            return Err("Could not authenticate you: invalid signature".into());
        }
        let mut seen = self.seen.lock().expect("nonce lock");
        let key = format!("{timestamp}:{nonce}");
        if !seen.0.insert(key.clone()) {
            return Err("Could not authenticate you: nonce already used".into());
        }
        seen.1.push_back(key);
        if seen.1.len() > 100_000 {
            if let Some(old) = seen.1.pop_front() {
                seen.0.remove(&old);
            }
        }
        Ok(())
    }
}

/// Basic-auth decoding for `POST /oauth2/token`: `base64(urlenc(key):urlenc(secret))`.
pub fn parse_basic(header: &str) -> Option<(String, String)> {
    let b64 = header.trim().strip_prefix("Basic ")?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (k, s) = text.split_once(':')?;
    let dec = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    Some((dec(k), dec(s)))
}

/// Counts per path of requests that failed verification (for the emulator log).
pub type Failures = HashMap<String, u64>;

#[cfg(test)]
mod tests {
    use super::*;

    // The published example of X's "Creating a signature" documentation.
    const CK: &str = "xvz1evFS4wEEPTGEFPHBog";
    const CS: &str = "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw";
    const TOKEN: &str = "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb";
    const TS: &str = "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE";
    const NONCE: &str = "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg";

    fn vector_params() -> Vec<(String, String)> {
        let mut p = parse_form("include_entities=true");
        p.extend(parse_form(
            "status=Hello%20Ladies%20%2B%20Gentlemen%2C%20a%20signed%20OAuth%20request%21",
        ));
        for (k, v) in [
            ("oauth_consumer_key", CK),
            ("oauth_nonce", NONCE),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "1318622958"),
            ("oauth_token", TOKEN),
            ("oauth_version", "1.0"),
        ] {
            p.push((k.into(), v.into()));
        }
        p
    }

    #[test]
    fn published_vector_twitter_host() {
        let base = base_string(
            "POST",
            "https://api.twitter.com/1.1/statuses/update.json",
            &vector_params(),
        );
        assert_eq!(signature(&base, CS, TS), "hCtSmYh+iHYCEqBWrE7C7hYmtUk=");
    }

    #[test]
    fn published_vector_x_host() {
        let base = base_string(
            "POST",
            "https://api.x.com/1.1/statuses/update.json",
            &vector_params(),
        );
        assert_eq!(signature(&base, CS, TS), "Ls93hJiZbQ3akF3HF3x1Bz8/zU4=");
    }

    #[test]
    fn encoding_rules() {
        assert_eq!(
            encode("Hello Ladies + Gentlemen!"),
            "Hello%20Ladies%20%2B%20Gentlemen%21"
        );
        assert_eq!(encode("a-b._~"), "a-b._~");
        assert_eq!(encode("é"), "%C3%A9");
        assert_eq!(
            base_url("HTTP", "Example.COM:80", "/r"),
            "http://example.com/r"
        );
        assert_eq!(
            base_url("http", "127.0.0.1:8080", "/r"),
            "http://127.0.0.1:8080/r"
        );
        assert_eq!(
            base_url("https", "api.x.com:443", "/r"),
            "https://api.x.com/r"
        );
    }

    fn header(sig: &str, ts: i64, nonce: &str) -> String {
        format!(
            "OAuth oauth_consumer_key=\"{CK}\", oauth_nonce=\"{nonce}\", oauth_signature=\"{}\", oauth_signature_method=\"HMAC-SHA1\", oauth_timestamp=\"{ts}\", oauth_token=\"{}\", oauth_version=\"1.0\"",
            encode(sig),
            encode(TOKEN)
        )
    }

    #[test]
    fn verifies_the_published_request_and_rejects_tampering_skew_and_replay() {
        let v = Verifier::new(CK, CS, TOKEN, TS);
        let good = header("hCtSmYh+iHYCEqBWrE7C7hYmtUk=", 1318622958, NONCE);
        let body = "status=Hello%20Ladies%20%2B%20Gentlemen%2C%20a%20signed%20OAuth%20request%21";
        let req = |auth: &str, body: &str, now: i64| {
            v.verify(&SignedRequest {
                method: "POST",
                scheme: "https",
                host: "api.twitter.com",
                path: "/1.1/statuses/update.json",
                query: Some("include_entities=true"),
                form_body: Some(body),
                authorization: Some(auth),
                now_secs: now,
            })
        };
        let tampered = body.replace("Hello", "Hallo");
        assert!(req(&good, &tampered, 1318622958)
            .unwrap_err()
            .contains("invalid signature"));
        assert!(req(&good, body, 1318622958 + 3600)
            .unwrap_err()
            .contains("Timestamp out of bounds"));
        assert_eq!(req(&good, body, 1318622958 + 10), Ok(()));
        assert!(req(&good, body, 1318622958)
            .unwrap_err()
            .contains("nonce already used"));
        assert!(v
            .verify(&SignedRequest {
                method: "POST",
                scheme: "https",
                host: "api.twitter.com",
                path: "/1.1/statuses/update.json",
                query: None,
                form_body: None,
                authorization: None,
                now_secs: 0
            })
            .is_err());
    }

    #[test]
    fn basic_auth() {
        let h = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("key%2Bx:sec%3Dret")
        );
        assert_eq!(parse_basic(&h), Some(("key+x".into(), "sec=ret".into())));
    }
}
