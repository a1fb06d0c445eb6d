//! # connector-runtime
//!
//! The Fluvio connector contract, implemented once for every connector of this pipeline
//! (upstream's SDK, `fluvio-connector-common`, is not published on crates.io).
//!
//! A source binary is a `main` that calls [`source::main`] with its [`ConnectorInfo`] and an
//! async body; a sink calls [`sink::main`] the same way. The connector's own config section
//! implements [`config::Section`] (its cross-field checks run before anything connects). The
//! runtime then provides, in order:
//!
//! - [`cli`]: `--config <PATH>` and `--secrets <PATH>` as `cdk` passes them, `--help`,
//!   `--version`, `--metrics-addr`, `--capture` (sources: records to a file, no cluster) and
//!   `--input-file` (sinks: read such a file instead of Fluvio);
//! - [`config`]: `apiVersion` absent/0.1.0/0.2.0, every `meta` field, `transforms`, and the
//!   connector's own section typed by the connector; errors name file, field path and
//!   expectation; unknown keys in `meta` are logged as warnings (both connectors' own sections
//!   refuse theirs: `deny_unknown_fields`);
//! - [`secrets`]: `${{ secrets.NAME }}` rendering and `{secret: {name}}` references, with values
//!   from the `--secrets` file or the environment, and [`secrets::SecretString`] fields that
//!   never print;
//! - [`cluster`]: the current Fluvio profile (`FLV_PROFILE_PATH` honoured), client id
//!   `fluvio_connector_<name>`, topic creation, producer and per-partition consumers;
//! - [`transforms`]: source transforms in-process via `fluvio-smartengine` (local `.wasm` or
//!   registered names); failures counted and logged with the record key;
//! - [`shutdown`]: SIGINT/SIGTERM stop reading, then flush (source) or commit (sink), exit 0;
//!   a second signal exits at once;
//! - [`quick_ack`]: sinks acknowledge the SPU's writes at once (a 0.18 cluster read with the
//!   0.50 client crates delays records to a reading-only client by up to 40 ms otherwise);
//! - [`metrics`]: upstream's JSON counters on a Unix socket (per connector name), and optional
//!   Prometheus `/metrics` (latency histograms, process figures), `/health` and `/ready` over
//!   HTTP; progress lines in the log.
//!
//! Where upstream loses data (no flush on shutdown, silent transform drops, one offset for
//! all partitions on reconnect) this runtime does not: see each module.

use bytes::Bytes;

pub mod cli;
pub mod cluster;
pub mod config;
pub mod launch;
pub mod logging;
pub mod metrics;
pub mod output;
pub mod produce;
pub mod quick_ack;
pub mod secrets;
pub mod shutdown;
pub mod sink;
pub mod source;
pub mod transforms;
pub mod units;

pub use config::ConnectorConfig;
pub use launch::ConnectorInfo;
pub use metrics::Metrics;
pub use secrets::SecretString;
pub use source::{RecordSender, SourceContext};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One record on its way to a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `None` is a null key (not an empty one).
    pub key: Option<Bytes>,
    pub value: Bytes,
    /// Event time in milliseconds since the epoch, when known.
    pub timestamp_ms: Option<i64>,
}

impl Record {
    pub fn new(key: Option<Bytes>, value: impl Into<Bytes>) -> Self {
        Self {
            key,
            value: value.into(),
            timestamp_ms: None,
        }
    }

    /// The key as text for logs (lossy UTF-8, `<null>` when absent).
    pub fn key_lossy(&self) -> String {
        key_lossy(self.key.as_deref())
    }
}

/// A record key as text for logs (lossy UTF-8, `<null>` when absent).
pub fn key_lossy(key: Option<&[u8]>) -> String {
    match key {
        Some(k) => String::from_utf8_lossy(k).into_owned(),
        None => "<null>".to_string(),
    }
}
