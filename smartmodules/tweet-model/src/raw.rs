//! The raw API dialects, read with borrowed, typed structs: only the fields the shaped record
//! needs are decoded, the rest is skipped (still validated as JSON).

use std::borrow::Cow;

use serde::Deserialize;

/// An id that arrives as a JSON number (exact, as u64) or a string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Id<'a> {
    Num(u64),
    #[serde(borrow)]
    Str(Cow<'a, str>),
}

impl Id<'_> {
    pub fn to_string_exact(&self) -> String {
        match self {
            Id::Num(n) => n.to_string(),
            Id::Str(s) => s.to_string(),
        }
    }
}

/// One message of either dialect: the v1.1 status fields and the v2 envelope fields side by
/// side in one struct (the dialects share no top-level key but `matching_rules`, which has the
/// same form in both). No `#[serde(flatten)]`: it would buffer every unknown field.
pub type Message<'a> = V1Status<'a>;

#[derive(Debug, Deserialize, Default)]
pub struct RuleRef<'a> {
    #[serde(borrow, default)]
    pub id: Option<Id<'a>>,
    #[serde(borrow, default)]
    pub tag: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize, Default)]
pub struct V1Status<'a> {
    // v2 envelope
    #[serde(borrow, default)]
    pub data: Option<V2Tweet<'a>>,
    #[serde(borrow, default)]
    pub includes: Option<V2Includes<'a>>,
    #[serde(borrow, default)]
    pub matching_rules: Option<Vec<RuleRef<'a>>>,
    // v1.1 status
    #[serde(borrow, default)]
    pub id_str: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub id: Option<Id<'a>>,
    #[serde(borrow, default)]
    pub created_at: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub timestamp_ms: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub full_text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub extended_tweet: Option<V1Extended<'a>>,
    #[serde(borrow, default)]
    pub lang: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub user: Option<V1User<'a>>,
    #[serde(borrow, default)]
    pub entities: Option<V1Entities<'a>>,
    #[serde(borrow, default)]
    pub extended_entities: Option<V1Entities<'a>>,
    #[serde(borrow, default)]
    pub retweeted_status: Option<Box<V1Status<'a>>>,
    #[serde(borrow, default)]
    pub quoted_status: Option<Box<V1Status<'a>>>,
    #[serde(borrow, default)]
    pub quoted_status_id_str: Option<Cow<'a, str>>,
    #[serde(default)]
    pub is_quote_status: Option<bool>,
    #[serde(borrow, default)]
    pub in_reply_to_status_id_str: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub in_reply_to_status_id: Option<Id<'a>>,
    #[serde(default)]
    pub coordinates: Option<V1Coordinates>,
    #[serde(borrow, default)]
    pub place: Option<Place<'a>>,
    #[serde(default)]
    pub retweet_count: Option<u64>,
    #[serde(default)]
    pub reply_count: Option<u64>,
    #[serde(default)]
    pub favorite_count: Option<u64>,
    #[serde(default)]
    pub quote_count: Option<u64>,
    /// Enterprise v1.1 payloads: `{initial_tweet_id, edit_tweet_ids}`.
    #[serde(borrow, default)]
    pub edit_history: Option<V1EditHistory<'a>>,
    // Bluesky Jetstream: `{did, time_us, kind, commit}`
    #[serde(borrow, default)]
    pub did: Option<Cow<'a, str>>,
    #[serde(default)]
    pub time_us: Option<i64>,
    #[serde(borrow, default)]
    pub commit: Option<crate::bluesky::Commit<'a>>,
}

#[derive(Debug, Deserialize, Default)]
pub struct V1EditHistory<'a> {
    #[serde(borrow, default)]
    pub edit_tweet_ids: Option<Vec<Cow<'a, str>>>,
}

#[derive(Debug, Deserialize, Default)]
pub struct V1Extended<'a> {
    #[serde(borrow, default)]
    pub full_text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub entities: Option<V1Entities<'a>>,
    #[serde(borrow, default)]
    pub extended_entities: Option<V1Entities<'a>>,
}

#[derive(Debug, Deserialize, Default)]
pub struct V1User<'a> {
    #[serde(borrow, default)]
    pub id_str: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub id: Option<Id<'a>>,
    #[serde(borrow, default)]
    pub screen_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    #[serde(default)]
    pub followers_count: Option<u64>,
    #[serde(default)]
    pub verified: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
