//! The sample catalog ("Future Tech Blog"), loaded on first start so the daemon shows real feeds as shipped.

use std::path::Path;

use super::import::{import_entries, json_entries, Report};
use super::Catalog;

/// The copy built into the binary, used when `catalog.sample_path` does not exist.
pub const EMBEDDED: &str = include_str!("../../data/sample-articles.json");

/// Loads the sample articles if the catalog has none; `None` when it already had articles.
pub async fn load_if_empty(catalog: &Catalog, path: &Path) -> anyhow::Result<Option<Report>> {
    if catalog.count().await? > 0 {
        return Ok(None);
    }
    let (name, bytes) = match std::fs::read(path) {
        Ok(b) => (path.display().to_string(), b),
        Err(_) => ("built-in sample".to_string(), EMBEDDED.as_bytes().to_vec()),
    };
    let entries = json_entries(&name, &bytes)?;
    Ok(Some(import_entries(catalog, entries.into(), || {}).await?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn embedded_sample_is_valid_and_has_the_seed_articles() {
        let entries = super::json_entries("sample", super::EMBEDDED.as_bytes()).expect("array");
        assert!(entries.len() >= 6);
        for e in &entries {
            assert!(e.article.is_ok(), "{}: {:?}", e.label, e.article);
        }
    }
}
