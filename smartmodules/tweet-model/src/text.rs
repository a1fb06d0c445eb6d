//! Text helpers: HTML entity decoding (X escapes `&`, `<`, `>` in tweet text) and
//! case-insensitive whole-word search.

/// Decode `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;`, `&#39;` and numeric entities.
pub fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos..];
        let end = rest[1..]
            .find(|c: char| c == ';' || c == '&' || c.is_whitespace())
            .map(|i| i + 1);
        let decoded = match end {
            Some(end) if rest.as_bytes().get(end) == Some(&b';') => {
                let name = &rest[1..end];
                let ch = match name {
                    "amp" => Some('&'),
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    _ => name
                        .strip_prefix("#x")
                        .or_else(|| name.strip_prefix("#X"))
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                        .and_then(char::from_u32),
                };
                ch.map(|c| (c, end + 1))
            }
            _ => None,
        };
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Does `text` contain `word` as a whole word (case-insensitive)? A word boundary is any
/// character that is not alphanumeric or `_`; `word` may contain spaces (a phrase).
pub fn contains_word(text_lower: &str, word_lower: &str) -> bool {
    if word_lower.is_empty() {
        return false;
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut start = 0;
    while let Some(pos) = text_lower[start..].find(word_lower) {
        let at = start + pos;
        let end = at + word_lower.len();
        let before_ok = text_lower[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !is_word(c));
        let after_ok = text_lower[end..].chars().next().is_none_or(|c| !is_word(c));
        if before_ok && after_ok {
            return true;
        }
        start = at
            + text_lower[at..]
                .chars()
                .next()
                .map(char::len_utf8)
                .unwrap_or(1);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities() {
        assert_eq!(
            decode_entities(
                "a &amp; b &lt;3 &gt; &quot;q&quot; &#39;s &#x1F600; &unknown; & alone"
            ),
            "a & b <3 > \"q\" 's 😀 &unknown; & alone"
        );
        assert_eq!(decode_entities("&amp;amp;"), "&amp;");
        assert_eq!(decode_entities("plain"), "plain");
    }

    #[test]
    fn whole_words() {
        assert!(contains_word("i love rust!", "rust"));
        assert!(!contains_word("trustworthy", "rust"));
        assert!(contains_word("rust", "rust"));
        assert!(contains_word("big data model", "data model"));
        assert!(contains_word("café au lait", "café"));
        assert!(!contains_word("cafés", "café"));
        assert!(contains_word("東京 の 夜", "東京"));
    }
}
