//! One way to run SQL on either backend: `Db` (a connection, inside a transaction when `write`
//! made it), `Param` (what may be bound), `Row` (what may be read).
//!
//! The SQL is written once, in the dialect both engines share: `?1`-style placeholders (turned
//! into `$1` for PostgreSQL), `ON CONFLICT … DO NOTHING`, `RETURNING`, `IS DISTINCT FROM`,
//! `CAST(… AS BIGINT)`, integers for booleans and microseconds for times. Where the engines
//! differ (claiming with `FOR UPDATE SKIP LOCKED`, locks), `Db::is_postgres` picks the text.

use std::borrow::Cow;

use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

use super::Error;

/// A connection the store lent to one closure.
mod lists;
mod row;

pub use lists::{pow2_runs, values, IdList, ID_LIST_MAX};
pub use row::{Column, Row};

pub enum Db<'c> {
    Lite(&'c rusqlite::Connection),
    Pg(&'c Pg),
}

/// A PostgreSQL connection from the pool, driven from a blocking thread.
pub struct Pg {
    pub(super) client: deadpool_postgres::Object,
    pub(super) runtime: Driver,
    /// In a transaction (not `Mode::Read`): `query_each_paged` may then read through a cursor.
    pub(super) transaction: bool,
}

/// Rows `query_each_paged` fetches at a time.
const CURSOR_PAGE: usize = 2_000;

/// What drives a connection's statements from a thread that is not async.
pub(super) enum Driver {
    /// The pool's runtime, whose thread drives every pooled connection: each statement is a
    /// hop to that thread and back.
    Shared(tokio::runtime::Handle),
    /// A runtime of the calling thread's own (`postgres::Dedicated`): the statement and its
    /// connection are driven on this thread, with no hop.
    Own(std::sync::Arc<tokio::runtime::Runtime>),
}

impl Pg {
    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        match &self.runtime {
            Driver::Shared(handle) => handle.block_on(f),
            Driver::Own(runtime) => runtime.block_on(f),
        }
    }

    fn statement(&self, sql: &str) -> Result<tokio_postgres::Statement, Error> {
        let text = postgres_text(sql);
        Ok(self.block_on(self.client.prepare_cached(&text))?)
    }
}

