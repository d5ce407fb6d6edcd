//! A webhook receiver on 127.0.0.1 for the tests (and `examples/webhook_receiver.rs`): plain
//! HTTP/1.1 with keep-alive, a thread per connection, every request kept with its headers, and
//! an answer chosen by a rule (accept, refuse the first attempts of each message, a fixed status).
//! Signatures are checked with the `standardwebhooks` crate, an implementation independent of
//! tidings'.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How the receiver answers.
#[derive(Debug, Clone)]
pub enum Rule {
    /// `204` to everything.
    Accept,
    /// `503` to the first `n` attempts of each `webhook-id`, then `204`.
    RefuseFirst(u32),
    /// This status to everything (e.g. `410`), with this `Retry-After` if any.
    Always(u16, Option<u32>),
}

/// One request that arrived.
#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    /// The status it was answered with.
    pub answered: u16,
    pub at: Instant,
}

impl Hit {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn event_type(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_string()
    }

    /// Whether `secret` signed it, as the `standardwebhooks` crate checks (timestamp included).
    pub fn signed_by(&self, secret: &str) -> bool {
        let Ok(wh) = standardwebhooks::Webhook::new(secret) else {
            return false;
        };
        let mut headers = http::HeaderMap::new();
        for (name, value) in [
            ("webhook-id", &self.id),
            ("webhook-timestamp", &self.timestamp),
            ("webhook-signature", &self.signature),
        ] {
            match http::HeaderValue::from_str(value) {
                Ok(v) => {
                    headers.insert(name, v);
                }
                Err(_) => return false,
            }
        }
        wh.verify(self.body.as_bytes(), &headers).is_ok()
    }
}

#[derive(Default)]
struct State {
    hits: Vec<Hit>,
    attempts: HashMap<String, u32>,
    count_only: bool,
    accepted: usize,
    first: Option<Instant>,
    last: Option<Instant>,
}

pub struct Receiver {
    pub url: String,
    rule: Arc<Mutex<Rule>>,
    state: Arc<(Mutex<State>, Condvar)>,
}

impl Receiver {
    pub fn start(rule: Rule) -> Receiver {
        Receiver::start_with(rule, false)
    }

    /// A receiver that only counts what it accepts (for the benchmark: no bodies kept).
    pub fn counting() -> Receiver {
        Receiver::start_with(Rule::Accept, true)
    }

    fn start_with(rule: Rule, count_only: bool) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        let url = format!("http://{}/hook", listener.local_addr().expect("address"));
        let rule = Arc::new(Mutex::new(rule));
        let state = Arc::new((
            Mutex::new(State {
                count_only,
                ..State::default()
            }),
            Condvar::new(),
        ));
        let (r, s) = (rule.clone(), state.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (r, s) = (r.clone(), s.clone());
                std::thread::spawn(move || serve(stream, &r, &s));
            }
        });
        Receiver { url, rule, state }
    }

    pub fn set_rule(&self, rule: Rule) {
        *self.rule.lock().unwrap() = rule;
    }

    /// Every request so far, in the order they arrived.
    pub fn hits(&self) -> Vec<Hit> {
        self.state.0.lock().unwrap().hits.clone()
    }

    /// Requests answered `2xx`.
    pub fn accepted_count(&self) -> usize {
        self.state.0.lock().unwrap().accepted
    }

    /// When the first and the last accepted request arrived.
    pub fn span(&self) -> Option<(Instant, Instant)> {
        let s = self.state.0.lock().unwrap();
        Some((s.first?, s.last?))
    }

    /// The requests answered `2xx`, once there are `n` (panics after `secs`).
    pub fn wait_accepted(&self, n: usize, secs: u64) -> Vec<Hit> {
        self.wait(secs, &format!("{n} webhooks accepted"), |s| s.accepted >= n);
        self.hits()
            .into_iter()
            .filter(|h| (200..300).contains(&h.answered))
            .collect()
    }

    /// Waits until `n` requests arrived, whatever the answer.
    pub fn wait_hits(&self, n: usize, secs: u64) -> Vec<Hit> {
        self.wait(secs, &format!("{n} webhook requests"), |s| {
            s.hits.len() >= n
        });
        self.hits()
    }

    fn wait(&self, secs: u64, what: &str, done: impl Fn(&State) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let (lock, cvar) = &*self.state;
        let mut state = lock.lock().unwrap();
        while !done(&state) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "waited {secs} s for {what}; got {} requests, {} accepted",
                state.hits.len(),
                state.accepted
            );
            state = cvar.wait_timeout(state, left).unwrap().0;
        }
    }
}

fn serve(stream: TcpStream, rule: &Mutex<Rule>, state: &(Mutex<State>, Condvar)) {
    let _ = stream.set_nodelay(true);
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let path = line.split(' ').nth(1).unwrap_or("/").to_string();
        let mut headers: HashMap<String, String> = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let id = headers.get("webhook-id").cloned().unwrap_or_default();
        let (status, retry_after) = {
            let (lock, _) = state;
            let mut s = lock.lock().unwrap();
            let n = s.attempts.entry(id.clone()).or_default();
            *n += 1;
            let n = *n;
            match &*rule.lock().unwrap() {
                Rule::Accept => (204, None),
                Rule::RefuseFirst(k) if n <= *k => (503, None),
                Rule::RefuseFirst(_) => (204, None),
                Rule::Always(status, retry) => (*status, *retry),
            }
        };
        {
            let (lock, cvar) = state;
            let mut s = lock.lock().unwrap();
            if (200..300).contains(&status) {
                s.accepted += 1;
                let now = Instant::now();
                s.first.get_or_insert(now);
                s.last = Some(now);
            }
            if !s.count_only {
                s.hits.push(Hit {
                    path,
                    timestamp: headers
                        .get("webhook-timestamp")
                        .cloned()
                        .unwrap_or_default(),
                    signature: headers
                        .get("webhook-signature")
                        .cloned()
                        .unwrap_or_default(),
                    id,
                    body: String::from_utf8_lossy(&body).into_owned(),
                    answered: status,
                    at: Instant::now(),
                });
            } else {
                s.attempts.clear();
            }
            cvar.notify_all();
        }
        let reason = match status {
            204 => "No Content",
            302 => "Found\r\nLocation: http://127.0.0.1:9/elsewhere",
            410 => "Gone",
            _ => "Refused",
        };
        let answer_body = if status == 204 { "" } else { "not now" };
        let retry = retry_after
            .map(|s| format!("Retry-After: {s}\r\n"))
            .unwrap_or_default();
        let answer = format!(
            "HTTP/1.1 {status} {reason}\r\n{retry}Content-Length: {}\r\n\r\n{answer_body}",
            answer_body.len()
        );
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}
