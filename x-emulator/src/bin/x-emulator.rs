//! `x-emulator`: run the X API emulator from the command line (offline demo, benchmarks).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use x_emulator::{ConnectionPlan, Corpus, Credentials, Emulator, EmulatorConfig};

/// A Twitter/X streaming API emulator (v2 filtered/sample streams and rules, v1.1 OAuth 1.0a
/// streams), streaming recorded or generated tweets with faults on demand.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8089")]
    addr: std::net::SocketAddr,
    /// Stream the recorded tweets of this folder (v1_statuses.jsonl, v2_messages.jsonl)
    /// instead of generated ones.
    #[arg(long, value_name = "DIR")]
    files: Option<PathBuf>,
    /// With --files: start over at the end instead of stopping.
    #[arg(long)]
    r#loop: bool,
    /// Tweets per second per connection (0: as fast as the client reads).
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Stop after this many tweets per API dialect (keep-alives only afterwards).
    #[arg(long)]
    limit: Option<u64>,
    /// Seconds between keep-alives on v2 streams.
    #[arg(long, default_value_t = 20.0)]
    keepalive_secs: f64,
    /// Seconds between keep-alives on v1.1 streams.
    #[arg(long, default_value_t = 30.0)]
    keepalive_v1_secs: f64,
    /// Concurrent stream connections allowed (0: unlimited).
    #[arg(long, default_value_t = 1)]
    max_connections: usize,
    /// Send 64 KiB chunks instead of chunks of random sizes.
    #[arg(long)]
    whole_chunks: bool,
    /// Do not keep every sent id in the log (long benchmarks).
    #[arg(long)]
    no_id_log: bool,
    /// Fault plans for the next connections, as JSON (one plan or a list), e.g.
    /// '[{"status":503},{"after":100,"end":"close_mid_message"}]'.
    #[arg(long, value_name = "JSON")]
    plans: Option<String>,
    /// A v2 rule present at start, `value` or `value=>tag` (repeatable).
    #[arg(long = "rule", value_name = "RULE")]
    rules: Vec<String>,
    /// Bluesky Jetstream (`ws://ADDR/subscribe`): events the network publishes per second.
    #[arg(long, default_value_t = 200.0)]
    jetstream_rate: f64,
    /// Bluesky Jetstream: stop after this many events (silence afterwards).
    #[arg(long)]
    jetstream_limit: Option<u64>,
    /// Bluesky Jetstream: when event 0 was published (Unix µs); emulators given the same
    /// value are instances of one network (default: this emulator's start).
    #[arg(long)]
    jetstream_epoch_us: Option<i64>,
    /// Bluesky Jetstream: this instance's clock skew (µs), added to each `time_us`.
    #[arg(long, default_value_t = 0)]
    jetstream_skew_us: i64,
    /// Bluesky Jetstream: the zstd dictionary file `compress=true` uses.
    #[arg(long, value_name = "FILE")]
    jetstream_zstd_dictionary: Option<PathBuf>,
    #[arg(
        long,
        env = "EMULATOR_BEARER_TOKEN",
        default_value = "emulator-bearer-token"
    )]
    bearer_token: String,
    #[arg(
        long,
        env = "EMULATOR_CONSUMER_KEY",
        default_value = "emulator-consumer-key"
    )]
    consumer_key: String,
    #[arg(
        long,
        env = "EMULATOR_CONSUMER_SECRET",
        default_value = "emulator-consumer-secret"
    )]
    consumer_secret: String,
    #[arg(
        long,
        env = "EMULATOR_ACCESS_TOKEN",
        default_value = "emulator-access-token"
    )]
    access_token: String,
    #[arg(
        long,
        env = "EMULATOR_ACCESS_TOKEN_SECRET",
        default_value = "emulator-access-token-secret"
    )]
    access_token_secret: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let corpus = match &args.files {
        Some(dir) => Corpus::files(dir, args.r#loop)?,
        None => Corpus::generated(x_emulator::faults::now_ms()),
    };
    let mut config = EmulatorConfig::new(corpus);
    config.rate = args.rate;
    config.limit = args.limit;
    config.keepalive_v2 = Duration::from_secs_f64(args.keepalive_secs);
    config.keepalive_v1 = Duration::from_secs_f64(args.keepalive_v1_secs);
    config.max_connections = args.max_connections;
    config.random_chunks = !args.whole_chunks;
    config.record_ids = !args.no_id_log;
    config.jetstream = x_emulator::JetstreamConfig {
        rate: args.jetstream_rate,
        limit: args.jetstream_limit,
        epoch_us: args.jetstream_epoch_us,
        skew_us: args.jetstream_skew_us,
        zstd_dictionary: match &args.jetstream_zstd_dictionary {
            Some(path) => Some(std::sync::Arc::new(std::fs::read(path)?)),
            None => None,
        },
    };
    config.credentials = Credentials {
        bearer_token: args.bearer_token,
        consumer_key: args.consumer_key,
        consumer_secret: args.consumer_secret,
        access_token: args.access_token,
        access_token_secret: args.access_token_secret,
    };
    if let Some(json) = &args.plans {
        config.plans = serde_json::from_str::<Vec<ConnectionPlan>>(json)
            .or_else(|_| serde_json::from_str::<ConnectionPlan>(json).map(|p| vec![p]))
            .map_err(|e| anyhow::anyhow!("--plans: {e}"))?;
    }
    config.rules = args
        .rules
        .iter()
        .map(|r| match r.split_once("=>") {
            Some((v, t)) => (v.trim().to_string(), Some(t.trim().to_string())),
            None => (r.trim().to_string(), None),
        })
        .collect();
    let emu = Emulator::start(config, args.addr).await?;
    tracing::info!(url = %emu.base_url(), "X API emulator listening (control: GET /_emulator/log, POST /_emulator/plans)");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping");
    Ok(())
}
