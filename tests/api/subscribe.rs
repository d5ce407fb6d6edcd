//! A reader subscribes, confirms, changes preferences and unsubscribes, followed through the
//! emails that arrive at a real SMTP server.

use crate::helpers::{article, Daemon, SmtpSink};

const BASE: &str = "https://blog.example";

fn catalog(d: &Daemon) {
    d.publish(&article(
        "one",
        "One",
        &["AI", "Open Science"],
        "2026-05-27T09:00:00Z",
    ));
    d.publish(&article(
        "two",
        "Two",
        &["Machine Learning"],
        "2026-05-27T08:00:00Z",
    ));
}

fn status_of(d: &Daemon, email: &str) -> String {
    let r = d.api("GET", &format!("/api/subscribers/{email}"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["status"].as_str().unwrap_or_default().to_string()
}

fn subscribe(d: &Daemon, email: &str) -> crate::helpers::Resp {
    d.post_form(
        "/subscribe",
        &[
            ("email", email),
            ("tags", "ai"),
            ("tags", "open-science"),
            ("cadence", "daily"),
            ("time_zone", "Europe/Paris"),
        ],
    )
}

#[test]
fn the_whole_flow_through_the_emails_that_arrive() {
    let sink = SmtpSink::start();
    let d = Daemon::start_mailing(&sink, &[]);
    catalog(&d);

    let form = d.get("/subscribe");
    assert_eq!(form.status, 200);
    let html = form.text();
    assert!(
        html.contains("<label for=\"email\">"),
        "labelled email field"
    );
    assert!(html.contains("name=\"tags\" value=\"open-science\""));
    assert!(html.contains("Machine Learning"));
    assert!(
        html.contains("<option selected>UTC</option>") || html.contains("<option>UTC</option>")
    );

    let r = subscribe(&d, "Reader@Example.com");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("Check your inbox"));

    // 1. The confirmation email.
    let mails = sink.wait_for(1);
    let confirmation = &mails[0];
    assert_eq!(
        confirmation.header("To").as_deref(),
        Some("Reader@example.com")
    );
    assert_eq!(
        confirmation.header("Subject").as_deref(),
        Some("Confirm your subscription to Future Tech Blog")
    );
    assert!(confirmation.html().contains("style=\""), "CSS inlined");
    let confirm = confirmation.link(BASE, "/confirm/");
    assert_eq!(status_of(&d, "Reader@example.com"), "pending");

    // A GET (what a mail scanner does) shows a button and changes nothing.
    let page = d.get(&confirm);
    assert_eq!(page.status, 200);
    assert!(page.text().contains("<form method=\"post\""));
    assert_eq!(status_of(&d, "Reader@example.com"), "pending");

    // 2. Confirm: the welcome email arrives, once.
    let done = d.request("POST", &confirm, &[], Some(b""));
    assert_eq!(done.status, 200, "{}", done.text());
    assert!(done.text().contains("You are subscribed"));
    assert_eq!(status_of(&d, "Reader@example.com"), "confirmed");
    let mails = sink.wait_for(2);
    let welcome = &mails[1];
    assert_eq!(
        welcome.header("Subject").as_deref(),
        Some("Welcome to Future Tech Blog")
    );
    assert!(
        welcome.text().contains("in AI, Open Science"),
        "{}",
        welcome.text()
    );
    let again = d.request("POST", &confirm, &[], Some(b""));
    assert_eq!(again.status, 410, "a confirm link works once");

    // 3. Preferences: the page shows the choices, a POST saves new ones.
    let prefs = welcome.link(BASE, "/preferences/");
    let page = d.get(&prefs);
    assert_eq!(page.status, 200);
    assert!(page.text().contains("value=\"ai\" checked"));
    assert!(page
        .text()
        .contains("<option selected>Europe/Paris</option>"));
    let saved = d.post_form(
        &prefs,
        &[
            ("tags", "machine-learning"),
            ("cadence", "weekly"),
            ("time_zone", "America/New_York"),
            ("action", "save"),
        ],
    );
    assert_eq!(saved.status, 200, "{}", saved.text());
    let s = d
        .api("GET", "/api/subscribers/Reader@example.com", None)
        .json();
    assert_eq!(s["cadence"], "weekly");
    assert_eq!(s["time_zone"], "America/New_York");
    assert_eq!(s["tags"], serde_json::json!(["machine-learning"]));

    // 4. One-click unsubscribe, as a mailbox provider does it (RFC 8058).
    let header = welcome
        .header("List-Unsubscribe")
        .expect("List-Unsubscribe");
    assert_eq!(
        welcome.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    // No inbound listener and no mail.unsubscribe_mailto: nobody would read a mailto, so only
    // the https link is advertised.
    assert!(!header.contains("mailto:"), "{header}");
    let path = welcome.unsubscribe_path(BASE);
    let gone = d.request(
        "POST",
        &path,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(b"List-Unsubscribe=One-Click"),
    );
    assert_eq!(gone.status, 200, "{}", gone.text());
    assert_eq!(status_of(&d, "Reader@example.com"), "unsubscribed");
    // On record, once, with where it came from; a repeat changes nothing.
    let again = d.request(
        "POST",
        &path,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(b"List-Unsubscribe=One-Click"),
    );
    assert_eq!(again.status, 200);
    let history = d
        .api("GET", "/api/subscribers/Reader@example.com/events", None)
        .json();
    let events: Vec<(String, String)> = history["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| (e["kind"].to_string(), e["source"].to_string()))
        .collect();
    let pair = |k: &str, s: &str| (format!("\"{k}\""), format!("\"{s}\""));
    assert_eq!(
        events,
        [
            pair("subscribed", "form"),
            pair("confirmed", "link"),
            pair("unsubscribe", "one_click")
        ]
    );
    assert_eq!(
        d.metric("tidings_unsubscribes_total{source=\"one_click\"}"),
        1.0
    );

    // 5. Nothing more was sent: two emails queued in all, both delivered.
    assert_eq!(d.metric("tidings_emails_queued_total"), 2.0);
    assert_eq!(d.settled_emails(), 2);
    assert_eq!(sink.count(), 2);
}

#[test]
fn known_and_unknown_addresses_get_the_same_answer() {
    let sink = SmtpSink::start();
    let d = Daemon::start_mailing(&sink, &[]);
    catalog(&d);
    d.api(
        "POST",
        "/api/subscribers",
        Some(r#"{"email":"confirmed@example.com","status":"confirmed"}"#),
    );
    d.api(
        "POST",
        "/api/subscribers",
        Some(r#"{"email":"gone@example.com","status":"confirmed"}"#),
    );
    d.api(
        "POST",
        "/api/subscribers",
        Some(r#"{"email":"gone@example.com","status":"unsubscribed"}"#),
    );
    // An admin's unsubscribe is on record, with its source, after the sign-up by the API.
    let history = d
        .api("GET", "/api/subscribers/gone@example.com/events", None)
        .json();
    assert_eq!(history["events"][0]["kind"], "subscribed", "{history}");
    assert_eq!(history["events"][0]["source"], "api", "{history}");
    assert_eq!(history["events"][1]["kind"], "confirmed", "{history}");
    assert_eq!(history["events"][2]["kind"], "unsubscribe", "{history}");
    assert_eq!(history["events"][2]["source"], "admin", "{history}");
    let answers: Vec<(u16, String)> = [
        "new@example.com",
        "confirmed@example.com",
        "gone@example.com",
        "new@example.com",
    ]
    .iter()
    .map(|e| {
        let r = subscribe(&d, e);
        (r.status, r.text())
    })
    .collect();
    for a in &answers[1..] {
        assert_eq!(a, &answers[0], "the answer must not tell who is subscribed");
    }
    // Confirmations go to the new address (twice: it was still pending) and the unsubscribed one;
    // none to the confirmed one. Three were queued (counted before each answer), three went out.
    assert_eq!(d.metric("tidings_emails_queued_total"), 3.0);
    assert_eq!(d.settled_emails(), 3);
    let to: Vec<String> = sink
        .messages()
        .iter()
        .map(|m| m.header("To").unwrap_or_default())
        .collect();
    assert_eq!(to.len(), 3, "{to:?}");
    assert!(!to.contains(&"confirmed@example.com".to_string()), "{to:?}");
    assert_eq!(
        status_of(&d, "gone@example.com"),
        "unsubscribed",
        "only confirming brings them back"
    );
}

#[test]
fn expired_unknown_and_reused_tokens_get_plain_pages() {
    let sink = SmtpSink::start();
    let d = Daemon::start_mailing(&sink, &[]);
    catalog(&d);
    subscribe(&d, "late@example.com");
    let confirm = sink.wait_for(1)[0].link(BASE, "/confirm/");
    // The link's time runs out (tokens are stored with their expiry).
    d.db()
        .execute(
            "UPDATE tokens SET expires_us = 0 WHERE purpose = 'confirm'",
            &[],
        )
        .expect("expire the link");
    for method in ["GET", "POST"] {
        let r = d.request(
            method,
            &confirm,
            &[],
            (method == "POST").then_some(&b""[..]),
        );
        assert_eq!(r.status, 410, "{method}");
        assert!(r.text().contains("Link expired"));
    }
    assert_eq!(status_of(&d, "late@example.com"), "pending");
    for path in [
        "/confirm/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "/preferences/not-a-token",
        "/unsubscribe/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let r = d.get(path);
        assert_eq!(r.status, 404, "{path}");
        assert!(r.text().contains("Link not found"));
        let token = path.rsplit('/').next().unwrap_or_default();
        assert!(
            !r.text().contains(token),
            "{path}: the page does not echo the token"
        );
    }
    // A token for one purpose does not work for another.
    let unsubscribe = sink.messages()[0].unsubscribe_path(BASE);
    let as_prefs = unsubscribe.replace("/unsubscribe/", "/preferences/");
    assert_eq!(d.get(&as_prefs).status, 404);
}

#[test]
fn a_burst_of_subscribe_requests_gets_429_with_retry_after() {
    let d = Daemon::start_with(&[
        ("TIDINGS_SUBSCRIBERS_IP_RATE_PER_MINUTE", "3"),
        ("TIDINGS_SUBSCRIBERS_ADDRESS_RATE_PER_HOUR", "100"),
    ]);
    catalog(&d);
    let codes: Vec<u16> = (0..6)
        .map(|i| subscribe(&d, &format!("burst{i}@example.com")).status)
        .collect();
    assert_eq!(&codes[..3], &[200, 200, 200]);
    assert!(codes[3..].iter().all(|c| *c == 429), "{codes:?}");
    let r = subscribe(&d, "more@example.com");
    let wait: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&wait), "{wait}");

    let d = Daemon::start_with(&[
        ("TIDINGS_SUBSCRIBERS_IP_RATE_PER_MINUTE", "100"),
        ("TIDINGS_SUBSCRIBERS_ADDRESS_RATE_PER_HOUR", "2"),
    ]);
    catalog(&d);
    let codes: Vec<u16> = (0..3)
        .map(|_| subscribe(&d, "same@example.com").status)
        .collect();
    assert_eq!(
        codes,
        [200, 200, 429],
        "list bombing one address is limited"
    );
    assert_eq!(subscribe(&d, "other@example.com").status, 200);
}

#[test]
fn crlf_and_html_in_every_field_are_refused_or_escaped() {
    let sink = SmtpSink::start();
    let d = Daemon::start_mailing(
        &sink,
        &[(
            "TIDINGS_SITE_TITLE",
            "Tom & <Jerry>\r\nBcc: victim@example.com",
        )],
    );
    catalog(&d);
    let cases: [(&str, &str, &str, &str, &str); 4] = [
        (
            "x@example.com\r\nBcc: victim@example.com",
            "ai",
            "daily",
            "UTC",
            "email",
        ),
        (
            "x@example.com",
            "<script>alert(1)</script>",
            "daily",
            "UTC",
            "tags",
        ),
        (
            "x@example.com",
            "ai",
            "daily\r\nBcc: v@example.com",
            "UTC",
            "cadence",
        ),
        ("x@example.com", "ai", "daily", "<b>UTC</b>", "time_zone"),
    ];
    for (email, tag, cadence, zone, field) in cases {
        let r = d.post_form(
            "/subscribe",
            &[
                ("email", email),
                ("tags", tag),
                ("cadence", cadence),
                ("time_zone", zone),
            ],
        );
        assert_eq!(r.status, 400, "{field}");
        let html = r.text();
        assert!(html.contains(&format!("{field}:")), "{field}: {html}");
        assert!(
            !html.contains("<script>alert") && !html.contains("<b>UTC"),
            "{field}: escaped"
        );
    }
    assert_eq!(
        d.metric("tidings_emails_queued_total"),
        0.0,
        "nothing was sent for bad input"
    );
    assert_eq!(
        d.api("GET", "/api/subscribers", None).json()["total"],
        0,
        "nothing was stored"
    );

    // User-controlled text in a header (the site title in the subject) cannot add a header.
    subscribe(&d, "fine@example.com");
    let mail = &sink.wait_for(1)[0];
    assert!(mail.header("Bcc").is_none());
    let subject = mail.header("Subject").expect("subject");
    assert!(
        !subject.contains('\n') && subject.contains("Tom & <Jerry> Bcc:"),
        "{subject}"
    );
    assert!(
        mail.html().contains("Tom &amp; &lt;Jerry&gt;"),
        "{}",
        mail.html()
    );
    let raw = String::from_utf8_lossy(&mail.raw).to_string();
    let head = raw.split("\r\n\r\n").next().unwrap_or_default();
    assert!(!head.lines().any(|l| l.starts_with("Bcc:")), "{head}");
}

#[test]
fn get_on_an_unsubscribe_link_shows_a_button_and_changes_nothing() {
    let sink = SmtpSink::start();
    let d = Daemon::start_mailing(&sink, &[]);
    catalog(&d);
    subscribe(&d, "keep@example.com");
    let confirm = sink.wait_for(1)[0].link(BASE, "/confirm/");
    d.request("POST", &confirm, &[], Some(b""));
    let welcome = &sink.wait_for(2)[1];
    let unsubscribe = welcome.link(BASE, "/unsubscribe/");
    let page = d.get(&unsubscribe);
    assert_eq!(page.status, 200);
    assert!(page
        .text()
        .contains("name=\"List-Unsubscribe\" value=\"One-Click\""));
    assert_eq!(d.request("HEAD", &unsubscribe, &[], None).status, 200);
    assert_eq!(status_of(&d, "keep@example.com"), "confirmed");
    // A POST without the RFC 8058 body does nothing either.
    assert_eq!(d.request("POST", &unsubscribe, &[], Some(b"")).status, 400);
    assert_eq!(status_of(&d, "keep@example.com"), "confirmed");
    // The preferences page's unsubscribe button works too.
    let prefs = welcome.link(BASE, "/preferences/");
    let r = d.post_form(&prefs, &[("action", "unsubscribe")]);
    assert_eq!(r.status, 200);
    assert_eq!(status_of(&d, "keep@example.com"), "unsubscribed");
}

#[test]
fn admin_api_manages_subscribers_behind_the_token() {
    let d = Daemon::start();
    catalog(&d);
    assert_eq!(d.request("GET", "/api/subscribers", &[], None).status, 401);
    let r = d.api(
        "POST",
        "/api/subscribers",
        Some(r#"{"email":"Admin.Added@Example.ORG","status":"confirmed","tags":["ai"],"cadence":"weekly","time_zone":"Asia/Tokyo"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let s = r.json()["subscriber"].clone();
    assert_eq!(s["email"], "Admin.Added@example.org");
    assert_eq!(s["status"], "confirmed");
    assert!(s["confirmed_at"].as_str().is_some());
    assert!(s["created_at"].as_str().is_some());
    let list = d
        .api("GET", "/api/subscribers?status=confirmed", None)
        .json();
    assert_eq!(list["total"], 1);
    for (body, field) in [
        (r#"{"email":"not-an-email"}"#, "email"),
        (r#"{"email":"a@example.com","tags":["nope"]}"#, "tags"),
        (r#"{"email":"a@example.com","cadence":"hourly"}"#, "cadence"),
        (
            r#"{"email":"a@example.com","time_zone":"Mars/Base"}"#,
            "time_zone",
        ),
        (r#"{"email":"a@example.com","status":"vip"}"#, "status"),
        (r#"{"email":"a@example.com","colour":"red"}"#, "colour"),
    ] {
        let r = d.api("POST", "/api/subscribers", Some(body));
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(r.json()["field"], field, "{body}");
    }
    assert_eq!(d.api("GET", "/api/subscribers", None).json()["total"], 1);
    assert_eq!(
        d.api(
            "DELETE",
            "/api/subscribers?email=admin.added@example.org",
            None
        )
        .status,
        404,
        "local part is kept as given"
    );
    assert_eq!(
        d.api("DELETE", "/api/subscribers/Admin.Added@example.org", None)
            .status,
        204
    );
    assert_eq!(d.api("GET", "/api/subscribers", None).json()["total"], 0);
}

#[test]
fn csv_import_reports_bad_rows_by_line_and_is_safe_to_rerun() {
    let d = Daemon::start();
    catalog(&d);
    let file = d.dir.join("list.csv");
    std::fs::write(
        &file,
        "email,tags,cadence,time_zone,status\n\
         ada@example.com,ai;open-science,weekly,Europe/London,confirmed\n\
         not-an-address,,,,\n\
         grace@example.com,,daily,America/New_York,\n\
         bob@example.com,no-such-tag,,,\n\
         eve@example.com,,hourly,,\n",
    )
    .expect("write");
    let path = file.to_str().expect("path");
    let out = d.cli(&["subscriber", "import", path]);
    assert!(
        !out.status.success(),
        "bad rows make the exit code non-zero"
    );
    let err = crate::helpers::stderr(&out);
    assert!(err.contains("line 3: email:"), "{err}");
    assert!(err.contains("line 5: tags:"), "{err}");
    assert!(err.contains("line 6: cadence:"), "{err}");
    assert!(crate::helpers::stdout(&out).contains("2 new, 0 updated, 0 unchanged, 3 rejected"));
    let ada = d
        .api("GET", "/api/subscribers/ada@example.com", None)
        .json();
    assert_eq!(ada["tags"], serde_json::json!(["ai", "open-science"]));
    assert_eq!(ada["status"], "confirmed");
    assert_eq!(
        d.api("GET", "/api/subscribers/grace@example.com", None)
            .json()["status"],
        "confirmed",
        "rows without a status were confirmed by the service they come from"
    );
    let again = d.cli(&["subscriber", "import", path]);
    assert!(crate::helpers::stdout(&again).contains("0 new, 0 updated, 2 unchanged, 3 rejected"));

    let export = d.cli(&["subscriber", "export"]);
    assert!(export.status.success());
    let csv = crate::helpers::stdout(&export);
    assert!(csv.starts_with("email,tags,cadence,time_zone,status,created_at,confirmed_at\n"));
    assert!(csv.contains("ada@example.com,ai;open-science,weekly,Europe/London,confirmed,"));

    // An unsubscribed address is not brought back by an import.
    d.api(
        "POST",
        "/api/subscribers",
        Some(r#"{"email":"ada@example.com","status":"unsubscribed"}"#),
    );
    let out = d.cli(&["subscriber", "import", path]);
    assert!(
        crate::helpers::stderr(&out).contains("line 2: status:"),
        "{}",
        crate::helpers::stderr(&out)
    );
    assert_eq!(
        d.api("GET", "/api/subscribers/ada@example.com", None)
            .json()["status"],
        "unsubscribed"
    );
}

#[test]
fn cli_add_sends_a_confirmation_and_list_remove_work() {
    let sink = SmtpSink::start();
    let d = Daemon::start_mailing(&sink, &[]);
    catalog(&d);
    let out = d.cli(&[
        "subscriber",
        "add",
        "cli@example.com",
        "--tag",
        "ai",
        "--cadence",
        "weekly",
    ]);
    assert!(out.status.success(), "{}", crate::helpers::stderr(&out));
    let mail = &sink.wait_for(1)[0];
    assert_eq!(mail.header("To").as_deref(), Some("cli@example.com"));
    let out = d.cli(&["subscriber", "add", "quiet@example.com", "--confirmed"]);
    assert!(out.status.success());
    // The CLI sends before it exits: what the sink holds now is all it sent.
    assert_eq!(sink.count(), 1, "--confirmed sends nothing");
    assert!(!crate::helpers::stdout(&out).contains("confirmation email sent"));
    let list = crate::helpers::stdout(&d.cli(&["subscriber", "list"]));
    assert!(
        list.contains("cli@example.com  pending  weekly  UTC  [ai]"),
        "{list}"
    );
    assert!(
        list.contains("quiet@example.com  confirmed  daily  UTC  [all tags]"),
        "{list}"
    );
    let bad = d.cli(&[
        "subscriber",
        "add",
        "x@example.com",
        "--time-zone",
        "Nowhere/Land",
    ]);
    assert!(!bad.status.success());
    assert!(crate::helpers::stderr(&bad).contains("time_zone:"));
    assert!(d
        .cli(&["subscriber", "remove", "quiet@example.com"])
        .status
        .success());
    assert!(!d
        .cli(&["subscriber", "remove", "quiet@example.com"])
        .status
        .success());
}

#[test]
fn dkim_keygen_prints_the_record_and_the_daemon_signs_with_the_key() {
    for algorithm in ["ed25519", "rsa"] {
        let sink = SmtpSink::start();
        let dir = tempfile::tempdir().expect("tmp");
        let (key, printed) = crate::helpers::dkim_keygen(dir.path(), algorithm);
        assert!(
            printed.contains(&format!(
                "news._domainkey.blog.example. IN TXT ( \"v=DKIM1; k={algorithm}; p="
            )),
            "{printed}"
        );
        let again = crate::helpers::cli_in(
            dir.path(),
            &[],
            &["dkim", "keygen", "--out", key.to_str().expect("path")],
        );
        assert!(!again.status.success(), "never overwrites a key");
        let d = Daemon::start_mailing(
            &sink,
            &[
                ("TIDINGS_MAIL_DKIM_SELECTOR", "news"),
                ("TIDINGS_MAIL_DKIM_DOMAIN", "blog.example"),
                ("TIDINGS_MAIL_DKIM_PRIVATE_KEY", key.to_str().expect("path")),
            ],
        );
        catalog(&d);
        subscribe(&d, "signed@example.com");
        let mail = &sink.wait_for(1)[0];
        crate::helpers::dkim_verify(&mail.raw, &crate::helpers::dkim_record(&printed))
            .unwrap_or_else(|log| panic!("{algorithm} signature does not verify:\n{log}"));
        // The verifier can say no: one changed byte in the body breaks the signature.
        let mut tampered = mail.raw.clone();
        let at = tampered.len() - 10;
        tampered[at] = if tampered[at] == b'x' { b'y' } else { b'x' };
        assert!(
            crate::helpers::dkim_verify(&tampered, &crate::helpers::dkim_record(&printed)).is_err(),
            "{algorithm}: a tampered message must not verify"
        );
        let sig = mail.header("DKIM-Signature").expect("signed");
        let sig: String = sig.split_whitespace().collect();
        assert!(sig.contains("c=relaxed/relaxed"), "{sig}");
        assert!(
            sig.contains("d=blog.example") && sig.contains("s=news"),
            "{sig}"
        );
        let h = sig
            .split(';')
            .find(|t| t.trim().starts_with("h="))
            .expect("h=")
            .to_lowercase();
        for name in [
            "from",
            "subject",
            "date",
            "message-id",
            "list-unsubscribe",
            "list-unsubscribe-post",
        ] {
            assert!(
                h.split(':')
                    .any(|x| x.trim().trim_start_matches("h=") == name),
                "{name} not in {h}"
            );
        }
    }
}

#[test]
fn the_subscribe_form_preselects_the_browsers_time_zone_with_a_script_of_its_own() {
    let d = Daemon::start();
    let form = d.get("/subscribe").text();
    assert!(form.contains("<script src=\"/assets/time-zone.js\" defer></script>"));
    assert!(
        form.contains("<option selected>UTC</option>"),
        "the default without JavaScript"
    );
    let script = d.get("/assets/time-zone.js");
    assert_eq!(script.status, 200);
    assert!(script
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/javascript"));
    assert!(script
        .text()
        .contains("Intl.DateTimeFormat().resolvedOptions().timeZone"));
    // A form shown again after an error keeps the zone the reader chose.
    let again = d.post_form(
        "/subscribe",
        &[
            ("email", "not an address"),
            ("time_zone", "Asia/Tokyo"),
            ("cadence", "daily"),
        ],
    );
    assert!(again.text().contains("data-chosen"), "{}", again.text());
}

#[test]
fn the_index_page_links_to_the_email_subscription() {
    let d = Daemon::start();
    let index = d.get("/").text();
    assert!(
        index.contains("<a href=\"https://blog.example/subscribe\">Get new articles by email</a>"),
        "{index}"
    );
}
