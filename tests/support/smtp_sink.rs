//! A real SMTP server for the tests, in the test process: `mailin` runs the SMTP state machine,
//! this file does the I/O (plain, STARTTLS or implicit TLS, with or without AUTH) and keeps every
//! accepted message in memory, stored before the `250` that accepts it goes out.
//!
//! It can refuse addresses for good (`550 5.1.1` at RCPT) or for now (`451 4.3.0`), stumble
//! (`pause`: every RCPT gets `421` until `resume`), stop and restart on the same port, and offer
//! or withhold PIPELINING (RFC 2920), recording for each MAIL command whether the client had
//! already sent the commands after it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// How the sink talks TLS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SinkTls {
    #[default]
    None,
    /// Plain at first, `STARTTLS` offered (RFC 3207).
    StartTls,
    /// TLS from the first byte (RFC 8314's submissions port).
    Implicit,
}

#[derive(Clone, Debug)]
pub struct SinkOptions {
    pub reject: Vec<String>,
    pub defer: Vec<String>,
    pub pipelining: bool,
    pub tls: SinkTls,
    /// Require AUTH (PLAIN or LOGIN, offered only over TLS) with this user and password.
    pub auth: Option<(String, String)>,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            reject: Vec::new(),
            defer: Vec::new(),
            pipelining: true,
            tls: SinkTls::None,
            auth: None,
        }
    }
}

impl SinkOptions {
    /// The command-line style the Python sink took: `--reject ADDRESS`, `--defer ADDRESS`,
    /// `--no-pipelining 1`.
    pub fn from_args(args: &[&str]) -> SinkOptions {
        let mut o = SinkOptions::default();
        for pair in args.chunks(2) {
            match pair {
                ["--reject", a] => o.reject.push(a.to_lowercase()),
                ["--defer", a] => o.defer.push(a.to_lowercase()),
                ["--no-pipelining", _] => o.pipelining = false,
                other => panic!("unknown sink argument {other:?}"),
            }
        }
        o
    }
}

/// One message as it arrived, with its envelope.
#[derive(Clone, Debug)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub raw: Vec<u8>,
    /// Whether the session was encrypted when the message came in.
    pub tls: bool,
    /// The user the session authenticated as.
    pub user: Option<String>,
}

/// A certificate authority made for one test, and a certificate it signed for `localhost` and
/// `127.0.0.1`.
pub struct TestCa {
    pub ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

impl TestCa {
    pub fn new() -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "tidings test CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let key = KeyPair::generate().expect("server key");
        let params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("server params");
        let cert = params.signed_by(&key, &ca, &ca_key).expect("server cert");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .expect("server TLS config");
        TestCa {
            ca_pem: ca.pem(),
            server: Arc::new(server),
        }
    }

    /// Writes the CA certificate (PEM) into `dir` and returns its path.
    pub fn write_ca(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("test-ca.pem");
        std::fs::write(&path, &self.ca_pem).expect("write CA");
        path
    }
}

struct Shared {
    options: SinkOptions,
    /// Addresses refused for good; starts as `options.reject`, changed by `set_reject`.
    reject: Mutex<Vec<String>>,
    /// Every RCPT: the address, the reply code, and when.
    rcpts: Mutex<Vec<(String, u16, Instant)>>,
    tls: Option<Arc<rustls::ServerConfig>>,
    mails: Mutex<Vec<Received>>,
    arrived: Condvar,
    pipelined: Mutex<Vec<bool>>,
    paused: AtomicBool,
    /// Handles on the open connections, so that `stop` can cut them.
    open: Mutex<Vec<TcpStream>>,
    /// Held (shared) by a connection from reading a command until its reply is written, and
    /// (exclusive) by `stop` while it cuts them: a message the sink keeps has always had its
    /// `250` sent, so an outage in a test never makes a duplicate out of a delivered message.
    replying: RwLock<()>,
    /// Set by `stop`: commands still buffered on a cut connection are not processed.
    down: AtomicBool,
    /// While `hold_replies` is on: a message is kept, but its `250` waits for `release` (so a
    /// client killed meanwhile never learns it was delivered). The number held so far.
    holding: Mutex<(bool, usize)>,
    released: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub struct SmtpSink {
    pub port: u16,
    shared: Arc<Shared>,
    running: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        SmtpSink::with_options(SinkOptions::default(), None)
    }

    /// Extra arguments: `--reject ADDRESS` (550), `--defer ADDRESS` (451), `--no-pipelining 1`.
    pub fn start_with(args: &[&str]) -> SmtpSink {
        SmtpSink::with_options(SinkOptions::from_args(args), None)
    }

    /// A sink speaking TLS with a certificate from `ca`.
    pub fn start_tls(options: SinkOptions, ca: &TestCa) -> SmtpSink {
        SmtpSink::with_options(options, Some(ca.server.clone()))
    }

