//! The tests' webhook receiver on its own, for `scripts/bench_webhooks.sh`: prints its URL, then,
//! once N requests were accepted, how long they took from the first to the last.
//!
//! `cargo run --release --example webhook_receiver -- 100000`

#[path = "../tests/support/webhook_receiver.rs"]
mod webhook_receiver;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let receiver = webhook_receiver::Receiver::counting();
    println!("{}", receiver.url);
    receiver.wait_accepted(n, 3600);
    if let Some((first, last)) = receiver.span() {
        let secs = (last - first).as_secs_f64();
        println!(
            "accepted {n} in {secs:.2} s from the first to the last: {:.0}/s",
            n as f64 / secs.max(1e-9)
        );
    }
}
