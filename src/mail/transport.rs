//! Where mail goes, from `mail.transport`: a folder of `.eml` files, or an SMTP server (plain,
//! STARTTLS or implicit TLS, verified against the web roots plus `mail.tls_ca_file`).

use super::*;

pub(super) enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>, Direct),
    File(AsyncFileTransport<Tokio1Executor>, PathBuf),
}

/// How a worker opens its own SMTP connection for bulk sending (see `Session`).
#[derive(Clone)]
pub(super) struct Direct {
    pub(super) host: String,
    pub(super) port: u16,
    /// STARTTLS parameters, or `None` for plain SMTP; implicit TLS uses the pool instead.
    pub(super) starttls: Option<TlsParameters>,
    pub(super) implicit_tls: bool,
    pub(super) credentials: Option<Credentials>,
    pub(super) timeout: Duration,
}

pub(super) fn transport(config: &Config) -> Result<Transport, MailConfigError> {
    let mail = &config.mail;
    // The URL as written (its password too) is used only to connect; messages show `shown`.
    let spec = mail.transport.expose().trim();
    let shown = crate::secret::redact_url(spec);
    if let Some(path) = spec.strip_prefix("file:") {
        let dir = PathBuf::from(path);
        std::fs::create_dir_all(&dir).map_err(|e| {
            config_error(
                "mail.transport",
                format!("cannot create the outbox folder {}: {e}", dir.display()),
            )
        })?;
        return Ok(Transport::File(AsyncFileTransport::new(&dir), dir));
    }
    let url = url::Url::parse(spec).map_err(|_| {
        config_error(
            "mail.transport",
            format!("'{shown}' is neither file:PATH nor smtp://host:port"),
        )
    })?;
    let implicit_tls = match url.scheme() {
        "smtp" => false,
        "smtps" => true,
        other => {
            return Err(config_error(
                "mail.transport",
                format!("unknown scheme '{other}'; use file:, smtp:// or smtps://"),
            ))
        }
    };
    let host = url
        .host_str()
        .ok_or_else(|| config_error("mail.transport", format!("'{shown}' has no host")))?
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    let port = url.port().unwrap_or(if implicit_tls { 465 } else { 587 });
    let extra_roots = match &mail.tls_ca_file {
        None => None,
        Some(path) => Some(ca_certificates(path)?),
    };
    let tls_params = || {
        let mut builder = TlsParameters::builder(host.clone());
        if let Some(roots) = &extra_roots {
            builder = builder.add_root_certificate(roots.clone());
        }
        builder
            .build()
            .map_err(|e| config_error("mail.tls", format!("cannot set up TLS for {host}: {e}")))
    };
    // `auto` (the default): a relay on this machine is spoken to in the clear (Debian's Postfix
    // offers STARTTLS with a self-signed certificate, and loopback traffic never leaves the
    // host); any other host must offer STARTTLS with a certificate that verifies.
    let tls_mode = match mail.tls.as_str() {
        "auto" if is_loopback(&host) => "none",
        "auto" => "starttls",
        other => other,
    };
    let tls = if implicit_tls || tls_mode == "tls" {
        Tls::Wrapper(tls_params()?)
    } else if tls_mode == "starttls" {
        Tls::Required(tls_params()?)
    } else {
        Tls::None
    };
    let starttls = match &tls {
        Tls::Required(p) => Some(p.clone()),
        _ => None,
    };
    let implicit = matches!(tls, Tls::Wrapper(_));
    let timeout = Duration::from_secs(mail.timeout_seconds.max(1));
    // `mail.username` / `mail.password`, else the user and password written in the URL.
    let in_url = || {
        let user = percent_decoded(url.username())?;
        let pass = percent_decoded(url.password()?)?;
        (!user.is_empty()).then(|| Credentials::new(user, pass))
    };
    let credentials = match (&mail.username, &mail.password) {
        (Some(user), Some(pass)) => Some(Credentials::new(user.clone(), pass.expose().to_string())),
        _ => in_url(),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
        .port(port)
        .tls(tls)
        .timeout(Some(timeout));
    if let Some(c) = &credentials {
        builder = builder.credentials(c.clone());
    }
    let direct = Direct {
        host,
        port,
        starttls,
        implicit_tls: implicit,
        credentials,
        timeout,
    };
    Ok(Transport::Smtp(builder.build(), direct))
}

/// A URL's user or password as it was before percent-encoding; `None` if it is not UTF-8.
fn percent_decoded(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|v| v.into_owned())
}

/// Whether `host` is this machine: `localhost`, 127.0.0.0/8 or ::1.
pub(super) fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The certificate authorities in `mail.tls_ca_file`, trusted beside the usual ones.
fn ca_certificates(
    path: &std::path::Path,
) -> Result<lettre::transport::smtp::client::Certificate, MailConfigError> {
    let pem = std::fs::read(path).map_err(|e| {
        config_error(
            "mail.tls_ca_file",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let invalid = || {
        config_error(
            "mail.tls_ca_file",
            format!("{} holds no PEM certificate", path.display()),
        )
    };
    if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        return Err(invalid());
    }
    lettre::transport::smtp::client::Certificate::from_pem(&pem).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_written_in_mail_transport_never_shows_in_its_errors() {
        for spec in [
            "smtp://relay:topsecret-9f@/",
            "smtp://relay:topsecret-9f@[::1",
            "smtq://relay:topsecret-9f@mail.example:25",
        ] {
            let env = |name: &str| (name == "TIDINGS_MAIL_TRANSPORT").then(|| spec.to_string());
            let message = match Config::load_with_env(None, env) {
                Err(e) => e.to_string(),
                Ok(config) => match transport(&config) {
                    Err(e) => e.to_string(),
                    Ok(_) => panic!("{spec} was accepted"),
                },
            };
            assert!(message.contains("mail.transport"), "{spec}: {message}");
            assert!(!message.contains("topsecret"), "{spec}: {message}");
        }
    }
}
