//! A generator of realistic tweets, deterministic by sequence number, in both API dialects:
//! v1.1 statuses (about 3.7 KB, with user, entities, compat-mode truncation and
//! `extended_tweet`, retweets, quotes, replies) and v2 stream messages (`data`, `includes`).
//! Texts mix languages, emoji, hashtags, mentions and links; ids are real 64-bit snowflakes.

use serde_json::{json, Value};
use tweet_model::time::civil_from_days;
pub use tweet_model::time::rfc3339;

/// Twitter's snowflake epoch (ms).
pub const SNOWFLAKE_EPOCH_MS: i64 = 1_288_834_974_657;

/// A snowflake id for a time and a sequence number (unique per sequence within a ms).
pub fn snowflake(time_ms: i64, seq: u64) -> u64 {
    (((time_ms - SNOWFLAKE_EPOCH_MS) as u64) << 22) | (seq & 0x3F_FFFF)
}

/// The time (ms) encoded in a snowflake id.
pub fn snowflake_time_ms(id: u64) -> i64 {
    (id >> 22) as i64 + SNOWFLAKE_EPOCH_MS
}

/// Words per language; rules and filters in tests use the English ones.
const WORDS: &[(&str, &[&str])] = &[
    (
        "en",
        &[
            "rust", "stream", "data", "model", "learning", "coffee", "music", "football",
            "election", "weather", "climate", "launch", "space", "cats", "dogs", "movie", "night",
            "city", "train", "code",
        ],
    ),
    (
        "es",
        &[
            "datos",
            "fútbol",
            "música",
            "ciudad",
            "noche",
            "café",
            "clima",
            "espacio",
            "gatos",
            "película",
        ],
    ),
    (
        "fr",
        &[
            "données",
            "musique",
            "ville",
            "nuit",
            "café",
            "climat",
            "espace",
            "chats",
            "élection",
            "météo",
        ],
    ),
    (
        "pt",
        &[
            "dados",
            "música",
            "cidade",
            "noite",
            "café",
            "clima",
            "espaço",
            "gatos",
            "eleição",
            "futebol",
        ],
    ),
    (
        "ja",
        &[
            "データ",
            "音楽",
            "東京",
            "夜",
            "コーヒー",
            "天気",
            "宇宙",
            "猫",
            "映画",
            "電車",
        ],
    ),
    (
        "ar",
        &[
            "بيانات",
            "موسيقى",
            "مدينة",
            "ليل",
            "قهوة",
            "طقس",
            "فضاء",
            "قطط",
            "فيلم",
            "قطار",
        ],
    ),
];
const EMOJI: &[&str] = &["😂", "🔥", "❤️", "🚀", "👀", "🎉", "☕", "⚽", "🌧️", "🐱"];
const HASHTAGS: &[&str] = &[
    "RustLang",
    "DataEngineering",
    "MachineLearning",
    "WorldCup",
    "Climate",
    "SpaceX",
    "MondayMotivation",
    "Música",
];
pub(crate) const NAMES: &[&str] = &[
    "Ada",
    "Grace",
    "Linus",
    "Margaret",
    "Alan",
    "Katherine",
    "Dennis",
    "Barbara",
    "Ken",
    "Radia",
];

/// What kind of tweet a sequence number yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Original,
    Retweet,
    Quote,
    Reply,
}

/// One generated tweet, with the fields both dialects are built from.
#[derive(Debug, Clone)]
pub struct Generated {
    pub id: u64,
    pub time_ms: i64,
    pub lang: &'static str,
    pub text: String,
    pub kind: Kind,
    pub user_id: u64,
    pub screen_name: String,
    pub hashtags: Vec<&'static str>,
}

/// A deterministic generator: tweet `seq` is always the same for the same `start_ms`.
#[derive(Debug, Clone)]
pub struct Generator {
    start_ms: i64,
    spacing_ms: i64,
}

impl Generator {
    pub fn new(start_ms: i64) -> Self {
        Self::spaced(start_ms, 1)
    }

    /// Tweet `seq` created at `start_ms + seq * spacing_ms` (a simulated pace).
    pub fn spaced(start_ms: i64, spacing_ms: i64) -> Self {
        Self {
            start_ms,
            spacing_ms: spacing_ms.max(1),
        }
    }

