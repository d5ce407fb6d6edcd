//! The console's accounts and sessions, API tokens and roles, and the audit log.

use crate::console_client::{add_account, field, Console};
use crate::helpers::{article, Daemon, TOKEN};

const PASSWORD: &str = "correct horse battery staple";

fn sessions(d: &Daemon) -> i64 {
    d.db()
        .query_row("SELECT count(*) FROM admin_sessions", &[], |r| r.get(0))
        .expect("count sessions")
}

#[test]
fn with_no_account_the_login_page_says_how_to_add_one() {
    let d = Daemon::start();
    let page = Console::new(&d).get("/admin/login");
    assert_eq!(page.status, 200);
    assert!(
        page.text().contains("tidings admin add NAME --role owner"),
        "{}",
        page.text()
    );
}

#[test]
fn pages_need_a_session_and_send_the_browser_to_the_login_page() {
    let d = Daemon::start();
    add_account(&d, "ann", "owner", PASSWORD);
    let r = Console::new(&d).get("/admin");
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location").as_deref(),
        Some("/admin/login?next=%2Fadmin")
    );
}

#[test]
fn login_sets_a_strict_http_only_secure_cookie_with_a_new_session_each_time() {
    let d = Daemon::start();
    add_account(&d, "ann", "owner", PASSWORD);
    let mut first = Console::new(&d);
    let r = first.login("Ann", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location").as_deref(), Some("/admin"));
    let cookie = r
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("tidings_session="))
        .expect("a session cookie")
        .to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/admin"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    let page = first.get("/admin");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("Sign out ann"));

    // Signing in again from the same browser gets a new session id.
    let old = first.cookies["tidings_session"].clone();
    assert_eq!(first.login("ann", PASSWORD).status, 303);
    assert_ne!(first.cookies["tidings_session"], old);
    // The session id is not what the database keeps.
    let stored: i64 = d
        .db()
        .query_row(
            "SELECT count(*) FROM admin_sessions WHERE hash = ?1",
            &[&old.as_bytes().to_vec()],
            |r| r.get(0),
        )
        .expect("read sessions");
    assert_eq!(stored, 0);
}

#[test]
fn a_wrong_password_and_an_unknown_name_get_the_same_answer() {
    let d = Daemon::start();
    add_account(&d, "ann", "owner", PASSWORD);
    let wrong_password = Console::new(&d).login("ann", "not the password at all");
    let unknown_name = Console::new(&d).login("bob", PASSWORD);
    assert_eq!(wrong_password.status, 401);
    assert_eq!(unknown_name.status, 401);
    assert!(wrong_password.text().contains("Wrong name or password."));
    assert!(unknown_name.text().contains("Wrong name or password."));
    assert_eq!(sessions(&d), 0);
}

#[test]
fn the_sixth_wrong_password_is_refused_with_429_and_so_is_the_right_one_after_it() {
    let d = Daemon::start();
    add_account(&d, "ann", "owner", PASSWORD);
    for attempt in 1..=5 {
        let r = Console::new(&d).login("ann", &format!("wrong password {attempt}"));
        assert_eq!(r.status, 401, "attempt {attempt}");
    }
    let sixth = Console::new(&d).login("ann", "wrong password 6");
    assert_eq!(sixth.status, 429);
    let wait: u64 = sixth
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=900).contains(&wait), "{wait}");
    let right = Console::new(&d).login("ann", PASSWORD);
    assert_eq!(right.status, 429);
    assert!(!right.text().contains("password was wrong"));
    assert_eq!(sessions(&d), 0, "no session was started");
    // Another account is not locked by ann's failures.
    add_account(&d, "bob", "viewer", PASSWORD);
    assert_eq!(Console::new(&d).login("bob", PASSWORD).status, 303);
}

#[test]
fn a_post_without_the_csrf_token_or_with_another_sessions_changes_nothing() {
    let d = Daemon::start();
    add_account(&d, "ann", "owner", PASSWORD);
    let mut ann = Console::signed_in(&d, "ann", PASSWORD);
    let mut other = Console::signed_in(&d, "ann", PASSWORD);
    let others_token = other.csrf();
    assert_eq!(sessions(&d), 2);

    // A cross-site form: the browser sends the cookie, but the page cannot know the token.
    let forged = ann.post("/admin/logout", &[]);
    assert_eq!(forged.status, 403);
    let forged = ann.post("/admin/logout", &[("csrf", &others_token)]);
    assert_eq!(forged.status, 403);
    assert_eq!(sessions(&d), 2, "no session ended");
    assert_eq!(ann.get("/admin").status, 200);

    // The login form has one too.
    let no_token = Console::new(&d).post(
        "/admin/login",
        &[("username", "ann"), ("password", PASSWORD)],
    );
    assert_eq!(no_token.status, 403);
    assert_eq!(sessions(&d), 2);
}

