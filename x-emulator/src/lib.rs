//! # x-emulator
//!
//! A faithful Twitter/X streaming API emulator: a real HTTP server that the source connector,
//! its tests, the benchmarks and the offline demo talk to, since the real API cannot be
//! reached from here.
//!
//! - [`server`]: v2 filtered stream with the paginated rules API, v2 sample and sample10, the
//!   partitioned firehoses and compliance streams, the Connections API, v1.1 sample and filter
//!   (OAuth 1.0a verified by [`oauth`]), `/oauth2/token`, control endpoints;
//! - [`state`]: what the handlers and stream sessions share: cursors, rules, plans, the log;
//! - [`stream`]: framing (`\r\n`, `delimited=length`), pacing, chunks split anywhere,
//!   keep-alives; [`faults`]: HTTP errors, stalls, truncation, in-band disconnects, drips,
//!   malformed, invalid UTF-8, huge and duplicate messages, phantom connections;
//! - [`corpus`]: recorded payloads streamed byte for byte, or [`generator`]'s realistic tweets;
//! - [`jetstream`]: Bluesky's Jetstream (`/subscribe`, a WebSocket): a deterministic timeline
//!   of posts and other events, cursor replay, instances with clock skew, the same fault plans;
//! - [`wire`]: what each connection's socket took, so an abrupt close cuts nothing logged as sent;
//! - the connection log: every attempt with its time and every tweet id it carried.
//!
//! Modules depend one way: `server` -> `stream` -> `state`.

pub mod corpus;
pub mod faults;
pub mod generator;
pub mod jetstream;
pub mod oauth;
mod query;
pub mod rules;
pub mod server;
pub mod state;
pub mod stream;
pub mod wire;

pub use corpus::{Corpus, Dialect};
pub use faults::{ConnectionPlan, End, Inject, Injection};
pub use jetstream::JetstreamConfig;
pub use server::Emulator;
pub use state::{ConnectionRecord, Credentials, EmulatorConfig};