impl Db<'_> {
    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Pg(_))
    }

    /// Runs one statement; the number of rows it changed.
    pub fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<usize, Error> {
        match self {
            Db::Lite(c) => Ok(c.prepare_cached(sql)?.execute(lite_params(params))?),
            Db::Pg(pg) => {
                let statement = pg.statement(sql)?;
                let values = pg_values(params);
                let n = pg.block_on(pg.client.execute(&statement, &pg_refs(&values)))?;
                Ok(n as usize)
            }
        }
    }

    /// Runs statements without parameters (schema work, `BEGIN`).
    pub fn execute_batch(&self, sql: &str) -> Result<(), Error> {
        match self {
            Db::Lite(c) => Ok(c.execute_batch(sql)?),
            Db::Pg(pg) => Ok(pg.block_on(pg.client.batch_execute(sql))?),
        }
    }

    /// The first row, mapped; `Error::NoRow` when there is none.
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        f: impl FnOnce(&Row) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.query_opt(sql, params, f)?.ok_or(Error::NoRow)
    }

    /// The first row, mapped, if there is one.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        f: impl FnOnce(&Row) -> Result<T, Error>,
    ) -> Result<Option<T>, Error> {
        match self {
            Db::Lite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(lite_params(params))?;
                match rows.next()? {
                    Some(r) => Ok(Some(f(&Row::Lite(r))?)),
                    None => Ok(None),
                }
            }
            Db::Pg(pg) => {
                let statement = pg.statement(sql)?;
                let values = pg_values(params);
                let row = pg.block_on(pg.client.query_opt(&statement, &pg_refs(&values)))?;
                row.map(|r| f(&Row::Pg(&r))).transpose()
            }
        }
    }

    /// Every row, mapped.
    pub fn query_map<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        mut f: impl FnMut(&Row) -> Result<T, Error>,
    ) -> Result<Vec<T>, Error> {
        let mut out = Vec::new();
        self.query_each(sql, params, |r| -> Result<(), Error> {
            out.push(f(r)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// Every row handed to `f` in turn; on SQLite without collecting them first.
    pub fn query_each<E: From<Error>>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        mut f: impl FnMut(&Row) -> Result<(), E>,
    ) -> Result<(), E> {
        match self {
            Db::Lite(c) => {
                let mut stmt = c.prepare_cached(sql).map_err(Error::from)?;
                let mut rows = stmt.query(lite_params(params)).map_err(Error::from)?;
                while let Some(r) = rows.next().map_err(Error::from)? {
                    f(&Row::Lite(r))?;
                }
                Ok(())
            }
            Db::Pg(pg) => {
                let statement = pg.statement(sql)?;
                let values = pg_values(params);
                let rows = pg
                    .block_on(pg.client.query(&statement, &pg_refs(&values)))
                    .map_err(Error::from)?;
                for r in &rows {
                    f(&Row::Pg(r))?;
                }
                Ok(())
            }
        }
    }

    /// `query_each` for a `SELECT` whose result is too big to hold (a plan reads every
    /// subscriber): on PostgreSQL, in a transaction, through a cursor a page at a time; held
    /// whole, 100,000 rows took 30 MB more. `f` may run statements of its own on this
    /// connection (a plan writes deliveries as it reads), which a stream of the whole result
    /// would block behind its unread rows.
    pub fn query_each_paged<E: From<Error>>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        mut f: impl FnMut(&Row) -> Result<(), E>,
    ) -> Result<(), E> {
        let pg = match self {
            Db::Pg(pg) if pg.transaction => pg,
            _ => return self.query_each(sql, params, f),
        };
        static CURSORS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let name = format!(
            "tidings_each_{}",
            CURSORS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let values = pg_values(params);
        let declare = format!("DECLARE {name} NO SCROLL CURSOR FOR {}", postgres_text(sql));
        pg.block_on(pg.client.execute(declare.as_str(), &pg_refs(&values)))
            .map_err(Error::from)?;
        let fetch = format!("FETCH {CURSOR_PAGE} FROM {name}");
        loop {
            let page = pg
                .block_on(pg.client.query(fetch.as_str(), &[]))
                .map_err(Error::from)?;
            for r in &page {
                f(&Row::Pg(r))?;
            }
            if page.len() < CURSOR_PAGE {
                break;
            }
        }
        pg.block_on(pg.client.batch_execute(&format!("CLOSE {name}")))
            .map_err(Error::from)?;
        Ok(())
    }

    /// Holds `name` until the transaction ends, so that writers of one thing take turns across
    /// processes. SQLite needs nothing: `write` already holds the database's one write lock.
    pub fn lock(&self, name: &str) -> Result<(), Error> {
        if let Db::Pg(_) = self {
            self.query_row(
                "SELECT 1 FROM (SELECT pg_advisory_xact_lock(?1)) AS held",
                &[&lock_key(name)],
                |_| Ok(()),
            )?;
        }
        Ok(())
    }

    /// The database's clock, in microseconds since 1970: lease times come from here, so that
    /// nodes whose clocks disagree still agree on who holds what.
    pub fn now_us(&self) -> Result<i64, Error> {
        match self {
            Db::Lite(_) => Ok(chrono::Utc::now().timestamp_micros()),
            Db::Pg(_) => self.query_row(
                "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)",
                &[],
                |r| r.get(0),
            ),
        }
    }
}

/// The advisory lock number for a name: the first 8 bytes of its BLAKE3 hash.
pub(super) fn lock_key(name: &str) -> i64 {
    let hash = blake3::hash(name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    i64::from_le_bytes(first)
}

/// `?1` → `$1` (and a bare `?` → the next number), outside quoted text.
pub(super) fn postgres_text(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut next = 1;
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (None, '?') => {
                out.push('$');
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    out.push_str(&next.to_string());
                    next += 1;
                } else {
                    out.push_str(&digits);
                }
            }
            (None, c) => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// What one parameter is, for PostgreSQL: an integer binds to any integer column (and to a
/// `NUMERIC` one), so a literal's inferred type never makes a bind fail.
#[derive(Debug)]
pub enum PgValue<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Bytes(&'a [u8]),
}

impl ToSql for PgValue<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            PgValue::Null => Ok(IsNull::Yes),
            PgValue::Int(n) => match *ty {
                Type::INT2 => i16::try_from(*n)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*n)?.to_sql(ty, out),
                Type::BOOL => (*n != 0).to_sql(ty, out),
                Type::FLOAT8 => (*n as f64).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => n.to_string().to_sql(ty, out),
                _ => n.to_sql(ty, out),
            },
            PgValue::Real(x) => match *ty {
                Type::FLOAT4 => (*x as f32).to_sql(ty, out),
                _ => x.to_sql(ty, out),
            },
            PgValue::Text(s) => s.to_sql(ty, out),
            PgValue::Bytes(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT2
                | Type::INT4
                | Type::INT8
                | Type::BOOL
                | Type::FLOAT4
                | Type::FLOAT8
                | Type::TEXT
                | Type::VARCHAR
                | Type::BPCHAR
                | Type::NAME
                | Type::UNKNOWN
                | Type::BYTEA
        )
    }

    to_sql_checked!();
}

