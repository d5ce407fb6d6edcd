//! Admin accounts: a name, a role and an Argon2id password hash; the login check, with its
//! rate limit (failures counted in the database, so every node sees them).

use std::sync::{Condvar, Mutex};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;

use super::{Name, Role};
use crate::params;
use crate::store::{Db, Error};

/// At most this many Argon2 hashes are computed at once (each takes ~19 MiB and a core for
/// tens of milliseconds): a burst of logins queues instead of taking the machine.
const HASHES_AT_ONCE: usize = 2;

/// Failures within this window count towards the limits below.
pub const FAILURE_WINDOW_US: i64 = 15 * 60 * 1_000_000;
/// Failed logins allowed per account within the window.
pub const FAILURES_PER_ACCOUNT: i64 = 5;
/// Failed logins allowed per client address within the window.
pub const FAILURES_PER_CLIENT: i64 = 20;

/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 12;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_us: i64,
    pub changed_us: i64,
}

struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

static SLOTS: Slots = Slots {
    free: Mutex::new(HASHES_AT_ONCE),
    freed: Condvar::new(),
};

/// Runs `f` holding one of the hashing slots (blocking: call from a blocking thread).
fn with_slot<T>(f: impl FnOnce() -> T) -> T {
    {
        let mut free = SLOTS.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = SLOTS.freed.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
    }
    struct Release;
    impl Drop for Release {
        fn drop(&mut self) {
            let mut free = SLOTS.free.lock().unwrap_or_else(|p| p.into_inner());
            *free += 1;
            SLOTS.freed.notify_one();
        }
    }
    let _release = Release;
    f()
}

/// A password, checked for length; never printed by `Debug`.
pub struct Password(String);

impl Password {
    pub fn parse(s: &str) -> Result<Password, String> {
        let s = s.trim_end_matches(['\r', '\n']);
        if s.chars().count() < MIN_PASSWORD {
            return Err(format!("must be at least {MIN_PASSWORD} characters"));
        }
        if s.len() > 1024 {
            return Err("must be at most 1024 bytes".into());
        }
        Ok(Password(s.to_string()))
    }

    /// A new random password: 24 characters (about 143 bits).
    pub fn generate() -> Password {
        use rand::Rng;
        const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
        let mut rng = rand::rngs::OsRng;
        Password(
            (0..24)
                .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
                .collect(),
        )
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(crate::secret::REDACTED)
    }
}

/// The Argon2id PHC string of `password` (blocking; at most two at once).
pub fn hash_password(password: &Password) -> Result<String, Error> {
    with_slot(|| {
        Argon2::default()
            .hash_password(password.expose().as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| Error::Task(format!("cannot hash the password: {e}")))
    })
}

/// Whether `password` matches `phc` (blocking; at most two at once). A hash that does not
/// parse matches nothing.
pub fn password_matches(password: &str, phc: &str) -> bool {
    with_slot(|| {
        PasswordHash::new(phc)
            .map(|hash| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &hash)
                    .is_ok()
            })
            .unwrap_or(false)
    })
}

/// A hash of a password nobody has, verified when the account does not exist so that a wrong
/// name takes as long as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&Password::generate()).unwrap_or_default())
}

fn account(r: &crate::store::Row) -> Result<Account, Error> {
    let role: String = r.get(2)?;
    Ok(Account {
        id: r.get(0)?,
        name: r.get(1)?,
        role: Role::parse(&role).map_err(Error::Task)?,
        created_us: r.get(3)?,
        changed_us: r.get(4)?,
    })
}

const COLUMNS: &str = "id, name, role, created_us, changed_us";

pub fn list(db: &Db) -> Result<Vec<Account>, Error> {
    db.query_map(
        &format!("SELECT {COLUMNS} FROM admin_accounts ORDER BY name"),
        params![],
        account,
    )
}

pub fn find(db: &Db, name: &Name) -> Result<Option<Account>, Error> {
    db.query_opt(
        &format!("SELECT {COLUMNS} FROM admin_accounts WHERE name = ?1"),
        params![name.as_str()],
        account,
    )
}

pub fn by_id(db: &Db, id: i64) -> Result<Option<Account>, Error> {
    db.query_opt(
        &format!("SELECT {COLUMNS} FROM admin_accounts WHERE id = ?1"),
        params![id],
        account,
    )
}

pub fn any(db: &Db) -> Result<bool, Error> {
    db.query_row(
        "SELECT EXISTS (SELECT 1 FROM admin_accounts)",
        params![],
        |r| r.get(0),
    )
}

