//! Planning a digest: which articles are new to a subscriber and how they are grouped. A pure
//! function of (subscriber, articles, now), tested without I/O.

use chrono::{DateTime, Duration, Utc};

use crate::catalog::{Article, Tag};

/// What planning needs to know about a subscriber.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    /// Followed tag slugs; empty means every tag.
    pub tags: &'a [String],
    /// Articles that entered the catalog after this are new to them.
    pub window_start: DateTime<Utc>,
}

/// One section of a digest: a tag (or `None` for the final "More") and its articles, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Section<'a> {
    pub tag: Option<&'a Tag>,
    pub articles: Vec<&'a Article>,
}

/// A planned digest: its sections in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan<'a> {
    pub sections: Vec<Section<'a>>,
}

impl Plan<'_> {
    pub fn count(&self) -> usize {
        self.sections.iter().map(|s| s.articles.len()).sum()
    }

    /// The article ids, section by section.
    pub fn article_ids(&self) -> Vec<String> {
        self.sections
            .iter()
            .flat_map(|s| s.articles.iter().map(|a| a.id.clone()))
            .collect()
    }

    /// "5 new articles in AI, Open Science"
    pub fn summary(&self) -> String {
        let count = self.count();
        let names: Vec<&str> = self
            .sections
            .iter()
            .map(|s| s.tag.map(|t| t.name.as_str()).unwrap_or("More"))
            .collect();
        format!(
            "{count} new article{} in {}",
            if count == 1 { "" } else { "s" },
            names.join(", ")
        )
    }
}

/// Whether `article` is new in `(window_start, now]`: it entered the catalog in that window and was
/// published no more than `max_age` before `now`.
pub fn is_new(
    article: &Article,
    window_start: DateTime<Utc>,
    now: DateTime<Utc>,
    max_age: Duration,
) -> bool {
    article.added_at > window_start
        && article.added_at <= now
        && article.published_at.with_timezone(&Utc) >= now - max_age
}

/// When an instant reader's digest is due: `delay` after the first article they follow that
/// entered the catalog after `reader.window_start` (and is recent), or `None` when there is
/// none. Articles added later do not push it back.
pub fn instant_due(
    reader: &Reader<'_>,
    articles: &[Article],
    now: DateTime<Utc>,
    max_age: Duration,
    delay: Duration,
) -> Option<DateTime<Utc>> {
    let follows = |a: &Article| {
        reader.tags.is_empty() || a.tags.iter().any(|t| reader.tags.contains(&t.slug))
    };
    articles
        .iter()
        .filter(|a| is_new(a, reader.window_start, now, max_age) && follows(a))
        .map(|a| a.added_at)
        .min()
        .map(|first| first + delay)
}

/// The digest for `reader` from `articles` at `now`, or `None` when nothing is new.
///
/// Each article appears once, under the first of its own tags (in the article's order) that the
/// reader follows; a reader of every tag gets untagged articles in a final "More" section.
/// Sections are ordered by their newest article; articles within a section newest first.
pub fn plan<'a>(
    reader: &Reader<'_>,
    articles: &'a [Article],
    now: DateTime<Utc>,
    max_age: Duration,
) -> Option<Plan<'a>> {
    let new: Vec<&'a Article> = articles
        .iter()
        .filter(|a| is_new(a, reader.window_start, now, max_age))
        .collect();
    let sections = group(reader.tags, new, false);
    (!sections.is_empty()).then_some(Plan { sections })
}

