//! Bluesky's Jetstream, emulated: `GET /subscribe` upgrades to a WebSocket and sends the
//! network's events as JSON text messages, one per message, as the public instances do.
//!
//! The network is a timeline: event `i` is published at `epoch + i / rate` and is always
//! the same event (a generated post, repost, like, delete, identity or account event), so two
//! emulators given the same `epoch_us` are two instances of one network. Each instance stamps
//! `time_us` with its own clock skew, as real instances do (their cursors are close, not
//! equal). A client resumes with `cursor` (Unix µs): every event stamped at or after it is
//! sent again. Without one it starts at the live end (what is published by now).
//!
//! Queries: `wantedCollections` (repeatable, `prefix.*` allowed; identity and account events
//! always pass), `wantedDids` (repeatable), `cursor`, `compress=true` (each event a binary
//! message, zstd with the configured dictionary). Connection plans (the same queue as X's
//! streams) answer with an HTTP status, or end the socket after `after` events: `close`
//! (a close frame), `close_mid_message` (the TCP connection dropped) or `stall` (silence:
//! no events, no pong).

mod endpoint;
pub mod timeline;

pub(crate) use endpoint::subscribe;
pub use timeline::{train_dictionary, Event, JetstreamConfig, Timeline};
