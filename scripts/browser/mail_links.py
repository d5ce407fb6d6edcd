#!/usr/bin/env python3
"""Lists the emails in a tidings `file:` outbox as JSON, for scripts/browser/subscriber_flow.mjs.

usage: mail_links.py OUTBOX
Prints one JSON array, oldest first: {"file", "to", "subject", "text", "links"} where "text"
is the decoded text/plain part (quoted-printable undone by Python's email package) and "links"
the http(s) URLs in it. Files younger than half a second are left for the next call, since the
daemon may still be writing them.
"""
import email
import email.policy
import json
import os
import re
import sys
import time

URL = re.compile(r"https?://[^\s<>\"']+")


def read(path):
    with open(path, "rb") as f:
        message = email.message_from_binary_file(f, policy=email.policy.default)
    part = message.get_body(preferencelist=("plain",))
    text = part.get_content() if part is not None else ""
    return {
        "file": os.path.basename(path),
        "to": str(message.get("To", "")),
        "subject": str(message.get("Subject", "")),
        "text": text,
        "links": URL.findall(text),
    }


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    outbox = sys.argv[1]
    now = time.time()
    messages = []
    if os.path.isdir(outbox):
        paths = [os.path.join(outbox, n) for n in os.listdir(outbox) if n.endswith(".eml")]
        for path in sorted(paths, key=os.path.getmtime):
            if now - os.path.getmtime(path) >= 0.5:
                messages.append(read(path))
    json.dump(messages, sys.stdout)


if __name__ == "__main__":
    main()
