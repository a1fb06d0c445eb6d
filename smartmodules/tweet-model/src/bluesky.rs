//! Bluesky posts, as Bluesky's Jetstream sends them, read into the same [`Shaped`] record as
//! tweets (`source_api: "bluesky"`). A Jetstream message is `{did, time_us, kind, commit}`;
//! a commit that creates an `app.bsky.feed.post` is a post, one that creates an
//! `app.bsky.feed.repost` a repost (a retweet's twin). Deletes, likes, follows, identity and
//! account events are not posts (`None`), as X's delete messages are not tweets.
//!
//! Where the fields come from: the id is the post's at-uri (`at://{did}/{collection}/{rkey}`);
//! hashtags, mentions and links from the record's facets (the byte ranges of its text) and
//! `tags`; media and quotes from its embed; `created_at` from the record's `createdAt`, else
//! Jetstream's `time_us`. Jetstream commits carry no handle, name or counts: those stay null.

use std::borrow::Cow;

use serde::Deserialize;

use crate::record::{Author, Geo, Kind, MediaItem, Referenced, Shaped, SCHEMA};
use crate::time;

/// The collection of posts.
pub const POST: &str = "app.bsky.feed.post";
/// The collection of reposts.
pub const REPOST: &str = "app.bsky.feed.repost";

/// A Jetstream commit event (`kind: "commit"`).
#[derive(Debug, Deserialize, Default)]
pub struct Commit<'a> {
    #[serde(borrow, default)]
    pub operation: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub collection: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub rkey: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub record: Option<Record<'a>>,
}

/// The record of a post or a repost (the fields the shaped record needs).
#[derive(Debug, Deserialize, Default)]
pub struct Record<'a> {
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "createdAt")]
    pub created_at: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub langs: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, default)]
    pub facets: Option<Vec<Facet<'a>>>,
    #[serde(borrow, default)]
    pub tags: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, default)]
    pub reply: Option<Reply<'a>>,
    #[serde(borrow, default)]
    pub embed: Option<Embed<'a>>,
    /// A repost's subject: the reposted post.
    #[serde(borrow, default)]
    pub subject: Option<StrongRef<'a>>,
}

#[derive(Debug, Deserialize, Default)]
pub struct Facet<'a> {
    #[serde(default)]
    pub index: Option<ByteSlice>,
    #[serde(borrow, default)]
    pub features: Vec<Feature<'a>>,
}

#[derive(Debug, Deserialize, Default, Clone, Copy)]
pub struct ByteSlice {
    #[serde(rename = "byteStart")]
    pub start: usize,
    #[serde(rename = "byteEnd")]
    pub end: usize,
}

/// `app.bsky.richtext.facet#tag`, `#mention` or `#link`.
#[derive(Debug, Deserialize, Default)]
pub struct Feature<'a> {
    #[serde(borrow, default, rename = "$type")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub tag: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub did: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub uri: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize, Default)]
pub struct Reply<'a> {
    #[serde(borrow, default)]
    pub parent: Option<StrongRef<'a>>,
}

/// A reference to a record by at-uri (and content id).
#[derive(Debug, Deserialize, Default)]
pub struct StrongRef<'a> {
    #[serde(borrow, default)]
    pub uri: Option<Cow<'a, str>>,
}

/// `app.bsky.embed.images`, `.video`, `.external`, `.record` (a quote) or `.recordWithMedia`.
#[derive(Debug, Deserialize, Default)]
pub struct Embed<'a> {
    #[serde(borrow, default, rename = "$type")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub images: Option<Vec<Image<'a>>>,
    #[serde(borrow, default)]
    pub video: Option<Blob<'a>>,
    #[serde(borrow, default)]
    pub external: Option<StrongRef<'a>>,
    /// `.record`: the quoted post; `.recordWithMedia`: `{record: {uri}}`.
    #[serde(borrow, default)]
    pub record: Option<QuotedRecord<'a>>,
    /// `.recordWithMedia`: the images or video beside the quote.
    #[serde(borrow, default)]
    pub media: Option<Box<Embed<'a>>>,
}

