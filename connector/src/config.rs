//! The `twitter:` section of the connector config: which stream (or archive), how to
//! authenticate, what to ask for, and how to reconnect. Every field is documented here and in
//! `Connector.toml`; defaults give ML consumers what they need.

use std::path::PathBuf;
use std::time::Duration;

use connector_runtime::config::{invalid, InvalidField, Section};
use connector_runtime::SecretString;
use serde::{Deserialize, Deserializer};

/// Which X stream to read, or an archive to replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// v2 `GET /2/tweets/search/stream`, with `rules`.
    Filtered,
    /// v2 `GET /2/tweets/sample/stream` (1%).
    Sample,
    /// v2 `GET /2/tweets/sample10/stream` (10%, with `partition`).
    Sample10,
    /// v2 `GET /2/tweets/firehose/stream` (Enterprise): one connection per partition (1-20).
    Firehose,
    /// v2 `GET /2/tweets/firehose/stream/lang/{lang}` (Enterprise): one language's firehose,
    /// one connection per partition (en 1-8; ja, ko, pt 1-2).
    FirehoseLang,
    /// Only the compliance streams of `compliance:` (Enterprise).
    Compliance,
    /// v1.1 `GET /1.1/statuses/sample.json` (OAuth 1.0a).
    V1Sample,
    /// v1.1 `POST /1.1/statuses/filter.json` (OAuth 1.0a, `track`/`follow`/`locations`).
    V1Filter,
    /// Recorded tweets from files (`replay`).
    Replay,
    /// Bluesky's Jetstream (`bluesky`): the whole network's public posts, no account needed.
    Bluesky,
}

impl Mode {
    pub fn is_v1(self) -> bool {
        matches!(self, Mode::V1Sample | Mode::V1Filter)
    }
}

/// The connector's own config section (`twitter:`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwitterConfig {
    pub mode: Mode,
    /// API root (the emulator, a proxy or a compatible service); default `https://api.x.com`.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    #[serde(default)]
    pub auth: AuthConfig,
    /// Allow an `http://` `base_url` on a host other than loopback (credentials would travel
    /// in clear; default: refused).
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// v2: on 429 `TooManyConnections`, end the app's stale connections once with
    /// `DELETE /2/connections/all` and reconnect at once (default: back off as from a rate
    /// limit). It also ends the app's other live connections: leave it off when several
    /// consumers share the app.
    #[serde(default)]
    pub clear_stale_connections: bool,

    /// `filtered`: the rules this connector owns, `{value, tag}`.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// `filtered`: keep rules of the app that are not in `rules` (default: delete them).
    #[serde(default)]
    pub keep_unowned_rules: bool,
    /// `filtered`: the rule limits of the app's access level, checked before any call:
    /// `pay-per-use` (1,000 rules of up to 1,024 characters; the default), `enterprise`
    /// (25,000 of up to 2,048), or `{count: N, length: N}`.
    #[serde(default)]
    pub rule_limits: RuleLimits,
    /// `sample10`: partition 1 or 2.
    #[serde(default)]
    pub partition: Option<u8>,
    /// `firehose`, `firehose-lang`: the partitions to read, one connection each (default:
    /// all of the endpoint's; together they are the whole stream).
    #[serde(default)]
    pub partitions: Vec<u8>,
    /// `firehose-lang`: `en`, `ja`, `ko` or `pt`.
    #[serde(default)]
    pub lang: Option<String>,
    /// X's compliance streams (Enterprise), beside a v2 mode or alone (`mode: compliance`):
    /// `{tweets: [partitions 1-4], users: [partitions 1-4]}`, one connection per partition.
    /// Their events (delete, tweet_edit, withheld, drop, user_delete, user_protect, ...) go
    /// to `events_topic`, keyed by the tweet's or the user's id.
    #[serde(default)]
    pub compliance: Option<ComplianceConfig>,

    /// v1.1 `filter`: phrases (comma = OR, space = AND).
    #[serde(default)]
    pub track: Vec<String>,
    /// v1.1 `filter`: user ids.
    #[serde(default)]
    pub follow: Vec<String>,
    /// v1.1 `filter`: bounding boxes `sw_lon,sw_lat,ne_lon,ne_lat`.
    #[serde(default)]
    pub locations: Vec<String>,
    /// v1.1: BCP 47 language codes.
    #[serde(default)]
    pub language: Vec<String>,
    /// v1.1: ask for FALLING_BEHIND warnings (default true).
    #[serde(default = "yes")]
    pub stall_warnings: bool,
    /// v1.1: use `delimited=length` framing (default true).
    #[serde(default = "yes")]
    pub delimited: bool,

    /// v2 field selection, passed through as-is (comma-separated lists).
    #[serde(
        default = "default_tweet_fields",
        rename = "tweet.fields",
        alias = "tweet_fields"
    )]
    pub tweet_fields: String,
    #[serde(default = "default_expansions")]
    pub expansions: String,
    #[serde(
        default = "default_user_fields",
        rename = "user.fields",
        alias = "user_fields"
    )]
    pub user_fields: String,
    #[serde(
        default = "default_media_fields",
        rename = "media.fields",
        alias = "media_fields"
    )]
    pub media_fields: String,
    #[serde(
        default = "default_place_fields",
        rename = "place.fields",
        alias = "place_fields"
    )]
    pub place_fields: String,
    #[serde(default, rename = "poll.fields", alias = "poll_fields")]
    pub poll_fields: Option<String>,
    /// v2 (Enterprise): re-send up to 5 minutes of tweets after a reconnect; duplicates are
    /// suppressed by the id window.
    #[serde(default)]
    pub backfill_minutes: Option<u8>,
    /// v2: a reconnection asks for the gap since the last tweet received
    /// (`backfill_minutes`, up to X's 5), deduplicated.
    #[serde(default)]
    pub backfill: bool,
    /// v2 Enterprise (`filtered`, `sample10`, `firehose`, `firehose-lang`): a gap longer than
    /// 5 minutes is asked for with `start_time` (up to 24 hours back), deduplicated.
    #[serde(default)]
    pub recovery: bool,

    /// Reconnect when nothing, not even a keep-alive, arrived for this long
    /// (default 30s for v2, 90s for v1.1).
    #[serde(default, deserialize_with = "connector_runtime::units::opt_duration")]
    pub stall_timeout: Option<Duration>,
    #[serde(default)]
    pub reconnect: ReconnectConfig,
    /// How many recent tweet ids to remember to drop duplicates (0 disables).
    #[serde(default = "default_dedup_window")]
    pub dedup_window: usize,
    /// Messages larger than this are skipped and counted (default 1 MiB, Fluvio's default
    /// request size).
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// What reading costs on pay-per-use: `{price_per_post_usd: 0.005, monthly_cap: N}`
    /// (default for `filtered`: $0.005 and no cap; other modes count nothing unless given).
    #[serde(default)]
    pub billing: Option<BillingConfig>,
    /// Send deletes and withholdings to this topic, keyed by tweet or user id.
    #[serde(default)]
    pub events_topic: Option<String>,

    /// `replay`: where the recorded tweets are and how fast to send them.
    #[serde(default)]
    pub replay: Option<ReplayConfig>,
    /// `bluesky`: which Jetstream instances, which collections and accounts.
    #[serde(default)]
    pub bluesky: BlueskyConfig,
}

