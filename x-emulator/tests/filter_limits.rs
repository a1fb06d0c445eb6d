//! X's v1.1 filter limits, over HTTP: a signed `POST /1.1/statuses/filter.json` with more than 25
//! location boxes, 400 track phrases or 5,000 follow ids gets 413 with X's body; at the limits
//! it streams; no predicate, or locations that are not boxes, get 406. (The connector refuses
//! such configs before sending them, so only a raw client reaches these answers.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x_emulator::oauth::{base_string, encode, signature};
use x_emulator::{Corpus, Credentials, Emulator, EmulatorConfig};

const PATH: &str = "/1.1/statuses/filter.json";

/// Send a POST with OAuth 1.0a over the body `params`; the status and, for errors, the body.
fn signed_post(emu: &Emulator, params: &[(&str, String)], nonce: &str) -> (u16, String) {
    let creds = Credentials::default();
    let host = emu.base_url().trim_start_matches("http://").to_string();
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let oauth = [
        ("oauth_consumer_key", creds.consumer_key.clone()),
        ("oauth_nonce", nonce.to_string()),
        ("oauth_signature_method", "HMAC-SHA1".to_string()),
        ("oauth_timestamp", ts),
        ("oauth_token", creds.access_token.clone()),
        ("oauth_version", "1.0".to_string()),
    ];
    let all: Vec<(String, String)> = oauth
        .iter()
        .chain(params)
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let base = base_string("POST", &format!("http://{host}{PATH}"), &all);
    let sig = signature(&base, &creds.consumer_secret, &creds.access_token_secret);
    let header = oauth
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", encode(v)))
        .chain(std::iter::once(format!(
            "oauth_signature=\"{}\"",
            encode(&sig)
        )))
        .collect::<Vec<_>>()
        .join(", ");
    let body = params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut conn = TcpStream::connect(&host).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        conn,
        "POST {PATH} HTTP/1.1\r\nHost: {host}\r\nAuthorization: OAuth {header}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reader = BufReader::new(conn);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {status_line:?}"));
    if status == 200 {
        return (status, String::new()); // a stream: it does not end
    }
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    (status, rest)
}

fn boxes(n: usize) -> String {
    (0..n)
        .map(|i| {
            let w = -120.0 + i as f64;
            format!("{w},30,{},31", w + 0.5)
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn filter_predicates_over_xs_limits_get_413_and_at_the_limits_stream() {
    let mut cfg = EmulatorConfig::new(Corpus::generated(1_700_000_000_000));
    cfg.limit = Some(5);
    let emu = Emulator::start_background(cfg).unwrap();
    let track = |n: usize| {
        (0..n)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let follow = |n: usize| {
        (0..n)
            .map(|i| (1_000_000 + i).to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let too_large = [
        ("locations", boxes(26)),
        ("track", track(401)),
        ("follow", follow(5001)),
    ];
    for (i, (name, value)) in too_large.into_iter().enumerate() {
        let (status, body) = signed_post(&emu, &[(name, value)], &format!("over{i}"));
        assert_eq!(status, 413, "{name} over the limit: {body}");
        assert!(
            body.contains(r#""errors""#) && body.contains("325"),
            "X's v1.1 error body for 413: {body}"
        );
    }
    let at_limit = [
        ("locations", boxes(25)),
        ("track", track(400)),
        ("follow", follow(5000)),
    ];
    for (i, (name, value)) in at_limit.into_iter().enumerate() {
        let (status, body) = signed_post(&emu, &[(name, value)], &format!("at{i}"));
        assert_eq!(status, 200, "{name} at the limit: {body}");
    }
    let (status, _) = signed_post(&emu, &[("language", "en".into())], "none");
    assert_eq!(status, 406, "no track, follow or locations");
    let (status, _) = signed_post(&emu, &[("locations", "1,2,3".into())], "notbox");
    assert_eq!(status, 406, "locations that are not boxes of four");
}
