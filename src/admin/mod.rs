//! The people who run tidings: named accounts with a role, their console sessions, API tokens
//! for programs, login failures (the rate limit), and the audit log of every change. This
//! module alone writes `admin_accounts`, `admin_sessions`, `login_failures`, `api_tokens` and
//! `audit_log`.

pub mod accounts;
pub mod audit;
pub mod console;
pub mod sessions;
pub mod tokens;

use std::fmt;

/// What an account or an API token may do. Ordered: an owner may do what an editor may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Every read except the subscriber export and Settings.
    Viewer,
    /// Articles, plus every read.
    Editor,
    /// Everything: subscribers, exports, bulk deletes, accounts, tokens.
    Owner,
}

impl Role {
    pub fn parse(s: &str) -> Result<Role, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "owner" => Ok(Role::Owner),
            "editor" => Ok(Role::Editor),
            "viewer" => Ok(Role::Viewer),
            other => Err(format!(
                "role '{other}' is not one of owner, editor, viewer"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a change came from, as the audit log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Console,
    Api,
    Cli,
    /// The daemon on its own (a webhook endpoint disabled after failing).
    Daemon,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Console => "console",
            Via::Api => "api",
            Via::Cli => "cli",
            Via::Daemon => "daemon",
        }
    }
}

/// Who is acting: an account in the console, a token on the API, or the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub role: Role,
    pub via: Via,
}

impl Actor {
    /// The command line: whoever can run it owns the database already.
    pub fn cli() -> Actor {
        Actor {
            name: "cli".into(),
            role: Role::Owner,
            via: Via::Cli,
        }
    }
}

/// A name for an account or an API token: 1-64 of `a-z 0-9 . _ - @`, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    pub fn parse(field: &str, s: &str) -> Result<Name, NameError> {
        let name = s.trim().to_lowercase();
        if name.is_empty() || name.len() > 64 {
            return Err(NameError {
                field: field.to_string(),
                message: "must be 1 to 64 characters".into(),
            });
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@')))
        {
            return Err(NameError {
                field: field.to_string(),
                message: format!("'{c}' is not allowed: use letters, digits and . _ - @"),
            });
        }
        Ok(Name(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{field}: {message}")]
pub struct NameError {
    pub field: String,
    pub message: String,
}

/// 32 random bytes as 43 characters of URL-safe base64: session ids, CSRF seeds, API tokens.
pub fn random_secret() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// How a secret is stored: its BLAKE3 hash (the secrets are 256 random bits, so a fast hash is
/// enough; passwords, which are not, go through Argon2id).
pub fn secret_hash(secret: &str) -> [u8; 32] {
    *blake3::hash(secret.as_bytes()).as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_parse() {
        assert!(Role::Owner > Role::Editor && Role::Editor > Role::Viewer);
        assert_eq!(Role::parse(" Editor ").ok(), Some(Role::Editor));
        assert!(Role::parse("admin")
            .unwrap_err()
            .contains("owner, editor, viewer"));
    }

    #[test]
    fn names_are_checked_and_lower_cased() {
        assert_eq!(
            Name::parse("NAME", "Ann.B").map(|n| n.0).ok(),
            Some("ann.b".into())
        );
        let e = Name::parse("NAME", "ann b").unwrap_err();
        assert_eq!(e.field, "NAME");
        assert!(Name::parse("NAME", "").is_err());
        assert!(Name::parse("NAME", &"a".repeat(65)).is_err());
    }

    #[test]
    fn secrets_are_long_and_distinct() {
        let (a, b) = (random_secret(), random_secret());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }
}
