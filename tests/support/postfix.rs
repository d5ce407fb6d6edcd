//! A real Postfix (Debian's `postfix` package) as the relay, started by a test as an instance of
//! its own: a configuration directory, queue and log in a temp folder, smtpd on 127.0.0.1 only,
//! STARTTLS offered with a self-signed certificate (as Debian's default install does), and a
//! `transport_maps` the test writes: which domains go where, which bounce (`error:`) and which
//! are deferred (`retry:`). The master process starts as root, so these tests run as root; they
//! are `#[ignore]` in a plain `cargo test` and `.ci/run` installs Postfix and runs them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Postfix {
    pub port: u16,
    conf: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// A free port on 127.0.0.1 (bound and released; good enough for a test).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

const SERVICES: &str = "\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";

impl Postfix {
    /// Starts an instance whose smtpd listens on 127.0.0.1:`port`, routing by `transport`
    /// (lines of `domain  transport:nexthop`).
    pub fn start(port: u16, transport: &[(&str, String)]) -> Postfix {
        assert!(
            Path::new("/usr/sbin/postfix").exists(),
            "Postfix is not installed: these tests need Debian's postfix (bash .ci/run installs it)"
        );
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "Postfix's master starts as root"
        );
        let dir = tempfile::Builder::new()
            .prefix("tidings-postfix-")
            .tempdir()
            .expect("tempdir");
        let root = dir.path().to_path_buf();
        // The postfix user walks to data/ and the log: every folder needs o+x.
        let open = |p: &Path| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        };
        open(&root);
        let conf = root.join("conf");
        let log_dir = root.join("log");
        // The queue folder must exist (Postfix makes what is inside); `data/` must not, Postfix
        // makes it for its own user.
        for d in [&conf, &log_dir, &root.join("queue")] {
            std::fs::create_dir_all(d).expect("mkdir");
            open(d);
        }
        // STARTTLS with a self-signed certificate, like Debian's snakeoil default.
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .expect("self-signed certificate");
        std::fs::write(conf.join("cert.pem"), cert.cert.pem()).expect("cert");
        std::fs::write(conf.join("key.pem"), cert.key_pair.serialize_pem()).expect("key");
        let map: String = transport
            .iter()
            .map(|(domain, to)| format!("{domain} {to}\n"))
            .collect();
        std::fs::write(conf.join("transport"), map).expect("transport");
        let r = root.display();
        let main_cf = format!(
            "compatibility_level = 3.6
queue_directory = {r}/queue
data_directory = {r}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = {r}/log/postfix.log
maillog_file_prefixes = {r}
myhostname = mx.test
mydomain = test
myorigin = mx.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
smtpd_reject_unlisted_recipient = no
transport_maps = texthash:{r}/conf/transport
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
smtputf8_enable = no
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
delay_warning_time = 1s
smtpd_tls_security_level = may
smtpd_tls_cert_file = {r}/conf/cert.pem
smtpd_tls_key_file = {r}/conf/key.pem
smtp_tls_security_level = none
"
        );
        std::fs::write(conf.join("main.cf"), main_cf).expect("main.cf");
        std::fs::write(
            conf.join("master.cf"),
            format!("127.0.0.1:{port} inet n - n - - smtpd\n{SERVICES}"),
        )
        .expect("master.cf");
        let pf = Postfix {
            port,
            conf,
            log: log_dir.join("postfix.log"),
            _dir: dir,
        };
        // `postfix start` can exit non-zero although the master started: wait for the port.
        let _ = Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(&pf.conf)
            .arg("start")
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Postfix did not start:\n{}",
                pf.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        pf
    }

    /// Postfix's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- Postfix's log:\n{}", self.log());
        }
        let _ = Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(&self.conf)
            .arg("stop")
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output();
    }
}
