#!/usr/bin/env python3
"""Feed conformance checks against a running tidings daemon (called by scripts/conformance.sh).

Adds edge-case articles through the admin API, fetches every feed the index page's autodiscovery
links name (the site's and every tag's, in RSS, Atom and JSON Feed), and checks:

  * what feed readers see: every RSS and Atom feed parses in feedparser with bozo == 0 and the
    expected number of entries; every JSON Feed is checked against the JSON Feed 1.1 spec with the
    stdlib (feedparser has no JSON Feed support in any release); the edge-case titles, texts and
    dates come through unchanged in every format;
  * every Atom date carries a time zone (RFC 3339; the RELAX NG grammar does not check it);
  * conditional requests: If-None-Match with the ETag, and If-Modified-Since with the
    Last-Modified, each get 304 with an empty body;
  * gzip: Accept-Encoding: gzip gets a gzip body that decompresses to exactly the identity bytes,
    its own ETag, and Vary: Accept-Encoding;
  * HEAD: the same headers as GET and not one byte of body.

Requests to feeds go over raw sockets, so the exact bytes on the wire (or their absence) are
checked. Each fetched feed is saved under --out, and --manifest lists `path<TAB>format<TAB>entries`
for the checks the shell script runs next (jing, feed-rs). The counts of passed and failed checks
go to --results as `PASSED FAILED`.
"""

import argparse
import calendar
import datetime
import gzip
import html
import html.parser
import json
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

import feedparser

ATOM_NS = "{http://www.w3.org/2005/Atom}"
RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"
)
FORMATS = {
    # file name: (format, MIME type in the link and Content-Type, feedparser version)
    "feed.xml": ("rss", "application/rss+xml", "rss20"),
    "atom.xml": ("atom", "application/atom+xml", "atom10"),
    "feed.json": ("json", "application/feed+json", None),
}