#[derive(Debug, Deserialize, Default)]
pub struct QuotedRecord<'a> {
    #[serde(borrow, default)]
    pub uri: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub record: Option<StrongRef<'a>>,
}

#[derive(Debug, Deserialize, Default)]
pub struct Image<'a> {
    #[serde(borrow, default)]
    pub image: Option<Blob<'a>>,
}

/// A blob reference: `{"$type": "blob", "ref": {"$link": cid}, "mimeType": ...}`.
#[derive(Debug, Deserialize, Default)]
pub struct Blob<'a> {
    #[serde(borrow, default, rename = "ref")]
    pub link: Option<Link<'a>>,
}

#[derive(Debug, Deserialize, Default)]
pub struct Link<'a> {
    #[serde(borrow, default, rename = "$link")]
    pub cid: Option<Cow<'a, str>>,
}

/// The at-uri of the record a commit names.
pub fn at_uri(did: &str, collection: &str, rkey: &str) -> String {
    format!("at://{did}/{collection}/{rkey}")
}

/// A Jetstream commit as a shaped record: a created (or updated) post or repost, else `None`.
pub fn from_commit(did: &str, time_us: Option<i64>, commit: &Commit<'_>) -> Option<Shaped> {
    let operation = commit.operation.as_deref()?;
    if operation != "create" && operation != "update" {
        return None;
    }
    let collection = commit.collection.as_deref()?;
    if collection != POST && collection != REPOST {
        return None;
    }
    let record = commit.record.as_ref()?;
    let id = at_uri(did, collection, commit.rkey.as_deref()?);
    let created_at_ms = record
        .created_at
        .as_deref()
        .and_then(time::parse_rfc3339)
        .or(time_us.map(|us| us.div_euclid(1000)));
    let text = record.text.as_deref().unwrap_or("");
    let facets = Facets::read(text, record.facets.as_deref().unwrap_or_default());
    let embed = record.embed.as_ref();
    let quoted = embed.and_then(quoted_uri);
    let replied_to = record
        .reply
        .as_ref()
        .and_then(|r| r.parent.as_ref())
        .and_then(|p| p.uri.as_deref().map(str::to_string));
    let retweeted = (collection == REPOST)
        .then(|| record.subject.as_ref().and_then(|s| s.uri.as_deref()))
        .flatten()
        .map(str::to_string);
    let mut hashtags = facets.hashtags;
    for tag in record.tags.iter().flatten() {
        if !hashtags.iter().any(|h| h.eq_ignore_ascii_case(tag)) {
            hashtags.push(tag.to_string());
        }
    }
    let mut urls = facets.links;
    if let Some(uri) = embed
        .and_then(|e| e.external.as_ref())
        .and_then(|x| x.uri.as_deref())
    {
        if !urls.iter().any(|u| u == uri) {
            urls.push(uri.to_string());
        }
    }
    Some(Shaped {
        schema: SCHEMA.to_string(),
        id,
        created_at: created_at_ms.map(time::rfc3339),
        created_at_ms,
        lang: record
            .langs
            .as_ref()
            .and_then(|l| l.first())
            .map(|l| l.to_string()),
        text: text.to_string(),
        author: Author {
            id: Some(did.to_string()),
            ..Author::default()
        },
        hashtags,
        mentions: facets.mentions,
        urls,
        media: embed.map(|e| media(did, e)).unwrap_or_default(),
        kind: Kind::of(retweeted.is_some(), quoted.is_some(), replied_to.is_some()),
        referenced: Referenced {
            retweeted,
            quoted,
            replied_to,
        },
        geo: Geo::default(),
        metrics: None,
        matching_rules: Vec::new(),
        source_api: "bluesky".to_string(),
        edit_history: Vec::new(),
        edit_of: None,
    })
}

/// What a post's facets mark in its text.
struct Facets {
    hashtags: Vec<String>,
    /// The handles as written (`@` dropped), else the mentioned DIDs.
    mentions: Vec<String>,
    links: Vec<String>,
}

