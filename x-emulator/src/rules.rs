//! The v2 filtered-stream rules of the emulated app: the rules API (add, delete by id,
//! `delete_all`, `dry_run`, caps, duplicate and invalid rules) and a matcher for a practical
//! subset of the query language (keywords, "phrases", #hashtags, `-negation`, `OR`,
//! `lang:xx`, `from:user`, parentheses are ignored).

use serde_json::{json, Value};

/// One stored rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    pub value: String,
    pub tag: Option<String>,
}

/// The app's rules and the caps of its access level.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    next_id: u64,
    pub max_rules: usize,
    pub max_rule_len: usize,
}

impl Default for RuleSet {
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            next_id: 1_600_000_000_000_000_000,
            max_rules: 1000,
            max_rule_len: 1024,
        }
    }
}

/// What a tweet offers to the matcher.
pub struct Candidate<'a> {
    pub text: &'a str,
    pub lang: &'a str,
    pub username: &'a str,
}

impl RuleSet {
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// One page of `GET /2/tweets/search/stream/rules`: `page` rules from the one the
    /// `pagination_token` names (None: the token is not one this list gave).
    pub fn list_page(&self, page: usize, token: Option<&str>) -> Option<Value> {
        let start = match token {
            None => 0,
            Some(t) => t
                .strip_prefix("rules-page-")?
                .parse::<usize>()
                .ok()
                .filter(|i| *i < self.rules.len())?,
        };
        let end = (start + page).min(self.rules.len());
        let data: Vec<Value> = self.rules[start..end].iter().map(rule_json).collect();
        let mut body = json!({"meta": {"sent": now_rfc3339(), "result_count": data.len()}});
        if !data.is_empty() {
            body["data"] = Value::Array(data);
        }
        if end < self.rules.len() {
            body["meta"]["next_token"] = json!(format!("rules-page-{end}"));
        }
        Some(body)
    }

    /// `POST /2/tweets/search/stream/rules` with `{"add": [...]}`; returns (status, body).
    pub fn add(&mut self, adds: &[Value], dry_run: bool) -> (u16, Value) {
        let mut created = Vec::new();
        let mut errors = Vec::new();
        let mut pending: Vec<Rule> = Vec::new();
        for add in adds {
            let value = add
                .get("value")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let tag = add.get("tag").and_then(Value::as_str).map(str::to_string);
            if let Some(problem) = validate(&value, self.max_rule_len) {
                errors.push(json!({"value": value, "details": [problem], "title": "UnprocessableEntity", "type": "https://api.twitter.com/2/problems/invalid-rules"}));
                continue;
            }
            if let Some(existing) = self
                .rules
                .iter()
                .chain(pending.iter())
                .find(|r| r.value == value)
            {
                errors.push(json!({"value": value, "id": existing.id, "title": "DuplicateRule", "type": "https://api.twitter.com/2/problems/duplicate-rules"}));
                continue;
            }
            if self.rules.len() + pending.len() >= self.max_rules {
                errors.push(json!({"value": value, "title": "RulesCapExceeded", "type": "https://api.twitter.com/2/problems/rule-cap",
                    "detail": format!("Rule cap of {} rules exceeded", self.max_rules)}));
                continue;
            }
            self.next_id += 1;
            let rule = Rule {
                id: self.next_id.to_string(),
                value,
                tag,
            };
            created.push(rule_json(&rule));
            pending.push(rule);
        }
        let valid = pending.len();
        let invalid = errors.len();
        let mut body = json!({"meta": {"sent": now_rfc3339(), "summary": {
            "created": if dry_run { 0 } else { valid }, "not_created": invalid + if dry_run { valid } else { 0 },
            "valid": valid, "invalid": invalid}}});
        if !created.is_empty() {
            body["data"] = Value::Array(created);
        }
        if !errors.is_empty() {
            body["errors"] = Value::Array(errors);
        }
        // X answers 201 when the request was processed, even with per-rule errors, and 400
        // only when every rule is invalid.
        let status = if valid == 0 && invalid > 0 { 400 } else { 201 };
        if !dry_run && status == 201 {
            self.rules.extend(pending);
        }
        (status, body)
    }

    /// `{"delete": {"ids": [...]}}` or `?delete_all=true` (ids = None).
    pub fn delete(&mut self, ids: Option<&[String]>, dry_run: bool) -> (u16, Value) {
        let (deleted, not_found): (Vec<String>, Vec<String>) = match ids {
            None => (
                self.rules.iter().map(|r| r.id.clone()).collect(),
                Vec::new(),
            ),
            Some(ids) => ids
                .iter()
                .cloned()
                .partition(|id| self.rules.iter().any(|r| &r.id == id)),
        };
        if !dry_run {
            self.rules.retain(|r| !deleted.contains(&r.id));
        }
        let mut body = json!({"meta": {"sent": now_rfc3339(), "summary": {
            "deleted": if dry_run { 0 } else { deleted.len() }, "not_deleted": not_found.len()}}});
        if !not_found.is_empty() {
            body["errors"] = Value::Array(
                not_found
                    .iter()
                    .map(|id| json!({"value": id, "title": "Not Found", "detail": "Rule does not exist", "type": "https://api.twitter.com/2/problems/resource-not-found"}))
                    .collect(),
            );
        }
        (200, body)
    }

    /// The rules a tweet matches, as `matching_rules` entries.
    pub fn matching(&self, c: &Candidate<'_>) -> Vec<Value> {
        self.rules
            .iter()
            .filter(|r| matches(&r.value, c))
            .map(|r| match &r.tag {
                Some(tag) => json!({"id": r.id, "tag": tag}),
                None => json!({"id": r.id}),
            })
            .collect()
    }
}