#[test]
fn logging_out_ends_the_session_and_the_old_cookie_no_longer_works() {
    let d = Daemon::start();
    add_account(&d, "ann", "owner", PASSWORD);
    let mut ann = Console::signed_in(&d, "ann", PASSWORD);
    let cookie = ann.cookie_header();
    let csrf = ann.csrf();
    let out = ann.post("/admin/logout", &[("csrf", &csrf)]);
    assert_eq!(out.status, 303);
    assert_eq!(sessions(&d), 0);
    let replayed = d.get_with("/admin", &[("Cookie", &cookie)]);
    assert!(
        replayed.text().contains("name=\"password\""),
        "the old cookie leads to the login form"
    );
}

#[test]
fn a_session_does_not_outlive_its_idle_time() {
    let d = Daemon::start();
    add_account(&d, "ann", "owner", PASSWORD);
    let mut ann = Console::signed_in(&d, "ann", PASSWORD);
    assert_eq!(ann.get("/admin").status, 200);
    // Sixty-one minutes without a request (the default idle time is 60).
    d.db()
        .execute(
            "UPDATE admin_sessions SET last_used_us = last_used_us - 3660000000",
            &[],
        )
        .expect("age the session");
    let r = ann.get("/admin");
    assert_eq!(r.status, 303, "back to the login page");
    assert_eq!(sessions(&d), 0, "the expired session is gone");
}

#[test]
fn a_session_ends_at_its_maximum_age_even_in_use() {
    let d = Daemon::start_with(&[("TIDINGS_ADMIN_SESSION_MAX_HOURS", "2")]);
    add_account(&d, "ann", "owner", PASSWORD);
    let mut ann = Console::signed_in(&d, "ann", PASSWORD);
    d.db()
        .execute(
            "UPDATE admin_sessions SET created_us = created_us - 7260000000",
            &[],
        )
        .expect("age the session");
    assert_eq!(ann.get("/admin").status, 303);
}

#[test]
fn removing_an_account_or_changing_its_password_ends_its_sessions() {
    let d = Daemon::start();
    add_account(&d, "ann", "owner", PASSWORD);
    add_account(&d, "bob", "editor", PASSWORD);
    let mut ann = Console::signed_in(&d, "ann", PASSWORD);
    let mut bob = Console::signed_in(&d, "bob", PASSWORD);
    let out = d.cli(&["admin", "remove", "bob"]);
    assert!(out.status.success());
    assert_eq!(bob.get("/admin").status, 303);
    assert_eq!(ann.get("/admin").status, 200);
    let out = d.cli(&["admin", "password", "ann"]);
    assert!(out.status.success());
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(printed.len(), 24, "a generated password, printed once");
    assert_eq!(ann.get("/admin").status, 303);
    assert_eq!(Console::new(&d).login("ann", PASSWORD).status, 401);
    assert_eq!(Console::new(&d).login("ann", &printed).status, 303);
}

#[test]
fn a_viewer_sees_pages_but_is_refused_what_needs_a_higher_role() {
    let d = Daemon::start();
    add_account(&d, "vic", "viewer", PASSWORD);
    let mut vic = Console::signed_in(&d, "vic", PASSWORD);
    let page = vic.get("/admin");
    assert_eq!(page.status, 200);
    assert!(
        !page.text().contains("/admin/settings"),
        "no Settings for a viewer"
    );
    assert!(field(&page.text(), "csrf").is_some());
}

