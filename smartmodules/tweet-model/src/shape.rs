//! Shaping: a raw v1.1 status, a raw v2 message or a Jetstream post (or an already shaped
//! record) into the [`Shaped`] record.

use crate::raw::{
    Id, Mention, Message, Tag, Url, V1Entities, V1Status, V1User, V2Entities, V2Includes, V2Tweet,
};
use crate::record::{Author, Geo, Kind, MediaItem, Metrics, Referenced, Rule, Shaped, SCHEMA};
use crate::text::decode_entities;
use crate::time;

/// The history as ids, and the first version's id when `id` is an edit.
fn edits(id: &str, history: Option<&[std::borrow::Cow<'_, str>]>) -> (Vec<String>, Option<String>) {
    let history: Vec<String> = history
        .unwrap_or_default()
        .iter()
        .map(|i| i.to_string())
        .collect();
    let edit_of = history.first().filter(|first| *first != id).cloned();
    (history, edit_of)
}

/// Why a record could not be read as a tweet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShapeError {
    /// Not JSON (or not UTF-8): `detail` says where.
    Malformed(String),
}

impl std::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShapeError::Malformed(d) => write!(f, "not a JSON tweet: {d}"),
        }
    }
}

impl std::error::Error for ShapeError {}

/// Read a raw v1.1 status, a raw v2 message, or an already shaped record.
/// `Ok(None)`: valid JSON but not a tweet (delete, limit, errors, ...).
pub fn shape(bytes: &[u8]) -> Result<Option<Shaped>, ShapeError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ShapeError::Malformed(format!("invalid UTF-8 at byte {}", e.valid_up_to())))?;
    if is_shaped(text) {
        return serde_json::from_str::<Shaped>(text)
            .map(Some)
            .map_err(|e| ShapeError::Malformed(e.to_string()));
    }
    let msg: Message<'_> =
        serde_json::from_str(text).map_err(|e| ShapeError::Malformed(e.to_string()))?;
    Ok(from_message(&msg))
}

/// A shaped record starts with `{"schema":"tweet/` (we always write `schema` first).
pub fn is_shaped(text: &str) -> bool {
    text.trim_start()
        .strip_prefix('{')
        .map(|rest| rest.trim_start().starts_with("\"schema\":\"tweet/"))
        .unwrap_or(false)
}

fn from_message(msg: &Message<'_>) -> Option<Shaped> {
    if let (Some(commit), Some(did)) = (&msg.commit, &msg.did) {
        return crate::bluesky::from_commit(did, msg.time_us, commit);
    }
    if let Some(data) = &msg.data {
        return from_v2(data, msg.includes.as_ref(), msg);
    }
    from_v1(msg)
}

fn s(c: &Option<std::borrow::Cow<'_, str>>) -> Option<String> {
    c.as_deref().map(str::to_string)
}

fn rules(msg: &Message<'_>) -> Vec<Rule> {
    msg.matching_rules
        .iter()
        .flatten()
        .map(|r| Rule {
            id: r.id.as_ref().map(Id::to_string_exact),
            tag: s(&r.tag),
        })
        .collect()
}

// ---- both API versions ------------------------------------------------------------------

/// One string per entity: the first of the fields `pick` tries that is present (the field
/// names differ between API versions and between the entities of one version).
fn strings<T>(items: Option<&[T]>, pick: impl Fn(&T) -> Option<&str>) -> Vec<String> {
    items
        .into_iter()
        .flatten()
        .filter_map(|item| pick(item).map(str::to_string))
        .collect()
}

/// The hashtags, mentions and links of a post's entities (v1.1 and v2 name the lists
/// differently, their items alike).
struct Listed {
    hashtags: Vec<String>,
    mentions: Vec<String>,
    urls: Vec<String>,
}