/// Credentials: a bearer token; or consumer key + secret (exchanged for a bearer token, or
/// with the access token pair for OAuth 1.0a). All are secrets.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub bearer_token: Option<SecretString>,
    #[serde(default)]
    pub consumer_key: Option<SecretString>,
    #[serde(default)]
    pub consumer_secret: Option<SecretString>,
    #[serde(default)]
    pub access_token: Option<SecretString>,
    #[serde(default)]
    pub access_token_secret: Option<SecretString>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub value: String,
    #[serde(default)]
    pub tag: Option<String>,
}

/// `compliance:`: the partitions of each compliance stream to read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplianceConfig {
    /// `/2/tweets/compliance/stream` partitions (1-4).
    #[serde(default)]
    pub tweets: Vec<u8>,
    /// `/2/users/compliance/stream` partitions (1-4).
    #[serde(default)]
    pub users: Vec<u8>,
}

/// `billing:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingConfig {
    /// Dollars per post read (each post billed once per UTC day); default 0.005.
    #[serde(default = "default_price")]
    pub price_per_post_usd: f64,
    /// Posts a month the app may read; warnings at 80% and 95% of it.
    #[serde(default)]
    pub monthly_cap: Option<u64>,
}

impl Default for BillingConfig {
    fn default() -> Self {
        Self {
            price_per_post_usd: default_price(),
            monthly_cap: None,
        }
    }
}

fn default_price() -> f64 {
    0.005
}

/// How many filtered-stream rules an app may have, and how long each may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleLimits {
    pub count: usize,
    pub length: usize,
    /// The access level named, for messages (`pay-per-use`, `enterprise`, `custom`).
    pub tier: &'static str,
}

impl Default for RuleLimits {
    fn default() -> Self {
        Self {
            count: 1000,
            length: 1024,
            tier: "pay-per-use",
        }
    }
}

impl<'de> Deserialize<'de> for RuleLimits {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Custom {
            count: usize,
            length: usize,
        }
        match serde_yaml::Value::deserialize(d)? {
            serde_yaml::Value::String(s) if s == "pay-per-use" => Ok(Self::default()),
            serde_yaml::Value::String(s) if s == "enterprise" => Ok(Self {
                count: 25_000,
                length: 2048,
                tier: "enterprise",
            }),
            v @ serde_yaml::Value::Mapping(_) => {
                let c: Custom = serde_yaml::from_value(v).map_err(D::Error::custom)?;
                Ok(Self {
                    count: c.count,
                    length: c.length,
                    tier: "custom",
                })
            }
            _ => Err(D::Error::custom(
                "expected `pay-per-use`, `enterprise` or `{count: N, length: N}`",
            )),
        }
    }
}

