//! # tweet-filter
//!
//! A SmartModule (filter) that keeps or drops tweets by their content. Accepts raw v1.1
//! statuses, raw v2 messages and `tweet-shape` records, so it can run before or after
//! `tweet-shape`. Non-tweet messages (deletes, limits, errors...) are dropped.
//!
//! Parameters (`with:`; all optional, combined with AND, each list an OR; lists are
//! comma-separated text or YAML lists): `keywords` (whole words or phrases, case-insensitive,
//! on the full text), `hashtags`, `languages`, `users` (ids or usernames), `rule_tags` (v2
//! `matching_rules` tags), `exclude_retweets`, `exclude_replies`, `exclude_quotes`,
//! `min_followers`, `has_media`, `has_links` (true: must have, false: must not),
//! `sample_percent` (0-100, deterministic by id), `on_invalid` (`error`, the default, makes
//! unreadable input visible to the host as a record error; `drop` drops it quietly, for SPU use).

use std::sync::OnceLock;

use fluvio_smartmodule::dataplane::smartmodule::{SmartModuleExtraParams, SmartModuleRecord};
use fluvio_smartmodule::{eyre, Result};
use tweet_model::{Filter, OnInvalid};

static CONFIG: OnceLock<(Filter, OnInvalid)> = OnceLock::new();

/// `init`: parse the parameters once.
pub fn init(params: SmartModuleExtraParams) -> Result<()> {
    let map = smartmodule_glue::params_map(&params);
    let filter = Filter::from_params(&map).map_err(|e| eyre!("tweet-filter: {e}"))?;
    let on_invalid = OnInvalid::from_params(&map).map_err(|e| eyre!("tweet-filter: {e}"))?;
    CONFIG
        .set((filter, on_invalid))
        .map_err(|_| eyre!("tweet-filter: init called twice"))
}

/// The decision for one record value: keep it or not; `Err` for unreadable input.
pub fn decide(filter: &Filter, value: &[u8]) -> std::result::Result<bool, tweet_model::ShapeError> {
    Ok(match tweet_model::shape(value)? {
        Some(tweet) => filter.matches(&tweet),
        None => false,
    })
}

/// `filter` export body.
pub fn filter(record: &SmartModuleRecord) -> Result<bool> {
    static DEFAULT: OnceLock<(Filter, OnInvalid)> = OnceLock::new();
    let (filter, on_invalid) = CONFIG
        .get()
        .unwrap_or_else(|| DEFAULT.get_or_init(Default::default));
    match decide(filter, record.value().as_ref()) {
        Ok(keep) => Ok(keep),
        Err(e) => match on_invalid {
            OnInvalid::Error => Err(eyre!("tweet-filter: {e}")),
            OnInvalid::Drop => {
                eprintln!("tweet-filter: dropped offset {}: {e}", record.offset());
                Ok(false)
            }
        },
    }
}

smartmodule_glue::export_init!(init);
smartmodule_glue::export_filter!(filter);
