//! # tweet-model
//!
//! One view of a tweet over the two API dialects (v1.1 statuses and v2 stream messages), and
//! of a Bluesky post (Jetstream), and the project's shaped record. Used by the `tweet-filter` and `tweet-shape` SmartModules (in
//! wasm) and natively by their tests and benchmarks, so the logic exists once.
//!
//! - [`record`]: the shaped record, [`Shaped`];
//! - [`shape::shape`]: raw v1.1, raw v2, Jetstream or shaped bytes -> [`Shaped`] (or `None` for
//!   non-posts);
//! - [`filter::Filter`]: the filter parameters and their predicate;
//! - [`raw`]: the borrowed, typed reading of the raw dialects; [`text`], [`time`]: helpers.

pub mod bluesky;
pub mod filter;
pub mod raw;
pub mod record;
pub mod shape;
pub mod text;
pub mod time;

pub use filter::Filter;
pub use record::{Kind, Shaped};
pub use shape::{shape, ShapeError};

/// What a module does with input it cannot read (`on_invalid` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnInvalid {
    /// Return an error for the record: the source runtime counts it and logs its key
    /// (default). On the SPU an error ends the consumer's stream: use `drop` there.
    #[default]
    Error,
    /// Drop it (and write a line to stderr, which wasip1 hosts show).
    Drop,
}

impl OnInvalid {
    pub fn from_params(
        params: &std::collections::BTreeMap<String, String>,
    ) -> Result<Self, String> {
        match params.get("on_invalid").map(|s| s.trim()) {
            None | Some("error") => Ok(OnInvalid::Error),
            Some("drop") => Ok(OnInvalid::Drop),
            Some(other) => Err(format!(
                "parameter `on_invalid`: expected error or drop, got `{other}`"
            )),
        }
    }
}
