//! The email templates in `mail.templates_dir` (`email_templates/`): HTML and text for each email,
//! edited without a rebuild. HTML templates are auto-escaped and have their `<style>` CSS inlined
//! once, when loaded. Errors are reported at start-up with file and line.

use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior, Value};

/// Every email tidings sends, by template name (`{name}.html` and `{name}.txt`).
pub const EMAILS: [&str; 3] = ["confirmation", "welcome", "digest"];

/// Built-in copies, used when the folder is missing (a binary run away from its repository).
const BUILT_IN: [(&str, &str); 6] = [
    (
        "confirmation.html",
        include_str!("../../email_templates/confirmation.html"),
    ),
    (
        "confirmation.txt",
        include_str!("../../email_templates/confirmation.txt"),
    ),
    (
        "welcome.html",
        include_str!("../../email_templates/welcome.html"),
    ),
    (
        "welcome.txt",
        include_str!("../../email_templates/welcome.txt"),
    ),
    (
        "digest.html",
        include_str!("../../email_templates/digest.html"),
    ),
    (
        "digest.txt",
        include_str!("../../email_templates/digest.txt"),
    ),
];

#[derive(Debug, thiserror::Error)]
#[error("email template {file}: {message}")]
pub struct TemplateError {
    pub file: String,
    pub message: String,
}

pub struct Templates {
    env: Environment<'static>,
    pub source: String,
}

/// A rendered email body.
pub struct Rendered {
    pub text: String,
    pub html: String,
}

impl Templates {
    /// Loads every template from `dir` (or the built-in copies if `dir` does not exist), inlines
    /// CSS, and renders each once with sample values so mistakes show now, not at send time.
    pub fn load(dir: &Path) -> Result<Templates, TemplateError> {
        let from_dir = dir.is_dir();
        let mut env = crate::html::environment();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        let inliner = css_inline::CSSInliner::options()
            .load_remote_stylesheets(false)
            .build();
        for name in EMAILS {
            for ext in ["html", "txt"] {
                let file_name = format!("{name}.{ext}");
                let path: PathBuf = dir.join(&file_name);
                let shown = if from_dir {
                    path.display().to_string()
                } else {
                    format!("(built-in) {file_name}")
                };
                let source = if from_dir {
                    std::fs::read_to_string(&path).map_err(|e| TemplateError {
                        file: shown.clone(),
                        message: format!("cannot read: {e}"),
                    })?
                } else {
                    BUILT_IN
                        .iter()
                        .find(|(n, _)| *n == file_name)
                        .map(|(_, s)| s.to_string())
                        .unwrap_or_default()
                };
                // Check the syntax on the file as written, so line numbers match the editor's.
                Environment::new()
                    .template_from_named_str(&file_name, &source)
                    .map_err(|e| TemplateError {
                        file: shown.clone(),
                        message: describe(&e),
                    })?;
                let source = if ext == "html" {
                    inliner.inline(&source).map_err(|e| TemplateError {
                        file: shown.clone(),
                        message: format!("cannot inline its CSS: {e}"),
                    })?
                } else {
                    source
                };
                env.add_template_owned(file_name, source)
                    .map_err(|e| TemplateError {
                        file: shown.clone(),
                        message: describe(&e),
                    })?;
            }
        }
        let templates = Templates {
            env,
            source: if from_dir {
                dir.display().to_string()
            } else {
                "built-in templates".into()
            },
        };
        for name in EMAILS {
            templates
                .render(name, sample_context())
                .map_err(|e| TemplateError {
                    file: format!("{}/{name}.*", templates.source),
                    message: e,
                })?;
        }
        Ok(templates)
    }

    /// Renders `{name}.txt` and `{name}.html` with `ctx`.
    pub fn render(&self, name: &str, ctx: Value) -> Result<Rendered, String> {
        let render = |file: String| {
            self.env
                .get_template(&file)
                .and_then(|t| t.render(&ctx))
                .map_err(|e| format!("{file}: {}", describe(&e)))
        };
        Ok(Rendered {
            text: render(format!("{name}.txt"))?,
            html: render(format!("{name}.html"))?,
        })
    }