/// A value that may be bound to a statement on either backend.
pub trait Param: Sync {
    fn lite(&self) -> rusqlite::types::ToSqlOutput<'_>;
    fn pg(&self) -> PgValue<'_>;
}

use rusqlite::types::{ToSqlOutput, Value, ValueRef};

macro_rules! int_param {
    ($($t:ty),*) => {$(
        impl Param for $t {
            fn lite(&self) -> ToSqlOutput<'_> {
                ToSqlOutput::Owned(Value::Integer(*self as i64))
            }
            fn pg(&self) -> PgValue<'_> {
                PgValue::Int(*self as i64)
            }
        }
    )*};
}
int_param!(i64, i32, u32, u16, u8);

impl Param for usize {
    fn lite(&self) -> ToSqlOutput<'_> {
        ToSqlOutput::Owned(Value::Integer(i64::try_from(*self).unwrap_or(i64::MAX)))
    }
    fn pg(&self) -> PgValue<'_> {
        PgValue::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl Param for u64 {
    fn lite(&self) -> ToSqlOutput<'_> {
        ToSqlOutput::Owned(Value::Integer(i64::try_from(*self).unwrap_or(i64::MAX)))
    }
    fn pg(&self) -> PgValue<'_> {
        PgValue::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl Param for bool {
    fn lite(&self) -> ToSqlOutput<'_> {
        ToSqlOutput::Owned(Value::Integer(i64::from(*self)))
    }
    fn pg(&self) -> PgValue<'_> {
        PgValue::Int(i64::from(*self))
    }
}

impl Param for f64 {
    fn lite(&self) -> ToSqlOutput<'_> {
        ToSqlOutput::Owned(Value::Real(*self))
    }
    fn pg(&self) -> PgValue<'_> {
        PgValue::Real(*self)
    }
}

impl Param for str {
    fn lite(&self) -> ToSqlOutput<'_> {
        ToSqlOutput::Borrowed(ValueRef::Text(self.as_bytes()))
    }
    fn pg(&self) -> PgValue<'_> {
        PgValue::Text(self)
    }
}

impl Param for String {
    fn lite(&self) -> ToSqlOutput<'_> {
        self.as_str().lite()
    }
    fn pg(&self) -> PgValue<'_> {
        PgValue::Text(self)
    }
}

impl Param for [u8] {
    fn lite(&self) -> ToSqlOutput<'_> {
        ToSqlOutput::Borrowed(ValueRef::Blob(self))
    }
    fn pg(&self) -> PgValue<'_> {
        PgValue::Bytes(self)
    }
}

