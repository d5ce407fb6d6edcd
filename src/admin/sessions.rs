//! Console sessions, kept in the database so that they hold across restarts and nodes. The
//! session id lives only in the browser's cookie; the table keeps its BLAKE3 hash. The CSRF
//! token of a session is derived from its id, so it is bound to that session alone.

use subtle::ConstantTimeEq;

use super::accounts::Account;
use crate::params;
use crate::store::{Db, Error};

/// The session cookie's name.
pub const COOKIE: &str = "tidings_session";
/// The login form's own CSRF cookie (there is no session yet to bind it to).
pub const LOGIN_COOKIE: &str = "tidings_login";

/// A session's last use is written at most this often (each page view need not write).
const TOUCH_EVERY_US: i64 = 60 * 1_000_000;

/// How long a session lives.
#[derive(Debug, Clone, Copy)]
pub struct Lifetime {
    pub idle_us: i64,
    pub max_us: i64,
}

impl Lifetime {
    pub fn from_config(config: &crate::config::Config) -> Lifetime {
        Lifetime {
            idle_us: i64::from(config.admin.session_idle_minutes) * 60 * 1_000_000,
            max_us: i64::from(config.admin.session_max_hours) * 3_600 * 1_000_000,
        }
    }
}

/// Starts a session for `account`: the new id, for the cookie.
pub fn start(db: &Db, account_id: i64, now_us: i64) -> Result<String, Error> {
    let id = super::random_secret();
    db.execute(
        "INSERT INTO admin_sessions (hash, account_id, created_us, last_used_us) \
         VALUES (?1, ?2, ?3, ?3)",
        params![&super::secret_hash(&id)[..], account_id, now_us],
    )?;
    Ok(id)
}

/// A stored session and its account.
#[derive(Debug, Clone)]
pub struct Found {
    pub account: Account,
    pub created_us: i64,
    pub last_used_us: i64,
}

/// What a request's session id amounts to at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Live; `touch` when its last use should be written.
    Live { touch: bool },
    /// Idle too long, or too old: end it.
    Expired,
}

impl Found {
    pub fn verdict(&self, now_us: i64, life: Lifetime) -> Verdict {
        if now_us - self.last_used_us > life.idle_us || now_us - self.created_us > life.max_us {
            Verdict::Expired
        } else {
            Verdict::Live {
                touch: now_us - self.last_used_us > TOUCH_EVERY_US,
            }
        }
    }
}

/// The session with this id and its account, if it exists (live or not).
pub fn find(db: &Db, id: &str) -> Result<Option<Found>, Error> {
    let hash = super::secret_hash(id);
    let found: Option<(i64, i64, i64)> = db.query_opt(
        "SELECT account_id, created_us, last_used_us FROM admin_sessions WHERE hash = ?1",
        params![&hash[..]],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let Some((account_id, created_us, last_used_us)) = found else {
        return Ok(None);
    };
    Ok(
        super::accounts::by_id(db, account_id)?.map(|account| Found {
            account,
            created_us,
            last_used_us,
        }),
    )
}

/// Notes a session's use.
pub fn touch(db: &Db, id: &str, now_us: i64) -> Result<(), Error> {
    db.execute(
        "UPDATE admin_sessions SET last_used_us = ?2 WHERE hash = ?1",
        params![&super::secret_hash(id)[..], now_us],
    )?;
    Ok(())
}

/// Ends one session (logout).
pub fn end(db: &Db, id: &str) -> Result<(), Error> {
    db.execute(
        "DELETE FROM admin_sessions WHERE hash = ?1",
        params![&super::secret_hash(id)[..]],
    )?;
    Ok(())
}

/// Ends every session of an account (removed, or its password changed).
pub fn end_all(db: &Db, account_id: i64) -> Result<usize, Error> {
    db.execute(
        "DELETE FROM admin_sessions WHERE account_id = ?1",
        params![account_id],
    )
}

/// Forgets sessions that can no longer be resumed.
pub fn prune(db: &Db, now_us: i64, life: Lifetime) -> Result<usize, Error> {
    db.execute(
        "DELETE FROM admin_sessions WHERE last_used_us < ?1 OR created_us < ?2",
        params![now_us - life.idle_us, now_us - life.max_us],
    )
}

/// The CSRF token that goes with a secret (a session id, or the login cookie).
pub fn csrf_token(secret: &str) -> String {
    let key = super::secret_hash(secret);
    blake3::keyed_hash(&key, b"tidings csrf")
        .to_hex()
        .to_string()
}

/// Whether `given` is the CSRF token of `secret`.
pub fn csrf_matches(secret: &str, given: &str) -> bool {
    let expected = csrf_token(secret);
    expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csrf_token_belongs_to_one_secret() {
        let (a, b) = (super::super::random_secret(), super::super::random_secret());
        assert!(csrf_matches(&a, &csrf_token(&a)));
        assert!(!csrf_matches(&a, &csrf_token(&b)));
        assert!(!csrf_matches(&a, ""));
    }
}