    /// When tweet `seq` was created (Unix ms).
    pub fn time_of(&self, seq: u64) -> i64 {
        self.start_ms + seq as i64 * self.spacing_ms
    }

    /// The facts of tweet `seq` (one every ms of simulated time, so ids are unique and rising).
    pub fn facts(&self, seq: u64) -> Generated {
        let mut rng = fastrand::Rng::with_seed(seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5eed);
        let time_ms = self.time_of(seq);
        let id = snowflake(time_ms, seq);
        let (lang, words) = WORDS[if rng.u8(0..10) < 5 {
            0
        } else {
            rng.usize(1..WORDS.len())
        }];
        let kind = match rng.u8(0..10) {
            0..=4 => Kind::Original,
            5..=6 => Kind::Retweet,
            7 => Kind::Quote,
            _ => Kind::Reply,
        };
        let user_id = 10_000_000 + rng.u64(0..5_000_000_000);
        let screen_name = format!("{}_{}", NAMES[rng.usize(0..NAMES.len())], user_id % 100_000);
        let n_words = rng.usize(6..40);
        let mut parts: Vec<String> = Vec::with_capacity(n_words + 4);
        let mut hashtags = Vec::new();
        for i in 0..n_words {
            parts.push(words[rng.usize(0..words.len())].to_string());
            if i % 7 == 3 {
                parts.push(EMOJI[rng.usize(0..EMOJI.len())].to_string());
            }
        }
        if rng.bool() {
            let tag = HASHTAGS[rng.usize(0..HASHTAGS.len())];
            hashtags.push(tag);
            parts.push(format!("#{tag}"));
        }
        if rng.u8(0..4) == 0 {
            parts.push("&amp; more".to_string());
        }
        let text = parts.join(" ");
        Generated {
            id,
            time_ms,
            lang,
            text,
            kind,
            user_id,
            screen_name,
            hashtags,
        }
    }

    /// Tweets `0..n` as v1.1 statuses (~3 KB), or shaped by `tweet_model::shape` (~1 KB): the
    /// records the benchmarks mirror. 4,096 distinct tweets, repeated.
    pub fn v1_values(&self, n: u64, shaped: bool) -> Vec<String> {
        (0..n)
            .map(|seq| {
                let raw = self.v1(seq % 4096);
                if shaped {
                    let t = tweet_model::shape(raw.as_bytes())
                        .expect("a generated tweet shapes")
                        .expect("a generated tweet is a tweet");
                    serde_json::to_string(&t).expect("a shaped tweet serialises")
                } else {
                    raw
                }
            })
            .collect()
    }

    /// Tweet `seq` as a v1.1 status (compact JSON, one line).
    pub fn v1(&self, seq: u64) -> String {
        v1_status(&self.facts(seq), seq).to_string()
    }

    /// Tweet `seq` as a v2 stream message (compact JSON, one line).
    pub fn v2(&self, seq: u64) -> String {
        v2_message(&self.facts(seq)).to_string()
    }
}

