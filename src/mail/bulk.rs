//! One message body, many recipients. A digest's text and HTML are the same for everyone who
//! follows the same tags in the same calendar day; only the personal links differ. So the body is
//! rendered, MIME-encoded (quoted-printable, by lettre) and, for DKIM, canonicalized once, with
//! placeholders where the personal values go; each recipient's copy is the template with their
//! values written over the placeholders.
//!
//! This works because the values are tokens of the placeholders' length in an alphabet that
//! quoted-printable leaves as it is (base64url): every byte stays one byte, so the encoder's line
//! breaks fall in the same places. A soft line break (`=\r\n`) may split a placeholder; the
//! positions recorded step over it.

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, MultiPart, SinglePart};
use rand::Rng;

use super::dkim;

/// A random string of `len` letters and digits: a placeholder that no real content contains.
pub fn placeholder(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Where each placeholder's characters sit in some bytes: for placeholder `i`, the positions of
/// its characters, occurrence after occurrence.
#[derive(Debug, Clone, Default)]
struct Slots(Vec<Vec<u32>>);

impl Slots {
    fn find(hay: &[u8], placeholders: &[&str]) -> Slots {
        Slots(
            placeholders
                .iter()
                .map(|p| positions(hay, p.as_bytes()))
                .collect(),
        )
    }

    /// Writes `values` over the placeholders in `bytes` (each value as long as its placeholder).
    fn fill(&self, bytes: &mut [u8], values: &[&str]) {
        for (positions, value) in self.0.iter().zip(values) {
            let value = value.as_bytes();
            if value.is_empty() {
                continue;
            }
            for (i, &at) in positions.iter().enumerate() {
                bytes[at as usize] = value[i % value.len()];
            }
        }
    }
}

/// The positions of every occurrence of `needle` in `hay`, stepping over soft line breaks.
fn positions(hay: &[u8], needle: &[u8]) -> Vec<u32> {
    let mut out = Vec::new();
    let Some(&first) = needle.first() else {
        return out;
    };
    let mut i = 0;
    while i < hay.len() {
        if hay[i] == first {
            let mut found = Vec::with_capacity(needle.len());
            let (mut j, mut k) = (i, 0);
            while k < needle.len() && j < hay.len() {
                if hay[j..].starts_with(b"=\r\n") {
                    j += 3;
                    continue;
                }
                if hay[j] != needle[k] {
                    break;
                }
                found.push(j as u32);
                j += 1;
                k += 1;
            }
            if k == needle.len() {
                out.extend(found);
                i = j;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// A multipart/alternative body (text, then HTML) encoded once, with placeholders to fill.
#[derive(Debug)]
pub struct BodyTemplate {
    pub subject: String,
    content_type: ContentType,
    body: Vec<u8>,
    slots: Slots,
    lengths: Vec<usize>,
    /// The relaxed-canonical body and its slots, when messages are DKIM-signed.
    canonical: Option<(Vec<u8>, Slots)>,
}

impl BodyTemplate {
    /// Encodes `text` and `html`, in which each of `placeholders` stands for a per-recipient
    /// value of the same length.
    pub fn new(
        subject: String,
        text: String,
        html: String,
        placeholders: &[&str],
        canonical: bool,
    ) -> Result<BodyTemplate, String> {
        let part = |content_type: ContentType, content: String| -> Result<SinglePart, String> {
            let body = Body::new_with_encoding(content, ContentTransferEncoding::QuotedPrintable)
                .map_err(|_| "cannot encode the body as quoted-printable".to_string())?;
            Ok(SinglePart::builder().header(content_type).body(body))
        };
        let multipart = MultiPart::alternative()
            .singlepart(part(ContentType::TEXT_PLAIN, text)?)
            .singlepart(part(ContentType::TEXT_HTML, html)?);
        let content_type = multipart
            .headers()
            .get::<ContentType>()
            .ok_or("the multipart has no Content-Type")?;
        let formatted = multipart.formatted();
        let end = dkim::header_end(&formatted).ok_or("the multipart has no header block")?;
        let body = formatted[end + 2..].to_vec();
        let slots = Slots::find(&body, placeholders);
        let canonical = canonical.then(|| {
            let c = dkim::relaxed_body(&body);
            let s = Slots::find(&c, placeholders);
            (c, s)
        });
        Ok(BodyTemplate {
            subject,
            content_type,
            body,
            slots,
            lengths: placeholders.iter().map(|p| p.len()).collect(),
            canonical,
        })
    }

    pub fn content_type(&self) -> ContentType {
        self.content_type.clone()
    }

    fn check(&self, values: &[&str]) -> Result<(), String> {
        if values.len() != self.lengths.len()
            || values.iter().zip(&self.lengths).any(|(v, &l)| v.len() != l)
        {
            return Err("a personal value does not match its placeholder's length".into());
        }
        Ok(())
    }

    /// One recipient's encoded body.
    pub fn fill(&self, values: &[&str]) -> Result<Vec<u8>, String> {
        self.check(values)?;
        let mut body = self.body.clone();
        self.slots.fill(&mut body, values);
        Ok(body)
    }

    /// The DKIM body hash of one recipient's body (with `canonical` set at creation).
    pub fn body_hash(&self, values: &[&str]) -> Option<[u8; 32]> {
        let (canonical, slots) = self.canonical.as_ref()?;
        self.check(values).ok()?;
        let mut c = canonical.clone();
        slots.fill(&mut c, values);
        Some(dkim::body_hash(&c))
    }

    /// Bytes held (for bounding a cache of templates).
    pub fn size(&self) -> usize {
        self.body.len() + self.canonical.as_ref().map_or(0, |(c, _)| c.len()) + self.subject.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filled_bodies_equal_bodies_encoded_with_the_values() {
        let ph = [placeholder(43), placeholder(43)];
        let phs: Vec<&str> = ph.iter().map(String::as_str).collect();
        let values = [
            "Ab-_0123456789abcdefghijklmnopqrstuvwxyzABC",
            "zyxwvutsrqponmlkjihgfedcba-_9876543210ZYXWV",
        ];
        // Long lines, so that quoted-printable breaks lines inside the placeholders.
        let text = |a: &str, b: &str| {
            format!(
                "{}\nmanage: https://x.example/p/{a}\n{} https://x.example/u/{b} and again {a}\n",
                "é".repeat(50),
                "x".repeat(61)
            )
        };
        let html = |a: &str, b: &str| {
            format!(
                "<p>{}<a href=\"https://x.example/p/{a}\">p</a>  <a href=\"https://x.example/u/{b}\">u</a></p>",
                "ü ".repeat(40)
            )
        };
        let t = BodyTemplate::new(
            "s".into(),
            text(phs[0], phs[1]),
            html(phs[0], phs[1]),
            &phs,
            true,
        )
        .expect("template");
        assert_eq!(t.slots.0[0].len(), 43 * 3, "every occurrence found");
        let direct = BodyTemplate::new(
            "s".into(),
            text(values[0], values[1]),
            html(values[0], values[1]),
            &[],
            true,
        )
        .expect("direct");
        let filled = t.fill(&values).expect("fill");
        // The boundary is random; compare with it replaced.
        let boundary = |body: &[u8]| {
            let first = body.split(|&b| b == b'\r').next().expect("line");
            String::from_utf8(first[2..].to_vec()).expect("ascii")
        };
        let a = String::from_utf8(filled.clone())
            .expect("ascii")
            .replace(&boundary(&filled), "B");
        let b = String::from_utf8(direct.body.clone())
            .expect("ascii")
            .replace(&boundary(&direct.body), "B");
        assert_eq!(a, b);
        assert_eq!(
            t.body_hash(&values),
            Some(dkim::body_hash(&dkim::relaxed_body(&filled)))
        );
        assert!(t.fill(&["short", values[1]]).is_err());
    }
}
