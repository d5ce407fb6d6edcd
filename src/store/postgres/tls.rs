//! TLS to PostgreSQL the way libpq does it: `sslmode` and `sslrootcert` are read from (and
//! removed from) `database.url`, which tokio-postgres would refuse, and a rustls client on the
//! ring provider checks as much as the mode asks: nothing (`prefer`, `require`), the chain
//! (`verify-ca`), or the chain and the host name (`verify-full`).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// What every connection is made with: tokio-postgres' `MakeTlsConnect` over rustls.
pub type MakeTls = tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`, less `allow` (plain first, TLS only if the server insists), which no one
/// should want and tidings refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it, plain otherwise; nothing is verified (the default).
    Prefer,
    /// TLS or no connection; nothing is verified (unless `sslrootcert` is given).
    Require,
    /// TLS, and the server's chain must lead to a trusted root; any host name.
    VerifyCa,
    /// TLS, a trusted chain, and a certificate for the host connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, String> {
        match value {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            "allow" => Err("sslmode=allow is not supported (it tries plain first): use prefer (the default), require, verify-ca or verify-full".into()),
            other => Err(format!(
                "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl std::fmt::Display for SslMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The TLS half of `database.url`, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// As written (`prefer` when absent).
    pub mode: SslMode,
    /// `sslrootcert`: a PEM file of the roots to trust instead of the built-in web roots.
    pub root_cert: Option<PathBuf>,
}

impl Tls {
    /// The mode in force: with `sslrootcert`, `require` checks the chain, as in libpq.
    pub fn effective(&self) -> SslMode {
        match (self.mode, &self.root_cert) {
            (SslMode::Require, Some(_)) => SslMode::VerifyCa,
            (mode, _) => mode,
        }
    }

    /// What tokio-postgres is told: it only knows whether to ask for TLS.
    pub(crate) fn client_mode(&self) -> tokio_postgres::config::SslMode {
        match self.mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        }
    }

    /// Splits a `postgres://` URL into the URL tokio-postgres accepts (without `sslmode` and
    /// `sslrootcert`; every other parameter kept as written) and what those two said.
    pub fn split_url(url: &str) -> Result<(String, Tls), String> {
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, query),
            None => (url, ""),
        };
        let mut tls = Tls {
            mode: SslMode::Prefer,
            root_cert: None,
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = || {
                percent_encoding::percent_decode_str(value)
                    .decode_utf8()
                    .map(|v| v.into_owned())
                    .map_err(|_| format!("{key}: not UTF-8 once decoded"))
            };
            match key {
                "sslmode" => tls.mode = SslMode::parse(&decoded()?)?,
                "sslrootcert" => {
                    let path = decoded()?;
                    if path.is_empty() {
                        return Err("sslrootcert: give the path of a PEM file".into());
                    }
                    tls.root_cert = Some(PathBuf::from(path));
                }
                "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir" => {
                    return Err(format!(
                        "{key} is not supported: tidings reads sslmode and sslrootcert (no client certificates or CRLs)"
                    ))
                }
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        Ok((rest, tls))
    }

    /// The rustls client for this mode (reading `sslrootcert`).
    pub fn make_tls(&self) -> Result<MakeTls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match self.effective() {
            SslMode::Disable | SslMode::Prefer | SslMode::Require => Arc::new(AnyCertificate {
                provider: provider.clone(),
            }),
            SslMode::VerifyCa => Arc::new(AnyHostName {
                inner: self.webpki(&provider)?,
            }),
            SslMode::VerifyFull => self.webpki(&provider)?,
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeTls::new(config))
    }

    fn webpki(&self, provider: &Arc<CryptoProvider>) -> Result<Arc<WebPkiServerVerifier>, String> {
        let roots = match &self.root_cert {
            None => RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
            Some(path) => read_roots(path)?,
        };
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| format!("TLS: {e}"))
    }
}

