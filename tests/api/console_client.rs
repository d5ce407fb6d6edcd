//! A console user over real HTTP: a cookie jar, no automatic redirects, and the CSRF token of
//! the last page read, as a browser's form would carry it.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::helpers::{Daemon, Resp};

pub struct Console<'d> {
    pub daemon: &'d Daemon,
    agent: ureq::Agent,
    pub cookies: BTreeMap<String, String>,
}

/// Adds an account through the CLI with `password` on standard input.
pub fn add_account(d: &Daemon, name: &str, role: &str, password: &str) {
    use std::io::Write;
    let mut child = crate::helpers::tidings(&d.dir, d.env())
        .args(["admin", "add", name, "--role", role])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run tidings admin add");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write the password");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "admin add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of `<input ... name="NAME" value="...">` in a page.
pub fn field(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &html[at + name.len() + 15..];
    Some(rest[..rest.find('"')?].to_string())
}

impl<'d> Console<'d> {
    pub fn new(daemon: &'d Daemon) -> Console<'d> {
        Console {
            daemon,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into(),
            cookies: BTreeMap::new(),
        }
    }

    /// Signs in and checks that it worked.
    pub fn signed_in(daemon: &'d Daemon, name: &str, password: &str) -> Console<'d> {
        let mut c = Console::new(daemon);
        let r = c.login(name, password);
        assert_eq!(r.status, 303, "login: {}", r.text());
        c
    }

    pub fn login(&mut self, name: &str, password: &str) -> Resp {
        let page = self.get("/admin/login");
        let csrf = field(&page.text(), "csrf").expect("the login form has a CSRF token");
        self.post(
            "/admin/login",
            &[("csrf", &csrf), ("username", name), ("password", password)],
        )
    }

    /// The CSRF token of this session, as its pages carry it.
    pub fn csrf(&mut self) -> String {
        let page = self.get("/admin");
        field(&page.text(), "csrf").expect("a signed-in page carries the CSRF token")
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn request(&mut self, method: &str, path: &str, body: Option<String>) -> Resp {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.daemon.base, path))
            .header("Cookie", self.cookie_header());
        if body.is_some() {
            builder = builder.header("Content-Type", "application/x-www-form-urlencoded");
        }
        let result = match body {
            Some(b) => self.agent.run(builder.body(b).expect("request")),
            None => self.agent.run(builder.body(()).expect("request")),
        };
        let mut response = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap_or_default();
            let pair = text.split(';').next().unwrap_or_default();
            if let Some((k, v)) = pair.split_once('=') {
                if v.is_empty() || text.contains("Max-Age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_string(), v.to_string());
                }
            }
        }
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.body_mut().read_to_vec().unwrap_or_default();
        Resp {
            status,
            headers,
            body,
        }
    }

    pub fn get(&mut self, path: &str) -> Resp {
        self.request("GET", path, None)
    }

    pub fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Resp {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.request("POST", path, Some(body))
    }
}
