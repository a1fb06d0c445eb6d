//! The tweet filter: parameters (all optional, combined with AND; each list is an OR) checked
//! against a [`Shaped`] tweet, so raw v1.1, raw v2 and shaped input are judged alike.

use std::collections::BTreeMap;

use crate::record::{Kind, Shaped};
use crate::text::contains_word;

/// Parsed `tweet-filter` parameters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Whole words or phrases, case-insensitive, on the full text.
    pub keywords: Vec<String>,
    /// Without `#`, case-insensitive.
    pub hashtags: Vec<String>,
    pub languages: Vec<String>,
    /// Author ids or usernames (case-insensitive, `@` optional).
    pub users: Vec<String>,
    /// v2 `matching_rules` tags.
    pub rule_tags: Vec<String>,
    pub exclude_retweets: bool,
    pub exclude_replies: bool,
    pub exclude_quotes: bool,
    /// Drop a version of an edited post that a later version replaced (its id is not the last
    /// of its edit history).
    pub latest_version_only: bool,
    pub min_followers: Option<u64>,
    /// `Some(true)`: only tweets with media; `Some(false)`: only without.
    pub has_media: Option<bool>,
    pub has_links: Option<bool>,
    /// Keep this percentage of tweets, chosen by id (the same ids everywhere).
    pub sample_percent: Option<f64>,
}

/// The parameters a module accepts, for error messages.
pub const PARAMS: &[&str] = &[
    "keywords",
    "hashtags",
    "languages",
    "users",
    "rule_tags",
    "exclude_retweets",
    "exclude_replies",
    "exclude_quotes",
    "latest_version_only",
    "min_followers",
    "has_media",
    "has_links",
    "sample_percent",
    "on_invalid",
];

fn list(v: &str, lower: bool) -> Vec<String> {
    // A JSON list (from a YAML list in `with:`) or comma-separated text.
    let items: Vec<String> = match serde_json::from_str::<Vec<serde_json::Value>>(v) {
        Ok(values) => values
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| x.to_string())
            })
            .collect(),
        Err(_) => v.split(',').map(str::to_string).collect(),
    };
    items
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .map(|s| if lower { s.to_lowercase() } else { s })
        .collect()
}

fn boolean(name: &str, v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        other => Err(format!(
            "parameter `{name}`: expected true or false, got `{other}`"
        )),
    }
}

impl Filter {
    /// From `with:` parameters; unknown names and bad values are errors naming the parameter.
    pub fn from_params(params: &BTreeMap<String, String>) -> Result<Self, String> {
        let mut f = Filter::default();
        for (name, v) in params {
            match name.as_str() {
                "keywords" => f.keywords = list(v, true),
                "hashtags" => {
                    f.hashtags = list(v, true)
                        .into_iter()
                        .map(|h| h.trim_start_matches('#').to_string())
                        .collect()
                }
                "languages" => f.languages = list(v, true),
                "users" => {
                    f.users = list(v, true)
                        .into_iter()
                        .map(|u| u.trim_start_matches('@').to_string())
                        .collect()
                }
                "rule_tags" => f.rule_tags = list(v, false),
                "exclude_retweets" => f.exclude_retweets = boolean(name, v)?,
                "exclude_replies" => f.exclude_replies = boolean(name, v)?,
                "exclude_quotes" => f.exclude_quotes = boolean(name, v)?,
                "latest_version_only" => f.latest_version_only = boolean(name, v)?,
                "min_followers" => {
                    f.min_followers = Some(v.trim().parse().map_err(|_| {
                        format!("parameter `min_followers`: expected a whole number, got `{v}`")
                    })?)
                }
                "has_media" => f.has_media = Some(boolean(name, v)?),
                "has_links" => f.has_links = Some(boolean(name, v)?),
                "sample_percent" => {
                    let p: f64 = v.trim().trim_end_matches('%').parse().map_err(|_| format!("parameter `sample_percent`: expected a number from 0 to 100, got `{v}`"))?;
                    if !(0.0..=100.0).contains(&p) {
                        return Err(format!(
                            "parameter `sample_percent`: expected 0 to 100, got {p}"
                        ));
                    }
                    f.sample_percent = Some(p);
                }
                "on_invalid" => {}
                other => {
                    return Err(format!(
                        "unknown parameter `{other}` (known: {})",
                        PARAMS.join(", ")
                    ))
                }
            }
        }
        Ok(f)
    }

    /// Does the tweet pass every condition?
    pub fn matches(&self, t: &Shaped) -> bool {
        if self.exclude_retweets && t.kind == Kind::Retweet
            || self.exclude_replies && t.kind == Kind::Reply
            || self.exclude_quotes && t.kind == Kind::Quote
        {
            return false;
        }
        if self.latest_version_only && t.is_superseded() {
            return false;
        }
        if !self.languages.is_empty()
            && !t
                .lang
                .as_deref()
                .is_some_and(|l| self.languages.iter().any(|x| x.eq_ignore_ascii_case(l)))
        {
            return false;
        }
        if let Some(min) = self.min_followers {
            if t.author.followers.is_none_or(|f| f < min) {
                return false;
            }
        }
        if let Some(want) = self.has_media {
            if want == t.media.is_empty() {
                return false;
            }
        }
        if let Some(want) = self.has_links {
            if want == t.urls.is_empty() {
                return false;
            }
        }
        if !self.users.is_empty() {
            let id = t.author.id.as_deref().unwrap_or("");
            let name = t.author.username.as_deref().unwrap_or("").to_lowercase();
            if !self
                .users
                .iter()
                .any(|u| u == id || (!name.is_empty() && *u == name))
            {
                return false;
            }
        }
        if !self.rule_tags.is_empty()
            && !t.matching_rules.iter().any(|r| {
                r.tag
                    .as_ref()
                    .is_some_and(|tag| self.rule_tags.contains(tag))
            })
        {
            return false;
        }
        if !self.hashtags.is_empty()
            && !t.hashtags.iter().any(|h| {
                self.hashtags
                    .iter()
                    .any(|x| x.eq_ignore_ascii_case(h) || x.to_lowercase() == h.to_lowercase())
            })
        {
            return false;
        }
        if !self.keywords.is_empty() {
            let text = t.text.to_lowercase();
            if !self.keywords.iter().any(|k| contains_word(&text, k)) {
                return false;
            }
        }
        if let Some(p) = self.sample_percent {
            if !sampled(&t.id, p) {
                return false;
            }
        }
        true
    }
}

/// Deterministic sampling: FNV-1a of the id, in basis points.
pub fn sampled(id: &str, percent: f64) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    ((h % 10_000) as f64) < percent * 100.0
}