/// The official reconnect policy's steps; change them only for tests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconnectConfig {
    /// Network errors: linear steps of this much...
    #[serde(
        default = "d_250ms",
        deserialize_with = "connector_runtime::units::duration"
    )]
    pub network_step: Duration,
    /// ...up to this.
    #[serde(
        default = "d_16s",
        deserialize_with = "connector_runtime::units::duration"
    )]
    pub network_max: Duration,
    /// Retryable HTTP errors: exponential from this...
    #[serde(
        default = "d_5s",
        deserialize_with = "connector_runtime::units::duration"
    )]
    pub http_initial: Duration,
    /// ...up to this.
    #[serde(
        default = "d_320s",
        deserialize_with = "connector_runtime::units::duration"
    )]
    pub http_max: Duration,
    /// 420/429: exponential from this (and never before `x-rate-limit-reset`)...
    #[serde(
        default = "d_60s",
        deserialize_with = "connector_runtime::units::duration"
    )]
    pub rate_limit_initial: Duration,
    /// ...up to this.
    #[serde(
        default = "d_960s",
        deserialize_with = "connector_runtime::units::duration"
    )]
    pub rate_limit_max: Duration,
    /// Give up (exit 1) after this many failed attempts in a row (default: never).
    #[serde(default)]
    pub max_attempts: Option<u32>,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        Self {
            network_step: d_250ms(),
            network_max: d_16s(),
            http_initial: d_5s(),
            http_max: d_320s(),
            rate_limit_initial: d_60s(),
            rate_limit_max: d_960s(),
            max_attempts: None,
        }
    }
}

/// `bluesky:` (`mode: bluesky`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlueskyConfig {
    /// Jetstream instances (`wss://host`, the path `/subscribe` is added), tried in turn:
    /// a failed or dropped connection moves to the next one (default: Bluesky's four public
    /// instances).
    #[serde(default = "default_jetstream_instances")]
    pub instances: Vec<String>,
    /// The record collections to receive (`wantedCollections`; `prefix.*` allowed; at most
    /// 100; default `app.bsky.feed.post`). Identity and account events always come.
    #[serde(default = "default_wanted_collections")]
    pub wanted_collections: Vec<String>,
    /// Only these accounts (`wantedDids`, at most 10,000; default: everyone).
    #[serde(default)]
    pub wanted_dids: Vec<String>,
    /// On start, ask for the events from this long before the last record in the topic
    /// (instances stamp `time_us` with their own clocks); what comes twice is dropped by
    /// the dedup window (default 5s).
    #[serde(
        default = "d_5s",
        deserialize_with = "connector_runtime::units::duration"
    )]
    pub cursor_overlap: Duration,
    /// Ask for compressed events (`compress=true`: each one zstd with Jetstream's dictionary,
    /// fewer bytes on the wire) and read them with this dictionary file (Jetstream publishes
    /// it; default: plain JSON).
    #[serde(default)]
    pub zstd_dictionary: Option<PathBuf>,
}

impl Default for BlueskyConfig {
    fn default() -> Self {
        Self {
            instances: default_jetstream_instances(),
            wanted_collections: default_wanted_collections(),
            wanted_dids: Vec::new(),
            cursor_overlap: d_5s(),
            zstd_dictionary: None,
        }
    }
}

fn default_jetstream_instances() -> Vec<String> {
    [
        "wss://jetstream1.us-east.bsky.network",
        "wss://jetstream2.us-east.bsky.network",
        "wss://jetstream1.us-west.bsky.network",
        "wss://jetstream2.us-west.bsky.network",
    ]
    .map(String::from)
    .to_vec()
}

fn default_wanted_collections() -> Vec<String> {
    vec![tweet_model::bluesky::POST.to_string()]
}

/// `replay:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    /// A file or a folder of files: JSON lines, a JSON array, or either gzipped (`.gz`).
    pub path: PathBuf,
    /// `max` (as fast as possible), `original` (the recorded pace, from `timestamp_ms` or
    /// `created_at`, times `speed`), or a number of tweets per second.
    #[serde(default)]
    pub rate: ReplayRate,
    /// With `rate: original`: 2.0 replays twice as fast.
    #[serde(default = "one")]
    pub speed: f64,
    /// Start over at the end (until stopped).
    #[serde(default, rename = "loop")]
    pub looped: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum ReplayRate {
    #[default]
    Max,
    Original,
    PerSecond(f64),
}

