//! Atom 1.0 writer (`atom_syndication`): self and alternate links, ids, updated and published
//! times with their zone, authors, categories, a plain-text summary and HTML content.

use atom_syndication::{Category, Content, Entry, Feed, Generator, Link, Person, Text};

use super::{tag_scheme, FeedDoc, Format};

pub fn render_atom(doc: &FeedDoc<'_>) -> String {
    let mut links = vec![
        Link {
            href: doc.self_url(Format::Atom),
            rel: "self".into(),
            mime_type: Some(Format::Atom.mime().into()),
            ..Link::default()
        },
        Link {
            href: doc.home_url(),
            rel: "alternate".into(),
            mime_type: Some("text/html".into()),
            ..Link::default()
        },
    ];
    if let Some(hub) = &doc.config.feeds.websub_hub {
        links.push(Link {
            href: hub.clone(),
            rel: "hub".into(),
            ..Link::default()
        });
    }
    let scheme = tag_scheme(doc.config);
    let entries = doc
        .articles
        .iter()
        .map(|a| Entry {
            title: Text::plain(a.title.clone()),
            id: a.id.clone(),
            updated: a.updated_at,
            published: Some(a.published_at),
            authors: vec![Person {
                name: doc.author_of(a).to_string(),
                ..Person::default()
            }],
            categories: a
                .tags
                .iter()
                .map(|t| Category {
                    term: t.slug.clone(),
                    scheme: Some(scheme.clone()),
                    label: Some(t.name.clone()),
                })
                .collect(),
            links: vec![Link {
                href: a.url.clone(),
                rel: "alternate".into(),
                mime_type: Some("text/html".into()),
                ..Link::default()
            }],
            summary: (!a.summary.is_empty()).then(|| Text::plain(a.summary.clone())),
            content: (!a.content_html.is_empty()).then(|| Content {
                value: Some(a.content_html.clone()),
                content_type: Some("html".into()),
                ..Content::default()
            }),
            ..Entry::default()
        })
        .collect();
    let feed = Feed {
        title: Text::plain(doc.title()),
        id: doc.self_url(Format::Atom),
        updated: doc.updated(),
        authors: vec![Person {
            name: doc.config.site.author.clone(),
            ..Person::default()
        }],
        links,
        subtitle: Some(Text::plain(doc.description())),
        generator: Some(Generator {
            value: "tidings".into(),
            version: Some(env!("CARGO_PKG_VERSION").into()),
            ..Generator::default()
        }),
        lang: Some(doc.config.site.language.clone()),
        entries,
        ..Feed::default()
    };
    feed.to_string()
}
