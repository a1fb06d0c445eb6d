//! The connector command line: `--config <PATH>` and `--secrets <PATH>` as `cdk` passes them,
//! plus the options this runtime adds (metrics address, capture and input files) and
//! `--help`/`--version`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Clone, Parser)]
pub struct ConnectorArgs {
    /// The connector config (YAML), as `cdk deploy start --config` passes it.
    #[arg(long, value_name = "PATH")]
    pub config: PathBuf,

    /// A file of `KEY=VALUE` lines with the secrets named in `meta.secrets`
    /// (default: the environment).
    #[arg(long, value_name = "PATH")]
    pub secrets: Option<PathBuf>,

    /// Serve Prometheus `/metrics` and the `/health` and `/ready` probes on this address (e.g. 127.0.0.1:9100).
    #[arg(long, value_name = "ADDR", env = "CONNECTOR_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Source connectors: append each record (after transforms) as a JSON line to this file
    /// instead of producing it to Fluvio; no cluster needed (tests, dry runs).
    #[arg(long, value_name = "PATH", env = "CONNECTOR_CAPTURE")]
    pub capture: Option<PathBuf>,

    /// Sink connectors: read records from this file (JSON lines as `--capture` writes them;
    /// line n is offset n of partition 0) instead of the Fluvio topic; no cluster needed
    /// (mirroring an offline capture, tests).
    #[arg(long, value_name = "PATH")]
    pub input_file: Option<PathBuf>,
}

/// Parse the process arguments; `--help`/`--version` print and exit 0, bad flags exit 2.
pub fn parse(name: &'static str, version: &'static str, about: &'static str) -> ConnectorArgs {
    use clap::{CommandFactory, FromArgMatches};
    let command = ConnectorArgs::command()
        .name(name)
        .version(version)
        .about(about);
    let matches = command.get_matches();
    ConnectorArgs::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}
