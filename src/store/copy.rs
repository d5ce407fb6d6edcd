//! `tidings migrate --to postgres://…`: copies every table of a SQLite database into an empty
//! PostgreSQL one, ids included (so tokens, links in sent emails, `/digests/{id}` and ETags stay
//! valid), in one transaction, then moves each id sequence past the copied rows.

use super::{Db, Error, Store};

/// Every table, parents before children (foreign keys), with the column its ids come from.
pub const TABLES: &[(&str, Option<&str>)] = &[
    ("articles", Some("seq")),
    ("tags", Some("id")),
    ("article_tags", None),
    ("catalog_changes", Some("id")),
    ("feed_removals", None),
    ("feed_validators", None),
    ("subscribers", Some("id")),
    ("subscriber_tags", None),
    ("tokens", None),
    ("secrets", None),
    ("digest_runs", Some("id")),
    ("deliveries", Some("id")),
    ("outbox", Some("id")),
    ("suppressions", None),
    ("events", Some("id")),
    ("daily_counts", None),
    ("inbound_messages", Some("id")),
    ("webhook_seen", None),
    ("address_limits", None),
    ("admin_accounts", Some("id")),
    ("admin_sessions", None),
    ("login_failures", Some("id")),
    ("api_tokens", Some("id")),
    ("audit_log", Some("id")),
    ("audience_keys", None),
    ("audience_uniques", None),
    ("audience_days", None),
    ("audience_reported", None),
    ("webhook_endpoints", Some("id")),
    ("webhook_deliveries", Some("id")),
    ("webhook_attempts", Some("id")),
    ("sources", Some("id")),
    ("source_entries", Some("id")),
];

/// Rows copied, per table.
#[derive(Debug, Default)]
pub struct Copied {
    pub tables: Vec<(&'static str, u64)>,
}

impl std::fmt::Display for Copied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .tables
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

/// Why a copy did not happen; nothing was written then.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("the target database is not empty ({table} has rows): migrate copies into an empty database only")]
    NotEmpty { table: &'static str },
    #[error("the source must be a SQLite database and the target a PostgreSQL one")]
    Backends,
    #[error(transparent)]
    Db(#[from] Error),
}

/// One SQLite value, bound as it is on either backend.
struct Value(rusqlite::types::Value);

impl super::Param for Value {
    fn lite(&self) -> rusqlite::types::ToSqlOutput<'_> {
        rusqlite::types::ToSqlOutput::Borrowed(rusqlite::types::ValueRef::from(&self.0))
    }
    fn pg(&self) -> super::sql::PgValue<'_> {
        use super::sql::PgValue as P;
        use rusqlite::types::Value as V;
        match &self.0 {
            V::Null => P::Null,
            V::Integer(n) => P::Int(*n),
            V::Real(x) => P::Real(*x),
            V::Text(t) => P::Text(t),
            V::Blob(b) => P::Bytes(b),
        }
    }
}

