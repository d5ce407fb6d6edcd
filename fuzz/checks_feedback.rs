//! What must hold for the readers of what comes back by mail, whatever the bytes: the DSN / ARF /
//! auto-reply classifier, the VERP and mailto tags, and the inbound SMTP listener. Used by the
//! fuzz targets (`fuzz_targets/*.rs`) and by `tests/fuzz_corpus.rs`, like `checks.rs`.
#![allow(dead_code)]

use std::cell::RefCell;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use tidings::feedback::report::{self, Action, Bounce, Report};
use tidings::feedback::tags::{self, Delivery, Keys, Tagged};
use tidings::store::{Mode, Store};

/// mail-parser's own panics (here, with debug assertions on, its `debug_assert!`s) are contained
/// by `report::parse`, which reads such a message as `Other`: let them unwind to it, quietly.
/// Every other panic goes to the hook before (libFuzzer's aborts: a crash, as always).
fn contain_mail_parser_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info
                .location()
                .is_some_and(|l| l.file().contains("/mail-parser-"))
            {
                previous(info);
            }
        }));
    });
}

/// DSN / ARF / auto-reply: no panic; the same bytes read the same; every field is within the
/// bounds `report.rs` promises (addresses lower-case and at most 254 characters before
/// lower-casing, status codes at most 16 characters without spaces or comments, diagnostics at
/// most 300 characters, Message-IDs without their angle brackets); `worst` picks a failure of the
/// highest rank, and only a failure.
pub fn feedback_report(data: &[u8]) {
    contain_mail_parser_panics();
    let r = report::parse(data);
    assert_eq!(r, report::parse(data), "the same bytes read differently");
    let bare = |id: &Option<String>| {
        if let Some(id) = id {
            assert!(
                !id.starts_with(['<', '>']) && !id.ends_with(['<', '>']),
                "Message-ID keeps its brackets: {id:?}"
            );
        }
    };
    match &r {
        Report::Dsn(d) => {
            assert_eq!(r.class(), "dsn");
            bare(&d.original_message_id);
            let rank = |b: Bounce| match b {
                Bounce::Hard => 0,
                Bounce::Other => 1,
                Bounce::Policy => 2,
                Bounce::Soft => 3,
            };
            for rcpt in &d.recipients {
                if let Some(a) = &rcpt.address {
                    assert!(
                        !a.bytes().any(|b| b.is_ascii_uppercase()),
                        "address not lower-case: {a:?}"
                    );
                    // 254 characters, each of which may lower-case to up to 3.
                    assert!(a.chars().count() <= 254 * 3, "address too long");
                }
                if let Some(s) = &rcpt.status {
                    assert!(s.chars().count() <= 16, "status too long: {s:?}");
                    assert!(
                        !s.contains(|c: char| c.is_whitespace() || c == '('),
                        "status keeps a comment: {s:?}"
                    );
                }
                if let Some(diag) = &rcpt.diagnostic {
                    assert!(diag.chars().count() <= 300, "diagnostic too long");
                    assert!(!diag.is_empty() && !diag.starts_with(char::is_whitespace));
                }
                match rcpt.action {
                    Action::Fine => assert_eq!(rcpt.bounce(), None),
                    Action::Delayed => assert_eq!(rcpt.bounce(), Some(Bounce::Soft)),
                    Action::Failed => assert!(rcpt.bounce().is_some()),
                }
            }
            let best = d
                .recipients
                .iter()
                .filter_map(|r| r.bounce())
                .map(rank)
                .min();
            match d.worst() {
                None => assert_eq!(best, None, "a failure was missed"),
                Some((w, b)) => {
                    assert_eq!(w.bounce(), Some(b));
                    assert_eq!(Some(rank(b)), best, "worst is not the worst");
                }
            }
        }
        Report::Complaint(c) => {
            assert_eq!(r.class(), "complaint");
            bare(&c.original_message_id);
            assert!(!c.feedback_type.is_empty());
            assert!(
                !c.feedback_type.bytes().any(|b| b.is_ascii_uppercase()),
                "feedback type not lower-case: {:?}",
                c.feedback_type
            );
        }
        Report::AutoReply => assert_eq!(r.class(), "auto_reply"),
        Report::Other { .. } => assert_eq!(r.class(), "other"),
    }
}

