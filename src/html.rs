//! HTML escaping for every template tidings renders (the index page, the subscriber pages, the
//! emails): `& < > " '` are escaped and `/` is left alone, so links stay readable (minijinja's
//! default writes `/` as `&#x2f;`, which spam filters and some feed-autodiscovery parsers dislike).

use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State, Value};

/// A template environment: `.html` templates auto-escape with `escape`, others do not.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.set_formatter(formatter);
    env
}

fn formatter(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    match (state.auto_escape(), value.as_str()) {
        (AutoEscape::Html, Some(s)) if !value.is_safe() => out
            .write_str(&escape(s))
            .map_err(|_| Error::new(ErrorKind::WriteFailure, "cannot write template output")),
        _ => minijinja::escape_formatter(out, state, value),
    }
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup_but_not_slashes() {
        let env = super::environment();
        let out = env
            .render_named_str(
                "t.html",
                "<a href=\"{{ u }}\">{{ t }}</a>",
                minijinja::context! {
                    u => "https://x.example/a?b=1&c=2",
                    t => "<script>'x' & \"y\"</script>",
                },
            )
            .expect("render");
        assert_eq!(
            out,
            "<a href=\"https://x.example/a?b=1&amp;c=2\">&lt;script&gt;&#39;x&#39; &amp; &quot;y&quot;&lt;/script&gt;</a>"
        );
    }
}