fn rule_json(r: &Rule) -> Value {
    match &r.tag {
        Some(tag) => json!({"id": r.id, "value": r.value, "tag": tag}),
        None => json!({"id": r.id, "value": r.value}),
    }
}

fn validate(value: &str, max_len: usize) -> Option<String> {
    if value.trim().is_empty() {
        return Some("Rules must contain a non-empty value".into());
    }
    if value.chars().count() > max_len {
        return Some(format!("Rule must be no longer than {max_len} characters"));
    }
    if value.matches('"').count() % 2 == 1 {
        return Some("Rules must have balanced quotes".into());
    }
    if value.matches('(').count() != value.matches(')').count() {
        return Some("Rules must have balanced parentheses".into());
    }
    let terms = tokens(value);
    if !terms.is_empty() && terms.iter().all(|t| t.starts_with('-')) {
        return Some("Rules must contain at least one positive, non-stopword clause".into());
    }
    for t in &terms {
        if let Some((op, _)) = t.trim_start_matches('-').split_once(':') {
            if !["lang", "from", "to", "has", "is", "url", "place", "sample"].contains(&op) {
                return Some(format!("Reference to invalid operator '{op}'. Operator is not available in current product or product packaging."));
            }
        }
    }
    None
}

fn tokens(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for ch in value.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                cur.push(ch);
            }
            '(' | ')' if !quoted => {}
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Whether a rule matches: alternatives split by `OR`, each an AND of its terms.
pub fn matches(rule: &str, c: &Candidate<'_>) -> bool {
    let text = c.text.to_lowercase();
    let words: Vec<&str> = text
        .split(|ch: char| !(ch.is_alphanumeric() || ch == '#' || ch == '_' || ch == '@'))
        .filter(|w| !w.is_empty())
        .collect();
    let toks = tokens(rule);
    toks.split(|t| t == "OR").any(|alt| {
        !alt.is_empty()
            && alt.iter().all(|t| {
                let (neg, t) = match t.strip_prefix('-') {
                    Some(rest) => (true, rest),
                    None => (false, t.as_str()),
                };
                let hit = term_matches(t, &text, &words, c);
                hit != neg
            })
    })
}

fn term_matches(term: &str, text: &str, words: &[&str], c: &Candidate<'_>) -> bool {
    let lower = term.to_lowercase();
    if let Some(lang) = lower.strip_prefix("lang:") {
        return c.lang.eq_ignore_ascii_case(lang);
    }
    if let Some(user) = lower.strip_prefix("from:") {
        return c.username.eq_ignore_ascii_case(user);
    }
    if lower.contains(':') {
        return true; // other operators are accepted and not evaluated
    }
    if let Some(phrase) = lower.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
        return text.contains(phrase);
    }
    words.contains(&lower.as_str())
}

fn now_rfc3339() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    crate::generator::rfc3339(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand<'a>(text: &'a str, lang: &'a str) -> Candidate<'a> {
        Candidate {
            text,
            lang,
            username: "ada",
        }
    }

    #[test]
    fn matcher_subset() {
        assert!(matches("cats", &cand("I love Cats!", "en")));
        assert!(!matches("cats", &cand("concatsy", "en")));
        assert!(matches("cats dogs", &cand("cats and dogs", "en")));
        assert!(!matches("cats dogs", &cand("cats only", "en")));
        assert!(matches("cats OR dogs", &cand("dogs only", "en")));
        assert!(matches("cats -dogs", &cand("cats only", "en")));
        assert!(!matches("cats -dogs", &cand("cats and dogs", "en")));
        assert!(matches(
            "\"space launch\" lang:en",
            &cand("a space launch today", "en")
        ));
        assert!(!matches(
            "\"space launch\" lang:en",
            &cand("a space launch today", "fr")
        ));
        assert!(matches("#RustLang", &cand("hello #rustlang", "en")));
        assert!(matches("from:ada code", &cand("code", "en")));
    }

    #[test]
    fn rules_api_semantics() {
        let mut rs = RuleSet::default();
        let (s, b) = rs.add(&[json!({"value": "cats", "tag": "pets"})], true);
        assert_eq!(s, 201);
        assert_eq!(b["meta"]["summary"]["valid"], 1);
        assert!(rs.rules().is_empty(), "dry run stores nothing");
        let (s, _) = rs.add(
            &[
                json!({"value": "cats", "tag": "pets"}),
                json!({"value": "dogs"}),
            ],
            false,
        );
        assert_eq!(s, 201);
        assert_eq!(rs.rules().len(), 2);
        let (_, b) = rs.add(&[json!({"value": "cats"})], false);
        assert!(b["errors"][0]["type"]
            .as_str()
            .unwrap()
            .ends_with("duplicate-rules"));
        let (s, b) = rs.add(&[json!({"value": "cats bogus:op"})], false);
        assert_eq!(s, 400);
        assert!(b["errors"][0]["details"][0]
            .as_str()
            .unwrap()
            .contains("bogus"));
        let id = rs.rules()[0].id.clone();
        let (_, b) = rs.delete(Some(&[id, "nope".into()]), false);
        assert_eq!(b["meta"]["summary"]["deleted"], 1);
        assert_eq!(b["meta"]["summary"]["not_deleted"], 1);
        rs.delete(None, false);
        assert!(rs.rules().is_empty());
        rs.max_rules = 1;
        let (_, b) = rs.add(&[json!({"value": "a"}), json!({"value": "b"})], false);
        assert!(b["errors"][0]["type"]
            .as_str()
            .unwrap()
            .ends_with("rule-cap"));
    }
}
