//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`), as `cdk` expects.

pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_FILTER));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// Without `RUST_LOG`: our messages at info, the Fluvio client's chatter only when it warns.
pub const DEFAULT_FILTER: &str = "info,fluvio=warn,fluvio_socket=warn,fluvio_future=warn";