    /// Renders a one-line template (a subject from the configuration) without escaping.
    pub fn render_line(&self, source: &str, ctx: Value) -> Result<String, String> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.render_str(source, ctx).map_err(|e| describe(&e))
    }
}

fn describe(e: &minijinja::Error) -> String {
    match e.line() {
        Some(line) => format!(
            "line {line}: {}",
            e.detail().unwrap_or(&e.kind().to_string())
        ),
        None => e.to_string(),
    }
}

/// The values every email template may use, with sample data for the start-up check.
pub fn sample_context() -> Value {
    minijinja::context! {
        site => "Future Tech Blog",
        site_url => "https://blog.example",
        email => "reader@example.com",
        confirm_url => "https://blog.example/confirm/TOKEN",
        preferences_url => "https://blog.example/preferences/TOKEN",
        unsubscribe_url => "https://blog.example/unsubscribe/TOKEN",
        expires_hours => 48,
        tags => vec!["AI", "Open Science"],
        cadence => "daily",
        summary => "2 new articles in AI, More",
        count => 2,
        date => "May 27, 2026",
        personal => true,
        archive_url => "https://blog.example/digests/1",
        subscribe_url => "https://blog.example/subscribe",
        sections => vec![
            minijinja::context! {
                name => "AI",
                feed_url => "https://blog.example/tags/ai/feed.xml",
                articles => vec![minijinja::context! {
                    title => "Big Science & Hugging Face",
                    url => "https://blog.example/posts/big-science",
                    date => "May 27, 2026",
                    reading_time_minutes => 6,
                    summary => "Explore how Big Science and Hugging Face collaborate.",
                }],
            },
            minijinja::context! {
                name => "More",
                feed_url => "https://blog.example/feed.xml",
                articles => vec![minijinja::context! {
                    title => "Untagged",
                    url => "https://blog.example/posts/untagged",
                    date => "May 26, 2026",
                    reading_time_minutes => Value::from(()),
                    summary => "",
                }],
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_templates_load_and_inline_their_css() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/email_templates"));
        let t = Templates::load(dir).expect("templates load");
        let r = t.render("confirmation", sample_context()).expect("render");
        assert!(r.html.contains("style=\""), "CSS is inlined: {}", r.html);
        assert!(r.html.contains("https://blog.example/confirm/TOKEN"));
        assert!(r.text.contains("https://blog.example/confirm/TOKEN"));
    }

    #[test]
    fn a_template_error_names_file_and_line() {
        let dir = tempfile::tempdir().expect("tmp");
        for (name, body) in BUILT_IN {
            std::fs::write(dir.path().join(name), body).expect("write");
        }
        std::fs::write(dir.path().join("welcome.txt"), "Hello\n{{ site }\n").expect("write");
        let e = Templates::load(dir.path())
            .err()
            .expect("fails")
            .to_string();
        assert!(e.contains("welcome.txt") && e.contains("line 2"), "{e}");
        std::fs::write(dir.path().join("welcome.txt"), "Hello {{ nobody }}\n").expect("write");
        let e = Templates::load(dir.path())
            .err()
            .expect("fails")
            .to_string();
        assert!(e.contains("welcome"), "{e}");
    }

    #[test]
    fn html_is_escaped_and_text_is_not() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/email_templates"));
        let t = Templates::load(dir).expect("templates load");
        let ctx = minijinja::context! {
            site => "<b>A & B",
            site_url => "https://blog.example",
            email => "x@example.com",
            confirm_url => "https://blog.example/confirm/T",
            preferences_url => "https://blog.example/preferences/T",
            unsubscribe_url => "https://blog.example/unsubscribe/T",
            expires_hours => 48,
            tags => Vec::<String>::new(),
            cadence => "weekly",
        };
        let r = t.render("confirmation", ctx).expect("render");
        assert!(r.html.contains("&lt;b&gt;A &amp; B"), "{}", r.html);
        assert!(r.text.contains("<b>A & B"));
    }
}