impl<'de> Deserialize<'de> for ReplayRate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_yaml::Value::deserialize(d)? {
            serde_yaml::Value::String(s) if s == "max" => Ok(Self::Max),
            serde_yaml::Value::String(s) if s == "original" => Ok(Self::Original),
            serde_yaml::Value::String(s) => s
                .parse::<f64>()
                .ok()
                .filter(|r| *r > 0.0)
                .map(Self::PerSecond)
                .ok_or_else(|| D::Error::custom("expected `max`, `original` or tweets per second")),
            serde_yaml::Value::Number(n) => n
                .as_f64()
                .filter(|r| *r > 0.0)
                .map(Self::PerSecond)
                .ok_or_else(|| D::Error::custom("expected a positive rate")),
            _ => Err(D::Error::custom(
                "expected `max`, `original` or tweets per second",
            )),
        }
    }
}

/// `sw_lon,sw_lat,ne_lon,ne_lat`, in range, south-west corner first.
fn is_bounding_box(b: &str) -> bool {
    let nums: Vec<Option<f64>> = b.split(',').map(|x| x.trim().parse().ok()).collect();
    match nums[..] {
        [Some(w), Some(s), Some(e), Some(n)] => {
            (-180.0..=180.0).contains(&w)
                && (-180.0..=180.0).contains(&e)
                && (-90.0..=90.0).contains(&s)
                && (-90.0..=90.0).contains(&n)
                && w < e
                && s < n
        }
        _ => false,
    }
}

impl Section for TwitterConfig {
    /// Cross-field checks, each naming its field.
    fn validate(&self) -> Result<(), InvalidField> {
        match self.mode {
            Mode::Replay => {}
            Mode::Bluesky => self.check_bluesky()?,
            _ => self.check_base_url()?,
        }
        self.check_auth()?;
        self.check_rules()?;
        self.check_partitions()?;
        self.check_compliance()?;
        self.check_v1_filter()?;
        self.check_backfill()?;
        self.check_numbers()
    }
}

impl TwitterConfig {
    /// The credentials each mode needs.
    fn check_auth(&self) -> Result<(), InvalidField> {
        let a = &self.auth;
        match self.mode {
            Mode::Filtered
            | Mode::Sample
            | Mode::Sample10
            | Mode::Firehose
            | Mode::FirehoseLang
            | Mode::Compliance => {
                let has_app = a.consumer_key.is_some() && a.consumer_secret.is_some();
                if a.bearer_token.is_none() && !has_app {
                    return invalid(
                        "twitter.auth",
                        "v2 streams need `bearer_token`, or `consumer_key` and `consumer_secret`",
                    );
                }
            }
            Mode::V1Sample | Mode::V1Filter => {
                if a.consumer_key.is_none()
                    || a.consumer_secret.is_none()
                    || a.access_token.is_none()
                    || a.access_token_secret.is_none()
                {
                    return invalid("twitter.auth", "v1.1 streams need `consumer_key`, `consumer_secret`, `access_token` and `access_token_secret` (OAuth 1.0a)");
                }
            }
            Mode::Bluesky => {}
            Mode::Replay => {
                if self.replay.is_none() {
                    return invalid(
                        "twitter.replay",
                        "mode `replay` needs a `replay: {path: ...}` section",
                    );
                }
            }
        }
        Ok(())
    }

    /// Filtered-stream rules: present, within the access level's limits.
    fn check_rules(&self) -> Result<(), InvalidField> {
        if self.mode == Mode::Filtered && self.rules.is_empty() && !self.keep_unowned_rules {
            return invalid("twitter.rules", "mode `filtered` needs at least one rule (or `keep_unowned_rules: true` to use the app's existing rules)");
        }
        let limits = &self.rule_limits;
        if self.rules.len() > limits.count {
            return invalid(
                "twitter.rules",
                format!(
                    "{} rules, more than the {} limit of {} (`rule_limits`)",
                    self.rules.len(),
                    limits.tier,
                    limits.count
                ),
            );
        }
        for (i, r) in self.rules.iter().enumerate() {
            let field = format!("twitter.rules[{i}].value");
            if r.value.trim().is_empty() {
                return invalid(field, "empty rule");
            }
            let chars = r.value.chars().count();
            if chars > limits.length {
                return invalid(
                    field,
                    format!(
                        "{chars} characters, longer than the {} limit of {} (`rule_limits`): `{}`",
                        limits.tier,
                        limits.length,
                        crate::message::excerpt(r.value.as_bytes())
                    ),
                );
            }
        }
        Ok(())
    }

    /// Partitioned streams: the partitions exist; `lang` and `partition` where a mode needs them.
    fn check_partitions(&self) -> Result<(), InvalidField> {
        if let Some(count) = self.partition_count() {
            if let Some(bad) = self.partitions.iter().find(|p| !(1..=count).contains(*p)) {
                return invalid(
                    "twitter.partitions",
                    format!("partition {bad} does not exist: this stream has 1 to {count}"),
                );
            }
        } else if !self.partitions.is_empty() {
            return invalid(
                "twitter.partitions",
                "only for modes `firehose` and `firehose-lang`",
            );
        }
        if self.mode == Mode::FirehoseLang && self.partition_count().is_none() {
            return invalid(
                "twitter.lang",
                "mode `firehose-lang` needs `lang: en`, `ja`, `ko` or `pt`",
            );
        }
        if self.mode == Mode::Sample10 && !matches!(self.partition, Some(1) | Some(2)) {
            return invalid(
                "twitter.partition",
                "mode `sample10` needs `partition: 1` or `2`",
            );
        }
        Ok(())
    }