impl Listed {
    fn of(
        tags: Option<&[Tag<'_>]>,
        mentions: Option<&[Mention<'_>]>,
        urls: Option<&[Url<'_>]>,
    ) -> Self {
        Listed {
            // v1.1 says `text`, v2 `tag`.
            hashtags: strings(tags, |t| t.text.as_deref().or(t.tag.as_deref())),
            // v1.1 says `screen_name`, v2 `username`.
            mentions: strings(mentions, |m| {
                m.screen_name.as_deref().or(m.username.as_deref())
            }),
            // v2 unwinds redirects (`unwound_url`); both expand t.co links.
            urls: strings(urls, |u| {
                u.unwound_url
                    .as_deref()
                    .or(u.expanded_url.as_deref())
                    .or(u.url.as_deref())
            }),
        }
    }
}

// ---- v1.1 -------------------------------------------------------------------------------

fn v1_id(st: &V1Status<'_>) -> Option<String> {
    s(&st.id_str).or_else(|| st.id.as_ref().map(Id::to_string_exact))
}

/// The full text of a status: `extended_tweet.full_text`, `full_text`, else `text`.
fn v1_full_text<'s>(st: &'s V1Status<'_>) -> Option<&'s str> {
    st.extended_tweet
        .as_ref()
        .and_then(|e| e.full_text.as_deref())
        .or(st.full_text.as_deref())
        .or(st.text.as_deref())
}

/// The entities that go with the full text.
fn v1_entities<'s, 'a>(
    st: &'s V1Status<'a>,
) -> (Option<&'s V1Entities<'a>>, Option<&'s V1Entities<'a>>) {
    match &st.extended_tweet {
        Some(ext) if ext.full_text.is_some() => (
            ext.entities.as_ref(),
            ext.extended_entities.as_ref().or(ext.entities.as_ref()),
        ),
        _ => (
            st.entities.as_ref(),
            st.extended_entities.as_ref().or(st.entities.as_ref()),
        ),
    }
}

fn v1_author(user: &V1User<'_>) -> Author {
    Author {
        id: s(&user.id_str).or_else(|| user.id.as_ref().map(Id::to_string_exact)),
        username: s(&user.screen_name),
        name: s(&user.name),
        followers: user.followers_count,
        verified: user.verified,
    }
}

fn from_v1(st: &V1Status<'_>) -> Option<Shaped> {
    let id = v1_id(st)?;
    let (edit_history, edit_of) = edits(
        &id,
        st.edit_history
            .as_ref()
            .and_then(|h| h.edit_tweet_ids.as_deref()),
    );
    let raw_text = v1_full_text(st)?;
    let kind = Kind::of(
        st.retweeted_status.is_some(),
        st.quoted_status.is_some() || st.is_quote_status == Some(true),
        st.in_reply_to_status_id_str.is_some() || st.in_reply_to_status_id.is_some(),
    );
    // A retweet's content is the retweeted tweet: its full text and entities.
    let content: &V1Status<'_> = st.retweeted_status.as_deref().unwrap_or(st);
    let text = v1_full_text(content).unwrap_or(raw_text);
    let (entities, media_entities) = v1_entities(content);
    let listed = Listed::of(
        entities.and_then(|e| e.hashtags.as_deref()),
        entities.and_then(|e| e.user_mentions.as_deref()),
        entities.and_then(|e| e.urls.as_deref()),
    );
    let media = media_entities
        .and_then(|e| e.media.as_ref())
        .map(|v| {
            v.iter()
                .map(|m| MediaItem {
                    kind: s(&m.kind),
                    url: s(&m.media_url_https).or_else(|| s(&m.media_url)),
                })
                .collect()
        })
        .unwrap_or_default();
    let created_at_ms = st
        .timestamp_ms
        .as_deref()
        .and_then(|t| t.parse::<i64>().ok())
        .or_else(|| st.created_at.as_deref().and_then(time::parse_v1));
    let metrics = Metrics {
        retweets: st.retweet_count,
        replies: st.reply_count,
        likes: st.favorite_count,
        quotes: st.quote_count,
    };
    Some(Shaped {
        schema: SCHEMA.to_string(),
        id,
        created_at: created_at_ms.map(time::rfc3339),
        created_at_ms,
        lang: s(&st.lang),
        text: decode_entities(text),
        author: v1_author(st.user.as_ref()?),
        hashtags: listed.hashtags,
        mentions: listed.mentions,
        urls: listed.urls,
        media,
        kind,
        referenced: Referenced {
            retweeted: st.retweeted_status.as_deref().and_then(v1_id),
            quoted: s(&st.quoted_status_id_str)
                .or_else(|| st.quoted_status.as_deref().and_then(v1_id)),
            replied_to: s(&st.in_reply_to_status_id_str)
                .or_else(|| st.in_reply_to_status_id.as_ref().map(Id::to_string_exact)),
        },
        geo: Geo {
            coordinates: st.coordinates.as_ref().and_then(|c| c.coordinates.clone()),
            place: st.place.as_ref().and_then(|p| s(&p.full_name)),
            country_code: st.place.as_ref().and_then(|p| s(&p.country_code)),
        },
        metrics: (metrics != Metrics::default()).then_some(metrics),
        matching_rules: rules(st),
        source_api: "v1.1".to_string(),
        edit_history,
        edit_of,
    })
}

// ---- v2 ---------------------------------------------------------------------------------

fn v2_text<'t>(t: &'t V2Tweet<'_>) -> Option<&'t str> {
    t.note_tweet
        .as_ref()
        .and_then(|n| n.text.as_deref())
        .or(t.text.as_deref())
}

fn v2_entities<'s, 'a>(t: &'s V2Tweet<'a>) -> Option<&'s V2Entities<'a>> {
    match &t.note_tweet {
        Some(n) if n.text.is_some() && n.entities.is_some() => n.entities.as_ref(),
        _ => t.entities.as_ref(),
    }
}

/// The media a v2 post attaches, looked up in the expansions by key (kind and URL unknown when
/// the expansion is missing).
fn v2_media(content: &V2Tweet<'_>, includes: Option<&V2Includes<'_>>) -> Vec<MediaItem> {
    let keys = content
        .attachments
        .as_ref()
        .and_then(|a| a.media_keys.as_deref())
        .unwrap_or_default();
    let all = includes
        .and_then(|i| i.media.as_deref())
        .unwrap_or_default();
    keys.iter()
        .map(|k| {
            let m = all
                .iter()
                .find(|m| m.media_key.as_deref() == Some(k.as_ref()));
            MediaItem {
                kind: m.and_then(|m| s(&m.kind)),
                url: m.and_then(|m| s(&m.url).or_else(|| s(&m.preview_image_url))),
            }
        })
        .collect()
}

/// The author, with what the `users` expansion says of them.
fn v2_author(data: &V2Tweet<'_>, includes: Option<&V2Includes<'_>>) -> Author {
    let id = s(&data.author_id);
    let user = id.as_deref().and_then(|aid| {
        includes?
            .users
            .as_ref()?
            .iter()
            .find(|u| u.id.as_deref() == Some(aid))
    });
    Author {
        username: user.and_then(|u| s(&u.username)),
        name: user.and_then(|u| s(&u.name)),
        followers: user
            .and_then(|u| u.public_metrics)
            .and_then(|m| m.followers_count),
        verified: user.and_then(|u| u.verified),
        id,
    }
}

/// Coordinates, and the place from the `places` expansion.
fn v2_geo(data: &V2Tweet<'_>, includes: Option<&V2Includes<'_>>) -> Geo {
    let place = data
        .geo
        .as_ref()
        .and_then(|g| g.place_id.as_deref())
        .and_then(|pid| {
            includes?
                .places
                .as_ref()?
                .iter()
                .find(|p| p.id.as_deref() == Some(pid))
        });
    Geo {
        coordinates: data
            .geo
            .as_ref()
            .and_then(|g| g.coordinates.as_ref())
            .and_then(|c| c.coordinates.clone()),
        place: place.and_then(|p| s(&p.full_name)),
        country_code: place.and_then(|p| s(&p.country_code)),
    }
}

fn from_v2(
    data: &V2Tweet<'_>,
    includes: Option<&V2Includes<'_>>,
    msg: &Message<'_>,
) -> Option<Shaped> {
    let id = s(&data.id)?;
    let (edit_history, edit_of) = edits(&id, data.edit_history_tweet_ids.as_deref());
    let refs = data.referenced_tweets.as_deref().unwrap_or_default();
    let ref_of = |kind: &str| {
        refs.iter()
            .find(|r| r.kind.as_deref() == Some(kind))
            .and_then(|r| s(&r.id))
    };
    let referenced = Referenced {
        retweeted: ref_of("retweeted"),
        quoted: ref_of("quoted"),
        replied_to: ref_of("replied_to"),
    };
    let kind = Kind::of(
        referenced.retweeted.is_some(),
        referenced.quoted.is_some(),
        referenced.replied_to.is_some(),
    );
    // A retweet's content is the retweeted tweet, when the expansion included it.
    let retweeted: Option<&V2Tweet<'_>> = referenced.retweeted.as_deref().and_then(|rid| {
        includes?
            .tweets
            .as_ref()?
            .iter()
            .find(|t| t.id.as_deref() == Some(rid))
    });
    let content = retweeted.unwrap_or(data);
    let text = v2_text(content).or_else(|| v2_text(data))?;
    let entities = v2_entities(content);
    let listed = Listed::of(
        entities.and_then(|e| e.hashtags.as_deref()),
        entities.and_then(|e| e.mentions.as_deref()),
        entities.and_then(|e| e.urls.as_deref()),
    );
    let created_at_ms = data.created_at.as_deref().and_then(time::parse_rfc3339);
    Some(Shaped {
        schema: SCHEMA.to_string(),
        id,
        created_at: created_at_ms.map(time::rfc3339),
        created_at_ms,
        lang: s(&data.lang),
        text: decode_entities(text),
        author: v2_author(data, includes),
        hashtags: listed.hashtags,
        mentions: listed.mentions,
        urls: listed.urls,
        media: v2_media(content, includes),
        kind,
        referenced,
        geo: v2_geo(data, includes),
        metrics: data.public_metrics.map(|m| Metrics {
            retweets: m.retweet_count,
            replies: m.reply_count,
            likes: m.like_count,
            quotes: m.quote_count,
        }),
        matching_rules: rules(msg),
        source_api: "v2".to_string(),
        edit_history,
        edit_of,
    })
}
