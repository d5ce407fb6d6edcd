//! What a message that came back is: a delivery status notification (RFC 3464), a complaint in
//! the Abuse Reporting Format (RFC 5965), an auto-reply (RFC 3834 and the common non-standard
//! headers), or something else. Pure: bytes in, a `Report` out. MIME is parsed by mail-parser;
//! the report parts' field groups (`Action: failed`, `Status: 5.1.1`, …) are header blocks, read
//! with its header parser too.

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

/// What `Action` a DSN gives for one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Failed,
    Delayed,
    /// `delivered`, `relayed`, `expanded`: not a problem.
    Fine,
}

/// One per-recipient group of a DSN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsnRecipient {
    /// `Final-Recipient` (or `Original-Recipient`), address only; for the record, never for
    /// deciding whose it is.
    pub address: Option<String>,
    pub action: Action,
    /// The enhanced status code, e.g. `5.1.1`.
    pub status: Option<String>,
    pub diagnostic: Option<String>,
}

/// What a bounce says about its recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bounce {
    /// The mailbox does not exist or is disabled: suppress at once.
    Hard,
    /// Delayed, or a 4.x.x: counted once per delivery towards `mail.soft_bounce_limit`.
    Soft,
    /// 5.7.x: blocked by policy (often the sender's reputation, not the recipient).
    Policy,
    /// Any other permanent failure: counts towards `mail.bounce_limit`.
    Other,
}

impl Bounce {
    pub fn as_str(self) -> &'static str {
        match self {
            Bounce::Hard => "hard",
            Bounce::Soft => "soft",
            Bounce::Policy => "policy",
            Bounce::Other => "other",
        }
    }
}

impl DsnRecipient {
    /// How this recipient's failure counts, if it is one.
    pub fn bounce(&self) -> Option<Bounce> {
        let status = self.status.as_deref().unwrap_or("");
        match self.action {
            Action::Fine => None,
            Action::Delayed => Some(Bounce::Soft),
            Action::Failed if status.starts_with('4') => Some(Bounce::Soft),
            Action::Failed => Some(status_bounce(status)),
        }
    }
}

