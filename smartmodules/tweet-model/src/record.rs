//! The shaped record: one documented form for a post of either X API dialect or Bluesky
//! (`smartmodules/tweet-shape/tweet.schema.json`). Fields the input lacks are null or empty,
//! never invented. The `shape` and `bluesky` modules fill it in.

use serde::{Deserialize, Serialize};

/// The value of `schema`, first key of every shaped record (how modules recognise one).
pub const SCHEMA: &str = "tweet/1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shaped {
    pub schema: String,
    pub id: String,
    /// RFC 3339, UTC, milliseconds (`2016-06-12T18:07:19.000Z`).
    pub created_at: Option<String>,
    pub created_at_ms: Option<i64>,
    pub lang: Option<String>,
    /// The full text (never the 140-char compat truncation), HTML entities decoded; for a
    /// retweet, the retweeted tweet's full text.
    pub text: String,
    pub author: Author,
    pub hashtags: Vec<String>,
    pub mentions: Vec<String>,
    pub urls: Vec<String>,
    pub media: Vec<MediaItem>,
    /// `original`, `retweet`, `quote` or `reply`.
    pub kind: Kind,
    pub referenced: Referenced,
    pub geo: Geo,
    pub metrics: Option<Metrics>,
    pub matching_rules: Vec<Rule>,
    /// `v1.1`, `v2` or `bluesky`.
    pub source_api: String,
    /// The ids of every version of the post, oldest first, this one among them (X's
    /// `edit_history_tweet_ids`); empty when the input has none.
    #[serde(default)]
    pub edit_history: Vec<String>,
    /// When this post is an edit: the id of the post's first version.
    #[serde(default)]
    pub edit_of: Option<String>,
}

impl Shaped {
    /// A later version of this post exists (its id is not the last of the edit history).
    pub fn is_superseded(&self) -> bool {
        self.edit_history
            .last()
            .is_some_and(|last| *last != self.id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Original,
    Retweet,
    Quote,
    Reply,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Author {
    pub id: Option<String>,
    pub username: Option<String>,
    pub name: Option<String>,
    pub followers: Option<u64>,
    pub verified: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaItem {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub url: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Referenced {
    pub retweeted: Option<String>,
    pub quoted: Option<String>,
    pub replied_to: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Geo {
    /// `[longitude, latitude]`.
    pub coordinates: Option<Vec<f64>>,
    pub place: Option<String>,
    pub country_code: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub retweets: Option<u64>,
    pub replies: Option<u64>,
    pub likes: Option<u64>,
    pub quotes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub id: Option<String>,
    pub tag: Option<String>,
}

impl Kind {
    /// What a post is, from what it refers to (a retweet first: it may quote or reply too).
    pub(crate) fn of(retweets: bool, quotes: bool, replies: bool) -> Self {
        if retweets {
            Kind::Retweet
        } else if quotes {
            Kind::Quote
        } else if replies {
            Kind::Reply
        } else {
            Kind::Original
        }
    }
}