impl Param for Vec<u8> {
    fn lite(&self) -> ToSqlOutput<'_> {
        self.as_slice().lite()
    }
    fn pg(&self) -> PgValue<'_> {
        PgValue::Bytes(self)
    }
}

impl<const N: usize> Param for [u8; N] {
    fn lite(&self) -> ToSqlOutput<'_> {
        self.as_slice().lite()
    }
    fn pg(&self) -> PgValue<'_> {
        PgValue::Bytes(self)
    }
}

impl<T: Param + ?Sized> Param for &T {
    fn lite(&self) -> ToSqlOutput<'_> {
        (**self).lite()
    }
    fn pg(&self) -> PgValue<'_> {
        (**self).pg()
    }
}

impl<T: Param> Param for Option<T> {
    fn lite(&self) -> ToSqlOutput<'_> {
        match self {
            Some(v) => v.lite(),
            None => ToSqlOutput::Owned(Value::Null),
        }
    }
    fn pg(&self) -> PgValue<'_> {
        match self {
            Some(v) => v.pg(),
            None => PgValue::Null,
        }
    }
}

struct Lite<'a>(&'a dyn Param);

impl rusqlite::ToSql for Lite<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.0.lite())
    }
}

fn lite_params<'a>(
    params: &'a [&'a dyn Param],
) -> rusqlite::ParamsFromIter<impl Iterator<Item = Lite<'a>>> {
    rusqlite::params_from_iter(params.iter().map(|p| Lite(*p)))
}

fn pg_values<'a>(params: &'a [&'a dyn Param]) -> Vec<PgValue<'a>> {
    params.iter().map(|p| p.pg()).collect()
}

fn pg_refs<'a>(values: &'a [PgValue<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

/// `params![a, b]`: the parameters of one statement.
#[macro_export]
macro_rules! params {
    () => { &[] as &[&dyn $crate::store::Param] };
    ($($p:expr),+ $(,)?) => { &[$(&$p as &dyn $crate::store::Param),+] as &[&dyn $crate::store::Param] };
}

#[cfg(test)]
mod tests {
    use super::postgres_text;

    #[test]
    fn placeholders_become_numbered_outside_quotes() {
        assert_eq!(
            postgres_text("SELECT a FROM t WHERE b = ?2 AND c = ?1"),
            "SELECT a FROM t WHERE b = $2 AND c = $1"
        );
        assert_eq!(postgres_text("VALUES (?, ?)"), "VALUES ($1, $2)");
        assert_eq!(
            postgres_text("SELECT '?1' || ?1 FROM \"a?\""),
            "SELECT '?1' || $1 FROM \"a?\""
        );
        assert_eq!(postgres_text("SELECT 1"), "SELECT 1");
    }

    #[test]
    fn values_runs_are_powers_of_two_so_few_texts_are_prepared() {
        let items: Vec<u32> = (0..1000).collect();
        let runs: Vec<usize> = super::pow2_runs(&items, 256).map(<[u32]>::len).collect();
        assert_eq!(runs, [256, 256, 256, 128, 64, 32, 8]);
        let flat: Vec<u32> = super::pow2_runs(&items, 256).flatten().copied().collect();
        assert_eq!(flat, items);
        assert_eq!(super::pow2_runs(&[] as &[u32], 4).count(), 0);
    }

    #[test]
    fn an_id_list_pads_to_a_power_of_two_so_few_texts_are_prepared() {
        let list = super::IdList::new(3, &[7, 8, 9]);
        assert_eq!(list.marks, "?3, ?4, ?5, ?6");
        let bound: Vec<i64> = list
            .params()
            .map(|p| match p.pg() {
                super::PgValue::Int(n) => n,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(bound, [7, 8, 9, 9]);
        let sizes: std::collections::BTreeSet<usize> = (1..=64)
            .map(|n| super::IdList::new(1, &vec![1; n]).marks.len())
            .collect();
        assert_eq!(sizes.len(), 7, "1, 2, 4, … 64 placeholders");
    }
}