    /// The compliance streams: v2, partitions 1 to 4, an events topic.
    fn check_compliance(&self) -> Result<(), InvalidField> {
        if let Some(c) = &self.compliance {
            if self.mode.is_v1() || self.mode == Mode::Replay {
                return invalid("twitter.compliance", "the compliance streams are v2 (Enterprise): beside a v2 mode or with `mode: compliance`");
            }
            for (field, list) in [("tweets", &c.tweets), ("users", &c.users)] {
                if let Some(bad) = list.iter().find(|p| !(1..=4).contains(*p)) {
                    return invalid(
                        format!("twitter.compliance.{field}"),
                        format!(
                            "partition {bad} does not exist: the compliance streams have 1 to 4"
                        ),
                    );
                }
            }
            if self.events_topic.is_none() {
                return invalid(
                    "twitter.events_topic",
                    "compliance events go to the events topic: name one",
                );
            }
        }
        let compliance_partitions = self
            .compliance
            .as_ref()
            .map_or(0, |c| c.tweets.len() + c.users.len());
        if self.mode == Mode::Compliance && compliance_partitions == 0 {
            return invalid(
                "twitter.compliance",
                "mode `compliance` needs `compliance: {tweets: [1, 2, 3, 4], users: [...]}`",
            );
        }
        Ok(())
    }

    /// v1.1 `statuses/filter` predicates, within X's limits.
    fn check_v1_filter(&self) -> Result<(), InvalidField> {
        if self.mode == Mode::V1Filter
            && self.track.is_empty()
            && self.follow.is_empty()
            && self.locations.is_empty()
        {
            return invalid(
                "twitter.track",
                "mode `v1-filter` needs `track`, `follow` or `locations`",
            );
        }
        for (field, len, most, what) in [
            ("twitter.track", self.track.len(), 400, "terms"),
            ("twitter.follow", self.follow.len(), 5000, "user ids"),
            (
                "twitter.locations",
                self.locations.len(),
                25,
                "bounding boxes",
            ),
        ] {
            if len > most {
                return invalid(field, format!("X allows {most} {what}, got {len}"));
            }
        }
        for (i, b) in self.locations.iter().enumerate() {
            if !is_bounding_box(b) {
                return invalid(
                    format!("twitter.locations[{i}]"),
                    format!("expected `sw_lon,sw_lat,ne_lon,ne_lat` (south-west corner first), got `{b}`"),
                );
            }
        }
        Ok(())
    }

    /// Backfill and recovery: v2 only, recovery not on the 1% sample, at most 5 minutes.
    fn check_backfill(&self) -> Result<(), InvalidField> {
        if (self.backfill || self.recovery || self.backfill_minutes.is_some())
            && (self.mode.is_v1() || self.mode == Mode::Replay)
        {
            return invalid(
                "twitter.backfill",
                "backfill and recovery are for the v2 streams only",
            );
        }
        if self.recovery && matches!(self.mode, Mode::Sample) {
            return invalid("twitter.recovery", "X recovers with start_time on filtered, sample10 and the firehoses, not on the 1% sample (use `backfill: true`)");
        }
        if self.backfill_minutes.is_some_and(|m| m > 5) {
            return invalid("twitter.backfill_minutes", "expected 0 to 5");
        }
        Ok(())
    }

    /// Numbers with a range: replay speed, price per post, largest message.
    fn check_numbers(&self) -> Result<(), InvalidField> {
        if let Some(r) = &self.replay {
            if r.speed.is_nan() || r.speed <= 0.0 {
                return invalid("twitter.replay.speed", "expected a positive number");
            }
        }
        if let Some(b) = &self.billing {
            if !b.price_per_post_usd.is_finite() || b.price_per_post_usd < 0.0 {
                return invalid(
                    "twitter.billing.price_per_post_usd",
                    "expected a price of 0 or more (dollars per post)",
                );
            }
        }
        if self.max_message_bytes < 1024 {
            return invalid("twitter.max_message_bytes", "expected at least 1024");
        }
        Ok(())
    }

    /// Credentials go only over TLS, except to this machine or where allowed; a URL never
    /// holds them (URLs are logged). The messages never repeat the URL: it may be a secret.
    fn check_base_url(&self) -> Result<(), InvalidField> {
        self.check_url("twitter.base_url", &self.base_url, "https", "http")
    }

