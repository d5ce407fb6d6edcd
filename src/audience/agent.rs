//! Reading a feed request's User-Agent: a hosted reader reporting how many of its users follow
//! the feed (`Feedly/1.0 (…; 134 subscribers; )`), some other reader, a browser, or a crawler.
//! Pure and allocation-free: it runs on the feed fast path.

/// At most this much of a User-Agent is read (and hashed): a longer one costs no more.
pub const MAX_AGENT: usize = 512;

/// What a User-Agent says about the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agent<'a> {
    /// A hosted reader fetching for `subscribers` of its users.
    Reported(Reported<'a>),
    /// A reader of one person (or a service that does not say): a unique (address, agent).
    Reader,
    /// A browser with no reader marker: someone looking at the XML, not following the feed.
    Browser,
    /// A search engine, link preview, archiver or validator.
    Crawler,
}

/// A count a hosted reader put in its User-Agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reported<'a> {
    /// The service's name: `Feedly`, `Inoreader`, … or, for one not listed, the name it gives
    /// (letters, digits, `.`, `-`, `_`; at most 40 characters), else `unknown`.
    pub service: &'a str,
    /// The service's id for the feed when it gives one (`feed-id=…`, NewsBlur's `/site/N`), else "".
    pub feed_id: &'a str,
    /// Saturates at `u64::MAX` for absurd digit strings.
    pub subscribers: u64,
}

/// Hosted readers that report counts, by the lower-case name their User-Agent starts with (or
/// gives after `compatible;`), and the name shown.
const SERVICES: &[(&str, &str)] = &[
    ("feedly", "Feedly"),
    ("inoreader", "Inoreader"),
    ("newsblur", "NewsBlur"),
    ("feedbin", "Feedbin"),
    ("theoldreader", "The Old Reader"),
    ("bazqux", "BazQux"),
    ("netvibes", "Netvibes"),
    ("feedfetcher-google", "Google Feedfetcher"),
    ("feedhq", "FeedHQ"),
    ("feedwrangler", "Feed Wrangler"),
    ("bloglovin", "Bloglovin"),
    ("superfeedr", "Superfeedr"),
    ("overcast", "Overcast"),
    ("feedspot", "Feedspot"),
    ("digg", "Digg Reader"),
    ("commafeed", "CommaFeed"),
    ("feedpress", "FeedPress"),
    ("feeder", "Feeder"),
    ("g2reader", "G2Reader"),
    ("livedoor", "livedoor Reader"),
    ("freshrss", "FreshRSS"),
    ("miniflux", "Miniflux"),
];

/// Whether `name` is the shown name of a service listed here.
pub fn is_known_service(name: &str) -> bool {
    SERVICES.iter().any(|(_, shown)| *shown == name)
}

/// Reads `agent` (at most `MAX_AGENT` bytes of it).
pub fn classify(agent: &[u8]) -> Agent<'_> {
    let agent = &agent[..agent.len().min(MAX_AGENT)];
    if let Some(subscribers) = subscriber_count(agent) {
        return Agent::Reported(Reported {
            service: service(agent),
            feed_id: feed_id(agent),
            subscribers,
        });
    }
    let mut words = Words::new(agent);
    let (mut browser_like, mut engine, mut reader) = (None, false, false);
    while let Some(word) = words.next_word() {
        if is_crawler_word(word) {
            return Agent::Crawler;
        }
        browser_like.get_or_insert(matches!(word, b"mozilla" | b"opera"));
        engine |= matches!(
            word,
            b"applewebkit" | b"gecko" | b"trident" | b"msie" | b"presto"
        );
        reader |= matches!(
            word,
            b"rss"
                | b"atom"
                | b"feed"
                | b"feeds"
                | b"reader"
                | b"podcast"
                | b"podcasts"
                | b"fetcher"
                | b"aggregator"
                | b"syndication"
                | b"thunderbird"
                | b"newsboat"
                | b"liferea"
        );
    }
    let browser_like = browser_like.unwrap_or(false);
    if browser_like && engine && !reader {
        Agent::Browser
    } else {
        Agent::Reader
    }
}

