//! What every connector process does first: parse the command line, start logging, load the
//! config with its secrets, serve metrics, install the signal handlers; and last: map the
//! outcome to the exit code `cdk` expects (0 clean stop, 1 config/connect/fatal error).

use std::future::Future;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::cli::{self, ConnectorArgs};
use crate::config::{ConnectorConfig, Section};
use crate::metrics::{self, Metrics};
use crate::secrets::SecretStore;

/// Static facts about a connector binary.
#[derive(Debug, Clone, Copy)]
pub struct ConnectorInfo {
    /// The binary and package name, e.g. `twitter-source`.
    pub name: &'static str,
    pub version: &'static str,
    pub about: &'static str,
    /// The top-level config key holding the connector's own section (Connector.toml `[custom] name`).
    pub section: &'static str,
}

/// Everything a connector body starts with.
pub struct Launched<C> {
    pub config: ConnectorConfig<C>,
    pub args: ConnectorArgs,
    pub metrics: Metrics,
    pub shutdown: CancellationToken,
}

/// Run a connector process around `body`; returns the exit code.
pub fn run<C, F, Fut>(info: ConnectorInfo, body: F) -> ExitCode
where
    C: Section,
    F: FnOnce(Launched<C>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let args = cli::parse(info.name, info.version, info.about);
    crate::logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        // First of all, so a signal during start-up is a clean stop, not a kill.
        let shutdown = crate::shutdown::install();
        let store = match &args.secrets {
            Some(path) => match SecretStore::from_file(path) {
                Ok(s) => s,
                Err(e) => return fail(&format!("{e}")),
            },
            None => SecretStore::from_env(),
        };
        let config: ConnectorConfig<C> =
            match ConnectorConfig::load(&args.config, &store, info.section) {
                Ok(c) => c,
                Err(e) => return fail(&format!("invalid config: {e}")),
            };
        if let Err(e) = config.custom.validate() {
            return fail(&format!("invalid config: {}: {e}", config.file.display()));
        }
        let scrubber = config.secrets.clone();
        tracing::info!(
            connector = info.name,
            version = info.version,
            name = %config.meta.name,
            topic = %config.meta.topic.name,
            "starting"
        );

        let metrics = Metrics::new(info.name);
        let socket = metrics::socket_path(&config.meta.name);
        if let Err(e) = metrics::serve_unix_socket(metrics.clone(), &socket) {
            tracing::warn!(socket = %socket.display(), error = %e, "metrics socket unavailable");
        }
        if let Some(addr) = args.metrics_addr {
            if let Err(e) = metrics::serve_http(metrics.clone(), addr).await {
                return fail(&format!("cannot serve metrics on {addr}: {e}"));
            }
        }
        // Alive until stopping: a probe then sees the process on its way out.
        let (m, s) = (metrics.clone(), shutdown.clone());
        tokio::spawn(async move {
            s.cancelled().await;
            m.set_healthy(false);
        });
        let result = body(Launched {
            config,
            args,
            metrics,
            shutdown,
        })
        .await;
        let _ = std::fs::remove_file(&socket);
        match result {
            Ok(()) => {
                tracing::info!("stopped cleanly");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&scrubber.scrub(&format!("{e:#}"))),
        }
    })
}

fn fail(message: &str) -> ExitCode {
    tracing::error!("{message}");
    ExitCode::from(1)
}