impl Facets {
    fn read(text: &str, facets: &[Facet<'_>]) -> Self {
        let mut out = Facets {
            hashtags: Vec::new(),
            mentions: Vec::new(),
            links: Vec::new(),
        };
        for facet in facets {
            // Byte offsets into the UTF-8 text; a range that cuts a character reads as none.
            let written = facet
                .index
                .and_then(|i| text.get(i.start..i.end))
                .map(|s| s.trim_start_matches(['@', '#']));
            for feature in &facet.features {
                match feature.kind.as_deref().and_then(|k| k.rsplit('#').next()) {
                    Some("tag") => out
                        .hashtags
                        .extend(feature.tag.as_deref().map(str::to_string)),
                    Some("mention") => out.mentions.extend(
                        written
                            .filter(|w| !w.is_empty())
                            .or(feature.did.as_deref())
                            .map(str::to_string),
                    ),
                    Some("link") => out.links.extend(feature.uri.as_deref().map(str::to_string)),
                    _ => {}
                }
            }
        }
        out
    }
}

/// The post an embed quotes (`.record`, or the record of `.recordWithMedia`).
fn quoted_uri(embed: &Embed<'_>) -> Option<String> {
    let quoted = embed.record.as_ref()?;
    quoted
        .uri
        .as_deref()
        .or_else(|| quoted.record.as_ref().and_then(|r| r.uri.as_deref()))
        .map(str::to_string)
}

/// Images (as Bluesky's CDN serves them) and videos of an embed, with `.recordWithMedia`'s.
fn media(did: &str, embed: &Embed<'_>) -> Vec<MediaItem> {
    let mut items: Vec<MediaItem> = embed
        .images
        .iter()
        .flatten()
        .map(|i| MediaItem {
            kind: Some("photo".to_string()),
            url: i
                .image
                .as_ref()
                .and_then(|b| b.link.as_ref())
                .and_then(|l| l.cid.as_deref())
                .map(|cid| {
                    format!("https://cdn.bsky.app/img/feed_fullsize/plain/{did}/{cid}@jpeg")
                }),
        })
        .collect();
    if embed.video.is_some() {
        items.push(MediaItem {
            kind: Some("video".to_string()),
            url: None,
        });
    }
    if let Some(inner) = &embed.media {
        items.extend(media(did, inner));
    }
    items
}

#[cfg(test)]
mod tests {
    use crate::shape::shape;
    use crate::Kind;

    const POST_JSON: &str = r#"{"did":"did:plc:abc","time_us":1725911162329308,"kind":"commit","commit":{"rev":"3l3q","operation":"create","collection":"app.bsky.feed.post","rkey":"3l3qo2vuowo2b","record":{"$type":"app.bsky.feed.post","createdAt":"2024-09-09T19:46:02.102Z","langs":["pt","en"],"text":"olá @ada.bsky.social veja #Rust https://x.co","facets":[{"index":{"byteStart":5,"byteEnd":21},"features":[{"$type":"app.bsky.richtext.facet#mention","did":"did:plc:ada"}]},{"index":{"byteStart":27,"byteEnd":32},"features":[{"$type":"app.bsky.richtext.facet#tag","tag":"Rust"}]},{"index":{"byteStart":33,"byteEnd":45},"features":[{"$type":"app.bsky.richtext.facet#link","uri":"https://x.co/full"}]}],"reply":{"root":{"uri":"at://did:plc:r/app.bsky.feed.post/1","cid":"c"},"parent":{"uri":"at://did:plc:p/app.bsky.feed.post/2","cid":"c"}},"embed":{"$type":"app.bsky.embed.recordWithMedia","record":{"$type":"app.bsky.embed.record","record":{"uri":"at://did:plc:q/app.bsky.feed.post/3","cid":"c"}},"media":{"$type":"app.bsky.embed.images","images":[{"alt":"","image":{"$type":"blob","ref":{"$link":"bafkimg"},"mimeType":"image/jpeg","size":1}}]}}},"cid":"bafyrei"}}"#;