/// One table as read: its name, its column names, its rows.
type Table = (&'static str, Vec<String>, Vec<Vec<Value>>);

/// Copies `source` (SQLite) into `target` (an empty PostgreSQL database, already migrated).
pub async fn sqlite_to_postgres(source: &Store, target: &Store) -> Result<Copied, CopyError> {
    if source.is_postgres() || !target.is_postgres() {
        return Err(CopyError::Backends);
    }
    // Read every table in one snapshot of the source, while a daemon may still be writing; with
    // them the digests the ledger logged as sent and has not folded into `deliveries` yet.
    let (rows, logged): (Vec<Table>, Vec<crate::digest::ledger::Sent>) = source
        .snapshot(|db| {
            let rows = TABLES
                .iter()
                .map(|(table, _)| read_table(db, table).map(|(c, r)| (*table, c, r)))
                .collect::<Result<Vec<_>, Error>>()?;
            Ok::<_, Error>((rows, crate::digest::ledger::logged_sent(db)?))
        })
        .await?;
    target
        .write(move |db| {
            for (table, _) in TABLES {
                let any: bool = db.query_row(
                    &format!("SELECT EXISTS (SELECT 1 FROM {table})"),
                    &[],
                    |r| r.get(0),
                )?;
                if any {
                    return Err(CopyError::NotEmpty { table });
                }
            }
            let mut copied = Copied::default();
            for (table, columns, values) in &rows {
                let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
                let sql = format!(
                    "INSERT INTO {table} ({}) VALUES ({})",
                    columns.join(", "),
                    marks.join(", ")
                );
                for row in values {
                    let params: Vec<&dyn super::Param> =
                        row.iter().map(|v| v as &dyn super::Param).collect();
                    db.execute(&sql, &params)?;
                }
                copied.tables.push((table, values.len() as u64));
            }
            // Sent is sent: the logged digests land in the copied ledger as they would have here.
            crate::digest::ledger::mark_sent(db, &logged)?;
            // New rows continue after the copied ids.
            for (table, id) in TABLES {
                if let Some(id) = id {
                    db.query_row(
                        &format!(
                            "SELECT setval(pg_get_serial_sequence('{table}', '{id}'), \
                             coalesce((SELECT max({id}) FROM {table}), 0) + 1, false)"
                        ),
                        &[],
                        |_| Ok(()),
                    )?;
                }
            }
            Ok(copied)
        })
        .await
}

/// A table's column names (SQLite's order) and every row.
fn read_table(db: &Db, table: &str) -> Result<(Vec<String>, Vec<Vec<Value>>), Error> {
    let Db::Lite(conn) = db else {
        return Err(Error::Task("the source is not SQLite".into()));
    };
    let mut stmt = conn.prepare(&format!("SELECT * FROM {table}"))?;
    let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
    let n = columns.len();
    let rows = stmt
        .query_map([], |r| {
            (0..n)
                .map(|i| r.get::<_, rusqlite::types::Value>(i).map(Value))
                .collect::<Result<Vec<_>, _>>()
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok((columns, rows))
}

/// How many rows each table holds (to compare source and target after a copy).
pub async fn counts(store: &Store) -> Result<Vec<(&'static str, i64)>, Error> {
    store
        .snapshot(|db| {
            TABLES
                .iter()
                .map(|(t, _)| {
                    db.query_row(&format!("SELECT count(*) FROM {t}"), &[], |r| r.get(0))
                        .map(|n| (*t, n))
                })
                .collect()
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::TABLES;
    use crate::store::{Location, Store};

    /// Tables of the SQLite schema that `migrate` moves another way, with why.
    const MOVED_OTHERWISE: &[&str] = &[
        // Digests logged as sent and not yet folded: copied into `deliveries` and `subscribers`.
        "sent_log",
        // SQLite's search index (FTS5: the table and its shadow tables) and the queue of its
        // entries to redo, made from `subscribers` and `subscriber_tags`; PostgreSQL's is an
        // index on the table (pg_trgm).
        "subscriber_search",
        "subscriber_search_config",
        "subscriber_search_content",
        "subscriber_search_data",
        "subscriber_search_idx",
        "subscriber_search_queue",
        // How many subscribers are in each status: kept by triggers on `subscribers`, which count
        // the copied rows as they arrive.
        "subscriber_counts",
    ];

    /// Tables of the PostgreSQL schema that `migrate` does not copy: the moves its triggers on
    /// `subscribers` write for `subscriber_counts` (migration V8).
    const POSTGRES_ONLY: &[&str] = &[
        "subscriber_count_moves",
        "subscriber_counts",
        "subscriber_search",
    ];

    async fn tables(store: &Store) -> Vec<String> {
        let sql = if store.postgres().is_some() {
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' \
             AND table_type = 'BASE TABLE' AND table_name <> 'tidings_schema_history' ORDER BY 1"
        } else {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1"
        };
        let mut names: Vec<String> = store
            .read(move |db| db.query_map(sql, &[], |r| r.get(0)))
            .await
            .expect("tables");
        names.sort();
        names
    }

    /// A table added to the schema (a migration on either engine) without being added to the
    /// list `tidings migrate` copies fails here, rather than being left behind by a migration.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_table_of_the_schema_is_copied_by_migrate() {
        let mut listed: Vec<String> = TABLES.iter().map(|(t, _)| t.to_string()).collect();
        listed.sort();
        let dir = tempfile::tempdir().expect("tmp");
        let lite = Store::open(&Location::Sqlite(dir.path().join("t.db")), 1)
            .await
            .expect("sqlite");
        let mut expected = listed.clone();
        expected.extend(MOVED_OTHERWISE.iter().map(|t| t.to_string()));
        expected.sort();
        assert_eq!(
            tables(&lite).await,
            expected,
            "SQLite tables against TABLES"
        );
        if let Some(pg) = crate::store::tests::fresh_postgres().await {
            let pg = Store::open(&pg, 2).await.expect("postgres");
            let mut expected = listed;
            expected.extend(POSTGRES_ONLY.iter().map(|t| t.to_string()));
            expected.sort();
            assert_eq!(
                tables(&pg).await,
                expected,
                "PostgreSQL tables against TABLES"
            );
        }
    }
}
