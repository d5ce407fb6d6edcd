//! API tokens for programs: a name, a role, and the BLAKE3 hash of a token shown once.

use super::{Actor, Name, Role, Via};
use crate::params;
use crate::store::{Db, Error};

/// Tokens start with this, so that a leaked one is recognisable (and scanners can find it).
pub const PREFIX: &str = "tid_";

/// Last use is written at most this often.
const TOUCH_EVERY_US: i64 = 60 * 1_000_000;

#[derive(Debug, Clone, serde::Serialize)]
pub struct ApiToken {
    pub name: String,
    pub role: Role,
    pub created_us: i64,
    pub last_used_us: Option<i64>,
}

/// Adds a token: `Ok(Some(token))` to print once, `Ok(None)` when the name is taken.
pub fn add(db: &Db, name: &Name, role: Role, now_us: i64) -> Result<Option<String>, Error> {
    let token = format!("{PREFIX}{}", super::random_secret());
    let added = db.execute(
        "INSERT INTO api_tokens (name, role, hash, created_us) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (name) DO NOTHING",
        params![
            name.as_str(),
            role.as_str(),
            &super::secret_hash(&token)[..],
            now_us
        ],
    )?;
    Ok((added == 1).then_some(token))
}

pub fn list(db: &Db) -> Result<Vec<ApiToken>, Error> {
    db.query_map(
        "SELECT name, role, created_us, last_used_us FROM api_tokens ORDER BY name",
        params![],
        |r| {
            let role: String = r.get(1)?;
            Ok(ApiToken {
                name: r.get(0)?,
                role: Role::parse(&role).map_err(Error::Task)?,
                created_us: r.get(2)?,
                last_used_us: r.get(3)?,
            })
        },
    )
}

/// `Ok(false)` when there is no such token.
pub fn remove(db: &Db, name: &Name) -> Result<bool, Error> {
    Ok(db.execute(
        "DELETE FROM api_tokens WHERE name = ?1",
        params![name.as_str()],
    )? == 1)
}

pub fn any(db: &Db) -> Result<bool, Error> {
    db.query_row("SELECT EXISTS (SELECT 1 FROM api_tokens)", params![], |r| {
        r.get(0)
    })
}

/// A stored token: its row id, who it acts as, and its last use.
#[derive(Debug, Clone)]
pub struct Found {
    pub id: i64,
    pub actor: Actor,
    pub last_used_us: Option<i64>,
}

impl Found {
    /// Whether its last use should be written now.
    pub fn stale(&self, now_us: i64) -> bool {
        self.last_used_us
            .is_none_or(|t| now_us - t > TOUCH_EVERY_US)
    }
}

/// Who a bearer token belongs to.
pub fn find(db: &Db, token: &str) -> Result<Option<Found>, Error> {
    let hash = super::secret_hash(token);
    db.query_opt(
        "SELECT id, name, role, last_used_us FROM api_tokens WHERE hash = ?1",
        params![&hash[..]],
        |r| {
            let role: String = r.get(2)?;
            Ok(Found {
                id: r.get(0)?,
                actor: Actor {
                    name: r.get(1)?,
                    role: Role::parse(&role).map_err(Error::Task)?,
                    via: Via::Api,
                },
                last_used_us: r.get(3)?,
            })
        },
    )
}

/// Notes a token's use.
pub fn touch(db: &Db, id: i64, now_us: i64) -> Result<(), Error> {
    db.execute(
        "UPDATE api_tokens SET last_used_us = ?2 WHERE id = ?1",
        params![id, now_us],
    )?;
    Ok(())
}
