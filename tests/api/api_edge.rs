//! The typed edge of `/api`: the OpenAPI document (served without a token, equal to the
//! committed `docs/openapi.json`), `405` with `Allow`, one body limit naming `body`, and the
//! errors of every extractor naming their field.

use crate::helpers::{Daemon, TOKEN};

/// The committed document, rewritten by this test with `TIDINGS_WRITE_OPENAPI=1`.
fn committed() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json")
}

#[test]
fn the_served_openapi_document_needs_no_token_and_is_the_committed_one() {
    let d = Daemon::start();
    let r = d.get("/api/openapi.json");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    if std::env::var_os("TIDINGS_WRITE_OPENAPI").is_some() {
        std::fs::write(committed(), &r.body).expect("write docs/openapi.json");
    }
    let on_disk = std::fs::read(committed()).unwrap_or_default();
    assert!(
        on_disk == r.body,
        "docs/openapi.json differs from the document the daemon serves: regenerate it with \
         `TIDINGS_WRITE_OPENAPI=1 cargo test --test api api_edge::the_served` and commit it"
    );
    // No secret in it: the admin token is not there, and no operation leaks a default.
    assert!(!r.text().contains(TOKEN));
}

#[test]
fn every_api_operation_states_its_least_role_its_403_and_the_bearer_scheme() {
    let d = Daemon::start();
    let doc = d.get("/api/openapi.json").json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let expected = [
        ("/api/articles", "get", "viewer"),
        ("/api/articles", "post", "editor"),
        ("/api/articles/{slug}", "put", "editor"),
        ("/api/articles/{slug}", "delete", "editor"),
        ("/api/subscribers", "post", "owner"),
        ("/api/subscribers/{email}", "delete", "owner"),
        ("/api/suppressions", "get", "viewer"),
        ("/api/suppressions/{email}", "delete", "owner"),
        ("/api/digests/run", "post", "owner"),
        ("/api/audience", "get", "viewer"),
    ];
    for (path, method, role) in expected {
        let op = &doc["paths"][path][method];
        assert_eq!(op["x-min-role"], role, "{method} {path}");
        for status in ["401", "403", "503"] {
            assert!(
                op["responses"][status].is_object(),
                "{method} {path} {status}"
            );
        }
        assert!(
            op["description"].as_str().unwrap_or("").contains(role),
            "{method} {path}"
        );
        assert_eq!(op["security"][0]["bearer"], serde_json::json!([]));
    }
    // Every operation under /api but the document itself is behind the token.
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            if path == "/api/openapi.json" || !path.starts_with("/api/") {
                continue;
            }
            assert!(op["x-min-role"].is_string(), "{method} {path}");
        }
    }
    assert!(doc["paths"]["/webhooks/{provider}"]["post"].is_object());
    assert!(doc["components"]["schemas"]["Error"].is_object());
}

#[test]
fn a_method_a_path_does_not_take_is_405_with_allow_through_the_error_type() {
    let d = Daemon::start();
    let r = d.api("PATCH", "/api/articles", Some("{}"));
    assert_eq!(r.status, 405, "{}", r.text());
    let allow = r.header("allow").unwrap_or_default();
    for m in ["GET", "POST"] {
        assert!(allow.contains(m), "{allow}");
    }
    assert!(r.json()["error"].as_str().unwrap_or("").contains("PATCH"));
    let r = d.api("POST", "/api/suppressions/x@example.org", None);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow").as_deref(), Some("DELETE"));
    // HEAD still works on every GET route.
    assert_eq!(d.api("HEAD", "/api/articles", None).status, 200);
    let r = d.request("PUT", "/api/openapi.json", &[], Some(b"{}"));
    assert_eq!(r.status, 405);
    assert!(r.header("allow").unwrap_or_default().contains("GET"));
}

#[test]
fn a_body_over_the_limit_is_400_naming_body_on_every_route_that_takes_one() {
    let d = Daemon::start();
    let big = format!(
        r#"{{"email":"a@example.org","note":"{}"}}"#,
        "x".repeat(1024 * 1024)
    );
    for path in [
        "/api/subscribers",
        "/api/suppressions",
        "/api/digests/run",
        "/api/articles",
    ] {
        let r = d.api("POST", path, Some(&big));
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        let json = r.json();
        assert_eq!(json["field"], "body", "{path}: {json}");
        assert!(json["error"].as_str().unwrap_or("").starts_with("body"));
    }
    assert_eq!(d.api("GET", "/api/suppressions", None).json()["total"], 0);
    assert_eq!(d.api("GET", "/api/subscribers", None).json()["total"], 0);
}

#[test]
fn bad_query_path_and_body_values_are_400_naming_the_field() {
    let d = Daemon::start();
    let r = d.api("GET", "/api/articles?limit=many", None);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "limit");
    let r = d.api("GET", "/api/articles?colour=red", None);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "colour");
    let r = d.api("GET", "/api/articles?limit=1001", None);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "limit");
    let r = d.api("GET", "/api/subscribers?status=asleep", None);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "status");
    let r = d.api("POST", "/api/digests/run", Some(r#"{"now": "yes"}"#));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "now");
    let r = d.api("POST", "/api/digests/run", Some("null"));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = d.api(
        "POST",
        "/api/articles",
        Some(r#"{"title":"x","url":"https://blog.example/a b"}"#),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "url");
    assert_eq!(d.api("GET", "/api/articles", None).json()["total"], 0);
}

#[test]
fn a_title_with_nothing_to_spell_a_slug_with_gets_one_from_its_hash() {
    let d = Daemon::start();
    let r = d.api(
        "POST",
        "/api/articles",
        Some(r#"{"title":"!!","url":"https://blog.example/bang","tags":["…"]}"#),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let article = &r.json()["article"];
    let slug = article["slug"].as_str().unwrap_or_default().to_string();
    assert!(slug.starts_with("article-"), "{slug}");
    assert!(article["tag_slugs"][0]
        .as_str()
        .unwrap_or_default()
        .starts_with("tag-"));
    // The same title again is the same article.
    let again = d.api(
        "POST",
        "/api/articles",
        Some(r#"{"title":"!!","url":"https://blog.example/bang","tags":["…"]}"#),
    );
    assert_eq!(again.json()["status"], "unchanged");
    assert_eq!(
        d.api("GET", &format!("/api/articles/{slug}"), None).status,
        200
    );
}
