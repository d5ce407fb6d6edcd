//! Times the console's subscriber search (`subscribers::search`) on a large list, as the
//! `/admin/subscribers` handler calls it: a page of 50 and the count, in one snapshot.
//!
//! Usage: `cargo run --release --example bench_search -- DATABASE [ROUNDS]`
//!
//! `DATABASE` is a SQLite file (e.g. one `scripts/seed_console.py` wrote) or a `postgres://` URL
//! (the same list copied there with `tidings migrate`). Each search is run once to warm up, then
//! `ROUNDS` times (default 40), round-robin with the others; prints, per search, how many match
//! and the p50/p95/max in milliseconds of the request (page and count), of the page alone and of
//! the count alone. The targets at the function are p50 ≤ 20 ms (the HTTP answer's are p50 ≤ 50
//! ms, p95 ≤ 150 ms).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use tidings::store::{Location, Store};
use tidings::subscribers::search::{self, SearchQuery};

/// A search: its label, `q`, `status`, `tag`.
type Search = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

/// The searches of issue 25's benchmark and their neighbours.
const SEARCHES: &[Search] = &[
    ("q=gmail", Some("gmail"), None, None),
    (
        "q=gmail status=confirmed",
        Some("gmail"),
        Some("confirmed"),
        None,
    ),
    (
        "q=gmail status=bounced",
        Some("gmail"),
        Some("bounced"),
        None,
    ),
    ("q=@example.org", Some("@example.org"), None, None),
    (
        "q=@example.org status=pending",
        Some("@example.org"),
        Some("pending"),
        None,
    ),
    ("q=ann", Some("ann"), None, None),
    (
        "q=ann status=unsubscribed",
        Some("ann"),
        Some("unsubscribed"),
        None,
    ),
    ("q=quirin (rare)", Some("quirin"), None, None),
    (
        "q=quirin status=confirmed",
        Some("quirin"),
        Some("confirmed"),
        None,
    ),
    ("q=xqzw (none)", Some("xqzw"), None, None),
    ("q=gmail tag=rust", Some("gmail"), None, Some("rust")),
    ("status=bounced", None, Some("bounced"), None),
    ("tag=rust", None, None, Some("rust")),
    ("everyone", None, None, None),
];

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

fn summary(times: &mut [Duration]) -> String {
    times.sort();
    format!(
        "{:>7.2} {:>7.2} {:>7.2}",
        percentile(times, 0.5),
        percentile(times, 0.95),
        percentile(times, 1.0)
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(database) = args.first() else {
        eprintln!("usage: bench_search DATABASE [ROUNDS]");
        return ExitCode::from(2);
    };
    let rounds: usize = match args.get(1).map(|r| r.parse()) {
        None => 40,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("error: ROUNDS must be a positive whole number");
            return ExitCode::from(2);
        }
    };
    let location = if database.starts_with("postgres://") || database.starts_with("postgresql://") {
        Location::Postgres(database.clone())
    } else {
        Location::Sqlite(database.into())
    };
    let store = match Store::open(&location, 4).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let queries: Vec<SearchQuery> = SEARCHES
        .iter()
        .map(|(_, q, status, tag)| SearchQuery::parse(*q, *status, *tag, None))
        .collect::<Result<_, _>>()
        .expect("the searches parse");
    // [request, page, count] per search.
    let mut times: Vec<[Vec<Duration>; 3]> = vec![Default::default(); queries.len()];
    let mut found = vec![String::new(); queries.len()];
    for round in 0..=rounds {
        for (i, query) in queries.iter().enumerate() {
            let started = Instant::now();
            let answer = match search::search(&store, query.clone(), search::PAGE_SIZE).await {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("error: {}: {e}", SEARCHES[i].0);
                    return ExitCode::FAILURE;
                }
            };
            let request = started.elapsed();
            let q = query.clone();
            let started = Instant::now();
            store
                .snapshot(move |db| search::page(db, &q, search::PAGE_SIZE))
                .await
                .expect("page");
            let page = started.elapsed();
            let filter = query.filter.clone();
            let started = Instant::now();
            store
                .snapshot(move |db| search::count(db, &filter))
                .await
                .expect("count");
            let count = started.elapsed();
            if round == 0 {
                found[i] = answer.count.to_string();
                continue;
            }
            times[i][0].push(request);
            times[i][1].push(page);
            times[i][2].push(count);
        }
    }
    let engine = if store.is_postgres() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!("subscriber search on {engine}, {rounds} rounds, ms (p50 p95 max)");
    println!(
        "{:<32} {:>18} | {:^23} | {:^23} | {:^23}",
        "search", "matches", "request", "page of 50", "count"
    );
    for (i, (label, ..)) in SEARCHES.iter().enumerate() {
        let [request, page, count] = &mut times[i];
        println!(
            "{:<32} {:>18} | {} | {} | {}",
            label,
            found[i],
            summary(request),
            summary(page),
            summary(count)
        );
    }
    let mut all: Vec<Duration> = times.iter().flat_map(|t| t[0].iter().copied()).collect();
    println!("{:<32} {:>18} | {}", "every request", "", summary(&mut all));
    ExitCode::SUCCESS
}
