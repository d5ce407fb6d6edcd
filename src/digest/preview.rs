//! `tidings digest preview`: the next digest one subscriber would get, and why.

use super::*;

impl Digests {
    /// `tidings digest preview`: the next digest for one subscriber and why, changing nothing.
    pub async fn preview(
        self: &Arc<Self>,
        email: crate::subscribers::SubscriberEmail,
        now: DateTime<Utc>,
    ) -> Result<Preview, DigestError> {
        let this = self.clone();
        self.store
            .read(move |db| this.preview_in(db, &email, now))
            .await
    }

    fn preview_in(
        &self,
        conn: &Db,
        email: &crate::subscribers::SubscriberEmail,
        now: DateTime<Utc>,
    ) -> Result<Preview, DigestError> {
        let subscriber = store::find(conn, email)?
            .ok_or_else(|| DigestError::Internal(format!("no subscriber {email}")))?;
        let candidate = ledger::candidate(conn, subscriber.id)?;
        let digest = &self.config.digest;
        let weekly_day = due::parse_weekday(&digest.weekly_day).unwrap_or(chrono::Weekday::Mon);
        let max_age = Duration::days(i64::from(digest.max_age_days));
        let slot = due::current_slot(
            subscriber.preferences.cadence,
            subscriber.preferences.time_zone.0,
            digest.send_hour,
            weekly_day,
            now,
        );
        let mut lines = vec![format!(
            "{}: {}, {} in {}, tags: {}",
            subscriber.email,
            subscriber.status.as_str(),
            subscriber.preferences.cadence.as_str(),
            subscriber.preferences.time_zone.name(),
            if subscriber.preferences.tags.is_empty() {
                "every tag".to_string()
            } else {
                subscriber.preferences.tags.join(", ")
            }
        )];
        let Some(c) = candidate else {
            lines.push(if subscriber.status == Status::Confirmed {
                "not planned: a digest for them is still being delivered".into()
            } else {
                format!("gets no digest: {}", subscriber.status.as_str())
            });
            return Ok(Preview { lines, html: None });
        };
        let articles = crate::catalog::store::added_since(conn, c.window_start, now - max_age)?;
        if c.cadence == crate::subscribers::Cadence::Instant {
            lines.push(match self.instant_due_of(&c, &articles, now) {
                Some(at) if at <= now => format!("due now (instant, since {})", at.to_rfc3339()),
                Some(at) => format!(
                    "not due: instant, at {} ({} s after the first article new to them)",
                    at.to_rfc3339(),
                    digest.instant_delay_seconds
                ),
                None => format!(
                    "not due: instant, {} s after the next article new to them",
                    digest.instant_delay_seconds
                ),
            });
        } else {
            let next_slot = due::current_slot(
                c.cadence,
                c.zone.0,
                digest.send_hour,
                weekly_day,
                now + Duration::days(if c.cadence == crate::subscribers::Cadence::Weekly {
                    7
                } else {
                    1
                }),
            );
            if due::is_due(c.last_slot, slot) {
                lines.push(format!(
                    "due now (slot {} in their time zone)",
                    slot.with_timezone(&c.zone.0).format("%Y-%m-%d %H:%M %Z")
                ));
            } else {
                lines.push(format!(
                    "not due: this slot was handled; next at {}",
                    next_slot
                        .with_timezone(&c.zone.0)
                        .format("%Y-%m-%d %H:%M %Z")
                ));
            }
        }
        lines.push(format!(
            "new means: added after {} and published after {}",
            c.window_start.to_rfc3339(),
            (now - max_age).to_rfc3339()
        ));
        let everyone = Reader {
            tags: &[],
            window_start: c.window_start,
        };
        let mine = Reader {
            tags: &c.tags,
            window_start: c.window_start,
        };
        let all = plan::plan(&everyone, &articles, now, max_age);
        let planned = plan::plan(&mine, &articles, now, max_age);
        let kept: Vec<String> = planned
            .as_ref()
            .map(|p| p.article_ids())
            .unwrap_or_default();
        if let Some(all) = &all {
            for s in &all.sections {
                for a in &s.articles {
                    if !kept.contains(&a.id) {
                        lines.push(format!(
                            "filtered out by tag: {} [{}]",
                            a.title,
                            a.tags
                                .iter()
                                .map(|t| t.slug.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                }
            }
        }
        let html = match planned {
            None => {
                lines.push("nothing new: no email would be sent".into());
                None
            }
            Some(p) => {
                lines.push(p.summary());
                for s in &p.sections {
                    lines.push(format!(
                        "  {}:",
                        s.tag.map(|t| t.name.as_str()).unwrap_or("More")
                    ));
                    for a in &s.articles {
                        lines.push(format!("    {} ({})", a.title, a.url));
                    }
                }
                let links = PersonalLinks {
                    preferences: self.config.site_url("/preferences/PREVIEW"),
                    unsubscribe: self.config.site_url("/unsubscribe/PREVIEW"),
                    archive: self.config.site_url("/digests/PREVIEW"),
                };
                Some(self.render(p.sections, now, c.zone.0, Some(&links))?.html)
            }
        };
        Ok(Preview { lines, html })
    }
}

pub struct Preview {
    pub lines: Vec<String>,
    pub html: Option<String>,
}
