//! Reading a request's query string as the connector sends it (percent-encoded values).

/// A query parameter's value, percent-decoded.
pub fn param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .map(percent_decode)
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_found_and_decoded() {
        let q = "partition=3&start_time=2026-11-30T07%3A00%3A00Z&backfill_minutes=2";
        assert_eq!(param(q, "partition").as_deref(), Some("3"));
        assert_eq!(
            param(q, "start_time").as_deref(),
            Some("2026-11-30T07:00:00Z")
        );
        assert_eq!(param(q, "backfill").as_deref(), None, "a whole name only");
        assert_eq!(param("", "partition"), None);
    }
}