    fn with_options(options: SinkOptions, tls: Option<Arc<rustls::ServerConfig>>) -> SmtpSink {
        assert!(
            options.tls == SinkTls::None || tls.is_some(),
            "a TLS sink needs a certificate"
        );
        let shared = Arc::new(Shared {
            reject: Mutex::new(options.reject.clone()),
            rcpts: Mutex::new(Vec::new()),
            options,
            tls,
            mails: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            pipelined: Mutex::new(Vec::new()),
            paused: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
            replying: RwLock::new(()),
            down: AtomicBool::new(false),
            holding: Mutex::new((false, 0)),
            released: Condvar::new(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the sink");
        let port = listener.local_addr().expect("sink address").port();
        let mut sink = SmtpSink {
            port,
            shared,
            running: None,
        };
        sink.listen(listener);
        sink
    }

    fn listen(&mut self, listener: TcpListener) {
        let stopping = Arc::new(AtomicBool::new(false));
        let shared = self.shared.clone();
        let stop = stopping.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let Ok(handle) = stream.try_clone() else {
                    continue;
                };
                if let Ok(for_stop) = stream.try_clone() {
                    lock(&shared.open).push(for_stop);
                }
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve_connection(stream, &shared);
                    // The other handles (kept for `stop`) would hold the socket open: close it.
                    let _ = handle.shutdown(Shutdown::Both);
                });
            }
        });
        self.running = Some((stopping, thread));
    }

    /// From now on, every message is kept but its `250` is held back until `release`: the
    /// client cannot tell it was delivered.
    pub fn hold_replies(&self) {
        lock(&self.shared.holding).0 = true;
    }

    /// How many messages have had their `250` held back so far.
    pub fn held(&self) -> usize {
        lock(&self.shared.holding).1
    }

    /// Sends the held `250`s (to whoever is still there) and holds no more.
    pub fn release(&self) {
        lock(&self.shared.holding).0 = false;
        self.shared.released.notify_all();
    }

    /// Stops listening and cuts every open connection (connections are refused until `restart`).
    pub fn stop(&mut self) {
        self.release();
        if let Some((stopping, thread)) = self.running.take() {
            stopping.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect(("127.0.0.1", self.port));
            let _ = thread.join();
        }
        let _cutting = self
            .shared
            .replying
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        self.shared.down.store(true, Ordering::SeqCst);
        for c in lock(&self.shared.open).drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Listens again on the same port, keeping what was received.
    pub fn restart(&mut self) {
        self.shared.down.store(false, Ordering::SeqCst);
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("rebind the sink");
        self.listen(listener);
    }

    /// Every RCPT gets `421` (a stumbling server) until `resume`.
    pub fn pause(&self) {
        self.shared.paused.store(true, Ordering::SeqCst);
    }

    pub fn resume(&self) {
        self.shared.paused.store(false, Ordering::SeqCst);
    }

    /// From now on, refuse these addresses for good (`550 5.1.1`), and only these.
    pub fn set_reject(&self, addresses: &[&str]) {
        *lock(&self.shared.reject) = addresses.iter().map(|a| a.to_lowercase()).collect();
    }

    /// Every RCPT for `address` so far: the reply code and when it was given.
    pub fn rcpt_attempts(&self, address: &str) -> Vec<(u16, Instant)> {
        let address = address.to_lowercase();
        lock(&self.shared.rcpts)
            .iter()
            .filter(|(a, _, _)| *a == address)
            .map(|(_, code, at)| (*code, *at))
            .collect()
    }

    /// For each MAIL command so far, whether it came in a pipelined group.
    pub fn pipelined(&self) -> Vec<bool> {
        lock(&self.shared.pipelined).clone()
    }

    /// Every message received so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.shared.mails).clone()
    }

    pub fn count(&self) -> usize {
        lock(&self.shared.mails).len()
    }

    /// Waits (up to `secs`) until at least `n` messages arrived, and returns them all.
    pub fn wait_for_received(&self, n: usize, secs: u64) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut mails = lock(&self.shared.mails);
        while mails.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "expected {n} messages, got {}",
                mails.len()
            );
            mails = self
                .shared
                .arrived
                .wait_timeout(mails, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        mails.clone()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The connection, before or after TLS.
enum Io {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Read for Io {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Io::Plain(s) => s.read(buf),
            Io::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Io {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Io::Plain(s) => s.write(buf),
            Io::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Io::Plain(s) => s.flush(),
            Io::Tls(s) => s.flush(),
        }
    }
}

fn upgrade(io: Io, config: &Arc<rustls::ServerConfig>) -> std::io::Result<Io> {
    let Io::Plain(tcp) = io else {
        return Err(std::io::Error::other("already TLS"));
    };
    let conn = rustls::ServerConnection::new(config.clone()).map_err(std::io::Error::other)?;
    Ok(Io::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))))
}

