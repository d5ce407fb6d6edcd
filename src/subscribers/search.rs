//! Finding subscribers for the console: by any part of the address (`gmail`, `@example.org`,
//! `ann`) on an index of trigrams (FTS5 on SQLite, pg_trgm on PostgreSQL: migrations 012 and
//! V11, each a copy of address, status and tags kept by triggers), by status and by chosen tag; newest first, a page at a time by key (`after=<id>`), so a
//! new subscriber never shifts or repeats the rows of later pages; and how many match, counted
//! per request, exactly up to `COUNT_LIMIT`.

use std::fmt;

use crate::catalog::InputError;
use crate::store::{Db, Error, Param, Store};

use super::{store, Status, Subscriber};

/// The fewest characters a search may have: the index is of trigrams.
pub const MIN_CHARS: usize = 3;
/// The longest: an address is at most 254 characters.
pub const MAX_CHARS: usize = 254;
/// Matches are counted exactly up to here; beyond, the count is `MoreThan(COUNT_LIMIT)`.
pub const COUNT_LIMIT: u64 = 10_000;
/// Rows a page shows unless asked otherwise, and the most it may show.
pub const PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 500;
/// The most a page of `GET /api/subscribers` may show (`limit`).
pub const MAX_API_PAGE_SIZE: usize = 1000;

/// What to look for in addresses: 3 to 254 characters, no control characters, matched as
/// written (`%`, `_`, `"`, `*` and `\` are literal) and in any case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needle(String);

impl Needle {
    pub fn parse(raw: &str) -> Result<Needle, String> {
        let s = raw.trim();
        let chars = s.chars().count();
        if chars < MIN_CHARS {
            return Err(format!(
                "needs at least {MIN_CHARS} characters of the address (e.g. gmail or @example.org)"
            ));
        }
        if chars > MAX_CHARS {
            return Err(format!("must be at most {MAX_CHARS} characters"));
        }
        if s.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(Needle(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A `LIKE` pattern for the text anywhere, with `%`, `_` and `\` escaped (backslash is
    /// PostgreSQL's default escape character for `LIKE`).
    fn like_pattern(&self) -> String {
        let mut p = String::with_capacity(self.0.len() + 4);
        p.push('%');
        for c in self.0.chars() {
            if matches!(c, '%' | '_' | '\\') {
                p.push('\\');
            }
            p.push(c);
        }
        p.push('%');
        p
    }
}

/// Which subscribers a search (or a bulk action) is about: every filter given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    q: Option<Needle>,
    status: Option<Status>,
    tag: Option<String>,
}

impl Filter {
    /// Parses the fields as a form or query string gives them; an empty field is no filter.
    /// `tag` matches the subscribers who chose that tag (not those who chose none and so get
    /// every tag).
    pub fn parse(
        q: Option<&str>,
        status: Option<&str>,
        tag: Option<&str>,
    ) -> Result<Filter, InputError> {
        Ok(Filter {
            q: given(q)
                .map(Needle::parse)
                .transpose()
                .map_err(|p| InputError::new("q", p))?,
            status: given(status)
                .map(Status::parse)
                .transpose()
                .map_err(|p| InputError::new("status", p))?,
            tag: given(tag)
                .map(parse_tag)
                .transpose()
                .map_err(|p| InputError::new("tag", p))?,
        })
    }

    pub fn q(&self) -> Option<&str> {
        self.q.as_ref().map(Needle::as_str)
    }

    pub fn status(&self) -> Option<Status> {
        self.status
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The filter as an FTS5 query on SQLite's index (migration 012): the text as one literal
    /// phrase in the `email` column (the trigram tokenizer makes a phrase the trigrams of its
    /// text in a row: a substring match; inside double quotes only a doubled `"` means
    /// anything), the status's token in `status`, the tag between spaces in `tags`.
    fn fts_query(&self) -> String {
        let mut parts = Vec::with_capacity(3);
        if let Some(q) = &self.q {
            parts.push(format!("email : \"{}\"", q.0.replace('"', "\"\"")));
        }
        if let Some(status) = self.status {
            let token = match status {
                Status::Pending => " p ",
                Status::Confirmed => " c ",
                Status::Unsubscribed => " u ",
                Status::Bounced => " b ",
            };
            parts.push(format!("status : \"{token}\""));
        }
        if let Some(tag) = &self.tag {
            // A slug holds only lower-case letters, digits and `-`.
            parts.push(format!("tags : \" {tag} \""));
        }
        parts.join(" AND ")
    }
}

/// A form's field: `None` when absent or blank.
fn given(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|v| !v.is_empty())
}

/// A tag slug as the catalog makes them (`open-science`): lower-case letters, digits and `-`.
fn parse_tag(raw: &str) -> Result<String, String> {
    let s = raw.trim();
    let shown: String = s.chars().take(60).filter(|c| !c.is_control()).collect();
    if s.len() > 200
        || !s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(format!(
            "'{shown}' is not a tag slug (lower-case letters, digits and '-', e.g. open-science)"
        ));
    }
    Ok(s.to_string())
}

/// One request of the subscriber list: the filter, and where the page starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    pub filter: Filter,
    /// Show subscribers older than this id (the last id of the page before).
    pub after: Option<i64>,
}

