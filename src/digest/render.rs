//! A digest's email: rendered from the templates, and encoded once for every reader who sees
//! the same content (their links are filled in later).

use super::*;

/// Encoded digest bodies shared by every recipient who would see the same thing.
#[derive(Default)]
pub(super) struct BodyCache {
    pub(super) bodies: std::collections::HashMap<String, Arc<BodyTemplate>>,
    pub(super) bytes: usize,
}

/// Most bytes of encoded bodies kept at once (a run with more distinct digests re-renders some).
const BODY_CACHE_BYTES: usize = 16 << 20;

impl Digests {
    /// The encoded body of a delivery's digest as this subscriber sees it, with placeholders for
    /// their links: rendered once per distinct content (sections, articles, local dates) per run.
    pub(super) fn body_template(
        &self,
        d: &Claimed,
        subscriber: &Subscriber,
        articles: &[Article],
    ) -> Result<Arc<BodyTemplate>, DigestError> {
        use std::fmt::Write as _;
        let sections = plan::group(
            &subscriber.preferences.tags,
            articles.iter().collect(),
            true,
        );
        let zone = subscriber.preferences.time_zone.0;
        let day = |t: DateTime<chrono::FixedOffset>| t.with_timezone(&zone).date_naive();
        let mut key = format!("{}|{}", d.run_id, day(d.window_end.fixed_offset()));
        for s in &sections {
            let _ = write!(key, "|{}", s.tag.map(|t| t.slug.as_str()).unwrap_or(""));
            for a in &s.articles {
                let _ = write!(key, ",{}@{}", a.id, day(a.published_at));
            }
        }
        if let Some(hit) = self
            .body_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bodies
            .get(&key)
        {
            return Ok(hit.clone());
        }
        let [prefs, unsub] = &self.placeholders;
        let links = PersonalLinks {
            preferences: self.config.site_url(&format!("/preferences/{prefs}")),
            unsubscribe: self.config.site_url(&format!("/unsubscribe/{unsub}")),
            archive: self.config.site_url(&format!("/digests/{}", d.run_id)),
        };
        let rendered = self.render(sections, d.window_end, zone, Some(&links))?;
        let template = Arc::new(
            BodyTemplate::new(
                rendered.subject,
                rendered.text,
                rendered.html,
                &[prefs, unsub],
                self.mailer.signs(),
            )
            .map_err(DigestError::Template)?,
        );
        let mut cache = self
            .body_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if cache.bytes + template.size() > BODY_CACHE_BYTES {
            *cache = BodyCache::default();
        }
        cache.bytes += template.size();
        cache.bodies.insert(key, template.clone());
        Ok(template)
    }

    /// Renders the digest email (personal with `links`, else the archive's generic version).
    pub fn render(
        &self,
        sections: Vec<Section<'_>>,
        now: DateTime<Utc>,
        zone: chrono_tz::Tz,
        links: Option<&PersonalLinks>,
    ) -> Result<RenderedDigest, DigestError> {
        let plan = Plan { sections };
        let config = &self.config;
        let sections: Vec<Value> = plan
            .sections
            .iter()
            .map(|s| {
                let (name, feed) = match s.tag {
                    Some(t) => (t.name.clone(), config.site_url(&format!("/tags/{}/feed.xml", t.slug))),
                    None => ("More".to_string(), config.site_url("/feed.xml")),
                };
                let articles: Vec<Value> = s
                    .articles
                    .iter()
                    .map(|a| {
                        context! {
                            title => &a.title,
                            url => &a.url,
                            date => a.published_at.with_timezone(&zone).format("%B %-d, %Y").to_string(),
                            reading_time_minutes => a.reading_time_minutes,
                            summary => &a.summary,
                        }
                    })
                    .collect();
                context! { name => name, feed_url => feed, articles => articles }
            })
            .collect();
        let ctx = context! {
            site => &config.site.title,
            site_url => config.site_url("/"),
            summary => plan.summary(),
            count => plan.count(),
            date => now.with_timezone(&zone).format("%B %-d, %Y").to_string(),
            sections => sections,
            personal => links.is_some(),
            preferences_url => links.map(|l| l.preferences.clone()).unwrap_or_default(),
            unsubscribe_url => links.map(|l| l.unsubscribe.clone()).unwrap_or_default(),
            archive_url => links.map(|l| l.archive.clone()).unwrap_or_default(),
            subscribe_url => config.site_url("/subscribe"),
        };
        let subject = self
            .templates
            .render_line(&config.digest.subject, ctx.clone())
            .map_err(DigestError::Template)?;
        let body = self
            .templates
            .render("digest", ctx)
            .map_err(DigestError::Template)?;
        Ok(RenderedDigest {
            subject,
            text: body.text,
            html: body.html,
        })
    }
}

pub struct PersonalLinks {
    pub preferences: String,
    pub unsubscribe: String,
    pub archive: String,
}

pub struct RenderedDigest {
    pub subject: String,
    pub text: String,
    pub html: String,
}