pub struct V1Entities<'a> {
    #[serde(borrow, default)]
    pub hashtags: Option<Vec<Tag<'a>>>,
    #[serde(borrow, default)]
    pub user_mentions: Option<Vec<Mention<'a>>>,
    #[serde(borrow, default)]
    pub urls: Option<Vec<Url<'a>>>,
    #[serde(borrow, default)]
    pub media: Option<Vec<Media<'a>>>,
}

#[derive(Debug, Deserialize, Default)]
pub struct Tag<'a> {
    /// v1.1 `text`
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
    /// v2 `tag`
    #[serde(borrow, default)]
    pub tag: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize, Default)]
pub struct Mention<'a> {
    #[serde(borrow, default)]
    pub screen_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub username: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize, Default)]
pub struct Url<'a> {
    #[serde(borrow, default)]
    pub expanded_url: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub unwound_url: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub url: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize, Default)]
pub struct Media<'a> {
    #[serde(borrow, default, rename = "type")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub media_url_https: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub media_url: Option<Cow<'a, str>>,
    // v2 media
    #[serde(borrow, default)]
    pub media_key: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub url: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub preview_image_url: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize, Default)]
pub struct V1Coordinates {
    #[serde(default)]
    pub coordinates: Option<Vec<f64>>,
}

#[derive(Debug, Deserialize, Default)]
pub struct Place<'a> {
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub full_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub country_code: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize, Default)]
pub struct V2Tweet<'a> {
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub note_tweet: Option<V2Note<'a>>,
    #[serde(borrow, default)]
    pub created_at: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub lang: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub author_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub entities: Option<V2Entities<'a>>,
    #[serde(borrow, default)]
    pub referenced_tweets: Option<Vec<V2Ref<'a>>>,
    #[serde(borrow, default)]
    pub attachments: Option<V2Attachments<'a>>,
    #[serde(borrow, default)]
    pub geo: Option<V2Geo<'a>>,
    #[serde(default)]
    pub public_metrics: Option<V2Metrics>,
    /// Every version's id, oldest first (the current one last).
    #[serde(borrow, default)]
    pub edit_history_tweet_ids: Option<Vec<Cow<'a, str>>>,
}

#[derive(Debug, Deserialize, Default)]
pub struct V2Note<'a> {
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub entities: Option<V2Entities<'a>>,
}

#[derive(Debug, Deserialize, Default)]
pub struct V2Entities<'a> {
    #[serde(borrow, default)]
    pub hashtags: Option<Vec<Tag<'a>>>,
    #[serde(borrow, default)]
    pub mentions: Option<Vec<Mention<'a>>>,
    #[serde(borrow, default)]
    pub urls: Option<Vec<Url<'a>>>,
}

#[derive(Debug, Deserialize, Default)]
pub struct V2Ref<'a> {
    #[serde(borrow, default, rename = "type")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize, Default)]
pub struct V2Attachments<'a> {
    #[serde(borrow, default)]
    pub media_keys: Option<Vec<Cow<'a, str>>>,
}

#[derive(Debug, Deserialize, Default)]
pub struct V2Geo<'a> {
    #[serde(borrow, default)]
    pub place_id: Option<Cow<'a, str>>,
    #[serde(default)]
    pub coordinates: Option<V1Coordinates>,
}

#[derive(Debug, Deserialize, Default, Clone, Copy)]
pub struct V2Metrics {
    #[serde(default)]
    pub retweet_count: Option<u64>,
    #[serde(default)]
    pub reply_count: Option<u64>,
    #[serde(default)]
    pub like_count: Option<u64>,
    #[serde(default)]
    pub quote_count: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
pub struct V2Includes<'a> {
    #[serde(borrow, default)]
    pub users: Option<Vec<V2User<'a>>>,
    #[serde(borrow, default)]
    pub tweets: Option<Vec<V2Tweet<'a>>>,
    #[serde(borrow, default)]
    pub media: Option<Vec<Media<'a>>>,
    #[serde(borrow, default)]
    pub places: Option<Vec<Place<'a>>>,
}

#[derive(Debug, Deserialize, Default)]
pub struct V2User<'a> {
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub username: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    #[serde(default)]
    pub verified: Option<bool>,
    #[serde(default)]
    pub public_metrics: Option<V2UserMetrics>,
}

#[derive(Debug, Deserialize, Default, Clone, Copy)]
pub struct V2UserMetrics {
    #[serde(default)]
    pub followers_count: Option<u64>,
}