# The edge cases the feeds must carry through unchanged. `expect_title` is what the title must
# read once the daemon has dropped control characters and collapsed whitespace.
EDGE_ARTICLES = [
    {
        "body": {
            "slug": "edge-xml-specials",
            "title": 'Fish & chips <b>not bold</b> ]]> "quoted" \'apos\' &amp; done',
            "url": "https://conformance.example/posts/xml-specials?a=1&b=2",
            "summary": "Summary with & and < and > and ]]> and ]]]]><![CDATA[ inside.",
            "content_html": (
                "<p>Ampersand &amp; less-than &lt; greater-than &gt; and a CDATA end ]]&gt; "
                "in text.</p><pre><code>if a < b && c > d { x[y[0]]>1 }</code></pre>"
                "<p>Raw end marker: ]]> and <![CDATA[ an opener.</p>"
            ),
            "author": "Ann O'Neil & Co <ann@example.com>",
            "published_at": "2026-05-26T12:00:00Z",
            "tags": ["Open Science", "Edge Cases"],
        },
        "expect_title": 'Fish & chips <b>not bold</b> ]]> "quoted" \'apos\' &amp; done',
        "expect_tag_slugs": ["open-science", "edge-cases"],
        "expect_text": ["]]>", "a < b && c > d"],
    },
    {
        "body": {
            "slug": "edge-emoji-rtl",
            "title": "Emoji 🚀🧪👩🏽‍🔬 and RTL: مرحبا بالعالم — שלום עולם",
            "url": "https://conformance.example/posts/emoji-rtl",
            "summary": "العلوم المفتوحة 🔬 מדע פתוח",
            "content_markdown": (
                "# عنوان عربي\n\nنص عربي مع رمز تعبيري 🚀 و‏علامة اتجاه.\n\n"
                "עברית: מדע פתוח לכולם 🧪\n\nMixed: abc مرحبا 123 שלום xyz 👩🏽‍🔬\n"
            ),
            "author": "José Ñúñez — محمد",
            "published_at": "2026-05-26T13:00:00Z",
            "tags": ["Open Science", "Ünïcode Tëxt"],
            "image": "https://conformance.example/img/emoji.png",
            "reading_time_minutes": 3,
        },
        "expect_title": "Emoji 🚀🧪👩🏽‍🔬 and RTL: مرحبا بالعالم — שלום עולם",
        "expect_tag_slugs": ["open-science", "unicode-text"],
        "expect_text": ["مرحبا 123 שלום", "🚀", "מדע פתוח לכולם"],
    },
    {
        "body": {
            "slug": "edge-control-chars",
            "title": "Control\u0001 chars\u0008 and\u001f tabs\tand\nnewlines \u000bvanish",
            "url": "https://conformance.example/posts/control-chars",
            "summary": "Bell\u0007 escape\u001b null\u0000 form-feed\u000c noncharacter\ufffe gone",
            "content_html": "<p>Vertical\u000btab and \u0001SOH and \u007fDEL and \u0085NEL.</p>",
            "published_at": "2026-05-26T14:00:00Z",
            "tags": ["Edge Cases"],
        },
        "expect_title": "Control chars and tabs and newlines vanish",
        "expect_tag_slugs": ["edge-cases"],
        "expect_text": ["SOH"],
    },
    {
        "body": {
            "slug": "edge-no-tags",
            "title": "An article with no tags at all",
            "url": "https://conformance.example/posts/no-tags",
            "summary": "It appears in the site feeds and in no tag feed.",
            "content_markdown": "Just *text*.",
            "published_at": "2026-05-26T15:00:00Z",
        },
        "expect_title": "An article with no tags at all",
        "expect_tag_slugs": [],
        "expect_text": ["text"],
    },
    {
        "body": {
            "slug": "edge-offset-date",
            "title": "Published at 09:00 in UTC+2, updated at 14:30 in UTC+5:30",
            "url": "https://conformance.example/posts/offset-date",
            "content_html": "<p>Dates with offsets.</p>",
            "published_at": "2026-05-27T09:00:00+02:00",
            "updated_at": "2026-05-27T14:30:00+05:30",
            "tags": ["Edge Cases"],
        },
        "expect_title": "Published at 09:00 in UTC+2, updated at 14:30 in UTC+5:30",
        "expect_tag_slugs": ["edge-cases"],
        "expect_text": ["Dates with offsets."],
        # 2026-05-27T07:00:00Z and 2026-05-27T09:00:00Z
        "expect_published_utc": (2026, 5, 27, 7, 0, 0),
        "expect_updated_utc": (2026, 5, 27, 9, 0, 0),
    },
]


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"PASS {name}" + (f": {detail}" if detail else ""), flush=True)
        else:
            self.failed += 1
            print(f"FAIL {name}" + (f": {detail}" if detail else ""), flush=True)
        return ok


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (lower-case name, value), in order
        self.body = body

    def header(self, name):
        values = [v for n, v in self.headers if n == name.lower()]
        return ", ".join(values) if values else None

    def comparable_headers(self):
        """Every header but Date, as a sorted list (for comparing HEAD with GET)."""
        return sorted((n, v) for n, v in self.headers if n != "date")