/// Words that mark a robot: `Googlebot`, `bingbot`, `Baiduspider`, `Yahoo! Slurp`,
/// `facebookexternalhit`, `HeadlessChrome`, `W3C_Validator`, `ia_archiver`, ….
fn is_crawler_word(word: &[u8]) -> bool {
    word.ends_with(b"bot")
        || word.ends_with(b"bots")
        || contains(word, b"crawl")
        || contains(word, b"spider")
        || matches!(
            word,
            b"slurp"
                | b"archiver"
                | b"facebookexternalhit"
                | b"headlesschrome"
                | b"lighthouse"
                | b"validator"
                | b"feedvalidator"
                | b"preview"
        )
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The lower-cased runs of ASCII letters and digits (each at most 32 bytes; longer runs are
/// cut, which no marker needs).
struct Words<'a> {
    rest: &'a [u8],
    buf: [u8; 32],
}

impl<'a> Words<'a> {
    fn new(agent: &'a [u8]) -> Words<'a> {
        Words {
            rest: agent,
            buf: [0; 32],
        }
    }

    /// The next word, lower-cased into `buf` (so a borrow of `self`).
    fn next_word(&mut self) -> Option<&[u8]> {
        let start = self.rest.iter().position(u8::is_ascii_alphanumeric)?;
        let rest = &self.rest[start..];
        let len = rest
            .iter()
            .position(|b| !b.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        self.rest = &rest[len..];
        let kept = len.min(self.buf.len());
        for (slot, b) in self.buf.iter_mut().zip(&rest[..kept]) {
            *slot = b.to_ascii_lowercase();
        }
        Some(&self.buf[..kept])
    }
}

/// `N subscribers` (or `subscriber`, `readers`, `reader`), N a whole number standing alone.
fn subscriber_count(agent: &[u8]) -> Option<u64> {
    let mut i = 0;
    while i < agent.len() {
        if !agent[i].is_ascii_digit() || (i > 0 && agent[i - 1].is_ascii_alphanumeric()) {
            i += 1;
            continue;
        }
        let digits = agent[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        let number = &agent[i..i + digits];
        i += digits;
        let after = &agent[i..];
        let spaces = after.iter().take_while(|b| **b == b' ').count();
        if spaces == 0 {
            continue;
        }
        let word = &after[spaces..];
        let unit = [&b"subscriber"[..], &b"reader"[..]]
            .into_iter()
            .find(|unit| starts_with_ignore_case(word, unit));
        let Some(unit) = unit else { continue };
        let mut end = unit.len();
        if word.get(end).is_some_and(|b| b.eq_ignore_ascii_case(&b's')) {
            end += 1;
        }
        if word.get(end).is_some_and(u8::is_ascii_alphanumeric) {
            continue;
        }
        return Some(number.iter().fold(0u64, |n, d| {
            n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        }));
    }
    None
}

/// Where `needle` (lower case, not empty) first occurs in `hay`, ignoring ASCII case.
fn find_ignore_case(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = needle[0];
    memchr::memchr2_iter(first, first.to_ascii_uppercase(), hay)
        .find(|&at| starts_with_ignore_case(&hay[at..], needle))
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// The reporting service's name: the product after `compatible;` in a `Mozilla/5.0 (compatible;
/// …)` agent, else the agent's first word; a known one by its usual name.
fn service(agent: &[u8]) -> &str {
    let token = compatible_token(agent).unwrap_or(agent);
    let end = token
        .iter()
        .position(|b| matches!(b, b' ' | b'/' | b';' | b'(' | b')' | b','))
        .unwrap_or(token.len());
    let mut name = &token[..end];
    // inoreader.com, theoldreader.com, www.netvibes.com: the name without its domain parts.
    let mut key = name;
    if let Some(stripped) = key.strip_prefix(b"www.") {
        key = stripped;
    }
    if let Some(dot) = key.iter().position(|b| *b == b'.') {
        key = &key[..dot];
    }
    if let Some((_, shown)) = SERVICES
        .iter()
        .find(|(k, _)| k.as_bytes().eq_ignore_ascii_case(key))
    {
        return shown;
    }
    if name.len() > 40 || name.eq_ignore_ascii_case(b"mozilla") {
        name = b"";
    }
    match std::str::from_utf8(name) {
        Ok(s)
            if !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) =>
        {
            s
        }
        _ => "unknown",
    }
}

/// `Foo` in `Mozilla/5.0 (compatible; Foo…`.
fn compatible_token(agent: &[u8]) -> Option<&[u8]> {
    const MARK: &[u8] = b"(compatible;";
    if !starts_with_ignore_case(agent, b"mozilla/") {
        return None;
    }
    let at = find_ignore_case(agent, MARK)?;
    let rest = &agent[at + MARK.len()..];
    let skip = rest.iter().take_while(|b| **b == b' ').count();
    Some(&rest[skip..])
}

/// The service's id of the feed: `feed-id=X`, `feed-id:X`, `feedID: X`, `feed_id=X`, or
/// NewsBlur's `/site/N`; letters, digits, `-` and `_`, at most 64 of them; else "".
fn feed_id(agent: &[u8]) -> &str {
    let mut i = 0;
    while let Some(at) = find_ignore_case(&agent[i..], b"feed") {
        let start = i + at + 4;
        i = start;
        let mut rest = &agent[start..];
        if let Some((b'-' | b'_' | b' ', tail)) = rest.split_first() {
            rest = tail;
        }
        if !starts_with_ignore_case(rest, b"id") {
            continue;
        }
        rest = &rest[2..];
        let spaces = rest.iter().take_while(|b| **b == b' ').count();
        rest = &rest[spaces..];
        match rest.split_first() {
            Some((b'=' | b':', tail)) => rest = tail,
            _ => continue,
        }
        let spaces = rest.iter().take_while(|b| **b == b' ').count();
        if let Some(id) = id_at(&rest[spaces..]) {
            return id;
        }
    }
    const SITE: &[u8] = b"newsblur.com/site/";
    if let Some(at) = find_ignore_case(agent, SITE) {
        if let Some(id) = id_at(&agent[at + SITE.len()..]) {
            return id;
        }
    }
    ""
}

fn id_at(s: &[u8]) -> Option<&str> {
    let len = s
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        .count();
    if len == 0 || len > 64 {
        return None;
    }
    std::str::from_utf8(&s[..len]).ok()
}

#[cfg(test)]
mod tests;