fn created_at(time_ms: i64) -> String {
    // "Sun Jun 12 18:07:19 +0000 2016"
    let secs = time_ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m - 1) as usize];
    format!(
        "{weekday} {month} {d:02} {:02}:{:02}:{:02} +0000 {y}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

fn v1_user(g: &Generated, seq: u64) -> Value {
    json!({
        "id": g.user_id, "id_str": g.user_id.to_string(), "name": g.screen_name.replace('_', " "),
        "screen_name": g.screen_name, "location": "Somewhere, Earth",
        "url": null, "description": "Writes about data, streams and coffee. Opinions are my own. 🚀",
        "translator_type": "none", "protected": false, "verified": seq.is_multiple_of(13),
        "followers_count": (seq * 37) % 250_000, "friends_count": (seq * 11) % 3000,
        "listed_count": seq % 50, "favourites_count": (seq * 3) % 90_000, "statuses_count": (seq * 17) % 120_000,
        "created_at": "Tue Mar 21 20:50:14 +0000 2006", "utc_offset": null, "time_zone": null,
        "geo_enabled": seq.is_multiple_of(5), "lang": null, "contributors_enabled": false, "is_translator": false,
        "profile_background_color": "C0DEED",
        "profile_background_image_url": "http://abs.twimg.com/images/themes/theme1/bg.png",
        "profile_background_image_url_https": "https://abs.twimg.com/images/themes/theme1/bg.png",
        "profile_background_tile": false, "profile_link_color": "1DA1F2",
        "profile_sidebar_border_color": "C0DEED", "profile_sidebar_fill_color": "DDEEF6",
        "profile_text_color": "333333", "profile_use_background_image": true,
        "profile_image_url": format!("http://pbs.twimg.com/profile_images/{}/avatar_normal.jpg", g.user_id),
        "profile_image_url_https": format!("https://pbs.twimg.com/profile_images/{}/avatar_normal.jpg", g.user_id),
        "profile_banner_url": format!("https://pbs.twimg.com/profile_banners/{}/1500000000", g.user_id),
        "default_profile": true, "default_profile_image": false,
        "following": null, "follow_request_sent": null, "notifications": null
    })
}

/// Entities of a text, with UTF-16 code-unit indices as the API gives them.
fn v1_entities(text: &str, g: &Generated) -> Value {
    let hashtags: Vec<Value> = g
        .hashtags
        .iter()
        .filter_map(|tag| {
            let needle = format!("#{tag}");
            let byte = text.find(&needle)?;
            let start = text[..byte].encode_utf16().count();
            let len = needle.encode_utf16().count();
            Some(json!({"text": tag, "indices": [start, start + len]}))
        })
        .collect();
    json!({"hashtags": hashtags, "urls": [], "user_mentions": [], "symbols": []})
}

fn v1_status(g: &Generated, seq: u64) -> Value {
    let full_chars = g.text.chars().count();
    let truncated = full_chars > 140;
    let display_text: String = if truncated {
        format!("{}…", g.text.chars().take(139).collect::<String>())
    } else {
        g.text.clone()
    };
    let mut status = json!({
        "created_at": created_at(g.time_ms),
        "id": g.id, "id_str": g.id.to_string(),
        "text": display_text,
        "source": "<a href=\"http://twitter.com/download/android\" rel=\"nofollow\">Twitter for Android</a>",
        "truncated": truncated,
        "in_reply_to_status_id": null, "in_reply_to_status_id_str": null,
        "in_reply_to_user_id": null, "in_reply_to_user_id_str": null, "in_reply_to_screen_name": null,
        "user": v1_user(g, seq),
        "geo": null, "coordinates": null, "place": null, "contributors": null,
        "is_quote_status": g.kind == Kind::Quote,
        "quote_count": 0, "reply_count": 0, "retweet_count": 0, "favorite_count": 0,
        "entities": v1_entities(&g.text, g),
        "favorited": false, "retweeted": false, "filter_level": "low", "lang": g.lang,
        "timestamp_ms": g.time_ms.to_string()
    });
    if truncated {
        status["extended_tweet"] = json!({
            "full_text": g.text,
            "display_text_range": [0, g.text.encode_utf16().count()],
            "entities": v1_entities(&g.text, g)
        });
    }
    let referenced_id = g.id.saturating_sub(1_000_000_007);
    match g.kind {
        Kind::Original => {}
        Kind::Reply => {
            status["in_reply_to_status_id"] = json!(referenced_id);
            status["in_reply_to_status_id_str"] = json!(referenced_id.to_string());
            status["in_reply_to_user_id"] = json!(g.user_id + 1);
            status["in_reply_to_user_id_str"] = json!((g.user_id + 1).to_string());
            status["in_reply_to_screen_name"] = json!("someone_else");
        }
        Kind::Retweet | Kind::Quote => {
            let mut inner = g.clone();
            inner.id = referenced_id;
            inner.time_ms = snowflake_time_ms(referenced_id);
            inner.kind = Kind::Original;
            inner.user_id = g.user_id + 7;
            inner.screen_name = format!("{}_orig", g.screen_name);
            let mut embedded = v1_status(&inner, seq + 1);
            if let Some(obj) = embedded.as_object_mut() {
                obj.remove("timestamp_ms");
            }
            if g.kind == Kind::Retweet {
                let prefix = format!("RT @{}: ", inner.screen_name);
                let rt_text: String = format!("{prefix}{}", g.text).chars().take(140).collect();
                status["text"] = json!(rt_text);
                status["truncated"] = json!(false);
                if let Some(obj) = status.as_object_mut() {
                    obj.remove("extended_tweet");
                }
                status["retweeted_status"] = embedded;
            } else {
                status["quoted_status_id"] = json!(referenced_id);
                status["quoted_status_id_str"] = json!(referenced_id.to_string());
                status["quoted_status"] = embedded;
            }
        }
    }
    status
}

fn v2_message(g: &Generated) -> Value {
    let referenced_id = g.id.saturating_sub(1_000_000_007);
    let mut data = json!({
        "id": g.id.to_string(),
        "text": if g.text.chars().count() > 280 { g.text.chars().take(280).collect::<String>() } else { g.text.clone() },
        "created_at": rfc3339(g.time_ms),
        "author_id": g.user_id.to_string(),
        "lang": g.lang,
        "conversation_id": g.id.to_string(),
        // One post in ten is an edit of one posted a minute before.
        "edit_history_tweet_ids": if g.id % 10 == 9 {
            vec![(g.id - (60_000 << 22)).to_string(), g.id.to_string()]
        } else {
            vec![g.id.to_string()]
        },
        "possibly_sensitive": false,
        "public_metrics": {"retweet_count": 0, "reply_count": 0, "like_count": 0, "quote_count": 0, "bookmark_count": 0, "impression_count": 0},
    });
    if !g.hashtags.is_empty() {
        let tags: Vec<Value> = g
            .hashtags
            .iter()
            .filter_map(|tag| {
                let needle = format!("#{tag}");
                let byte = g.text.find(&needle)?;
                let start = g.text[..byte].chars().count();
                Some(json!({"start": start, "end": start + needle.chars().count(), "tag": tag}))
            })
            .collect();
        data["entities"] = json!({"hashtags": tags});
    }
    let kind = match g.kind {
        Kind::Original => None,
        Kind::Retweet => Some("retweeted"),
        Kind::Quote => Some("quoted"),
        Kind::Reply => Some("replied_to"),
    };
    if let Some(kind) = kind {
        data["referenced_tweets"] = json!([{"type": kind, "id": referenced_id.to_string()}]);
    }
    if g.kind == Kind::Reply {
        data["in_reply_to_user_id"] = json!((g.user_id + 1).to_string());
    }
    json!({
        "data": data,
        "includes": {"users": [{
            "id": g.user_id.to_string(), "name": g.screen_name.replace('_', " "), "username": g.screen_name,
            "created_at": "2006-03-21T20:50:14.000Z", "verified": g.user_id.is_multiple_of(13),
            "public_metrics": {"followers_count": g.user_id % 250_000, "following_count": g.user_id % 3000, "tweet_count": g.user_id % 120_000, "listed_count": g.user_id % 50}
        }]}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_64_bit() {
        let g = Generator::new(1_700_000_000_000);
        assert_eq!(g.v1(5), g.v1(5));
        let f = g.facts(5);
        assert!(f.id > 1 << 53, "ids exceed 2^53 like real ones");
        assert_eq!(snowflake_time_ms(f.id), f.time_ms);
        let v: Value = serde_json::from_str(&g.v1(5)).unwrap();
        assert_eq!(v["id_str"], f.id.to_string());
        let v2: Value = serde_json::from_str(&g.v2(5)).unwrap();
        assert_eq!(v2["data"]["id"], f.id.to_string());
    }

    #[test]
    fn v1_statuses_are_realistically_sized_and_varied() {
        let g = Generator::new(1_700_000_000_000);
        let n = 2000;
        let total: usize = (0..n).map(|s| g.v1(s).len()).sum();
        let avg = total / n as usize;
        assert!((2500..=5500).contains(&avg), "average v1 size {avg}");
        let kinds: std::collections::HashSet<_> =
            (0..200).map(|s| format!("{:?}", g.facts(s).kind)).collect();
        assert_eq!(kinds.len(), 4);
        let langs: std::collections::HashSet<_> = (0..200).map(|s| g.facts(s).lang).collect();
        assert!(langs.len() >= 5);
        assert!((0..200).any(|s| g.v1(s).contains("extended_tweet")));
    }

    #[test]
    fn dates_are_right() {
        // 2016-06-12T18:07:19Z was a Sunday.
        assert_eq!(
            created_at(1_465_754_839_000),
            "Sun Jun 12 18:07:19 +0000 2016"
        );
        assert_eq!(rfc3339(1_465_754_839_123), "2016-06-12T18:07:19.123Z");
    }
}
