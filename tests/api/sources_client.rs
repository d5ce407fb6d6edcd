//! Reading and following sources through `/api/sources`, shared by the tests of following other
//! blogs (the API, the hostile server, WebSub, the console).

use crate::helpers::Daemon;

/// Source `id` as `GET /api/sources/{id}` gives it.
pub fn source(d: &Daemon, id: i64) -> serde_json::Value {
    let r = d.api("GET", &format!("/api/sources/{id}"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Waits (up to 20 s) for the daemon's first poll of source `id`, and returns the source.
pub fn first_poll(d: &Daemon, id: i64) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let s = source(d, id);
        if !s["last_fetch_us"].is_null() {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "source {id} was never polled: {s}\n{}",
            d.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Adds a source with `body` (`url` and any other fields) through the API, waits for its first
/// poll, and returns its id.
pub fn follow(d: &Daemon, body: serde_json::Value) -> i64 {
    let r = d.api("POST", "/api/sources", Some(&body.to_string()));
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_i64().expect("id");
    first_poll(d, id);
    id
}
