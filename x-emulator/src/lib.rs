//! # x-emulator
//!
//! A faithful Twitter/X streaming API emulator: a real HTTP server that the source connector,
//! its tests, the benchmarks and the offline demo talk to, since the real API cannot be
//! reached from here.
//!
//! - [`server`]: v2 filtered stream with the rules API, v2 sample and sample10, v1.1 sample and
//!   filter (OAuth 1.0a verified by [`oauth`]), `/oauth2/token`, control endpoints;
//! - [`stream`]: framing (`\r\n`, `delimited=length`), pacing, chunks split anywhere,
//!   keep-alives; [`faults`]: HTTP errors, stalls, truncation, in-band disconnects, drips,
//!   malformed, invalid UTF-8, huge and duplicate messages, phantom connections;
//! - [`corpus`]: recorded payloads streamed byte for byte, or [`generator`]'s realistic tweets;
//! - the connection log: every attempt with its time and every tweet id it carried.

pub mod corpus;
pub mod faults;
pub mod generator;
pub mod oauth;
pub mod rules;
pub mod server;
pub mod stream;

pub use corpus::{Corpus, Dialect};
pub use faults::{ConnectionPlan, End, Inject, Injection};
pub use server::{ConnectionRecord, Credentials, Emulator, EmulatorConfig};
