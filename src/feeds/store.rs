//! The feeds' SQL: `feed_validators`, what was last rendered for each feed and format (its
//! ETag, Last-Modified and length) and from which version of the catalog, so that a conditional
//! request for a feed that is not in memory is answered without rendering it, on any node and
//! after a restart. Only the feeds write this table.

use crate::params;
use crate::store::{Db, Error};

use super::Format;

/// One feed's validators as last rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validator {
    /// `""` for the site feeds, else the tag's slug.
    pub feed: String,
    pub format: Format,
    /// The tag's version (`catalog::store::tag_versioned`) the bytes were rendered from; for the
    /// site feeds, the last journal entry.
    pub version: i64,
    /// `fingerprint` of the settings and build that rendered it.
    pub fingerprint: String,
    /// The identity ETag, quoted.
    pub etag: String,
    pub last_modified_s: i64,
    pub length: i64,
}

impl Format {
    fn key(self) -> &'static str {
        match self {
            Format::Rss => "rss",
            Format::Atom => "atom",
            Format::Json => "json",
        }
    }

    fn from_key(key: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.key() == key)
    }
}

fn read(r: &crate::store::Row) -> Result<Option<Validator>, Error> {
    let format: String = r.get(1)?;
    Ok(Format::from_key(&format).map(|format| {
        Ok::<_, Error>(Validator {
            feed: r.get(0)?,
            format,
            version: r.get(2)?,
            fingerprint: r.get(3)?,
            etag: r.get(4)?,
            last_modified_s: r.get(5)?,
            length: r.get(6)?,
        })
    }))
    .and_then(|v| v.transpose())
}

const COLUMNS: &str = "feed, format, version, fingerprint, etag, last_modified_s, length";

/// The validators of one feed and format, whatever their version.
pub fn get(db: &Db, feed: &str, format: Format) -> Result<Option<Validator>, Error> {
    Ok(db
        .query_opt(
            &format!("SELECT {COLUMNS} FROM feed_validators WHERE feed = ?1 AND format = ?2"),
            params![feed, format.key()],
            read,
        )?
        .flatten())
}

/// The validators of every format of one feed.
pub fn of_feed(db: &Db, feed: &str) -> Result<Vec<Validator>, Error> {
    Ok(db
        .query_map(
            &format!("SELECT {COLUMNS} FROM feed_validators WHERE feed = ?1"),
            params![feed],
            read,
        )?
        .into_iter()
        .flatten()
        .collect())
}

/// Records what was rendered. A row is only replaced by one rendered from the same or a later
/// version, so a slow writer never puts back an older feed's validators.
pub fn record(db: &Db, rows: &[Validator]) -> Result<(), Error> {
    for v in rows {
        db.execute(
            &format!(
                "INSERT INTO feed_validators ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (feed, format) DO UPDATE SET version = excluded.version, \
                 fingerprint = excluded.fingerprint, etag = excluded.etag, \
                 last_modified_s = excluded.last_modified_s, length = excluded.length \
                 WHERE excluded.version >= feed_validators.version"
            ),
            params![
                v.feed,
                v.format.key(),
                v.version,
                v.fingerprint,
                v.etag,
                v.last_modified_s,
                v.length
            ],
        )?;
    }
    Ok(())
}
