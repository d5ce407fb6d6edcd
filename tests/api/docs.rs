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

/// Every command clap knows, walked from its definitions (not a list kept by hand), has a row in
/// the README's command table, and every flag it takes is named in that row.
#[test]
fn readme_documents_every_command() {
    use clap::CommandFactory;
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<(String, Vec<String>)>) {
        let subs: Vec<&clap::Command> = cmd
            .get_subcommands()
            .filter(|c| c.get_name() != "help")
            .collect();
        if subs.is_empty() {
            let flags = cmd
                .get_arguments()
                .filter(|a| !a.is_global_set())
                .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
                .filter(|l| l != "--help" && l != "--version")
                .collect();
            out.push((path.to_string(), flags));
        }
        for sub in subs {
            walk(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }
    let mut commands = Vec::new();
    walk(&tidings::cli::Cli::command(), "tidings", &mut commands);
    assert!(commands.len() >= 14, "{commands:?}");
    for (command, flags) in commands {
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{command}")))
            .unwrap_or_else(|| panic!("README's command table lacks `{command}`"));
        for flag in flags {
            assert!(
                row.contains(&flag),
                "README's row for `{command}` lacks {flag}"
            );
        }
    }
}