    /// Jetstream: instances that are WebSocket URLs, limits Jetstream enforces.
    fn check_bluesky(&self) -> Result<(), InvalidField> {
        let b = &self.bluesky;
        if b.instances.is_empty() {
            return invalid(
                "twitter.bluesky.instances",
                "expected at least one Jetstream instance (wss://host)",
            );
        }
        for url in &b.instances {
            self.check_url("twitter.bluesky.instances", url, "wss", "ws")?;
        }
        if b.wanted_collections.len() > 100 {
            return invalid(
                "twitter.bluesky.wanted_collections",
                "Jetstream takes at most 100",
            );
        }
        if b.wanted_dids.len() > 10_000 {
            return invalid(
                "twitter.bluesky.wanted_dids",
                "Jetstream takes at most 10,000",
            );
        }
        if let Some(bad) = b.wanted_dids.iter().find(|d| !d.starts_with("did:")) {
            return invalid(
                "twitter.bluesky.wanted_dids",
                format!("`{bad}` is not a DID (did:plc:... or did:web:...)"),
            );
        }
        Ok(())
    }

    /// A URL without credentials, query or fragment, whose `plain` scheme only goes to
    /// loopback unless `allow_insecure_http`.
    fn check_url(
        &self,
        field: &'static str,
        url: &str,
        secure: &str,
        plain: &str,
    ) -> Result<(), InvalidField> {
        let url = match reqwest::Url::parse(url) {
            Ok(url) => url,
            Err(e) => return invalid(field, format!("not a URL ({e})")),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return invalid(field, "holds credentials (`user:password@`); give them in `twitter.auth` (secrets), since URLs are logged");
        }
        if url.query().is_some() || url.fragment().is_some() {
            return invalid(
                field,
                "expected no `?query` or `#fragment` (API paths are appended to it)",
            );
        }
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        match url.scheme() {
            s if s == secure => Ok(()),
            s if s == plain && (loopback || self.allow_insecure_http) => Ok(()),
            s if s == plain => invalid(field, format!(
                "plain {plain}:// to `{}` travels in clear; use {secure}://, or set `twitter.allow_insecure_http: true` on a network you trust",
                url.host_str().unwrap_or_default()
            )),
            other => invalid(field, format!("scheme `{other}` is neither {secure} nor {plain}")),
        }
    }

    /// What to count as billed: as configured, or pay-per-use's price for `filtered`.
    pub fn billing(&self) -> Option<BillingConfig> {
        match (&self.billing, self.mode) {
            (Some(b), _) => Some(b.clone()),
            (None, Mode::Filtered) => Some(BillingConfig::default()),
            (None, _) => None,
        }
    }

    /// How many partitions the mode's endpoint has (None: not a partitioned mode, or an
    /// unknown `lang`).
    pub fn partition_count(&self) -> Option<u8> {
        match (self.mode, self.lang.as_deref()) {
            (Mode::Firehose, _) => Some(20),
            (Mode::FirehoseLang, Some("en")) => Some(8),
            (Mode::FirehoseLang, Some("ja" | "ko" | "pt")) => Some(2),
            _ => None,
        }
    }

    /// The partitions to connect to (none for a stream without partitions).
    pub fn partitions_to_read(&self) -> Vec<u8> {
        match self.partition_count() {
            Some(n) if self.partitions.is_empty() => (1..=n).collect(),
            Some(_) => self.partitions.clone(),
            None => Vec::new(),
        }
    }

    pub fn stall_timeout(&self) -> Duration {
        self.stall_timeout.unwrap_or(if self.mode.is_v1() {
            Duration::from_secs(90)
        } else {
            Duration::from_secs(30)
        })
    }
}