/// The keys the tag targets use (the unit tests' keys).
fn tag_keys() -> Keys {
    Keys::from_secrets([7; 32], [9; 32])
}

fn day_start(day: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(day * 86_400, 0).single().expect("time")
}

/// The bytes of a tag's or token's body (what the MAC and the expiry are read from): RFC 4648
/// base32 without padding, written out here so that the check does not share the decoder it
/// checks; `None` unless canonical (the unused trailing bits zero).
fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut bits: u64 = 0;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes() {
        let v = match c.to_ascii_uppercase() {
            c @ b'A'..=b'Z' => c - b'A',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        bits = (bits << 5) | u64::from(v);
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    // A base32 string without padding never leaves 5 or more bits over.
    (n < 5 && bits == 0).then_some(out)
}

/// VERP tags and mailto tokens. The input is `candidate\nemail` (the email optional): the
/// candidate checks as a VERP tag, or as a mailto token for the subscriber it claims, only if it
/// is, letter case aside, the tag or token the keys mint for what it names and its expiry (a
/// random or altered one never checks). And a tag and a token minted for values taken from the
/// input's bytes check back to the same delivery or subscriber, until they expire and not after;
/// under other keys, or with one character changed, they do not.
pub fn feedback_tags(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (candidate, email) = match text.split_once('\n') {
        Some((c, e)) => (c.to_string(), e.to_string()),
        None => (text.to_string(), "ann@example.com".to_string()),
    };
    let keys = tag_keys();
    // 2026-06-01 plus up to ~45 years, from the input.
    let mut word = [0u8; 8];
    for (i, b) in data.iter().take(8).enumerate() {
        word[i] = *b;
    }
    let seed = u64::from_le_bytes(word);
    let now = day_start(20_605) + Duration::seconds((seed % (45 * 365 * 86_400)) as i64);

    // The candidate as a VERP tag.
    if let Some(named) = keys.check_verp(&candidate, now) {
        let bytes = candidate
            .strip_prefix(tags::VERP_PREFIX)
            .and_then(base32_decode)
            .expect("a tag that checks is base32");
        let expires = i64::from(u16::from_be_bytes([bytes[9], bytes[10]]));
        let minted_at = day_start(expires - tags::VERP_DAYS);
        let delivery = match named {
            Tagged::Digest(id) => Delivery::Digest { id, run: 0 },
            Tagged::Single(id) => Delivery::Single { id },
        };
        let real = keys.verp_tag(delivery, minted_at);
        assert_eq!(
            candidate[1..].to_ascii_lowercase(),
            real[1..],
            "a tag checks that the keys did not mint"
        );
    }
    // The candidate as a mailto token, for the subscriber it claims.
    let claimed = Keys::unsubscribe_claim(&candidate);
    let subscriber = claimed.unwrap_or(seed as i64);
    if keys.check_unsubscribe(&candidate, subscriber, &email, now) {
        assert_eq!(claimed, Some(subscriber));
        let bytes = candidate
            .strip_prefix(tags::UNSUBSCRIBE_PREFIX)
            .and_then(base32_decode)
            .expect("a token that checks is base32");
        let expires = i64::from(u16::from_be_bytes([bytes[8], bytes[9]]));
        let real = keys.unsubscribe_token(subscriber, &email, day_start(expires), 0);
        assert_eq!(
            candidate[1..].to_ascii_lowercase(),
            real[1..],
            "a token checks that the keys did not mint"
        );
    }

    // Minted from the input: a delivery, a subscriber, an address, a validity.
    let id = i64::from_be_bytes(word);
    let delivery = if seed & 1 == 0 {
        Delivery::Digest { id, run: 1 }
    } else {
        Delivery::Single { id }
    };
    let want = match delivery {
        Delivery::Digest { id, .. } => Tagged::Digest(id),
        Delivery::Single { id } => Tagged::Single(id),
    };
    let tag = keys.verp_tag(delivery, now);
    assert_eq!(tag.len(), tags::VERP_LEN);
    assert!(tag
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    assert_eq!(keys.check_verp(&tag, now), Some(want));
    let folded = format!("b{}", tag[1..].to_ascii_uppercase());
    assert_eq!(keys.check_verp(&folded, now), Some(want), "case folded");
    let last_day = now + Duration::days(tags::VERP_DAYS);
    assert_eq!(keys.check_verp(&tag, last_day), Some(want));
    assert_eq!(keys.check_verp(&tag, last_day + Duration::days(1)), None);
    let other = Keys::from_secrets([8; 32], [9; 32]);
    assert_eq!(other.check_verp(&tag, now), None, "another key checks it");
    // One character changed (not just its case): nothing.
    let at = 1 + (seed as usize >> 8) % (tag.len() - 1);
    let alphabet = b"abcdefghijklmnopqrstuvwxyz234567";
    let with = alphabet[(seed as usize >> 16) % alphabet.len()];
    if !tag.as_bytes()[at].eq_ignore_ascii_case(&with) {
        let mut altered = tag.clone().into_bytes();
        altered[at] = with;
        let altered = String::from_utf8(altered).expect("ascii");
        assert_eq!(keys.check_verp(&altered, now), None, "{altered} checks");
    }

    let days = (seed >> 24) as i64 % 3650;
    let token = keys.unsubscribe_token(id, &email, now, days);
    assert_eq!(token.len(), tags::UNSUBSCRIBE_LEN);
    assert_eq!(Keys::unsubscribe_claim(&token), Some(id));
    assert!(keys.check_unsubscribe(&token, id, &email, now));
    // The address compares without case (ASCII upper case lower-cases back to the same).
    assert!(keys.check_unsubscribe(&token, id, &email.to_ascii_uppercase(), now));
    let expiry = now + Duration::days(days);
    assert!(keys.check_unsubscribe(&token, id, &email, expiry));
    assert!(!keys.check_unsubscribe(&token, id, &email, expiry + Duration::days(1)));
    assert!(!keys.check_unsubscribe(&token, id.wrapping_add(1), &email, now));
    assert!(!keys.check_unsubscribe(&token, id, &format!("{email}x"), now));
    let swapped = Keys::from_secrets([9; 32], [7; 32]);
    assert!(!swapped.check_unsubscribe(&token, id, &email, now));
    // A VERP tag is not a mailto token, nor the reverse.
    assert_eq!(keys.check_verp(&token, now), None);
    assert!(!keys.check_unsubscribe(&tag, id, &email, now));
}

/// The return path the SMTP target's listener takes mail for.
pub const RETURN_PATH: &str = "bounces@blog.example";
/// Its size limit (the smallest the configuration allows is 1,024 bytes).
const SMTP_MAX_BYTES: u64 = 4096;

/// An inbound listener over a scratch database, per thread; its tables of what came in are
/// emptied before each input.
struct SmtpScratch {
    _dir: tempfile::TempDir,
    store: Store,
    listener: Arc<tidings::feedback::listener::Listener>,
    runtime: tokio::runtime::Runtime,
}

thread_local! {
    static SMTP: RefCell<Option<SmtpScratch>> = const { RefCell::new(None) };
}

fn smtp_scratch() -> SmtpScratch {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_sqlite(&dir.path().join("fuzz.db"), 1).expect("db");
    let mut config = tidings::config::Config::default();
    config.site.base_url = "https://blog.example/".into();
    config.mail.return_path = Some(RETURN_PATH.into());
    config.mail.inbound.bind = Some("127.0.0.1:0".into());
    config.mail.inbound.max_message_bytes = SMTP_MAX_BYTES;
    let rules = tidings::feedback::apply::Rules::new(&config, tag_keys()).expect("rules");
    let listener = tidings::feedback::listener::Listener::new(&config, rules, store.clone());
    SmtpScratch {
        _dir: dir,
        store,
        listener: Arc::new(listener),
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime"),
    }
}

/// The inbound SMTP listener, fed `data` as everything a client sends (then the client closes
/// its side), over an in-memory stream through the listener's own session (line limit, DATA,
/// size limit, storing and handling each message). The session ends (within 5 s); everything it
/// writes is SMTP replies: CRLF-terminated lines of three digits and a space or a dash, the
/// first a `220` greeting, each multi-line reply ended by a space line; the messages stored are
/// exactly the ones acknowledged with `250 2.0.0`, none larger than the limit; a too-long line is
/// the session's last reply.
pub fn inbound_smtp_session(data: &[u8]) {
    smtp_session(data);
}

/// The session of `inbound_smtp_session`, its checks made: the reply lines, and how many
/// messages were stored.
pub fn smtp_session(data: &[u8]) -> (Vec<String>, i64) {
    contain_mail_parser_panics();
    SMTP.with(|cell| {
        let mut slot = cell.borrow_mut();
        let s = slot.get_or_insert_with(smtp_scratch);
        s.store
            .blocking(Mode::Write, |db| {
                db.execute_batch(
                    "DELETE FROM inbound_messages; DELETE FROM events; \
                     DELETE FROM suppressions; DELETE FROM webhook_seen;",
                )
            })
            .expect("reset");
        let listener = s.listener.clone();
        let output = s.runtime.block_on(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (client, server) = tokio::io::duplex(16 * 1024);
            let (server_read, server_write) = tokio::io::split(server);
            let (mut client_read, mut client_write) = tokio::io::split(client);
            let ip = std::net::IpAddr::from([192, 0, 2, 1]);
            let session = listener.session(
                server_read,
                server_write,
                ip,
                tokio_util::sync::CancellationToken::new(),
            );
            let send = async {
                // The listener may close before it has read everything: that is its right.
                let _ = client_write.write_all(data).await;
                let _ = client_write.shutdown().await;
            };
            let mut output = Vec::new();
            let receive = client_read.read_to_end(&mut output);
            let all = async {
                let (ended, _, received) = tokio::join!(session, send, receive);
                (ended, received)
            };
            let (ended, received) = tokio::time::timeout(std::time::Duration::from_secs(5), all)
                .await
                .expect("the session did not end within 5 s");
            let _ = ended;
            received.expect("read the replies");
            output
        });
        assert!(output.ends_with(b"\r\n"), "replies end with CRLF");
        let text = String::from_utf8(output).expect("replies are UTF-8");
        let lines: Vec<&str> = text[..text.len() - 2].split("\r\n").collect();
        assert!(lines[0].starts_with("220 "), "greeting: {:?}", lines[0]);
        let mut open: Option<&str> = None;
        let mut acknowledged = 0;
        for (i, line) in lines.iter().enumerate() {
            let b = line.as_bytes();
            assert!(
                b.len() >= 4
                    && b[..3].iter().all(u8::is_ascii_digit)
                    && (b[3] == b' ' || b[3] == b'-')
                    && (b'2'..=b'5').contains(&b[0]),
                "not an SMTP reply line: {line:?}"
            );
            assert!(
                !line.contains(['\r', '\n']),
                "a bare CR or LF in a reply: {line:?}"
            );
            if let Some(code) = open {
                assert_eq!(&line[..3], code, "a multi-line reply changes its code");
            }
            open = (b[3] == b'-').then(|| &line[..3]);
            if line.starts_with("250 2.0.0 ") {
                acknowledged += 1;
            }
            if line.starts_with("500 5.5.2 line too long") {
                assert_eq!(
                    i,
                    lines.len() - 1,
                    "the session went on after a too-long line"
                );
            }
        }
        assert_eq!(open, None, "a multi-line reply is not finished");
        let (stored, largest): (i64, i64) = s
            .store
            .blocking(Mode::Read, |db| {
                db.query_row(
                    "SELECT count(*), coalesce(max(size), 0) FROM inbound_messages",
                    &[],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
            })
            .expect("count");
        assert_eq!(stored, acknowledged, "stored messages != 250 2.0.0 replies");
        assert!(
            largest as u64 <= SMTP_MAX_BYTES,
            "a message over the limit was stored"
        );
        (lines.iter().map(|l| l.to_string()).collect(), stored)
    })
}
