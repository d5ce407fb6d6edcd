//! A blog's web server for the tests: plain HTTP/1.1 on a loopback address of the test's
//! choosing, a thread per connection, an answer per path set by the test (and changed while it
//! runs), every request kept with its headers. It answers `If-None-Match` with `304` itself when
//! the answer has that `ETag`. Some answers misbehave on purpose: a body that trickles, a
//! connection that is accepted and never answered.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a path is answered.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A status, headers and a body (sent with Content-Length).
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// `200`, then the body one byte a second.
    Trickle(Vec<u8>),
    /// The connection is kept open and never answered.
    Hang,
}

impl Answer {
    /// `200` with an RSS/Atom body and these headers.
    pub fn feed(body: impl Into<Vec<u8>>, headers: &[(&str, &str)]) -> Answer {
        let mut h: Vec<(String, String)> = vec![(
            "Content-Type".into(),
            "application/rss+xml; charset=utf-8".into(),
        )];
        h.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Answer::Full {
            status: 200,
            headers: h,
            body: body.into(),
        }
    }

    pub fn status(status: u16, headers: &[(&str, &str)]) -> Answer {
        Answer::Full {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
        }
    }

    pub fn redirect(status: u16, to: &str) -> Answer {
        Answer::status(status, &[("Location", to)])
    }
}

/// A request that arrived.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// The status it was answered with (0: never answered).
    pub answered: u16,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// A form body's fields.
    pub fn form(&self) -> HashMap<String, String> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }
}

#[derive(Default)]
struct State {
    answers: HashMap<String, Answer>,
    requests: Vec<Request>,
}

pub struct FeedServer {
    pub addr: std::net::SocketAddr,
    state: Arc<Mutex<State>>,
}

impl FeedServer {
    /// Listens on `ip` (e.g. `127.0.0.2`), on a free port.
    pub fn start(ip: &str) -> FeedServer {
        let listener = TcpListener::bind((ip, 0)).expect("bind the feed server");
        let addr = listener.local_addr().expect("address");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || serve(stream, state));
            }
        });
        FeedServer { addr, state }
    }

    /// `http://ip:port/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set(&self, path: &str, answer: Answer) {
        self.state
            .lock()
            .unwrap()
            .answers
            .insert(path.to_string(), answer);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn requests_to(&self, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

fn serve(stream: TcpStream, state: Arc<Mutex<State>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut headers = HashMap::new();
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
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let answer = state
            .lock()
            .unwrap()
            .answers
            .get(&path)
            .cloned()
            .unwrap_or(Answer::status(404, &[]));
        let inm = headers.get("if-none-match").cloned();
        let index = {
            let mut s = state.lock().unwrap();
            s.requests.push(Request {
                path: path.clone(),
                headers,
                body: body.clone(),
                answered: 0,
            });
            s.requests.len() - 1
        };
        let status = match answer {
            Answer::Hang => {
                std::thread::sleep(Duration::from_secs(3600));
                return;
            }
            Answer::Trickle(body) => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                state.lock().unwrap().requests[index].answered = 200;
                if out.write_all(head.as_bytes()).is_err() {
                    return;
                }
                for b in body {
                    if out.write_all(&[b]).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
                return;
            }
            Answer::Full {
                status,
                headers,
                body,
            } => {
                let etag = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("etag"))
                    .map(|(_, v)| v.clone());
                let not_modified = status == 200 && etag.is_some() && inm == etag;
                let (status, body) = match not_modified {
                    true => (304, Vec::new()),
                    false => (status, body),
                };
                let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
                for (k, v) in &headers {
                    if not_modified && k.eq_ignore_ascii_case("content-type") {
                        continue;
                    }
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                state.lock().unwrap().requests[index].answered = status;
                if out.write_all(head.as_bytes()).is_err() || out.write_all(&body).is_err() {
                    return;
                }
                status
            }
        };
        let _ = status;
    }
}

/// An RSS 2.0 document with these items: (guid, link, title, RFC 2822 date); an empty guid
/// leaves the element out.
pub fn rss(items: &[(&str, &str, &str, &str)]) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<rss version=\"2.0\"><channel>\
         <title>Elsewhere</title><link>http://elsewhere.example/</link>\
         <description>A blog that lives elsewhere</description>\n",
    );
    for (guid, link, title, date) in items {
        s.push_str("<item>");
        if !guid.is_empty() {
            s.push_str(&format!("<guid isPermaLink=\"false\">{guid}</guid>"));
        }
        s.push_str(&format!(
            "<link>{link}</link><title>{title}</title><description>{title}, the text.</description>\
             <category>Elsewhere</category><pubDate>{date}</pubDate></item>\n"
        ));
    }
    s.push_str("</channel></rss>\n");
    s
}