fn default_base_url() -> String {
    "https://api.x.com".into()
}
fn default_tweet_fields() -> String {
    "created_at,lang,author_id,entities,referenced_tweets,public_metrics,note_tweet,conversation_id,in_reply_to_user_id,attachments,geo,possibly_sensitive,edit_history_tweet_ids".into()
}
fn default_expansions() -> String {
    "author_id,referenced_tweets.id,referenced_tweets.id.author_id,attachments.media_keys,geo.place_id".into()
}
fn default_user_fields() -> String {
    "username,name,verified,public_metrics,created_at".into()
}
fn default_media_fields() -> String {
    "type,url,preview_image_url,alt_text".into()
}
fn default_place_fields() -> String {
    "full_name,country_code,geo".into()
}
fn default_dedup_window() -> usize {
    100_000
}
fn default_max_message_bytes() -> usize {
    1024 * 1024
}
fn yes() -> bool {
    true
}
fn one() -> f64 {
    1.0
}
fn d_250ms() -> Duration {
    Duration::from_millis(250)
}
fn d_16s() -> Duration {
    Duration::from_secs(16)
}
fn d_5s() -> Duration {
    Duration::from_secs(5)
}
fn d_320s() -> Duration {
    Duration::from_secs(320)
}
fn d_60s() -> Duration {
    Duration::from_secs(60)
}
fn d_960s() -> Duration {
    Duration::from_secs(960)
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_runtime::secrets::SecretStore;
    use connector_runtime::ConnectorConfig;

    #[test]
    fn connector_toml_lists_every_field() {
        testkit::connector_toml::assert_lists_every_field::<TwitterConfig>(
            &testkit::workspace_root().join("connector/Connector.toml"),
        );
    }

    #[test]
    fn every_example_config_parses_and_validates() {
        let dir = testkit::workspace_root().join("connector/examples-config");
        let secrets = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            secrets.path(),
            "TWITTER_BASE_URL=http://127.0.0.1:8089\nTWITTER_BEARER_TOKEN=t\nTWITTERCONSUMERKEY=k\nTWITTERCONSUMERSECRET=s\nTWITTERACCESSTOKEN=a\nTWITTERACCESSTOKENSECRET=b\n",
        )
        .unwrap();
        let store = SecretStore::from_file(secrets.path()).unwrap();
        let mut n = 0;
        let root = testkit::workspace_root();
        let shipped = [
            root.join("Connector.yaml"),
            root.join("Bluesky.yaml"),
            root.join("compose/source.yaml"),
        ];
        let examples = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path());
        for path in examples.chain(shipped) {
            let c = ConnectorConfig::<TwitterConfig>::load(&path, &store, "twitter")
                .unwrap_or_else(|e| panic!("{e}"));
            c.custom
                .validate()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(c.meta.kind, "twitter-source");
            n += 1;
        }
        assert!(n >= 8, "an example per mode, Connector.yaml, compose");
    }

    // Long on purpose: a table of bad configs, one case per entry, each with the field its
    // error must name.
    #[test]
    fn cross_field_checks_name_the_field() {
        let parse = |y: &str| {
            serde_yaml::from_str::<TwitterConfig>(y)
                .unwrap()
                .validate()
                .map_err(|e| e.to_string())
        };
        assert!(parse("mode: filtered\nauth: {bearer_token: t}\n")
            .unwrap_err()
            .starts_with("twitter.rules"));
        assert!(parse("mode: sample\n")
            .unwrap_err()
            .starts_with("twitter.auth"));
        // Bluesky: WebSocket instances, plain ws:// only to this machine, DIDs that are DIDs.
        assert!(parse("mode: bluesky\n").is_ok(), "the defaults are valid");
        for (yaml, says) in [
            ("instances: []", "at least one"),
            (
                "instances: [https://jetstream.example]",
                "neither wss nor ws",
            ),
            ("instances: [ws://jetstream.example]", "travels in clear"),
            (
                "wanted_dids: [alice.bsky.social]",
                "`alice.bsky.social` is not a DID",
            ),
        ] {
            let e = parse(&format!("mode: bluesky\nbluesky: {{{yaml}}}\n")).unwrap_err();
            assert!(
                e.starts_with("twitter.bluesky.") && e.contains(says),
                "{yaml}: {e}"
            );
        }
        assert!(parse("mode: bluesky\nbluesky: {instances: [ws://127.0.0.1:8089]}\n").is_ok());
        assert!(parse("mode: sample10\nauth: {bearer_token: t}\n")
            .unwrap_err()
            .starts_with("twitter.partition"));
        assert!(parse("mode: v1-sample\nauth: {bearer_token: t}\n")
            .unwrap_err()
            .contains("OAuth 1.0a"));
        assert!(parse("mode: v1-filter\nauth: {consumer_key: a, consumer_secret: b, access_token: c, access_token_secret: d}\n").unwrap_err().starts_with("twitter.track"));
        assert!(parse("mode: replay\n")
            .unwrap_err()
            .starts_with("twitter.replay"));
        let v1 = "mode: v1-filter\nauth: {consumer_key: a, consumer_secret: b, access_token: c, access_token_secret: d}\n";
        assert!(parse(&format!("{v1}locations: ['-122.75,36.8,-121.75,37.8']\n")).is_ok());
        assert!(parse(&format!(
            "{v1}locations: ['36.8,-122.75,37.8,-121.75', '1,2']\n"
        ))
        .unwrap_err()
        .starts_with("twitter.locations[0]: expected"));
        let boxes: Vec<String> = (0..26).map(|i| format!("'{i},0,{},1'", i + 1)).collect();
        assert!(parse(&format!("{v1}locations: [{}]\n", boxes.join(",")))
            .unwrap_err()
            .contains("25 bounding boxes, got 26"));
        assert!(
            parse("mode: sample\nauth: {bearer_token: t}\nbackfill_minutes: 9\n")
                .unwrap_err()
                .starts_with("twitter.backfill_minutes")
        );
        let filtered = "mode: filtered\nauth: {bearer_token: t}\n";
        let long = "x".repeat(1100);
        let err = parse(&format!(
            "{filtered}rules: [{{value: a}}, {{value: {long}}}]\n"
        ))
        .unwrap_err();
        assert!(
            err.starts_with("twitter.rules[1].value: 1100 characters, longer than the pay-per-use limit of 1024"),
            "{err}"
        );
        assert!(parse(&format!(
            "{filtered}rule_limits: enterprise\nrules: [{{value: {long}}}]\n"
        ))
        .is_ok());
        let three = "rules: [{value: a}, {value: b}, {value: c}]\n";
        assert_eq!(
            parse(&format!(
                "{filtered}rule_limits: {{count: 2, length: 10}}\n{three}"
            ))
            .unwrap_err(),
            "twitter.rules: 3 rules, more than the custom limit of 2 (`rule_limits`)"
        );
        assert!(
            serde_yaml::from_str::<TwitterConfig>(&format!("{filtered}rule_limits: gold\n"))
                .unwrap_err()
                .to_string()
                .contains("pay-per-use")
        );
        let firehose = "mode: firehose\nauth: {bearer_token: t}\n";
        let all = serde_yaml::from_str::<TwitterConfig>(firehose).unwrap();
        assert_eq!(all.partitions_to_read(), (1..=20).collect::<Vec<u8>>());
        assert!(parse(&format!("{firehose}partitions: [3, 21]\n"))
            .unwrap_err()
            .starts_with(
                "twitter.partitions: partition 21 does not exist: this stream has 1 to 20"
            ));
        let lang = "mode: firehose-lang\nauth: {bearer_token: t}\n";
        assert!(parse(lang).unwrap_err().starts_with("twitter.lang"));
        assert!(parse(&format!("{lang}lang: de\n"))
            .unwrap_err()
            .starts_with("twitter.lang"));
        assert!(parse(&format!("{lang}lang: ja\npartitions: [3]\n"))
            .unwrap_err()
            .contains("this stream has 1 to 2"));
        let en = serde_yaml::from_str::<TwitterConfig>(&format!("{lang}lang: en\n")).unwrap();
        assert_eq!(en.partitions_to_read().len(), 8);
        assert!(
            parse("mode: sample\nauth: {bearer_token: t}\npartitions: [1]\n")
                .unwrap_err()
                .starts_with("twitter.partitions: only for")
        );
        let only = "mode: compliance\nauth: {bearer_token: t}\n";
        assert!(parse(only)
            .unwrap_err()
            .starts_with("twitter.compliance: mode"));
        assert!(parse(&format!("{only}compliance: {{tweets: [1, 2]}}\n"))
            .unwrap_err()
            .starts_with("twitter.events_topic"));
        assert!(parse(&format!(
            "{only}compliance: {{users: [5]}}\nevents_topic: e\n"
        ))
        .unwrap_err()
        .starts_with("twitter.compliance.users: partition 5"));
        assert!(parse(&format!(
            "{only}compliance: {{tweets: [1, 4]}}\nevents_topic: e\n"
        ))
        .is_ok());
        let sample = "mode: sample\nauth: {bearer_token: t}\n";
        assert!(parse(&format!("{sample}recovery: true\n"))
            .unwrap_err()
            .starts_with("twitter.recovery"));
        assert!(parse(&format!("{sample}backfill: true\n")).is_ok());
        assert!(parse("mode: replay\nreplay: {path: x}\nbackfill: true\n")
            .unwrap_err()
            .starts_with("twitter.backfill"));
        for ok in [
            "https://api.x.com",
            "http://127.0.0.1:8089/",
            "http://localhost:1",
            "http://[::1]:2",
        ] {
            assert!(
                parse(&format!("{sample}base_url: '{ok}'\n")).is_ok(),
                "{ok}"
            );
        }
        let err = parse(&format!("{sample}base_url: 'http://emulator:8089'\n")).unwrap_err();
        assert!(
            err.starts_with("twitter.base_url: plain http:// to `emulator`")
                && err.contains("allow_insecure_http"),
            "{err}"
        );
        assert!(parse(&format!(
            "{sample}base_url: 'http://emulator:8089'\nallow_insecure_http: true\n"
        ))
        .is_ok());
        let err = parse(&format!(
            "{sample}base_url: 'https://me:hunter2@proxy.example'\n"
        ))
        .unwrap_err();
        assert!(
            err.starts_with("twitter.base_url: holds credentials") && !err.contains("hunter2"),
            "{err}"
        );
        assert!(
            parse(&format!("{sample}base_url: 'https://h/?key=s3cret'\n"))
                .unwrap_err()
                .starts_with("twitter.base_url: expected no `?query`")
        );
        assert!(parse(&format!("{sample}base_url: 'ftp://h'\n"))
            .unwrap_err()
            .contains("scheme `ftp`"));
        assert!(serde_yaml::from_str::<TwitterConfig>("mode: nope\n")
            .unwrap_err()
            .to_string()
            .contains("unknown variant"));
        assert!(
            serde_yaml::from_str::<TwitterConfig>("mode: sample\ntrak: [x]\n")
                .unwrap_err()
                .to_string()
                .contains("unknown field `trak`")
        );
    }
}