impl Tls {
    /// What to do about a connection that failed with `message` under this mode, if we can tell.
    pub fn hint(&self, message: &str) -> Option<&'static str> {
        let has_root = self.root_cert.is_some();
        if message.contains("UnknownIssuer") {
            Some(if has_root {
                "sslrootcert is not the CA that signed the server's certificate"
            } else {
                "no built-in root signed the server's certificate: set sslrootcert to its CA's PEM file"
            })
        } else if message.contains("not valid for name") || message.contains("NotValidForName") {
            Some("the certificate does not name this host: connect by a name it lists, or use sslmode=verify-ca")
        } else if message.contains("no encryption") && self.mode == SslMode::Disable {
            Some("the server accepts only TLS: use sslmode=verify-full with sslrootcert")
        } else if message.contains("server does not support TLS") {
            Some("the server has TLS off (ssl = off in postgresql.conf)")
        } else {
            None
        }
    }
}

impl std::fmt::Display for Tls {
    /// `sslmode=verify-full`, or how `require` became `verify-ca`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.effective() == self.mode {
            write!(f, "sslmode={}", self.mode)
        } else {
            write!(
                f,
                "sslmode={} with sslrootcert, so {}",
                self.mode,
                self.effective()
            )
        }
    }
}

/// Every certificate in the PEM file at `path`.
fn read_roots(path: &std::path::Path) -> Result<RootCertStore, String> {
    let pem = std::fs::read(path)
        .map_err(|e| format!("sslrootcert: cannot read {}: {e}", path.display()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("sslrootcert: {}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("sslrootcert: {}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "sslrootcert: {} holds no PEM certificate",
            path.display()
        ));
    }
    Ok(roots)
}

/// `require` (and `prefer`): any certificate, as libpq, but the handshake's signatures are
/// still checked, so the key exchange is with whoever holds the certificate's key.
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the name in the certificate may be any.
/// (webpki checks the chain before the name, so a name error means the chain was good.)
#[derive(Debug)]
struct AnyHostName {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::{SslMode, Tls};

    #[test]
    fn sslmode_and_sslrootcert_leave_the_url_and_the_rest_stays() {
        let (url, tls) = Tls::split_url(
            "postgres://u:p@db.example:5432/t?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=5",
        )
        .expect("parses");
        assert_eq!(
            url,
            "postgres://u:p@db.example:5432/t?application_name=x&connect_timeout=5"
        );
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(
            tls.root_cert.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        let (url, tls) = Tls::split_url("postgres://h/t?sslmode=disable").expect("parses");
        assert_eq!(
            (url.as_str(), tls.mode),
            ("postgres://h/t", SslMode::Disable)
        );
    }

    #[test]
    fn prefer_is_the_default_and_require_with_a_root_checks_the_chain() {
        let (_, tls) = Tls::split_url("postgres://h/t").expect("parses");
        assert_eq!(tls.effective(), SslMode::Prefer);
        let (_, tls) = Tls::split_url("postgres://h/t?sslmode=require").expect("parses");
        assert_eq!(tls.effective(), SslMode::Require);
        let (_, tls) =
            Tls::split_url("postgres://h/t?sslmode=require&sslrootcert=ca.pem").expect("parses");
        assert_eq!(tls.effective(), SslMode::VerifyCa);
        assert_eq!(
            tls.to_string(),
            "sslmode=require with sslrootcert, so verify-ca"
        );
    }

    #[test]
    fn allow_and_unknown_modes_are_refused() {
        let e = Tls::split_url("postgres://h/t?sslmode=allow").expect_err("allow");
        assert!(e.contains("sslmode=allow is not supported"), "{e}");
        let e = Tls::split_url("postgres://h/t?sslmode=strict").expect_err("unknown");
        assert!(e.contains("verify-full"), "{e}");
        let e = Tls::split_url("postgres://h/t?sslcert=c.pem&sslkey=k.pem").expect_err("client");
        assert!(e.starts_with("sslcert is not supported"), "{e}");
    }

    #[test]
    fn a_missing_root_file_is_named() {
        let (_, tls) =
            Tls::split_url("postgres://h/t?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
                .expect("parses");
        let e = tls.make_tls().err().expect("no file");
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
