//! WebSub: tells the configured hub (`feeds.websub_hub`) which feed URLs changed, from a thread of
//! its own, retrying failures with backoff so publishing never waits on the hub.

use std::sync::mpsc;
use std::time::Duration;

pub struct Notifier {
    tx: mpsc::Sender<String>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const BACKOFF: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
];

impl Notifier {
    pub fn start(hub: String) -> Notifier {
        let (tx, rx) = mpsc::channel::<String>();
        let spawned = std::thread::Builder::new()
            .name("websub".into())
            .spawn(move || {
                for feed_url in rx {
                    notify(&hub, &feed_url);
                }
            });
        let thread = spawned
            .map_err(|e| tracing::error!(error = %e, "cannot start the WebSub notifier"))
            .ok();
        Notifier { tx, thread }
    }

    /// Sends the pings that are queued, then stops the thread.
    pub fn finish(self) {
        let Notifier { tx, thread } = self;
        drop(tx);
        if let Some(t) = thread {
            let _ = t.join();
        }
    }

    pub fn publish(&self, feed_url: String) {
        let _ = self.tx.send(feed_url);
    }
}

fn notify(hub: &str, feed_url: &str) {
    for (attempt, wait) in std::iter::once(Duration::ZERO).chain(BACKOFF).enumerate() {
        std::thread::sleep(wait);
        let result = ureq::post(hub)
            .config()
            .timeout_global(Some(Duration::from_secs(10)))
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