class Server:
    def __init__(self, base_url, token):
        parts = urllib.parse.urlsplit(base_url)
        self.base_url = base_url.rstrip("/")
        self.host = parts.hostname
        self.port = parts.port
        self.token = token

    def raw(self, method, path, headers=None, timeout=15):
        """One request on its own connection (Connection: close); reads to EOF so every byte the
        server sends after the header block is seen, body or not."""
        lines = [
            f"{method} {path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Connection: close",
            "User-Agent: tidings-conformance",
        ]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
            sock.sendall(request)
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        data = b"".join(chunks)
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            raise RuntimeError(f"{method} {path}: no complete header block in {data[:200]!r}")
        head_lines = head.decode("latin-1").split("\r\n")
        status = int(head_lines[0].split()[1])
        headers = []
        for line in head_lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
        response = Response(status, headers, rest)
        if (response.header("transfer-encoding") or "").lower() == "chunked":
            response.body = dechunk(rest)
        return response

    def api(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode("utf-8", "replace")

    def get_text(self, path):
        with urllib.request.urlopen(self.base_url + path, timeout=30) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode("utf-8")


def dechunk(data):
    out = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return out
        out += data[:size]
        data = data[size + 2 :]


class LinkCollector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        if tag != "link":
            return
        a = dict(attrs)
        if "alternate" in (a.get("rel") or "").lower().split():
            self.links.append(a)


def show(b, limit=300):
    """Bytes for a failure message: repr, cut."""
    r = repr(b)
    return r if len(r) <= limit else r[:limit] + "…"


def context_of(body, needle, width=120):
    i = body.find(needle)
    if i < 0:
        return None
    return body[max(0, i - width) : i + len(needle) + width]


def utc_tuple(struct):
    return tuple(struct[:6]) if struct else None


def parse_rfc3339_utc(s):
    t = datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
    if t.tzinfo is None:
        return None
    return t.astimezone(datetime.timezone.utc).timetuple()[:6]


# ----------------------------------------------------------------------------------------------


def add_edge_articles(server, c):
    stored = {}
    for case in EDGE_ARTICLES:
        slug = case["body"]["slug"]
        status, answer = server.api("POST", "/api/articles", case["body"])
        ok = status == 201 and isinstance(answer, dict) and "article" in answer
        c.check(f"api: add article {slug}", ok, f"HTTP {status}" + ("" if ok else f" {show(answer)}"))
        if not ok:
            continue
        article = answer["article"]
        stored[slug] = (case, article)
        c.check(
            f"api: {slug} title stored as expected",
            article["title"] == case["expect_title"],
            "" if article["title"] == case["expect_title"]
            else f"got {article['title']!r}, want {case['expect_title']!r}",
        )
        c.check(
            f"api: {slug} tag slugs",
            sorted(article.get("tag_slugs") or []) == sorted(case["expect_tag_slugs"]),
            f"got {article.get('tag_slugs')!r}, want {case['expect_tag_slugs']!r}",
        )
        leftovers = [
            f"{k}: {v!r}"
            for k, v in article.items()
            if isinstance(v, str)
            and any((ord(ch) < 32 and ch not in "\t\n\r") or ch in "\ufffe\uffff" for ch in v)
        ]
        c.check(
            f"api: {slug} has no XML-forbidden characters",
            not leftovers,
            "; ".join(leftovers) if leftovers else "",
        )
    return stored


def discover(server, public_base, expected_paths, c):
    status, ctype, page = server.get_text("/")
    c.check("index: GET / is an HTML page", status == 200 and ctype.startswith("text/html"), f"HTTP {status} {ctype}")
    collector = LinkCollector()
    collector.feed(page)
    found = {}
    for link in collector.links:
        href, mime = link.get("href", ""), link.get("type", "")
        if not href.startswith(public_base + "/"):
            c.check(f"index: link {href} starts with site.base_url {public_base}", False)
            continue
        path = href[len(public_base) :]
        name = path.rsplit("/", 1)[-1]
        want_mime = FORMATS.get(name, (None, None))[1]
        c.check(f"index: link {path} has type {want_mime}", mime == want_mime, f"type={mime!r}")
        if path in found:
            c.check(f"index: link {path} listed once", False, "listed twice")
        found[path] = mime
    missing = sorted(set(expected_paths) - set(found))
    extra = sorted(set(found) - set(expected_paths))
    c.check(
        "index: autodiscovery links name the site's and every tag's feeds in all 3 formats",
        not missing and not extra,
        f"{len(found)} links" + (f"; missing {missing}" if missing else "") + (f"; unexpected {extra}" if extra else ""),
    )
    return sorted(found)


def check_feedparser(label, kind, body, ctype, expected, stored, c):
    parsed = feedparser.parse(body, response_headers={"content-type": ctype})
    want_version = {"rss": "rss20", "atom": "atom10"}[kind]
    detail = f"bozo={parsed.bozo} version={parsed.version!r} entries={len(parsed.entries)} (want {expected})"
    if parsed.bozo:
        exc = parsed.get("bozo_exception")
        detail += f"; {type(exc).__name__}: {exc}"
        line = getattr(exc, "getLineNumber", lambda: None)()
        if line:
            lines = body.split(b"\n")
            if 0 < line <= len(lines):
                detail += f"; line {line}: {show(lines[line - 1])}"
    c.check(
        f"{label} feedparser",
        parsed.bozo == 0 and parsed.version == want_version and len(parsed.entries) == expected,
        detail,
    )
    by_link = {e.get("link"): e for e in parsed.entries}
    for slug, (case, article) in stored.items():
        entry = by_link.get(article["url"])
        if entry is None:
            continue
        title = entry.get("title")
        c.check(
            f"{label} feedparser: {slug} title intact",
            title == case["expect_title"],
            f"got {title!r}" if title != case["expect_title"] else "",
        )
        texts = [v.get("value", "") for v in entry.get("content", [])] + [entry.get("summary", "")]
        text = html.unescape(" ".join(texts))
        missing = [t for t in case["expect_text"] if t not in text]
        c.check(
            f"{label} feedparser: {slug} content intact",
            not missing,
            f"missing {missing!r} in {show(text)}" if missing else "",
        )
        if "expect_published_utc" in case:
            got = utc_tuple(entry.get("published_parsed"))
            c.check(
                f"{label} feedparser: {slug} published at the same instant",
                got == case["expect_published_utc"],
                f"{entry.get('published')!r} -> {got} (want {case['expect_published_utc']} UTC)",
            )
            if kind == "atom":
                got = utc_tuple(entry.get("updated_parsed"))
                c.check(
                    f"{label} feedparser: {slug} updated at the same instant",
                    got == case["expect_updated_utc"],
                    f"{entry.get('updated')!r} -> {got} (want {case['expect_updated_utc']} UTC)",
                )


def check_json_feed(label, body, expected, stored, c):
    """JSON Feed 1.1 (https://jsonfeed.org/version/1.1) by hand: feedparser cannot read it."""
    problems = []
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        c.check(f"{label} JSON Feed 1.1", False, f"not UTF-8 JSON: {e}")
        return
    if doc.get("version") != "https://jsonfeed.org/version/1.1":
        problems.append(f"version={doc.get('version')!r}")
    if not isinstance(doc.get("title"), str) or not doc["title"]:
        problems.append("no title")
    for key in ("home_page_url", "feed_url"):
        if key in doc and not str(doc[key]).startswith(("http://", "https://")):
            problems.append(f"{key} not absolute: {doc[key]!r}")
    items = doc.get("items")
    if not isinstance(items, list):
        problems.append("items is not an array")
        items = []
    ids = set()
    for i, item in enumerate(items):
        where = f"items[{i}]"
        if not isinstance(item.get("id"), str) or not item["id"]:
            problems.append(f"{where}: id must be a non-empty string")
        elif item["id"] in ids:
            problems.append(f"{where}: duplicate id {item['id']!r}")
        else:
            ids.add(item["id"])
        if not isinstance(item.get("content_html"), str) and not isinstance(item.get("content_text"), str):
            problems.append(f"{where}: needs content_html or content_text")
        for key in ("date_published", "date_modified"):
            if key in item and (not isinstance(item[key], str) or not RFC3339.match(item[key])):
                problems.append(f"{where}: {key} {item[key]!r} is not RFC 3339 with a zone")
        if "tags" in item and not (
            isinstance(item["tags"], list) and all(isinstance(t, str) for t in item["tags"])
        ):
            problems.append(f"{where}: tags must be an array of strings")
        for key in ("url", "image"):
            if key in item and not str(item[key]).startswith(("http://", "https://")):
                problems.append(f"{where}: {key} not absolute: {item[key]!r}")
    if len(items) != expected:
        problems.append(f"{len(items)} items, want {expected}")
    c.check(f"{label} JSON Feed 1.1", not problems, "; ".join(problems[:8]) or f"{len(items)} items")
    by_url = {item.get("url"): item for item in items}
    for slug, (case, article) in stored.items():
        item = by_url.get(article["url"])
        if item is None:
            continue
        c.check(
            f"{label} json: {slug} title intact",
            item.get("title") == case["expect_title"],
            f"got {item.get('title')!r}" if item.get("title") != case["expect_title"] else "",
        )
        text = html.unescape((item.get("content_html") or "") + " " + (item.get("summary") or ""))
        missing = [t for t in case["expect_text"] if t not in text]
        c.check(f"{label} json: {slug} content intact", not missing, f"missing {missing!r}" if missing else "")
        if "expect_published_utc" in case:
            got = parse_rfc3339_utc(item.get("date_published", ""))
            c.check(
                f"{label} json: {slug} published at the same instant",
                got == case["expect_published_utc"],
                f"{item.get('date_published')!r} (want {case['expect_published_utc']} UTC)",
            )


def check_atom_dates(label, body, c):
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        c.check(f"{label} Atom dates have a time zone", False, f"not well-formed XML: {e}")
        return
    bad, count = [], 0
    for el in root.iter():
        if el.tag in (ATOM_NS + "updated", ATOM_NS + "published"):
            count += 1
            text = (el.text or "").strip()
            if not RFC3339.match(text):
                bad.append(f"<{el.tag[len(ATOM_NS):]}>{text}")
    c.check(
        f"{label} Atom dates have a time zone",
        count > 0 and not bad,
        f"{count} dates" + (f"; without a zone or not RFC 3339: {bad[:5]}" if bad else ""),
    )


def check_http(server, label, path, ident, ctype_want, c):
    """Checks (d), (e), (f) on one feed, given its identity GET `ident`."""
    etag = ident.header("etag")
    last_modified = ident.header("last-modified")

    # The plain 200 itself.
    problems = []
    if ident.status != 200:
        problems.append(f"HTTP {ident.status}")
    if not (ident.header("content-type") or "").startswith(ctype_want):
        problems.append(f"Content-Type {ident.header('content-type')!r}")
    if not etag or not re.fullmatch(r'"[^"]+"', etag):
        problems.append(f"ETag {etag!r} is not a strong entity tag")
    if not last_modified:
        problems.append("no Last-Modified")
    if ident.header("content-length") != str(len(ident.body)):
        problems.append(f"Content-Length {ident.header('content-length')} but {len(ident.body)} bytes")
    if ident.header("content-encoding"):
        problems.append(f"Content-Encoding {ident.header('content-encoding')!r} without Accept-Encoding")
    if "accept-encoding" not in (ident.header("vary") or "").lower():
        problems.append(f"Vary {ident.header('vary')!r}")
    c.check(f"{label} GET 200 headers", not problems, "; ".join(problems) or f"ETag {etag}, Last-Modified {last_modified}")

    # (d) conditional requests.
    if etag:
        r = server.raw("GET", path, {"If-None-Match": etag})
        c.check(
            f"{label} If-None-Match: ETag -> 304, empty body",
            r.status == 304 and r.body == b"" and r.header("etag") == etag,
            f"HTTP {r.status}, {len(r.body)} body bytes, ETag {r.header('etag')}",
        )
        r = server.raw("GET", path, {"If-None-Match": '"not-this-one"'})
        c.check(f"{label} If-None-Match: other ETag -> 200", r.status == 200 and r.body == ident.body, f"HTTP {r.status}")
    if last_modified:
        r = server.raw("GET", path, {"If-Modified-Since": last_modified})
        c.check(
            f"{label} If-Modified-Since: Last-Modified -> 304, empty body",
            r.status == 304 and r.body == b"",
            f"HTTP {r.status}, {len(r.body)} body bytes",
        )
        try:
            lm = calendar.timegm(time.strptime(last_modified, "%a, %d %b %Y %H:%M:%S GMT"))
            earlier = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(lm - 1))
            r = server.raw("GET", path, {"If-Modified-Since": earlier})
            c.check(f"{label} If-Modified-Since: 1 s before -> 200", r.status == 200, f"HTTP {r.status}")
        except ValueError:
            c.check(f"{label} Last-Modified is an HTTP date", False, repr(last_modified))

    # (e) gzip. The gzip copy is made just after a feed's bytes change, so give it a moment.
    deadline = time.monotonic() + 10
    while True:
        gz = server.raw("GET", path, {"Accept-Encoding": "gzip"})
        if gz.header("content-encoding") == "gzip" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    problems = []
    if gz.status != 200:
        problems.append(f"HTTP {gz.status}")
    if gz.header("content-encoding") != "gzip":
        problems.append(f"Content-Encoding {gz.header('content-encoding')!r}")
    else:
        try:
            plain = gzip.decompress(gz.body)
            if plain != ident.body:
                problems.append(f"decompresses to {len(plain)} bytes that differ from the {len(ident.body)} identity bytes")
        except (OSError, EOFError) as e:
            problems.append(f"body is not gzip: {e} {show(gz.body[:20])}")
    if "accept-encoding" not in (gz.header("vary") or "").lower():
        problems.append(f"Vary {gz.header('vary')!r}")
    gz_etag = gz.header("etag")
    if not gz_etag or gz_etag == etag or not re.fullmatch(r'"[^"]+"', gz_etag):
        problems.append(f"ETag {gz_etag!r} is not a strong tag of its own (identity {etag})")
    if gz.header("content-length") != str(len(gz.body)):
        problems.append(f"Content-Length {gz.header('content-length')} but {len(gz.body)} bytes")
    c.check(
        f"{label} gzip",
        not problems,
        "; ".join(problems) or f"{len(gz.body)} gzip bytes -> {len(ident.body)} identity bytes, ETag {gz_etag}",
    )
    if gz_etag and gz.header("content-encoding") == "gzip":
        r = server.raw("GET", path, {"Accept-Encoding": "gzip", "If-None-Match": gz_etag})
        c.check(
            f"{label} gzip If-None-Match -> 304, empty body",
            r.status == 304 and r.body == b"" and r.header("etag") == gz_etag,
            f"HTTP {r.status}, {len(r.body)} body bytes, ETag {r.header('etag')}",
        )

    # (f) HEAD: the same headers as GET, no body.
    for name, extra, get in (("identity", {}, ident), ("gzip", {"Accept-Encoding": "gzip"}, gz)):
        r = server.raw("HEAD", path, extra)
        differ = sorted(set(r.comparable_headers()) ^ set(get.comparable_headers()))
        c.check(
            f"{label} HEAD ({name}) = GET headers, no body",
            r.status == get.status and not differ and r.body == b"",
            f"HTTP {r.status}, {len(r.body)} body bytes" + (f"; headers differ: {differ}" if differ else ""),
        )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base-url", required=True, help="where the daemon listens, http://127.0.0.1:PORT")
    ap.add_argument("--public-base", required=True, help="the daemon's site.base_url")
    ap.add_argument("--token", required=True)
    ap.add_argument("--items", type=int, default=50, help="the daemon's feeds.items")
    ap.add_argument("--out", required=True, help="folder for the fetched feeds")
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--results", required=True)
    args = ap.parse_args()

    c = Checks()
    server = Server(args.base_url, args.token)
    public = args.public_base.rstrip("/")
    os.makedirs(args.out, exist_ok=True)
    manifest = []
    try:
        stored = add_edge_articles(server, c)

        status, listing = server.api("GET", "/api/articles?limit=1000")
        articles = listing.get("articles", []) if isinstance(listing, dict) else []
        c.check(
            "api: list articles",
            status == 200 and len(articles) == listing.get("total"),
            f"HTTP {status}, {len(articles)} articles",
        )
        tag_counts = {}
        for a in articles:
            for slug in a.get("tag_slugs", []):
                tag_counts[slug] = tag_counts.get(slug, 0) + 1
        c.check(
            "api: sample catalog loaded plus the edge cases",
            len(articles) >= 6 + len(EDGE_ARTICLES),
            f"{len(articles)} articles, {len(tag_counts)} tags",
        )
        expected = {}
        for name in FORMATS:
            expected[f"/{name}"] = min(len(articles), args.items)
            for slug, n in tag_counts.items():
                expected[f"/tags/{slug}/{name}"] = min(n, args.items)

        paths = discover(server, public, expected, c)
        for path in paths:
            if path not in expected:
                continue
            name = path.rsplit("/", 1)[-1]
            kind, mime, _ = FORMATS[name]
            want = expected[path]
            label = f"[{path}]"
            ident = server.raw("GET", path)
            file = os.path.join(args.out, path.strip("/").replace("/", "_"))
            with open(file, "wb") as f:
                f.write(ident.body)
            manifest.append(f"{file}\t{kind}\t{want}")
            tag = path.split("/")[2] if path.startswith("/tags/") else None
            if tag is None:
                c.check(f"{label} site feed has entries", want > 0, f"{want} expected")
            # The edge-case articles this feed should carry, to check they come through intact.
            mine = {s: v for s, v in stored.items() if tag is None or tag in v[1].get("tag_slugs", [])}
            if kind == "json":
                check_json_feed(label, ident.body, want, mine, c)
            else:
                check_feedparser(label, kind, ident.body, ident.header("content-type") or mime, want, mine, c)
            if kind == "atom":
                check_atom_dates(label, ident.body, c)
            check_http(server, label, path, ident, mime, c)
    except Exception as e:  # a crash is a failed check, not a silent pass
        import traceback

        traceback.print_exc()
        c.check("conformance.py ran to the end", False, f"{type(e).__name__}: {e}")
    with open(args.manifest, "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in manifest))
    with open(args.results, "w", encoding="utf-8") as f:
        f.write(f"{c.passed} {c.failed}\n")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
