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

/// The time a stop may take (`server.shutdown_seconds`), counted from the moment `token` is
/// cancelled. Every wait on the way out goes through it, so nothing tidings started (HTTP
/// connections, digest workers, the outbox, the feed threads, WebSub retries) holds the exit
/// longer.
#[derive(Clone)]
pub struct Deadline {
    token: CancellationToken,
    budget: std::time::Duration,
    at: std::sync::Arc<std::sync::OnceLock<tokio::time::Instant>>,
}

impl Deadline {
    pub fn new(token: CancellationToken, budget: std::time::Duration) -> Deadline {
        Deadline {
            token,
            budget,
            at: std::sync::Arc::new(std::sync::OnceLock::new()),
        }
    }

    /// When the budget runs out; the first caller after the stop was asked for fixes it.
    fn at(&self) -> tokio::time::Instant {
        *self
            .at
            .get_or_init(|| tokio::time::Instant::now() + self.budget)
    }

    /// Resolves when the budget is spent (never before a stop is asked for).
    pub async fn reached(&self) {
        self.token.cancelled().await;
        tokio::time::sleep_until(self.at()).await;
    }

    /// Resolves a little before the deadline (a quarter of the budget, at most a second): the
    /// moment to cut off sends still in progress, leaving time to hand them back and record
    /// what the server already took.
    pub async fn closing(&self) {
        self.token.cancelled().await;
        let margin = (self.budget / 4).min(std::time::Duration::from_secs(1));
        tokio::time::sleep_until(self.at() - margin).await;
    }

    /// `f`, unless the deadline comes first: then `None`, and a warning names `what`.
    pub async fn within<F: std::future::Future>(&self, what: &str, f: F) -> Option<F::Output> {
        tokio::select! {
            out = f => Some(out),
            _ = self.reached() => {
                tracing::warn!(
                    "{what} did not stop within server.shutdown_seconds ({} s); left behind",
                    self.budget.as_secs()
                );
                None
            }
        }
    }
}