impl SearchQuery {
    /// Parses the query string of `/admin/subscribers` (`q`, `status`, `tag`, `after`); each
    /// error names its field.
    pub fn parse(
        q: Option<&str>,
        status: Option<&str>,
        tag: Option<&str>,
        after: Option<&str>,
    ) -> Result<SearchQuery, InputError> {
        let filter = Filter::parse(q, status, tag)?;
        let after = after
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| match a.parse::<i64>() {
                Ok(id) if id > 0 => Ok(id),
                _ => Err(InputError::new(
                    "after",
                    format!(
                        "'{}' is not a subscriber id (a positive whole number)",
                        a.chars().take(30).collect::<String>()
                    ),
                )),
            })
            .transpose()?;
        Ok(SearchQuery { filter, after })
    }
}

/// How many subscribers match: exact up to `COUNT_LIMIT`, and only a bound beyond it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchCount {
    Exact(u64),
    MoreThan(u64),
}

/// `1,234` or `more than 10,000`.
impl fmt::Display for MatchCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MatchCount::Exact(n) => f.write_str(&grouped(*n)),
            MatchCount::MoreThan(n) => write!(f, "more than {}", grouped(*n)),
        }
    }
}

fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// One page of matches, newest first.
#[derive(Debug, Clone)]
pub struct Page {
    pub subscribers: Vec<Subscriber>,
    /// `after=` for the next page, when there is one.
    pub next_after: Option<i64>,
}

/// What the subscriber list shows for one request.
#[derive(Debug, Clone)]
pub struct Found {
    pub page: Page,
    pub count: MatchCount,
}

/// A page and the count, read in one snapshot so that they agree (after `refresh`).
pub async fn search(store: &Store, query: SearchQuery, page_size: usize) -> Result<Found, Error> {
    refresh(store).await?;
    store
        .snapshot(move |db| {
            Ok(Found {
                page: page(db, &query, page_size)?,
                count: count(db, &query.filter)?,
            })
        })
        .await
}

/// The ids `filter` matches now, newest first: what a confirmed bulk action applies to.
pub async fn matching(store: &Store, filter: Filter) -> Result<Vec<i64>, Error> {
    refresh(store).await?;
    store.snapshot(move |db| matching_ids(db, &filter)).await
}

/// Brings SQLite's index up to date when changes are queued: a short write, only then.
pub async fn refresh(store: &Store) -> Result<(), Error> {
    if store.is_postgres() {
        return Ok(());
    }
    let queued: bool = store
        .read(|db| {
            db.query_row(
                "SELECT EXISTS (SELECT 1 FROM subscriber_search_queue)",
                &[],
                |r| r.get(0),
            )
        })
        .await?;
    if queued {
        store.write(|db| sync(db).map(|_| ())).await?;
    }
    Ok(())
}