fn token(d: &Daemon, name: &str, role: &str) -> String {
    let out = d.cli(&["token", "add", name, "--role", role]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn call(
    d: &Daemon,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> crate::helpers::Resp {
    let auth = format!("Bearer {token}");
    d.request(
        method,
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.map(str::as_bytes),
    )
}

#[test]
fn an_api_token_with_role_viewer_can_read_but_not_write() {
    let d = Daemon::start();
    let viewer = token(&d, "dashboards", "viewer");
    assert!(viewer.starts_with("tid_") && viewer.len() > 40, "{viewer}");
    assert_eq!(call(&d, &viewer, "GET", "/api/articles", None).status, 200);
    let write = call(
        &d,
        &viewer,
        "POST",
        "/api/articles",
        Some(&article("a", "A", &[], "2026-05-27T09:00:00Z")),
    );
    assert_eq!(write.status, 403, "{}", write.text());
    assert!(write.json()["error"]
        .as_str()
        .unwrap_or_default()
        .contains("viewer"));
    assert_eq!(
        d.api("GET", "/api/articles", None).json()["total"],
        0,
        "nothing written"
    );
    let delete = call(
        &d,
        &viewer,
        "DELETE",
        "/api/subscribers/x%40example.org",
        None,
    );
    assert_eq!(delete.status, 403);

    // An editor writes articles, and is refused subscribers.
    let editor = token(&d, "ci", "editor");
    let write = call(
        &d,
        &editor,
        "POST",
        "/api/articles",
        Some(&article("a", "A", &[], "2026-05-27T09:00:00Z")),
    );
    assert_eq!(write.status, 201, "{}", write.text());
    let add = call(
        &d,
        &editor,
        "POST",
        "/api/subscribers",
        Some(r#"{"email": "reader@example.org"}"#),
    );
    assert_eq!(add.status, 403);
    assert_eq!(d.api("GET", "/api/subscribers", None).json()["total"], 0);

    // A removed token stops working at once.
    assert!(d.cli(&["token", "remove", "ci"]).status.success());
    assert_eq!(call(&d, &editor, "GET", "/api/articles", None).status, 401);
    // `token list` shows the last use.
    let list = d.cli(&["token", "list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("dashboards  viewer") && !text.contains("last used never"),
        "{text}"
    );
    assert!(
        !text.contains(&viewer),
        "the token itself is never shown again"
    );
}

#[test]
fn the_api_is_closed_only_while_no_token_of_either_kind_exists() {
    let d = Daemon::start_with(&[("TIDINGS_ADMIN_TOKEN", "")]);
    assert_eq!(d.api("GET", "/api/articles", None).status, 503);
    let owner = token(&d, "ops", "owner");
    assert_eq!(
        d.api("GET", "/api/articles", None).status,
        401,
        "a wrong token now"
    );
    assert_eq!(call(&d, &owner, "GET", "/api/articles", None).status, 200);
}

#[test]
fn the_audit_log_names_who_changed_what_through_the_api_and_the_cli() {
    let d = Daemon::start();
    let editor = token(&d, "ci", "editor");
    let r = call(
        &d,
        &editor,
        "POST",
        "/api/articles",
        Some(&article("hello", "Hello", &[], "2026-05-27T09:00:00Z")),
    );
    assert_eq!(r.status, 201);
    assert_eq!(d.api("DELETE", "/api/articles/hello", None).status, 204);
    // A refused change and a read are not changes.
    let _ = call(
        &d,
        &editor,
        "DELETE",
        "/api/subscribers/x%40example.org",
        None,
    );
    let _ = d.api("GET", "/api/articles", None);
    let out = d.cli(&["suppression", "add", "Spam@Example.org"]);
    assert!(out.status.success());
    let rows: Vec<(String, String, String, Option<String>)> = d
        .db()
        .query_map(
            "SELECT actor, via, action, target FROM audit_log ORDER BY id",
            &[],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .expect("read the audit log");
    assert_eq!(
        rows,
        vec![
            (
                "cli".into(),
                "cli".into(),
                "token.add".into(),
                Some("ci".into())
            ),
            (
                "ci".into(),
                "api".into(),
                "POST /api/articles".into(),
                Some("hello".into())
            ),
            (
                "admin.token".into(),
                "api".into(),
                "DELETE /api/articles/hello".into(),
                Some("hello".into())
            ),
            (
                "cli".into(),
                "cli".into(),
                "suppression.add".into(),
                Some("spam@example.org".into())
            ),
        ]
    );
    let _ = TOKEN;
}

#[test]
fn a_bad_account_name_or_role_is_refused_naming_the_argument_and_adds_nothing() {
    let d = Daemon::start();
    let role = d.cli(&["admin", "add", "ann", "--role", "god"]);
    assert!(!role.status.success());
    assert!(String::from_utf8_lossy(&role.stderr).contains("--role"));
    let name = d.cli(&["token", "add", "a b", "--role", "viewer"]);
    assert!(!name.status.success());
    assert!(String::from_utf8_lossy(&name.stderr).contains("<NAME>"));
    let rows: i64 = d
        .db()
        .query_row(
            "SELECT (SELECT count(*) FROM admin_accounts) + (SELECT count(*) FROM api_tokens)",
            &[],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(rows, 0);
}
