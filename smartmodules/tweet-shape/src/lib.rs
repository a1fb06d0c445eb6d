//! # tweet-shape
//!
//! A SmartModule (filter-map) that turns a raw v1.1 status or v2 message into the project's
//! shaped record (`tweet.schema.json` next to this crate): full text, author, entities, kind,
//! references, geo, metrics, matching rules. Non-tweet messages are dropped; an already shaped
//! record passes through unchanged. The key becomes the tweet id.
//!
//! Parameters: `on_invalid` (`error`, the default: unreadable input is a record error the host
//! counts and logs; `drop`: dropped quietly, for SPU use).

use std::sync::OnceLock;

use fluvio_smartmodule::dataplane::record::RecordData;
use fluvio_smartmodule::dataplane::smartmodule::{SmartModuleExtraParams, SmartModuleRecord};
use fluvio_smartmodule::{eyre, Result};
use tweet_model::OnInvalid;

static ON_INVALID: OnceLock<OnInvalid> = OnceLock::new();

/// `init`: read `on_invalid`; any other parameter is an error (it would be a typo).
pub fn init(params: SmartModuleExtraParams) -> Result<()> {
    let map = smartmodule_glue::params_map(&params);
    if let Some(unknown) = map.keys().find(|k| k.as_str() != "on_invalid") {
        return Err(eyre!(
            "tweet-shape: unknown parameter `{unknown}` (known: on_invalid)"
        ));
    }
    let on_invalid = OnInvalid::from_params(&map).map_err(|e| eyre!("tweet-shape: {e}"))?;
    ON_INVALID
        .set(on_invalid)
        .map_err(|_| eyre!("tweet-shape: init called twice"))
}

/// A shaped record as `(key, value)`: the tweet id and the JSON.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// The shaped record for one value, or `None` for non-tweets.
pub fn reshape(value: &[u8]) -> std::result::Result<Option<KeyValue>, tweet_model::ShapeError> {
    if tweet_model::shape::is_shaped(std::str::from_utf8(value).unwrap_or("")) {
        // Already shaped: unchanged (validated).
        return Ok(tweet_model::shape(value)?.map(|t| (t.id.into_bytes(), value.to_vec())));
    }
    Ok(tweet_model::shape(value)?.map(|t| {
        let json = serde_json::to_vec(&t).expect("a shaped record serialises");
        (t.id.into_bytes(), json)
    }))
}

/// `filter_map` export body.
pub fn filter_map(record: &SmartModuleRecord) -> Result<Option<(Option<RecordData>, RecordData)>> {
    match reshape(record.value().as_ref()) {
        Ok(Some((key, value))) => Ok(Some((Some(key.into()), value.into()))),
        Ok(None) => Ok(None),
        Err(e) => match ON_INVALID.get().copied().unwrap_or_default() {
            OnInvalid::Error => Err(eyre!("tweet-shape: {e}")),
            OnInvalid::Drop => {
                eprintln!("tweet-shape: dropped offset {}: {e}", record.offset());
                Ok(None)
            }
        },
    }
}

smartmodule_glue::export_init!(init);
smartmodule_glue::export_filter_map!(filter_map);