/// Re-indexes the subscribers whose entries the triggers queued (migration 012), in three
/// statements whatever their number, in the caller's write; how many entries were made. SQLite
/// only: PostgreSQL's index follows its table. The searches below read the index as of the last
/// sync (`search` and `matching` sync first).
pub fn sync(db: &Db) -> Result<usize, Error> {
    if db.is_postgres() {
        return Ok(0);
    }
    db.execute(
        "DELETE FROM subscriber_search WHERE rowid IN (SELECT id FROM subscriber_search_queue)",
        &[],
    )?;
    // The status's token is its first letter between spaces (`Filter::fts_query`).
    let made = db.execute(
        "INSERT INTO subscriber_search (rowid, email, status, tags) \
         SELECT s.id, s.email, ' ' || substr(s.status, 1, 1) || ' ', \
                coalesce((SELECT ' ' || group_concat(t.tag_slug, ' ') || ' ' FROM subscriber_tags t \
                          WHERE t.subscriber_id = s.id), '') \
         FROM subscriber_search_queue q JOIN subscribers s ON s.id = q.id",
        &[],
    )?;
    db.execute("DELETE FROM subscriber_search_queue", &[])?;
    Ok(made)
}

/// One value bound to a search statement.
enum Bind {
    Text(String),
    Int(i64),
}

impl Bind {
    fn param(&self) -> &dyn Param {
        match self {
            Bind::Text(s) => s,
            Bind::Int(n) => n,
        }
    }
}

/// A search as SQL: `FROM … WHERE …`, the column that holds each match's subscriber id (its
/// rows are ordered by it, newest first, and paged by it), and the values bound, `?1` onwards.
struct Matches {
    from_where: String,
    id: &'static str,
    binds: Vec<Bind>,
}

impl Matches {
    fn new(db: &Db, filter: &Filter, after: Option<i64>) -> Matches {
        let mut binds = Vec::new();
        let mut next = |b: Bind| {
            binds.push(b);
            binds.len()
        };
        let lite = !db.is_postgres();
        let whole_index = filter.q.is_some() || (filter.status.is_some() && filter.tag.is_some());
        let (mut sql, id) = match (&filter.q, filter.status, &filter.tag) {
            // FTS5 gives its matches in rowid (subscriber id) order, newest first when asked,
            // and takes the page key itself. Status and tags are in the index, so a search with
            // filters is one walk of it, not a look at each match's rows.
            _ if whole_index && lite => {
                let n = next(Bind::Text(filter.fts_query()));
                (
                    format!("FROM subscriber_search WHERE subscriber_search MATCH ?{n}"),
                    "subscriber_search.rowid",
                )
            }
            // PostgreSQL's narrow copy of the address (lower-cased), status and tags, with one
            // GIN index over the three (V11).
            _ if whole_index => {
                let mut sql = "FROM subscriber_search f WHERE 1 = 1".to_string();
                if let Some(needle) = &filter.q {
                    let n = next(Bind::Text(needle.like_pattern()));
                    sql.push_str(&format!(" AND f.email LIKE lower(?{n})"));
                }
                if let Some(status) = filter.status {
                    let n = next(Bind::Text(status.as_str().to_string()));
                    sql.push_str(&format!(" AND f.status = ?{n}"));
                }
                if let Some(tag) = &filter.tag {
                    let n = next(Bind::Text(tag.clone()));
                    sql.push_str(&format!(" AND f.tags @> ARRAY[CAST(?{n} AS TEXT)]"));
                }
                (sql, "f.id")
            }
            // A tag alone: its index, newest first.
            (None, None, Some(tag)) => {
                let n = next(Bind::Text(tag.clone()));
                (
                    format!("FROM subscriber_tags t WHERE t.tag_slug = ?{n}"),
                    "t.subscriber_id",
                )
            }
            // A status alone, a status or nothing: the subscribers' own indexes.
            _ => {
                let mut sql = "FROM subscribers s WHERE 1 = 1".to_string();
                if let Some(status) = filter.status {
                    let n = next(Bind::Text(status.as_str().to_string()));
                    sql.push_str(&format!(" AND s.status = ?{n}"));
                }
                (sql, "s.id")
            }
        };
        if let Some(after) = after {
            let n = next(Bind::Int(after));
            sql.push_str(&format!(" AND {id} < ?{n}"));
        }
        Matches {
            from_where: sql,
            id,
            binds,
        }
    }

