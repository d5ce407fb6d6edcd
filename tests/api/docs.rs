//! The README's tables stay true: every configuration key and its environment variable are there.

#[test]
fn readme_documents_every_configuration_key_and_its_environment_variable() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    for (key, _) in tidings::config::KEYS {
        assert!(readme.contains(&format!("`{key}`")), "README lacks `{key}`");
        let env = tidings::config::env_name(key);
        assert!(readme.contains(&format!("`{env}`")), "README lacks `{env}`");
    }
}

#[test]
fn readme_documents_every_command() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    for cmd in [
        "tidings serve",
        "tidings article add",
        "tidings article list",
        "tidings article remove",
        "tidings import",
        "tidings backup",
    ] {
        assert!(readme.contains(cmd), "README lacks {cmd}");
    }
}
