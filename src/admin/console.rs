//! `Console`: the async face of this module for the web layer: log in and out, resume a
//! session, authenticate an API token, and audit a change. Each call is one short transaction.

use std::net::IpAddr;

use super::accounts::{self, Account};
use super::sessions::{self, Lifetime, Verdict};
use super::{audit, tokens, Actor, Via};
use crate::store::{Error, Store};

pub struct Console {
    store: Store,
    life: Lifetime,
}

/// Why a login did not succeed. Neither says whether the name or the password was wrong.
#[derive(Debug)]
pub enum LoginRefused {
    /// Too many recent failures for this account or this client: wait this many seconds.
    Locked(u64),
    /// The name or the password is wrong.
    Wrong,
    Db(Error),
}

impl From<Error> for LoginRefused {
    fn from(e: Error) -> Self {
        LoginRefused::Db(e)
    }
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl Console {
    pub fn new(store: Store, life: Lifetime) -> Console {
        Console { store, life }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Whether any account exists (the login page says how to add one when none does).
    pub async fn has_accounts(&self) -> Result<bool, Error> {
        self.store.read(accounts::any).await
    }

    /// Checks a name and password and starts a session: its id, for the cookie.
    pub async fn login(
        &self,
        name: String,
        password: String,
        client: IpAddr,
    ) -> Result<(String, Account), LoginRefused> {
        let keys = accounts::failure_keys(&name, client);
        let lookup = name.trim().to_lowercase();
        let (locked, found) = {
            let keys = keys.clone();
            self.store
                .read(move |db| {
                    Ok::<_, Error>((
                        accounts::locked_out(db, &keys, now_us())?,
                        accounts::password_hash(db, &lookup)?,
                    ))
                })
                .await?
        };
        if let Some(wait) = locked {
            return Err(LoginRefused::Locked(wait));
        }
        let verified = tokio::task::spawn_blocking(move || accounts::verify(found, &password))
            .await
            .map_err(|e| Error::Task(e.to_string()))?;
        let Some(account) = verified else {
            self.store
                .write(move |db| accounts::record_failure(db, &keys, now_us()))
                .await?;
            return Err(LoginRefused::Wrong);
        };
        let id = account.id;
        let session = self
            .store
            .write(move |db| {
                let now = now_us();
                accounts::prune_failures(db, now)?;
                sessions::start(db, id, now)
            })
            .await?;
        Ok((session, account))
    }

    /// The account behind a session id, if the session is live (renewing it).
    pub async fn resume(&self, session: &str) -> Result<Option<Account>, Error> {
        let id = session.to_string();
        let Some(found) = self.store.read(move |db| sessions::find(db, &id)).await? else {
            return Ok(None);
        };
        let now = now_us();
        let id = session.to_string();
        match found.verdict(now, self.life) {
            Verdict::Live { touch: false } => Ok(Some(found.account)),
            Verdict::Live { touch: true } => {
                self.store
                    .write(move |db| sessions::touch(db, &id, now))
                    .await?;
                Ok(Some(found.account))
            }
            Verdict::Expired => {
                let life = self.life;
                self.store
                    .write(move |db| {
                        sessions::end(db, &id)?;
                        sessions::prune(db, now, life)
                    })
                    .await?;
                Ok(None)
            }
        }
    }

    pub async fn logout(&self, session: &str) -> Result<(), Error> {
        let id = session.to_string();
        self.store.write(move |db| sessions::end(db, &id)).await
    }

    /// Who an API bearer token acts as, if it is an API token.
    pub async fn token(&self, token: &str) -> Result<Option<Actor>, Error> {
        let given = token.to_string();
        let Some(found) = self.store.read(move |db| tokens::find(db, &given)).await? else {
            return Ok(None);
        };
        let now = now_us();
        if found.stale(now) {
            let id = found.id;
            self.store
                .write(move |db| tokens::touch(db, id, now))
                .await?;
        }
        Ok(Some(found.actor))
    }

    /// Whether any API token exists (the API is closed only when none does and `admin.token`
    /// is unset).
    pub async fn has_tokens(&self) -> Result<bool, Error> {
        self.store.read(tokens::any).await
    }

    /// Records a change in the audit log.
    pub async fn audit(
        &self,
        actor: &Actor,
        action: impl Into<String>,
        target: Option<String>,
        detail: Option<String>,
    ) -> Result<(), Error> {
        let (actor, action) = (actor.clone(), action.into());
        self.store
            .write(move |db| {
                audit::record(
                    db,
                    &actor,
                    &action,
                    target.as_deref(),
                    detail.as_deref(),
                    now_us(),
                )
            })
            .await
    }
}

impl Account {
    /// This account acting in the console.
    pub fn in_console(&self) -> Actor {
        Actor {
            name: self.name.clone(),
            role: self.role,
            via: Via::Console,
        }
    }
}