/// The kind of a permanent failure from its enhanced status code (RFC 3463).
pub fn status_bounce(status: &str) -> Bounce {
    match status {
        // Bad destination mailbox (5.1.1), bad destination system (5.1.2), recipient address
        // has a null MX (5.1.10), mailbox disabled (5.2.1).
        "5.1.1" | "5.1.2" | "5.1.10" | "5.2.1" => Bounce::Hard,
        s if s.starts_with("5.7.") => Bounce::Policy,
        s if s.starts_with('4') => Bounce::Soft,
        _ => Bounce::Other,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dsn {
    pub recipients: Vec<DsnRecipient>,
    /// The Message-ID of the message that bounced, from the quoted original (`message/rfc822`
    /// or `text/rfc822-headers`), without angle brackets; `None` when it is not quoted.
    pub original_message_id: Option<String>,
}

impl Dsn {
    /// The failure that counts most, if any recipient failed or was delayed.
    pub fn worst(&self) -> Option<(&DsnRecipient, Bounce)> {
        let rank = |b: Bounce| match b {
            Bounce::Hard => 0,
            Bounce::Other => 1,
            Bounce::Policy => 2,
            Bounce::Soft => 3,
        };
        self.recipients
            .iter()
            .filter_map(|r| r.bounce().map(|b| (r, b)))
            .min_by_key(|(_, b)| rank(*b))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Complaint {
    /// `Feedback-Type`: `abuse`, `fraud`, `virus`, `other`, `not-spam`.
    pub feedback_type: String,
    pub original_message_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Dsn(Dsn),
    Complaint(Complaint),
    AutoReply,
    /// Anything else (a person's reply, a mailto unsubscribe, spam): `subject` for the
    /// mailto check.
    Other {
        subject: Option<String>,
    },
}

impl Report {
    pub fn class(&self) -> &'static str {
        match self {
            Report::Dsn(_) => "dsn",
            Report::Complaint(_) => "complaint",
            Report::AutoReply => "auto_reply",
            Report::Other { .. } => "other",
        }
    }
}

/// Reads `raw`. Never fails: what cannot be parsed is `Other`, and so is a message that makes
/// mail-parser panic (malformed MIME has: upstream issues 120 and 145; in debug builds its debug
/// assertions fire on some nested parts), so that one bad message cannot fail its handling.
pub fn parse(raw: &[u8]) -> Report {
    std::panic::catch_unwind(|| read(raw)).unwrap_or(Report::Other { subject: None })
}

fn read(raw: &[u8]) -> Report {
    let Some(message) = MessageParser::default().parse(raw) else {
        return Report::Other { subject: None };
    };
    let report_type = message
        .content_type()
        .filter(|c| c.ctype().eq_ignore_ascii_case("multipart"))
        .and_then(|c| c.attribute("report-type"))
        .map(str::to_ascii_lowercase);
    let mut status = None;
    let mut feedback = None;
    let mut original = None;
    for part in &message.parts {
        let Some(ct) = part.content_type() else {
            continue;
        };
        let (ctype, sub) = (
            ct.ctype().to_ascii_lowercase(),
            ct.subtype().unwrap_or("").to_ascii_lowercase(),
        );
        match (ctype.as_str(), sub.as_str()) {
            ("message", "delivery-status" | "global-delivery-status") => {
                status = Some(part.contents().to_vec())
            }
            ("message", "feedback-report") => feedback = Some(part.contents().to_vec()),
            ("text", "rfc822-headers" | "global-headers") if original.is_none() => {
                original = headers_message_id(part.contents())
            }
            ("message", "rfc822" | "global") if original.is_none() => {
                original = match &part.body {
                    PartType::Message(m) => m.message_id().map(bare_id),
                    _ => headers_message_id(part.contents()),
                }
            }
            _ => {}
        }
    }
    if let Some(fields) = feedback.filter(|_| report_type.as_deref() != Some("delivery-status")) {
        let groups = field_groups(&fields);
        let feedback_type = groups
            .iter()
            .find_map(|g| field(g, "feedback-type"))
            .unwrap_or_else(|| "abuse".to_string())
            .to_ascii_lowercase();
        return Report::Complaint(Complaint {
            feedback_type,
            original_message_id: original,
        });
    }
    if let Some(fields) = status {
        let recipients = field_groups(&fields)
            .iter()
            .filter(|g| field(g, "action").is_some())
            .map(|g| DsnRecipient {
                address: field(g, "final-recipient")
                    .or_else(|| field(g, "original-recipient"))
                    .map(|v| address_of(&v)),
                action: match field(g, "action")
                    .unwrap_or_default()
                    .to_ascii_lowercase()
                    .as_str()
                {
                    "failed" => Action::Failed,
                    "delayed" => Action::Delayed,
                    _ => Action::Fine,
                },
                status: field(g, "status").map(|s| status_code(&s)),
                diagnostic: field(g, "diagnostic-code").map(|d| d.chars().take(300).collect()),
            })
            .collect();
        return Report::Dsn(Dsn {
            recipients,
            original_message_id: original,
        });
    }
    if is_auto_reply(&message) {
        return Report::AutoReply;
    }
    Report::Other {
        subject: message.subject().map(str::to_string),
    }
}

/// RFC 3834 `Auto-Submitted` other than `no`, and the common non-standard markers.
fn is_auto_reply(m: &Message<'_>) -> bool {
    let raw = |name: &str| m.header_raw(name).map(|v| v.trim().to_ascii_lowercase());
    if raw("Auto-Submitted").is_some_and(|v| !v.starts_with("no")) {
        return true;
    }
    if ["X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress"]
        .iter()
        .any(|h| raw(h).is_some())
    {
        return true;
    }
    if raw("Precedence").is_some_and(|v| v == "auto_reply") {
        return true;
    }
    let subject = m.subject().unwrap_or("").to_ascii_lowercase();
    [
        "out of office",
        "automatic reply",
        "auto-reply",
        "autoreply",
        "auto:",
    ]
    .iter()
    .any(|p| subject.starts_with(p))
}

/// The blocks of `Name: value` fields, separated by blank lines (RFC 3464 2.1, RFC 5965 3.1).
fn field_groups(bytes: &[u8]) -> Vec<Vec<(String, String)>> {
    let text = String::from_utf8_lossy(bytes).replace("\r\n", "\n");
    text.split("\n\n")
        .filter(|g| !g.trim().is_empty())
        .map(|g| {
            let block = format!("{}\n\n", g.trim_start_matches('\n'));
            let Some(parsed) = MessageParser::default().parse_headers(block.as_bytes()) else {
                return Vec::new();
            };
            parsed
                .headers_raw()
                .map(|(name, value)| {
                    let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
                    (name.to_ascii_lowercase(), value)
                })
                .collect()
        })
        .collect()
}

fn field(group: &[(String, String)], name: &str) -> Option<String> {
    group
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// `rfc822; Ann@Example.com` → `ann@example.com`.
fn address_of(v: &str) -> String {
    let v = v.split_once(';').map(|(_, a)| a).unwrap_or(v);
    v.trim()
        .trim_matches(|c| c == '<' || c == '>')
        .chars()
        .take(254)
        .collect::<String>()
        .to_lowercase()
}

/// `5.1.1 (bad destination mailbox)` → `5.1.1`.
fn status_code(v: &str) -> String {
    v.split(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("")
        .chars()
        .take(16)
        .collect()
}

fn bare_id(id: &str) -> String {
    id.trim().trim_matches(|c| c == '<' || c == '>').to_string()
}

fn headers_message_id(bytes: &[u8]) -> Option<String> {
    let mut block = bytes.to_vec();
    block.extend_from_slice(b"\r\n\r\n");
    MessageParser::default()
        .parse_headers(&block)
        .and_then(|m| m.message_id().map(bare_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dsn(status_part: &str, original: &str) -> Vec<u8> {
        format!(
            "From: MAILER-DAEMON@mx.example\r\nTo: bounces+x@blog.example\r\nSubject: Undelivered Mail\r\n\
             MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
             --B\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n\
             --B\r\nContent-Type: message/delivery-status\r\n\r\n{status_part}\r\n\
             {original}--B--\r\n"
        )
        .into_bytes()
    }

    const FAILED: &str = "Reporting-MTA: dns; mx.example\r\n\r\nFinal-Recipient: rfc822; Gone@Example.com\r\n\
                          Action: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\n";

    #[test]
    fn a_dsn_with_the_original_as_message_rfc822() {
        let raw = dsn(
            FAILED,
            "--B\r\nContent-Type: message/rfc822\r\n\r\nMessage-ID: <abc@blog.example>\r\nSubject: x\r\n\r\nbody\r\n",
        );
        let Report::Dsn(d) = parse(&raw) else {
            panic!("not a DSN: {:?}", parse(&raw))
        };
        assert_eq!(d.original_message_id.as_deref(), Some("abc@blog.example"));
        let (r, b) = d.worst().expect("a failure");
        assert_eq!(b, Bounce::Hard);
        assert_eq!(r.address.as_deref(), Some("gone@example.com"));
        assert_eq!(r.status.as_deref(), Some("5.1.1"));
    }

    #[test]
    fn a_dsn_with_only_the_headers_or_nothing_quoted() {
        let raw = dsn(
            FAILED,
            "--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <def@blog.example>\r\nSubject: x\r\n",
        );
        let Report::Dsn(d) = parse(&raw) else {
            panic!("not a DSN")
        };
        assert_eq!(d.original_message_id.as_deref(), Some("def@blog.example"));
        let Report::Dsn(d) = parse(&dsn(FAILED, "")) else {
            panic!("not a DSN")
        };
        assert_eq!(d.original_message_id, None);
        assert_eq!(d.worst().map(|(_, b)| b), Some(Bounce::Hard));
    }

    #[test]
    fn statuses_sort_into_hard_soft_policy_and_other() {
        for (action, status, want) in [
            ("failed", "5.1.1", Some(Bounce::Hard)),
            ("failed", "5.2.1", Some(Bounce::Hard)),
            ("failed", "5.1.10", Some(Bounce::Hard)),
            ("failed", "5.2.2", Some(Bounce::Other)),
            ("failed", "5.7.1", Some(Bounce::Policy)),
            ("failed", "4.4.1", Some(Bounce::Soft)),
            ("delayed", "4.4.7", Some(Bounce::Soft)),
            ("delivered", "2.0.0", None),
        ] {
            let part = format!(
                "Reporting-MTA: dns; mx\r\n\r\nFinal-Recipient: rfc822; a@b.example\r\nAction: {action}\r\nStatus: {status} (text)\r\n"
            );
            let Report::Dsn(d) = parse(&dsn(&part, "")) else {
                panic!("not a DSN")
            };
            assert_eq!(d.worst().map(|(_, b)| b), want, "{action} {status}");
        }
    }

    #[test]
    fn an_arf_complaint() {
        let raw = b"From: fbl@isp.example\r\nTo: bounces@blog.example\r\nSubject: complaint\r\nMIME-Version: 1.0\r\n\
            Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\r\n\
            --F\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n\
            --F\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: FBL/1.0\r\nVersion: 1\r\n\r\n\
            --F\r\nContent-Type: message/rfc822\r\n\r\nMessage-ID: <ghi@blog.example>\r\nSubject: digest\r\n\r\nhi\r\n--F--\r\n";
        assert_eq!(
            parse(raw),
            Report::Complaint(Complaint {
                feedback_type: "abuse".into(),
                original_message_id: Some("ghi@blog.example".into()),
            })
        );
    }

    #[test]
    fn auto_replies_and_people() {
        let ooo = b"From: a@b.example\r\nTo: bounces@blog.example\r\nAuto-Submitted: auto-replied\r\nSubject: Re: digest\r\n\r\nAway.\r\n";
        assert_eq!(parse(ooo), Report::AutoReply);
        let ooo2 = b"From: a@b.example\r\nSubject: Out of Office: digest\r\n\r\nAway.\r\n";
        assert_eq!(parse(ooo2), Report::AutoReply);
        let person =
            b"From: a@b.example\r\nAuto-Submitted: no\r\nSubject: unsubscribe uabc\r\n\r\n\r\n";
        assert_eq!(
            parse(person),
            Report::Other {
                subject: Some("unsubscribe uabc".into())
            }
        );
        assert!(matches!(parse(b"\x00\xff garbage"), Report::Other { .. }));
    }
}
