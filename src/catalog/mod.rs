//! The article catalog: articles and tags, written only through `Catalog::upsert` and
//! `Catalog::remove` (`store::upsert`/`remove`), which also journal which feeds each change touched.

pub mod import;
pub mod input;
pub mod sample;
pub mod store;

use std::collections::BTreeSet;

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};

use crate::store::Store;
use serde::Serialize;

pub use input::{ArticleInput, ArticleJson, InputError};

/// A URL-safe article slug: letters, digits, `-`, `_`, `.`, `~`; never a `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slug(String);

impl Slug {
    pub fn parse(raw: &str) -> Result<Slug, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        if s.len() > 200 {
            return Err("must be at most 200 characters".into());
        }
        if let Some(bad) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~')))
        {
            return Err(format!(
                "'{s}' contains '{bad}'; use only letters, digits, '-', '_', '.' and '~'"
            ));
        }
        if s.starts_with('.') {
            return Err(format!("'{s}' must not start with '.'"));
        }
        Ok(Slug(s.to_string()))
    }

    /// `Open Science & You!` → `open-science-you`; `None` when nothing slug-worthy is left.
    pub fn from_title(title: &str) -> Option<Slug> {
        let s = slug::slugify(title);
        let s: String = s.chars().take(120).collect();
        let s = s.trim_end_matches('-').to_string();
        (!s.is_empty()).then_some(Slug(s))
    }

    /// For a title with nothing to spell a URL with (`!!`, `…`): a slug from its hash, the same
    /// for the same title every time.
    pub fn from_title_hash(title: &str) -> Slug {
        Slug(format!(
            "article-{}",
            &blake3::hash(title.as_bytes()).to_hex()[..12]
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Slug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tag: its display name and the slug used in URLs (`Open Science` → `open-science`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tag {
    pub slug: String,
    pub name: String,
}

impl Tag {
    pub fn parse(raw: &str) -> Result<Tag, String> {
        let name = input::one_line(raw);
        if name.is_empty() {
            return Err("a tag name must not be empty".into());
        }
        if name.chars().count() > 100 {
            return Err(format!("tag '{name}' is longer than 100 characters"));
        }
        let mut slug = slug::slugify(&name);
        if slug.is_empty() {
            // Nothing to spell a URL with (`!!`, `…`): a slug from the name's hash, the same
            // for the same name every time.
            slug = format!("tag-{}", &blake3::hash(name.as_bytes()).to_hex()[..8]);
        }
        Ok(Tag { slug, name })
    }
}

/// An article as stored in the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Article {
    pub id: String,
    pub slug: String,
    pub title: String,
    pub url: String,
    pub summary: String,
    pub content_html: String,
    pub author: Option<String>,
    pub image: Option<String>,
    pub reading_time_minutes: Option<u32>,
    pub published_at: DateTime<FixedOffset>,
    pub updated_at: DateTime<FixedOffset>,
    /// When the article entered the catalog.
    pub added_at: DateTime<Utc>,
    /// In the article's order; the first is the primary tag.
    pub tags: Vec<Tag>,
}

/// The JSON shape of an article in API answers: the input field names, plus `id`, `added_at`
/// and the tags' slugs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Article)]
pub struct ArticleView<'a> {
    pub id: &'a str,
    pub slug: &'a str,
    pub title: &'a str,
    pub url: &'a str,
    pub summary: &'a str,
    pub content_html: &'a str,
    pub author: Option<&'a str>,
    pub published_at: String,
    pub updated_at: String,
    pub added_at: String,
    pub tags: Vec<&'a str>,
    pub tag_slugs: Vec<&'a str>,
    pub image: Option<&'a str>,
    pub reading_time_minutes: Option<u32>,
}

impl Article {
    pub fn view(&self) -> ArticleView<'_> {
        ArticleView {
            id: &self.id,
            slug: &self.slug,
            title: &self.title,
            url: &self.url,
            summary: &self.summary,
            content_html: &self.content_html,
            author: self.author.as_deref(),
            published_at: rfc3339(&self.published_at),
            updated_at: rfc3339(&self.updated_at),
            added_at: self.added_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            tags: self.tags.iter().map(|t| t.name.as_str()).collect(),
            tag_slugs: self.tags.iter().map(|t| t.slug.as_str()).collect(),
            image: self.image.as_deref(),
            reading_time_minutes: self.reading_time_minutes,
        }
    }
}

pub fn rfc3339(t: &DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Updated,
    Unchanged,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("database error: {0}")]
    Db(#[from] crate::store::Error),
}

/// A tag with the number of articles carrying it.
#[derive(Debug, Clone, Serialize)]
pub struct TagCount {
    pub slug: String,
    pub name: String,
    pub articles: u64,
}

/// The feeds touched by catalog changes: the site feeds always, plus these tags' feeds.
#[derive(Debug, Default, Clone)]
pub struct Changes {
    pub last_id: i64,
    pub any: bool,
    pub tag_slugs: BTreeSet<String>,
}

/// The catalog: an async handle on the store (cheap to clone). The SQL is in `store`.
#[derive(Clone)]
pub struct Catalog {
    store: Store,
}

impl Catalog {
    pub fn new(store: Store) -> Catalog {
        Catalog { store }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Inserts the article, or updates the one with the same slug (see `store::upsert`).
    pub async fn upsert(
        &self,
        input: ArticleInput,
        now: DateTime<Utc>,
    ) -> Result<(Upserted, Article), CatalogError> {
        self.store
            .write(move |db| store::upsert(db, &input, now))
            .await
    }

    /// Removes the article with this slug; `false` if there was none.
    pub async fn remove(&self, slug: String, now: DateTime<Utc>) -> Result<bool, CatalogError> {
        self.store
            .write(move |db| store::remove(db, &slug, now))
            .await
    }

    pub async fn get(&self, slug: String) -> Result<Option<Article>, CatalogError> {
        self.read(move |db| store::get(db, &slug)).await
    }

    pub async fn count(&self) -> Result<u64, CatalogError> {
        self.read(store::count).await
    }

    /// Newest first (by publication date), optionally only one tag's articles.
    pub async fn newest(
        &self,
        tag_slug: Option<String>,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<Article>, CatalogError> {
        self.read(move |db| store::newest(db, tag_slug.as_deref(), limit, offset))
            .await
    }

    /// A page of the catalog by key (see `store::page`).
    pub async fn page(
        &self,
        after: Option<store::PageKey>,
        limit: usize,
    ) -> Result<Vec<(store::PageKey, Article)>, CatalogError> {
        self.read(move |db| store::page(db, after, limit)).await
    }

    /// The articles with these ids (those that still exist), in no particular order.
    pub async fn by_ids(&self, ids: Vec<String>) -> Result<Vec<Article>, CatalogError> {
        self.read(move |db| store::by_ids(db, &ids)).await
    }

    /// Every tag, in name order, with its article count.
    pub async fn tags(&self) -> Result<Vec<TagCount>, CatalogError> {
        self.read(store::tags).await
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&crate::store::Db) -> Result<T, crate::store::Error> + Send + 'static,
    ) -> Result<T, CatalogError> {
        Ok(self.store.read(f).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh catalog on SQLite, and one on PostgreSQL when the tests were given a server.
    async fn catalogs() -> Vec<(Option<tempfile::TempDir>, Catalog)> {
        let dir = tempfile::tempdir().expect("tempdir");
        let lite = Store::open(&crate::store::Location::Sqlite(dir.path().join("t.db")), 2)
            .await
            .expect("open");
        let mut all = vec![(Some(dir), Catalog::new(lite))];
        if let Some(pg) = crate::store::tests::fresh_postgres().await {
            all.push((None, Catalog::new(Store::open(&pg, 4).await.expect("pg"))));
        }
        all
    }

    fn input(json: &str) -> ArticleInput {
        ArticleInput::parse(ArticleJson::from_json(json.as_bytes()).expect("json")).expect("valid")
    }

    async fn last_change(c: &Catalog) -> i64 {
        c.store().read(store::last_change).await.expect("journal")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reimporting_the_same_article_changes_nothing() {
        for (_d, c) in catalogs().await {
            let a = input(
                r#"{"title":"Hello","url":"https://x.example/hello","tags":["AI","Open Science"],"published_at":"2026-05-27T09:00:00Z"}"#,
            );
            let (o1, first) = c.upsert(a.clone(), Utc::now()).await.expect("insert");
            assert_eq!(o1, Upserted::Created);
            assert!(first.id.starts_with("urn:uuid:"));
            let before = last_change(&c).await;
            let (o2, second) = c.upsert(a, Utc::now()).await.expect("again");
            assert_eq!(o2, Upserted::Unchanged);
            assert_eq!(second, first);
            assert_eq!(last_change(&c).await, before);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changing_content_keeps_id_and_bumps_updated_at() {
        for (_d, c) in catalogs().await {
            let a = input(
                r#"{"title":"Hello","url":"https://x.example/hello","published_at":"2026-05-27T09:00:00Z"}"#,
            );
            let (_, first) = c.upsert(a, Utc::now()).await.expect("insert");
            let b =
                input(r#"{"slug":"hello","title":"Hello again","url":"https://x.example/hello"}"#);
            let (o, second) = c.upsert(b, Utc::now()).await.expect("update");
            assert_eq!(o, Upserted::Updated);
            assert_eq!(second.id, first.id);
            assert_eq!(second.published_at, first.published_at);
            assert!(second.updated_at > first.updated_at);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tags_keep_their_order_and_slug() {
        for (_d, c) in catalogs().await {
            let a =
                input(r#"{"title":"T","url":"https://x.example/t","tags":["Open Science","AI"]}"#);
            c.upsert(a, Utc::now()).await.expect("insert");
            let got = c.get("t".into()).await.expect("get").expect("exists");
            let slugs: Vec<&str> = got.tags.iter().map(|t| t.slug.as_str()).collect();
            assert_eq!(slugs, ["open-science", "ai"]);
            assert_eq!(got.tags[0].name, "Open Science");
            let in_tag = c
                .newest(Some("open-science".into()), 10, 0)
                .await
                .expect("newest");
            assert_eq!(in_tag.len(), 1);
            let names: Vec<String> = c
                .tags()
                .await
                .expect("tags")
                .into_iter()
                .map(|t| t.name)
                .collect();
            assert_eq!(names, ["AI", "Open Science"]);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn remove_records_when_feeds_lost_an_article() {
        for (_d, c) in catalogs().await {
            let a = input(r#"{"title":"T","url":"https://x.example/t","tags":["AI"]}"#);
            c.upsert(a, Utc::now()).await.expect("insert");
            assert!(c.remove("t".into(), Utc::now()).await.expect("remove"));
            assert!(!c
                .remove("t".into(), Utc::now())
                .await
                .expect("remove again"));
            let (site, ai) = c
                .store()
                .read(|db| {
                    Ok::<_, crate::store::Error>((
                        store::last_removal(db, "")?,
                        store::last_removal(db, "ai")?,
                    ))
                })
                .await
                .expect("q");
            assert!(site.is_some() && ai.is_some());
            assert_eq!(c.count().await.expect("count"), 0);
        }
    }

    /// What `upsert_many` answered and what the catalog then holds (minted ids blanked).
    async fn write_all(
        c: &Catalog,
        batch: bool,
        inputs: &[ArticleInput],
        now: DateTime<Utc>,
    ) -> Vec<String> {
        let outcomes: Vec<String> = if batch {
            let inputs = inputs.to_vec();
            c.store()
                .write(move |db| store::upsert_many(db, &inputs, now))
                .await
                .expect("batch")
                .into_iter()
                .map(|o| format!("{o:?}"))
                .collect()
        } else {
            let mut out = Vec::new();
            for i in inputs {
                out.push(match c.upsert(i.clone(), now).await {
                    Ok((o, _)) => format!("{:?}", Ok::<_, InputError>(o)),
                    Err(CatalogError::Input(e)) => format!("{:?}", Err::<Upserted, _>(e)),
                    Err(e) => panic!("{e}"),
                });
            }
            out
        };
        let articles = c.newest(None, 100, 0).await.expect("newest");
        let tags = c.tags().await.expect("tags");
        outcomes
            .into_iter()
            .chain(articles.into_iter().map(|mut a| {
                if a.id.starts_with("urn:uuid:") {
                    a.id.clear();
                }
                format!("{a:?}")
            }))
            .chain(tags.into_iter().map(|t| format!("{t:?}")))
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_writes_what_one_upsert_after_another_writes() {
        let inputs = [
            r#"{"title":"One","url":"https://x.example/1","tags":["AI","Open Science"],"published_at":"2026-05-27T09:00:00Z"}"#,
            r#"{"id":"guid-1","title":"Two","url":"https://x.example/2","tags":["Ai"],"published_at":"2026-05-26T09:00:00Z"}"#,
            r#"{"id":"guid-1","title":"Three","url":"https://x.example/3","tags":["Robots"]}"#,
            r#"{"slug":"one","title":"One again","url":"https://x.example/1","tags":["Robots"],"published_at":"2026-05-27T09:00:00Z"}"#,
            r#"{"slug":"two","id":"guid-2","title":"Two","url":"https://x.example/2"}"#,
        ]
        .map(input);
        for ((_d1, one_by_one), (_d2, batched)) in
            catalogs().await.into_iter().zip(catalogs().await)
        {
            let now = Utc::now();
            let expected = write_all(&one_by_one, false, &inputs, now).await;
            assert!(expected[2].contains("already belongs"), "{expected:?}");
            assert_eq!(write_all(&batched, true, &inputs, now).await, expected);
            let before = last_change(&batched).await;
            let touched = batched
                .store()
                .read(move |db| store::changes_since(db, before - 1))
                .await
                .expect("journal")
                .tag_slugs;
            assert_eq!(
                touched.into_iter().collect::<Vec<_>>(),
                ["ai", "open-science", "robots"],
                "the journal names every tag the batch touched, the dropped ones too"
            );
            let same = [inputs[1].clone(), inputs[3].clone()];
            let again = write_all(&batched, true, &same, Utc::now()).await;
            assert_eq!(again[..2], ["Ok(Unchanged)", "Ok(Unchanged)"]);
            assert_eq!(last_change(&batched).await, before, "no change, no journal");
        }
    }
}