    /// The next placeholder number.
    fn next_mark(&self) -> usize {
        self.binds.len() + 1
    }

    fn params<'a>(&'a self, extra: &'a [&'a dyn Param]) -> Vec<&'a dyn Param> {
        self.binds
            .iter()
            .map(Bind::param)
            .chain(extra.iter().copied())
            .collect()
    }
}

/// On PostgreSQL, plan each search for its own values: a plan made once for any pattern (a
/// generic plan, which a prepared statement switches to after five runs) cannot tell `gmail`
/// (a third of the list: walk the newest rows) from a rare name (use the trigram index).
/// Lasts until the end of the caller's transaction; outside one it changes nothing.
fn plan_per_value(db: &Db) -> Result<(), Error> {
    if db.is_postgres() {
        db.query_row(
            "SELECT set_config('plan_cache_mode', 'force_custom_plan', true)",
            &[],
            |_| Ok(()),
        )?;
    }
    Ok(())
}

/// The page of `query`, newest first: at most `size` subscribers (1 to `MAX_API_PAGE_SIZE`; the
/// console asks for at most `MAX_PAGE_SIZE`).
pub fn page(db: &Db, query: &SearchQuery, size: usize) -> Result<Page, Error> {
    plan_per_value(db)?;
    let size = size.clamp(1, MAX_API_PAGE_SIZE);
    let m = Matches::new(db, &query.filter, query.after);
    let limit = size + 1;
    let extra: [&dyn Param; 1] = [&limit];
    let mut ids: Vec<i64> = db.query_map(
        &format!(
            "SELECT {id} {} ORDER BY {id} DESC LIMIT ?{}",
            m.from_where,
            m.next_mark(),
            id = m.id
        ),
        &m.params(&extra),
        |r| r.get(0),
    )?;
    let more = ids.len() > size;
    ids.truncate(size);
    let mut found = store::get_many(db, &ids)?;
    let subscribers: Vec<Subscriber> = ids.iter().filter_map(|id| found.remove(id)).collect();
    Ok(Page {
        next_after: if more { ids.last().copied() } else { None },
        subscribers,
    })
}

/// How many subscribers `filter` matches, reading at most `COUNT_LIMIT + 1` of them.
pub fn count(db: &Db, filter: &Filter) -> Result<MatchCount, Error> {
    plan_per_value(db)?;
    let m = Matches::new(db, filter, None);
    let limit = COUNT_LIMIT + 1;
    let extra: [&dyn Param; 1] = [&limit];
    let n: u64 = db.query_row(
        &format!(
            "SELECT count(*) FROM (SELECT 1 {} LIMIT ?{}) AS matched",
            m.from_where,
            m.next_mark()
        ),
        &m.params(&extra),
        |r| r.get(0),
    )?;
    Ok(if n > COUNT_LIMIT {
        MatchCount::MoreThan(COUNT_LIMIT)
    } else {
        MatchCount::Exact(n)
    })
}

/// Every id `filter` matches, newest first.
pub fn matching_ids(db: &Db, filter: &Filter) -> Result<Vec<i64>, Error> {
    plan_per_value(db)?;
    let m = Matches::new(db, filter, None);
    db.query_map(
        &format!("SELECT {id} {} ORDER BY {id} DESC", m.from_where, id = m.id),
        &m.params(&[]),
        |r| r.get(0),
    )
}

#[cfg(test)]
pub(crate) mod tests;
