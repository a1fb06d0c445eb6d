//! Shutdown on SIGINT/SIGTERM: the first signal cancels a token that every part of the
//! connector watches (stop reading, then flush or commit); a second signal exits at once.

use tokio_util::sync::CancellationToken;

/// Exit code used when a second signal forces an immediate exit.
pub const FORCED_EXIT_CODE: i32 = 130;

/// Install the signal handlers and return the token the first signal cancels.
pub fn install() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let first = wait_for_signal().await;
        tracing::info!(
            signal = first,
            "shutdown requested: stop reading, flush, exit (send it again to exit at once)"
        );
        cancel.cancel();
        let second = wait_for_signal().await;
        tracing::warn!(signal = second, "second signal: exiting at once");
        std::process::exit(FORCED_EXIT_CODE);
    });
    token
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
