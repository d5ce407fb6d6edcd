//! The signals that ask tidings to stop (SIGTERM, and SIGINT from Ctrl-C), for the daemon and for
//! a CLI `digest run` alike: both stop taking work, finish what is in flight and exit 0.

use tokio_util::sync::CancellationToken;

/// Cancels `token` when SIGTERM or SIGINT arrives. Call it inside the runtime before the work
/// starts: the handlers are installed here, so from then on neither signal kills the process.
pub fn cancel_on_signal(token: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (term, int) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        );
        tokio::spawn(async move {
            let name = match (term, int) {
                (Ok(mut term), Ok(mut int)) => tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                },
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %e, "cannot listen for signals; only Ctrl-C stops tidings");
                    let _ = tokio::signal::ctrl_c().await;
                    "SIGINT"
                }
            };
            tracing::info!("{name}: stopping once the work in flight is done");
            token.cancel();
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Ctrl-C: stopping once the work in flight is done");
        token.cancel();
    });
}