/// Groups articles into sections for a reader following `tags` (empty = every tag). With
/// `keep_unmatched`, articles under none of the followed tags go to "More" instead of being
/// dropped (used when sending a digest planned before the reader changed their tags).
pub fn group<'a>(
    tags: &[String],
    articles: Vec<&'a Article>,
    keep_unmatched: bool,
) -> Vec<Section<'a>> {
    let all_tags = tags.is_empty();
    let mut sections: Vec<Section<'a>> = Vec::new();
    let mut more: Vec<&'a Article> = Vec::new();
    for article in articles {
        let home = article
            .tags
            .iter()
            .find(|t| all_tags || tags.contains(&t.slug));
        match home {
            Some(tag) => match sections.iter_mut().find(|s| s.tag == Some(tag)) {
                Some(section) => section.articles.push(article),
                None => sections.push(Section {
                    tag: Some(tag),
                    articles: vec![article],
                }),
            },
            None if keep_unmatched || (all_tags && article.tags.is_empty()) => more.push(article),
            None => {}
        }
    }
    let newest_first = |a: &&Article, b: &&Article| {
        b.published_at
            .cmp(&a.published_at)
            .then_with(|| b.added_at.cmp(&a.added_at))
    };
    for section in &mut sections {
        section.articles.sort_by(newest_first);
    }
    sections.sort_by(|a, b| newest_first(&a.articles[0], &b.articles[0]));
    if !more.is_empty() {
        more.sort_by(newest_first);
        sections.push(Section {
            tag: None,
            articles: more,
        });
    }
    sections
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn tag(name: &str) -> Tag {
        Tag::parse(name).expect("tag")
    }

    fn article(slug: &str, tags: &[&str], published: &str, added: &str) -> Article {
        Article {
            id: format!("urn:{slug}"),
            slug: slug.into(),
            title: slug.into(),
            url: format!("https://x.example/{slug}"),
            summary: String::new(),
            content_html: String::new(),
            author: None,
            image: None,
            reading_time_minutes: None,
            published_at: DateTime::parse_from_rfc3339(published).expect("published"),
            updated_at: DateTime::parse_from_rfc3339(published).expect("published"),
            added_at: t(added),
            tags: tags.iter().map(|n| tag(n)).collect(),
        }
    }

    const WEEK: i64 = 7;

    fn slugs(plan: &Plan<'_>) -> Vec<(String, Vec<String>)> {
        plan.sections
            .iter()
            .map(|s| {
                (
                    s.tag.map(|t| t.name.clone()).unwrap_or("More".into()),
                    s.articles.iter().map(|a| a.slug.clone()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn groups_by_the_first_followed_tag_and_orders_sections_by_newest() {
        let articles = vec![
            article(
                "a",
                &["AI", "Open Science"],
                "2027-01-10T08:00:00Z",
                "2027-01-10T08:00:00Z",
            ),
            article(
                "b",
                &["Open Science"],
                "2027-01-10T09:00:00Z",
                "2027-01-10T09:00:00Z",
            ),
            article(
                "c",
                &["Ethics", "AI"],
                "2027-01-10T07:00:00Z",
                "2027-01-10T07:00:00Z",
            ),
            article("d", &[], "2027-01-10T10:00:00Z", "2027-01-10T10:00:00Z"),
        ];
        let everything = Reader {
            tags: &[],
            window_start: t("2027-01-09T00:00:00Z"),
        };
        let p = plan(
            &everything,
            &articles,
            t("2027-01-11T00:00:00Z"),
            Duration::days(WEEK),
        )
        .expect("plan");
        assert_eq!(
            slugs(&p),
            vec![
                ("Open Science".into(), vec!["b".into()]),
                ("AI".into(), vec!["a".into()]),
                ("Ethics".into(), vec!["c".into()]),
                ("More".into(), vec!["d".into()]),
            ]
        );
        assert_eq!(
            p.summary(),
            "4 new articles in Open Science, AI, Ethics, More"
        );

        let follows = ["ai".to_string(), "open-science".to_string()];
        let some = Reader {
            tags: &follows,
            window_start: t("2027-01-09T00:00:00Z"),
        };
        let p = plan(
            &some,
            &articles,
            t("2027-01-11T00:00:00Z"),
            Duration::days(WEEK),
        )
        .expect("plan");
        assert_eq!(
            slugs(&p),
            vec![
                ("Open Science".into(), vec!["b".into()]),
                ("AI".into(), vec!["a".into(), "c".into()]),
            ],
            "c is under AI (its first followed tag); untagged d is not for tag followers"
        );
    }

    #[test]
    fn only_what_entered_the_catalog_in_the_window_and_is_recent() {
        let articles = vec![
            // published 09:00, added 09:05, after a 09:02 digest: still new.
            article(
                "late",
                &["AI"],
                "2027-01-10T09:00:00Z",
                "2027-01-10T09:05:00Z",
            ),
            // in the previous window.
            article(
                "seen",
                &["AI"],
                "2027-01-10T08:00:00Z",
                "2027-01-10T08:30:00Z",
            ),
            // an imported old post: entered now, published long ago.
            article(
                "history",
                &["AI"],
                "2020-01-01T00:00:00Z",
                "2027-01-10T09:30:00Z",
            ),
        ];
        let reader = Reader {
            tags: &[],
            window_start: t("2027-01-10T09:02:00Z"),
        };
        let p = plan(
            &reader,
            &articles,
            t("2027-01-11T09:02:00Z"),
            Duration::days(WEEK),
        )
        .expect("plan");
        assert_eq!(slugs(&p), vec![("AI".into(), vec!["late".into()])]);
    }

    #[test]
    fn an_instant_digest_is_due_a_delay_after_the_first_new_article_it_follows() {
        let articles = vec![
            article(
                "second",
                &["AI"],
                "2027-01-10T09:01:00Z",
                "2027-01-10T09:01:00Z",
            ),
            article(
                "first",
                &["AI"],
                "2027-01-10T09:00:00Z",
                "2027-01-10T09:00:00Z",
            ),
            article(
                "earlier-but-other-tag",
                &["Ethics"],
                "2027-01-10T08:00:00Z",
                "2027-01-10T08:00:00Z",
            ),
            article(
                "already-handled",
                &["AI"],
                "2027-01-10T07:00:00Z",
                "2027-01-10T07:00:00Z",
            ),
        ];
        let follows = ["ai".to_string()];
        let reader = Reader {
            tags: &follows,
            window_start: t("2027-01-10T07:30:00Z"),
        };
        let delay = Duration::minutes(10);
        let now = t("2027-01-10T09:02:00Z");
        assert_eq!(
            instant_due(&reader, &articles, now, Duration::days(WEEK), delay),
            Some(t("2027-01-10T09:10:00Z")),
            "from the first new article it follows; the second does not push it back"
        );
        let everything = Reader {
            tags: &[],
            window_start: t("2027-01-10T07:30:00Z"),
        };
        assert_eq!(
            instant_due(&everything, &articles, now, Duration::days(WEEK), delay),
            Some(t("2027-01-10T08:10:00Z"))
        );
        let caught_up = Reader {
            tags: &follows,
            window_start: t("2027-01-10T09:01:00Z"),
        };
        assert_eq!(
            instant_due(&caught_up, &articles, now, Duration::days(WEEK), delay),
            None
        );
    }

    #[test]
    fn nothing_new_means_no_digest() {
        let articles = vec![article(
            "a",
            &["AI"],
            "2027-01-10T08:00:00Z",
            "2027-01-10T08:00:00Z",
        )];
        let follows = ["ethics".to_string()];
        let reader = Reader {
            tags: &follows,
            window_start: t("2027-01-09T00:00:00Z"),
        };
        assert!(plan(
            &reader,
            &articles,
            t("2027-01-11T00:00:00Z"),
            Duration::days(WEEK)
        )
        .is_none());
        let everyone = Reader {
            tags: &[],
            window_start: t("2027-01-10T08:00:00Z"),
        };
        assert!(plan(
            &everyone,
            &articles,
            t("2027-01-11T00:00:00Z"),
            Duration::days(WEEK)
        )
        .is_none());
    }
}