fn serve_connection(tcp: TcpStream, shared: &Arc<Shared>) -> std::io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(60)))?;
    let peer = tcp.peer_addr()?.ip();
    let tls_on = Arc::new(AtomicBool::new(false));
    let user = Arc::new(Mutex::new(None));
    let mut builder = mailin::SessionBuilder::new("sink.test");
    let mut io = Io::Plain(tcp);
    match shared.options.tls {
        SinkTls::None => {}
        SinkTls::StartTls => {
            builder.enable_start_tls();
        }
        SinkTls::Implicit => {
            io = upgrade(io, shared.tls.as_ref().expect("TLS config"))?;
        }
    }
    if shared.options.auth.is_some() {
        builder
            .enable_auth(mailin::AuthMechanism::Plain)
            .enable_auth(mailin::AuthMechanism::Login);
    }
    let handler = Handler {
        shared: shared.clone(),
        peer,
        from: String::new(),
        rcpt: Vec::new(),
        data: Vec::new(),
        tls: tls_on.clone(),
        user: user.clone(),
    };
    let mut session = builder.build(peer, handler);
    if shared.options.tls == SinkTls::Implicit {
        tls_on.store(true, Ordering::SeqCst);
        session.tls_active();
    }
    let mut reader = BufReader::new(io);
    let mut out = Vec::new();
    session.greeting().write_to(&mut out)?;
    reader.get_mut().write_all(&out)?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let _replying = shared
            .replying
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if shared.down.load(Ordering::SeqCst) {
            return Ok(());
        }
        let verb: Vec<u8> = line
            .iter()
            .take(4)
            .map(|b| b.to_ascii_uppercase())
            .collect();
        if verb == b"MAIL" {
            lock(&shared.pipelined).push(!reader.buffer().is_empty());
        }
        let response = session.process(&line);
        out.clear();
        response.write_to(&mut out)?;
        if verb == b"EHLO" && response.code == 250 && shared.options.pipelining {
            // mailin does not offer PIPELINING itself; the sink can take it (it reads line by
            // line and answers in order).
            if let Some(end) = out.windows(2).position(|w| w == b"\r\n") {
                out.splice(end + 2..end + 2, b"250-PIPELINING\r\n".iter().copied());
            }
        }
        reader.get_mut().write_all(&out)?;
        match response.action {
            mailin::Action::Close => return Ok(()),
            mailin::Action::UpgradeTls => {
                let io = reader.into_inner();
                let io = upgrade(io, shared.tls.as_ref().expect("TLS config"))?;
                reader = BufReader::new(io);
                tls_on.store(true, Ordering::SeqCst);
                session.tls_active();
            }
            mailin::Action::NoReply | mailin::Action::Reply => {}
        }
    }
}

struct Handler {
    shared: Arc<Shared>,
    #[allow(dead_code)]
    peer: IpAddr,
    from: String,
    rcpt: Vec<String>,
    data: Vec<u8>,
    tls: Arc<AtomicBool>,
    user: Arc<Mutex<Option<String>>>,
}

impl Handler {
    fn login(&mut self, user: &str, password: &str) -> mailin::Response {
        match &self.shared.options.auth {
            Some((u, p)) if u == user && p == password => {
                *lock(&self.user) = Some(user.to_string());
                mailin::response::AUTH_OK
            }
            _ => mailin::response::INVALID_CREDENTIALS,
        }
    }
}

impl mailin::Handler for Handler {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> mailin::Response {
        self.from = from.to_string();
        self.rcpt.clear();
        self.data.clear();
        mailin::response::OK
    }

    fn rcpt(&mut self, to: &str) -> mailin::Response {
        let address = to.to_lowercase();
        let response = if self.shared.paused.load(Ordering::SeqCst) {
            mailin::Response::custom(421, "4.3.2 Service not available, try again later".into())
        } else if lock(&self.shared.reject).contains(&address) {
            mailin::Response::custom(550, "5.1.1 No such user here".into())
        } else if self.shared.options.defer.contains(&address) {
            mailin::Response::custom(451, "4.3.0 Try again later".into())
        } else {
            self.rcpt.push(to.to_string());
            mailin::response::OK
        };
        lock(&self.shared.rcpts).push((address, response.code, Instant::now()));
        response
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> mailin::Response {
        let received = Received {
            mail_from: std::mem::take(&mut self.from),
            rcpt_to: std::mem::take(&mut self.rcpt),
            raw: std::mem::take(&mut self.data),
            tls: self.tls.load(Ordering::SeqCst),
            user: lock(&self.user).clone(),
        };
        lock(&self.shared.mails).push(received);
        self.shared.arrived.notify_all();
        let mut holding = lock(&self.shared.holding);
        if holding.0 {
            holding.1 += 1;
            let deadline = Instant::now() + Duration::from_secs(120);
            while holding.0 && Instant::now() < deadline {
                holding = self
                    .shared
                    .released
                    .wait_timeout(holding, Duration::from_millis(200))
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        drop(holding);
        mailin::Response::custom(250, "2.0.0 Message accepted".into())
    }

    fn auth_plain(
        &mut self,
        _authorization_id: &str,
        authentication_id: &str,
        password: &str,
    ) -> mailin::Response {
        self.login(authentication_id, password)
    }

    fn auth_login(&mut self, username: &str, password: &str) -> mailin::Response {
        self.login(username, password)
    }
}