    #[test]
    fn a_post_becomes_the_shaped_record() {
        let t = shape(POST_JSON.as_bytes()).unwrap().expect("a post");
        assert_eq!(t.id, "at://did:plc:abc/app.bsky.feed.post/3l3qo2vuowo2b");
        assert_eq!(t.source_api, "bluesky");
        assert_eq!(t.created_at.as_deref(), Some("2024-09-09T19:46:02.102Z"));
        assert_eq!(t.lang.as_deref(), Some("pt"));
        assert_eq!(t.author.id.as_deref(), Some("did:plc:abc"));
        assert_eq!(t.hashtags, vec!["Rust"]);
        assert_eq!(t.mentions, vec!["ada.bsky.social"]);
        assert_eq!(t.urls, vec!["https://x.co/full"]);
        assert_eq!(t.media.len(), 1);
        assert_eq!(
            t.media[0].url.as_deref(),
            Some("https://cdn.bsky.app/img/feed_fullsize/plain/did:plc:abc/bafkimg@jpeg")
        );
        // A reply that quotes: a quote first (as X's kinds go), both references kept.
        assert_eq!(t.kind, Kind::Quote);
        assert_eq!(
            t.referenced.replied_to.as_deref(),
            Some("at://did:plc:p/app.bsky.feed.post/2")
        );
        assert_eq!(
            t.referenced.quoted.as_deref(),
            Some("at://did:plc:q/app.bsky.feed.post/3")
        );
        // The shaped record reads back as itself.
        let again = shape(serde_json::to_string(&t).unwrap().as_bytes()).unwrap();
        assert_eq!(again, Some(t));
    }

    #[test]
    fn reposts_are_retweets_and_other_events_are_not_posts() {
        let repost = r#"{"did":"did:plc:abc","time_us":1725911162329308,"kind":"commit","commit":{"operation":"create","collection":"app.bsky.feed.repost","rkey":"k","record":{"$type":"app.bsky.feed.repost","subject":{"uri":"at://did:plc:x/app.bsky.feed.post/9","cid":"c"},"createdAt":"2024-09-09T19:46:02Z"}}}"#;
        let t = shape(repost.as_bytes()).unwrap().unwrap();
        assert_eq!(t.kind, Kind::Retweet);
        assert_eq!(
            t.referenced.retweeted.as_deref(),
            Some("at://did:plc:x/app.bsky.feed.post/9")
        );
        for other in [
            r#"{"did":"did:plc:abc","time_us":1,"kind":"commit","commit":{"operation":"delete","collection":"app.bsky.feed.post","rkey":"k"}}"#,
            r#"{"did":"did:plc:abc","time_us":1,"kind":"commit","commit":{"operation":"create","collection":"app.bsky.feed.like","rkey":"k","record":{"subject":{"uri":"at://x"}}}}"#,
            r#"{"did":"did:plc:abc","time_us":1,"kind":"identity","identity":{"did":"did:plc:abc","handle":"a.b","seq":1,"time":"2024-09-09T19:46:02Z"}}"#,
        ] {
            assert_eq!(shape(other.as_bytes()).unwrap(), None, "{other}");
        }
    }

    #[test]
    fn a_facet_range_that_cuts_a_character_is_skipped_not_a_panic() {
        let bad = POST_JSON.replace(
            r#""byteStart":5,"byteEnd":21"#,
            r#""byteStart":2,"byteEnd":3"#,
        );
        let t = shape(bad.as_bytes()).unwrap().unwrap();
        // The DID stands in for the handle it could not read.
        assert_eq!(t.mentions, vec!["did:plc:ada"]);
        let t = shape(
            POST_JSON
                .replace("\"createdAt\":\"2024-09-09T19:46:02.102Z\",", "")
                .as_bytes(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            t.created_at_ms,
            Some(1_725_911_162_329),
            "time_us stands in"
        );
    }
}