/// Adds an account; `Ok(false)` when the name is taken.
pub fn add(db: &Db, name: &Name, role: Role, phc: &str, now_us: i64) -> Result<bool, Error> {
    let added = db.execute(
        "INSERT INTO admin_accounts (name, role, password_hash, created_us, changed_us) \
         VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (name) DO NOTHING",
        params![name.as_str(), role.as_str(), phc, now_us],
    )?;
    Ok(added == 1)
}

/// Removes an account and ends its sessions; `Ok(false)` when there is no such account.
pub fn remove(db: &Db, name: &Name) -> Result<bool, Error> {
    let Some(found) = find(db, name)? else {
        return Ok(false);
    };
    super::sessions::end_all(db, found.id)?;
    db.execute(
        "DELETE FROM admin_accounts WHERE id = ?1",
        params![found.id],
    )?;
    Ok(true)
}

/// Replaces an account's password and ends its sessions; `Ok(false)` when there is no such
/// account.
pub fn set_password(db: &Db, name: &Name, phc: &str, now_us: i64) -> Result<bool, Error> {
    let Some(found) = find(db, name)? else {
        return Ok(false);
    };
    super::sessions::end_all(db, found.id)?;
    db.execute(
        "UPDATE admin_accounts SET password_hash = ?2, changed_us = ?3 WHERE id = ?1",
        params![found.id, phc, now_us],
    )?;
    Ok(true)
}

/// The stored hash of `name`'s password, if the account exists.
pub fn password_hash(db: &Db, name: &str) -> Result<Option<(Account, String)>, Error> {
    db.query_opt(
        &format!("SELECT {COLUMNS}, password_hash FROM admin_accounts WHERE name = ?1"),
        params![name],
        |r| Ok((account(r)?, r.get(5)?)),
    )
}

/// Checks a name and password (blocking): the account when both are right. A wrong name
/// costs the same Argon2 verification as a wrong password.
pub fn verify(found: Option<(Account, String)>, password: &str) -> Option<Account> {
    match found {
        Some((account, phc)) => password_matches(password, &phc).then_some(account),
        None => {
            let _ = password_matches(password, decoy_hash());
            None
        }
    }
}

/// The rate-limit keys of a login attempt: the account name and the client (its address
/// hashed, so the table holds no address).
pub fn failure_keys(name: &str, client: std::net::IpAddr) -> [String; 2] {
    let hashed = blake3::hash(client.to_string().as_bytes());
    [
        format!("account:{}", name.trim().to_lowercase()),
        format!("client:{}", &hashed.to_hex()[..32]),
    ]
}

/// `Some(seconds to wait)` when either key has used up its failures in the window.
pub fn locked_out(db: &Db, keys: &[String; 2], now_us: i64) -> Result<Option<u64>, Error> {
    let since = now_us - FAILURE_WINDOW_US;
    let mut wait = None;
    for (key, limit) in keys.iter().zip([FAILURES_PER_ACCOUNT, FAILURES_PER_CLIENT]) {
        let (count, oldest): (i64, Option<i64>) = db.query_row(
            "SELECT count(*), min(at_us) FROM login_failures WHERE key = ?1 AND at_us > ?2",
            params![key, since],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if count >= limit {
            // Locked until enough of the window's failures have aged out: at the latest when
            // the oldest one does.
            let until = oldest.unwrap_or(now_us) + FAILURE_WINDOW_US;
            let seconds = u64::try_from((until - now_us) / 1_000_000)
                .unwrap_or(0)
                .max(1);
            wait = Some(wait.map_or(seconds, |w: u64| w.max(seconds)));
        }
    }
    Ok(wait)
}

pub fn record_failure(db: &Db, keys: &[String; 2], now_us: i64) -> Result<(), Error> {
    for key in keys {
        db.execute(
            "INSERT INTO login_failures (key, at_us) VALUES (?1, ?2)",
            params![key, now_us],
        )?;
    }
    Ok(())
}

/// Forgets failures older than the window.
pub fn prune_failures(db: &Db, now_us: i64) -> Result<usize, Error> {
    db.execute(
        "DELETE FROM login_failures WHERE at_us <= ?1",
        params![now_us - FAILURE_WINDOW_US],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_matches_its_password_only() {
        let pw = Password::parse("correct horse battery").expect("long enough");
        let phc = hash_password(&pw).expect("hash");
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(password_matches("correct horse battery", &phc));
        assert!(!password_matches("correct horse batterz", &phc));
        assert!(!password_matches("anything", "not a hash"));
    }

    #[test]
    fn short_passwords_are_refused_and_generated_ones_are_not() {
        assert!(Password::parse("short").is_err());
        let generated = Password::generate();
        assert!(Password::parse(generated.expose()).is_ok());
        assert_eq!(format!("{generated:?}"), crate::secret::REDACTED);
    }
}
