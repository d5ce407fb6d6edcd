//! RSS 2.0 writer (`rss` crate): `atom:link rel="self"`, `content:encoded`, a `<category>` per tag,
//! the article id as a non-permalink `<guid>`, RFC 822 dates.

use std::collections::BTreeMap;

use rss::extension::atom::{AtomExtension, Link};
use rss::extension::dublincore::DublinCoreExtension;
use rss::{Category, Channel, Guid, Item};

use super::{FeedDoc, Format};

pub fn render_rss(doc: &FeedDoc<'_>) -> String {
    let mut links = vec![Link {
        href: doc.self_url(Format::Rss),
        rel: "self".into(),
        mime_type: Some(Format::Rss.mime().into()),
        ..Link::default()
    }];
    if let Some(hub) = &doc.config.feeds.websub_hub {
        links.push(Link {
            href: hub.clone(),
            rel: "hub".into(),
            ..Link::default()
        });
    }
    let items = doc
        .articles
        .iter()
        .map(|a| Item {
            title: Some(a.title.clone()),
            link: Some(a.url.clone()),
            description: (!a.summary.is_empty()).then(|| a.summary.clone()),
            categories: a
                .tags
                .iter()
                .map(|t| Category {
                    name: t.name.clone(),
                    domain: None,
                })
                .collect(),
            guid: Some(Guid {
                value: a.id.clone(),
                permalink: false,
            }),
            pub_date: Some(a.published_at.to_rfc2822()),
            content: (!a.content_html.is_empty()).then(|| a.content_html.clone()),
            dublin_core_ext: Some(DublinCoreExtension {
                creators: vec![doc.author_of(a).to_string()],
                ..DublinCoreExtension::default()
            }),
            ..Item::default()
        })
        .collect();
    let channel = Channel {
        title: doc.title(),
        link: doc.home_url(),
        description: doc.description(),
        language: Some(doc.config.site.language.clone()),
        last_build_date: Some(doc.updated().to_rfc2822()),
        generator: Some(concat!("tidings ", env!("CARGO_PKG_VERSION")).into()),
        docs: Some("https://www.rssboard.org/rss-specification".into()),
        atom_ext: Some(AtomExtension { links }),
        items,
        namespaces: BTreeMap::new(),
        ..Channel::default()
    };
    channel.to_string()
}
