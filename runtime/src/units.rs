//! Durations and byte sizes in connector configs, read one way by every connector: a
//! duration is text with its unit (`250ms`, `5s`, `1m`), a size a byte count or text with its
//! unit (`512 KB`, `1 MiB`). A bare number as a duration is refused: upstream configs read it
//! as milliseconds in some places and seconds in others.
//!
//! Use with serde: `#[serde(deserialize_with = "connector_runtime::units::duration")]`.

use std::time::Duration;

use serde::de::Error;
use serde::{Deserialize, Deserializer};
use serde_yaml::Value;

const DURATION: &str = "expected a duration with its unit, like `250ms` or `5s`";
const SIZE: &str = "expected a size like `512 KB` or `1 MiB`, or a byte count";

/// A required duration.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    parse_duration(Value::deserialize(d)?).map_err(D::Error::custom)
}

/// An optional duration (absent or `null`: `None`).
pub fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(v) => parse_duration(v).map(Some).map_err(D::Error::custom),
    }
}

/// An optional size in bytes.
pub fn opt_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(v) => parse_bytes(v).map(Some).map_err(D::Error::custom),
    }
}

/// A duration from text (`Value::String`); anything else is an error saying what is expected.
pub fn parse_duration(v: Value) -> Result<Duration, String> {
    match v {
        Value::String(s) => {
            humantime::parse_duration(s.trim()).map_err(|e| format!("{DURATION}: `{s}`: {e}"))
        }
        Value::Number(n) => Err(format!(
            "{DURATION} (a bare number, `{n}`, could be seconds or milliseconds)"
        )),
        _ => Err(DURATION.to_string()),
    }
}

fn parse_bytes(v: Value) -> Result<u64, String> {
    match v {
        Value::Number(n) => n.as_u64().ok_or_else(|| SIZE.to_string()),
        Value::String(s) => s
            .trim()
            .parse::<bytesize::ByteSize>()
            .map(|b| b.as_u64())
            .map_err(|e| format!("{SIZE}: `{s}`: {e}")),
        _ => Err(SIZE.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Cfg {
        #[serde(deserialize_with = "duration")]
        every: Duration,
        #[serde(default, deserialize_with = "opt_duration")]
        timeout: Option<Duration>,
        #[serde(default, deserialize_with = "opt_bytes")]
        size: Option<u64>,
    }

    fn parse(y: &str) -> Result<Cfg, String> {
        serde_yaml::from_str(y).map_err(|e| e.to_string())
    }

    #[test]
    fn durations_and_sizes_with_their_units() {
        let c = parse("every: 250ms\ntimeout: 1m 30s\nsize: 1 MiB\n").unwrap();
        assert_eq!(c.every, Duration::from_millis(250));
        assert_eq!(c.timeout, Some(Duration::from_secs(90)));
        assert_eq!(c.size, Some(1 << 20));
        let c = parse("every: 5s\ntimeout: null\nsize: 4096\n").unwrap();
        assert_eq!((c.timeout, c.size), (None, Some(4096)));
    }

    #[test]
    fn a_bare_number_or_a_bad_unit_says_what_is_expected() {
        let e = parse("every: 100\n").unwrap_err();
        assert!(e.contains("with its unit") && e.contains("`100`"), "{e}");
        let e = parse("every: 1s\ntimeout: 3 fortnights\n").unwrap_err();
        assert!(
            e.contains("like `250ms`") && e.contains("3 fortnights"),
            "{e}"
        );
        let e = parse("every: 1s\nsize: lots\n").unwrap_err();
        assert!(e.contains("like `512 KB`"), "{e}");
    }
}
