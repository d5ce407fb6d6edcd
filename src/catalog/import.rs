//! `tidings import`: a JSON array of articles, a folder of Markdown files with front matter, or an
//! existing RSS/Atom/JSON feed (file or http URL). Every entry goes through `ArticleInput::parse`
//! and the catalog's batch upsert; bad entries are reported by position and the good ones
//! imported. JSON arrays and Markdown folders are streamed (see `source`): memory does not grow
//! with the file.

use chrono::Utc;

use super::input::{ArticleInput, InputError};
use super::{Catalog, CatalogError, Upserted};

pub(crate) mod source;
#[cfg(test)]
mod tests;

pub use source::{feed_entries, json_entries, markdown_article, read_source};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot fetch {url}: {message}")]
    Fetch { url: String, message: String },
    #[error("{path} is not a JSON array of articles: {message}")]
    Json { path: String, message: String },
    #[error("{path} is not an RSS, Atom or JSON feed: {message}")]
    Feed { path: String, message: String },
    #[error("cannot start reading {path}: {source}")]
    Thread {
        path: String,
        source: std::io::Error,
    },
    #[error("reading {path} stopped unexpectedly (the entries before were imported)")]
    ReaderStopped { path: String },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// One entry of a source: where it was, a label for messages, and the article or what was wrong.
#[derive(Debug)]
pub struct Entry {
    pub position: usize,
    pub label: String,
    pub article: Result<ArticleInput, InputError>,
}

/// The entries of a source, in order: either all in memory (a feed, the sample), or read one
/// at a time by a reader thread that stays at most `READ_AHEAD` entries ahead of the writer.
pub struct Entries {
    /// How many entries the source holds (for the progress bar).
    pub total: usize,
    inner: Inner,
}

enum Inner {
    Held(std::vec::IntoIter<Entry>),
    Streamed {
        path: String,
        rx: tokio::sync::mpsc::Receiver<Result<Entry, ImportError>>,
        reader: Option<std::thread::JoinHandle<()>>,
    },
}

/// Entries read ahead of the writer: a batch, so that parsing the next batch overlaps with
/// writing this one.
const READ_AHEAD: usize = IMPORT_BATCH;

impl From<Vec<Entry>> for Entries {
    fn from(entries: Vec<Entry>) -> Self {
        Entries {
            total: entries.len(),
            inner: Inner::Held(entries.into_iter()),
        }
    }
}

impl Entries {
    /// Entries that `produce` reads on its own thread and hands to `emit` one by one (`emit`
    /// answers false once nobody listens any more: the import stopped).
    fn streamed<F>(path: &str, total: usize, produce: F) -> Result<Entries, ImportError>
    where
        F: FnOnce(&mut dyn FnMut(Entry) -> bool) -> Result<(), ImportError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
        let reader = std::thread::Builder::new()
            .name("import-reader".into())
            .spawn(move || {
                let mut emit = |entry: Entry| tx.blocking_send(Ok(entry)).is_ok();
                if let Err(e) = produce(&mut emit) {
                    let _ = tx.blocking_send(Err(e));
                }
            })
            .map_err(|e| ImportError::Thread {
                path: path.to_string(),
                source: e,
            })?;
        Ok(Entries {
            total,
            inner: Inner::Streamed {
                path: path.to_string(),
                rx,
                reader: Some(reader),
            },
        })
    }

    /// The next entry; `None` after the last.
    pub async fn next(&mut self) -> Option<Result<Entry, ImportError>> {
        match &mut self.inner {
            Inner::Held(entries) => entries.next().map(Ok),
            Inner::Streamed { path, rx, reader } => match rx.recv().await {
                Some(entry) => Some(entry),
                // The reader dropped its end: it finished, or it panicked.
                None => match reader.take().map(|r| r.join()) {
                    Some(Err(_)) => Some(Err(ImportError::ReaderStopped { path: path.clone() })),
                    _ => None,
                },
            },
        }
    }
}

#[derive(Debug, Default)]
pub struct Report {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// (position, label, problem)
    pub rejected: Vec<(usize, String, String)>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} new, {} updated, {} unchanged, {} rejected",
            self.created,
            self.updated,
            self.unchanged,
            self.rejected.len()
        )
    }
}

/// Articles written per transaction by an import: fewer, larger transactions write the pages
/// they share (indexes) fewer times. A batch also ends at `IMPORT_BATCH_BYTES` of text, so
/// that memory stays bounded however long the articles are.
const IMPORT_BATCH: usize = 1024;
const IMPORT_BATCH_BYTES: usize = 8 << 20;

/// Writes the entries through the catalog, calling `progress` after each.
pub async fn import_entries(
    catalog: &Catalog,
    mut entries: Entries,
    mut progress: impl FnMut(),
) -> Result<Report, ImportError> {
    let mut report = Report::default();
    // A source that carries one article twice (same slug) keeps the first: taking the last would
    // make every re-run flip the article between the two and move its `updated_at`.
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut batch: Vec<(usize, String, ArticleInput)> = Vec::with_capacity(IMPORT_BATCH);
    let mut batch_bytes = 0;
    loop {
        let next = entries.next().await.transpose()?;
        let done = next.is_none();
        if let Some(entry) = next {
            let article = entry.article.and_then(|a| match seen.get(a.slug.as_str()) {
                Some(first) => Err(InputError::new(
                    "slug",
                    format!(
                        "'{}' is already entry {first} of this source",
                        a.slug.as_str()
                    ),
                )),
                None => {
                    seen.insert(a.slug.as_str().to_string(), entry.position);
                    Ok(a)
                }
            });
            match article {
                Err(e) => {
                    report
                        .rejected
                        .push((entry.position, entry.label, e.to_string()));
                    progress();
                }
                Ok(article) => {
                    batch_bytes += article.content_html.len() + article.summary.len();
                    batch.push((entry.position, entry.label, article));
                }
            }
        }
        if batch.len() >= IMPORT_BATCH
            || batch_bytes >= IMPORT_BATCH_BYTES
            || (done && !batch.is_empty())
        {
            batch_bytes = 0;
            write_batch(
                catalog,
                std::mem::take(&mut batch),
                &mut report,
                &mut progress,
            )
            .await?;
        }
        if done {
            break;
        }
    }
    report.rejected.sort_by_key(|(position, _, _)| *position);
    Ok(report)
}

/// One transaction per batch; an article the catalog refuses (its id belongs to another) is
/// reported and the others are still written.
async fn write_batch(
    catalog: &Catalog,
    articles: Vec<(usize, String, ArticleInput)>,
    report: &mut Report,
    progress: &mut impl FnMut(),
) -> Result<(), CatalogError> {
    let (places, inputs): (Vec<(usize, String)>, Vec<ArticleInput>) = articles
        .into_iter()
        .map(|(position, label, article)| ((position, label), article))
        .unzip();
    let outcomes = catalog
        .store()
        .write(move |db| super::store::upsert_many(db, &inputs, Utc::now()))
        .await
        .map_err(CatalogError::Db)?;
    for ((position, label), outcome) in places.into_iter().zip(outcomes) {
        match outcome {
            Ok(Upserted::Created) => report.created += 1,
            Ok(Upserted::Updated) => report.updated += 1,
            Ok(Upserted::Unchanged) => report.unchanged += 1,
            Err(e) => report.rejected.push((position, label, e.to_string())),
        }
        progress();
    }
    Ok(())
}
