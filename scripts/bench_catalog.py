#!/usr/bin/env python3
"""Writes a synthetic article catalog (a JSON array in `tidings import` format) for scripts/bench.sh.

    bench_catalog.py OUT.json --articles N --tags T --content-bytes B [--seed S] [--prefix P]

Every article has a distinct slug, 1-3 tags drawn from T tags named "Topic 0000".. (slug
"topic-0000"..), HTML content of about B bytes (paragraphs, a list, a link, inline markup: tags
ammonia keeps; below 200 bytes, one short paragraph), and a publication date spread over the last years (all in the past, so an article
published "now" is the newest). Deterministic for a given seed. Standard library only.
"""

import argparse
import datetime as dt
import json
import random

WORDS = (
    "open science model data research network inference training dataset benchmark feed "
    "article reader publisher syndication latency cache compression protocol archive library "
    "community review method result analysis evaluation language vision audio robot kernel "
    "memory storage index query journal editor release version update policy license source"
).split()


def sentence(rng, n_min=8, n_max=18):
    words = [rng.choice(WORDS) for _ in range(rng.randint(n_min, n_max))]
    words[0] = words[0].capitalize()
    return " ".join(words) + "."


def content(rng, target):
    if target < 200:
        # A lean article (the 1,000,000-article catalog): one short paragraph.
        return "<p>" + sentence(rng, 3, 8) + "</p>"
    parts = []
    size = 0
    i = 0
    while size < target:
        if i % 4 == 1:
            block = "<h2>" + sentence(rng, 3, 6)[:-1] + "</h2>"
        elif i % 4 == 3:
            items = "".join("<li>" + sentence(rng, 3, 8) + "</li>" for _ in range(3))
            block = "<ul>" + items + "</ul>"
        else:
            text = " ".join(sentence(rng) for _ in range(rng.randint(2, 4)))
            w = rng.choice(WORDS)
            text = text.replace(" " + w + " ", " <em>" + w + "</em> ", 1)
            block = (
                "<p>" + text + ' See <a href="https://example.org/notes/'
                + str(rng.randint(1, 99999)) + '">the notes</a>.</p>'
            )
        parts.append(block)
        size += len(block)
        i += 1
    return "\n".join(parts)


def tag_name(i):
    return "Topic %04d" % i


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--articles", type=int, required=True)
    ap.add_argument("--tags", type=int, required=True)
    ap.add_argument("--content-bytes", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--prefix", default="bench")
    ap.add_argument("--years", type=float, default=8.0)
    a = ap.parse_args()

    rng = random.Random(a.seed)
    end = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(days=1)
    span = int(a.years * 365.25 * 86400)
    with open(a.out, "w", encoding="utf-8") as f:
        f.write("[\n")
        for n in range(a.articles):
            # Spread evenly over the span, with jitter; newest last.
            offset = span - int(span * (n + 1) / a.articles) + rng.randint(0, 3600)
            published = end - dt.timedelta(seconds=offset)
            k = rng.randint(1, 3)
            tags = [tag_name(t) for t in rng.sample(range(a.tags), k)]
            slug = "%s-%06d" % (a.prefix, n)
            title = sentence(rng, 4, 9)[:-1]
            article = {
                "slug": slug,
                "title": title,
                "url": "https://blog.example/posts/" + slug,
                "summary": sentence(rng, 12, 24),
                "content_html": content(rng, a.content_bytes),
                "author": rng.choice(["Ada Lovelace", "Grace Hopper", "Alan Turing", "Emmy Noether"]),
                "published_at": published.isoformat().replace("+00:00", "Z"),
                "tags": tags,
                "reading_time_minutes": rng.randint(2, 15),
            }
            if n:
                f.write(",\n")
            f.write(json.dumps(article, ensure_ascii=False))
        f.write("\n]\n")


if __name__ == "__main__":
    main()
