//! Shutdown on SIGINT/SIGTERM: the first signal cancels a token that every part of the
//! connector watches (stop reading, then flush or commit); a second signal exits at once.

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// Exit code used when a second signal forces an immediate exit.
pub const FORCED_EXIT_CODE: i32 = 130;

/// Install the signal handlers and return the token the first signal cancels. The handlers
/// are in place when this returns (not when a task gets to run), so a signal from then on is
/// a clean stop.
pub fn install() -> CancellationToken {
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let first = next_signal(&mut term, &mut int).await;
        tracing::info!(
            signal = first,
            "shutdown requested: stop reading, flush, exit (send it again to exit at once)"
        );
        cancel.cancel();
        let second = next_signal(&mut term, &mut int).await;
        tracing::warn!(signal = second, "second signal: exiting at once");
        std::process::exit(FORCED_EXIT_CODE);
    });
    token
}

async fn next_signal(term: &mut Signal, int: &mut Signal) -> &'static str {
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
