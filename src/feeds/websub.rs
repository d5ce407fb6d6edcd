//! WebSub: tells the configured hub (`feeds.websub_hub`) which feed URLs changed, from a thread of
//! its own, retrying failures with backoff so publishing never waits on the hub. A stop cuts the
//! backoff short: each ping still queued gets one last short attempt, and none is retried.

use std::sync::{mpsc, Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

pub struct Notifier {
    tx: mpsc::Sender<String>,
    thread: Option<std::thread::JoinHandle<()>>,
    stopping: Arc<Stopping>,
}

/// Set once the daemon stops; wakes a thread sleeping between retries.
#[derive(Default)]
struct Stopping {
    flag: Mutex<bool>,
    wake: Condvar,
}

impl Stopping {
    fn set(&self) {
        *self.flag.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.wake.notify_all();
    }

    fn is_set(&self) -> bool {
        *self.flag.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sleeps for `wait` unless a stop comes first; whether it did.
    fn sleep(&self, wait: Duration) -> bool {
        let flag = self.flag.lock().unwrap_or_else(PoisonError::into_inner);
        let (flag, _) = self
            .wake
            .wait_timeout_while(flag, wait, |stopping| !*stopping)
            .unwrap_or_else(PoisonError::into_inner);
        *flag
    }
}

/// One attempt's limit while running, and while stopping.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const LAST_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

const BACKOFF: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
];

impl Notifier {
    pub fn start(hub: String) -> Notifier {
        let (tx, rx) = mpsc::channel::<String>();
        let stopping = Arc::new(Stopping::default());
        let stop = stopping.clone();
        let spawned = std::thread::Builder::new()
            .name("websub".into())
            .spawn(move || {
                for feed_url in rx {
                    notify(&hub, &feed_url, &stop);
                }
            });
        let thread = spawned
            .map_err(|e| tracing::error!(error = %e, "cannot start the WebSub notifier"))
            .ok();
        Notifier {
            tx,
            thread,
            stopping,
        }
    }

    /// Gives each queued ping one last short attempt (no retry, no backoff), then stops the
    /// thread.
    pub fn finish(self) {
        let Notifier {
            tx,
            thread,
            stopping,
        } = self;
        stopping.set();
        drop(tx);
        if let Some(t) = thread {
            let _ = t.join();
        }
    }

    pub fn publish(&self, feed_url: String) {
        let _ = self.tx.send(feed_url);
    }
}

fn notify(hub: &str, feed_url: &str, stopping: &Stopping) {
    for (attempt, wait) in std::iter::once(Duration::ZERO).chain(BACKOFF).enumerate() {
        if attempt > 0 && stopping.sleep(wait) {
            tracing::warn!(
                hub,
                feed = feed_url,
                "WebSub hub notification dropped: stopping"
            );
            return;
        }
        let timeout = if stopping.is_set() {
            LAST_ATTEMPT_TIMEOUT
        } else {
            ATTEMPT_TIMEOUT
        };
        let result = ureq::post(hub)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .send_form([("hub.mode", "publish"), ("hub.url", feed_url)]);
        match result {
            Ok(_) => {
                tracing::info!(hub, feed = feed_url, "WebSub hub notified");
                return;
            }
            Err(e) => {
                tracing::warn!(hub, feed = feed_url, attempt = attempt + 1, error = %e, "WebSub hub notification failed")
            }
        }
    }
    tracing::error!(hub, feed = feed_url, "WebSub hub notification given up");
}
