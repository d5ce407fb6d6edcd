//! A throwaway PostgreSQL cluster for one test (Debian's `postgresql` package): `initdb` and
//! `pg_ctl` as the `postgres` user in a temp folder, listening on 127.0.0.1 and a port of its
//! own, optionally with TLS from a CA the test makes with rcgen and a `pg_hba.conf` that only
//! lets TLS in. Stopped when dropped. Needs root (to run as `postgres`); the tests that use it
//! are `#[ignore]` in a plain `cargo test` and `.ci/run` runs them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// How the server is set up.
#[derive(Default)]
pub struct Setup<'a> {
    /// `ssl=on` with a certificate for these names (e.g. `localhost`, `127.0.0.1`), signed by
    /// the cluster's CA.
    pub tls_names: Option<&'a [&'a str]>,
    /// `pg_hba.conf` has only `hostssl` lines: a plain connection is refused.
    pub tls_only: bool,
    /// The `postgres` user has this password, and TCP connections must give it
    /// (`scram-sha-256`); without it they are trusted.
    pub password: Option<&'a str>,
}

pub struct PgCluster {
    pub port: u16,
    /// The PEM file of the CA that signed the server's certificate (when TLS is on).
    pub ca: PathBuf,
    /// A CA that signed nothing here, for the wrong-CA tests.
    pub other_ca: PathBuf,
    bin: PathBuf,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

fn pg_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed: these tests need Debian's postgresql (bash .ci/run installs it)")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop().expect("no /usr/lib/postgresql/*/bin/initdb")
}

/// `id -u postgres` and `id -g postgres`.
fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id");
        assert!(out.status.success(), "no postgres user");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("numeric id")
    };
    (id("-u"), id("-g"))
}

fn as_postgres(args: &[&str]) {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .args(args)
        .output()
        .expect("runuser");
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed CA: (its certificate, its key).
fn make_ca(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    (params.self_signed(&key).expect("CA certificate"), key)
}

impl PgCluster {
    pub fn start(setup: Setup<'_>) -> PgCluster {
        let bin = pg_bin();
        let (uid, gid) = postgres_ids();
        let dir = tempfile::tempdir().expect("tempdir");
        // The postgres user walks through it to its data folder.
        set_mode(dir.path(), 0o711);
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        std::os::unix::fs::chown(&data, Some(uid), Some(gid)).expect("chown data");
        let data_str = data.to_str().expect("utf-8 path");
        as_postgres(&[
            bin.join("initdb").to_str().expect("utf-8 path"),
            "-D",
            data_str,
            "--auth=trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
        ]);
        let (ca, ca_key) = make_ca("tidings test CA");
        let (other, _) = make_ca("some other CA");
        let ca_path = dir.path().join("ca.crt");
        std::fs::write(&ca_path, ca.pem()).expect("ca.crt");
        let other_ca = dir.path().join("other-ca.crt");
        std::fs::write(&other_ca, other.pem()).expect("other-ca.crt");
        let mut conf = String::from("\nmax_connections = 50\n");
        if let Some(names) = setup.tls_names {
            let key = rcgen::KeyPair::generate().expect("server key");
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            let cert = rcgen::CertificateParams::new(names)
                .expect("server params")
                .signed_by(&key, &ca, &ca_key)
                .expect("server certificate");
            for (file, pem, mode) in [
                ("server.crt", cert.pem(), 0o644),
                ("server.key", key.serialize_pem(), 0o600),
            ] {
                let path = data.join(file);
                std::fs::write(&path, pem).expect("write certificate");
                std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("chown");
                set_mode(&path, mode);
            }
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        }
        append(&data.join("postgresql.conf"), &conf);
        let host = if setup.tls_only { "hostssl" } else { "host" };
        let method = if setup.password.is_some() {
            "scram-sha-256"
        } else {
            "trust"
        };
        std::fs::write(
            data.join("pg_hba.conf"),
            format!(
                "local all all trust\n{host} all all 127.0.0.1/32 {method}\n{host} all all ::1/128 {method}\n"
            ),
        )
        .expect("pg_hba.conf");
        let port = free_port();
        let options = format!("-k {data_str} -h 127.0.0.1 -p {port}");
        as_postgres(&[
            bin.join("pg_ctl").to_str().expect("utf-8 path"),
            "-D",
            data_str,
            "-l",
            data.join("server.log").to_str().expect("utf-8 path"),
            "-w",
            "-o",
            &options,
            "start",
        ]);
        if let Some(password) = setup.password {
            // Over the Unix socket, which stays trusted.
            as_postgres(&[
                bin.join("psql").to_str().expect("utf-8 path"),
                "-h",
                data_str,
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "-q",
                "-c",
                &format!("ALTER USER postgres PASSWORD '{password}'"),
            ]);
        }
        PgCluster {
            port,
            ca: ca_path,
            other_ca,
            bin,
            data,
            _dir: dir,
        }
    }

    /// `postgres://postgres:PASSWORD@HOST:PORT/postgres?QUERY` (the password is only checked
    /// when the cluster was set up with one).
    pub fn url(&self, host: &str, password: &str, query: &str) -> String {
        let mut url = format!(
            "postgres://postgres:{password}@{host}:{}/postgres",
            self.port
        );
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        url
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.join("server.log")).unwrap_or_default()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// A free port on 127.0.0.1 (bound and released; good enough for a test).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("append to postgresql.conf");
}
