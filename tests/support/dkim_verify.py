"""Verifies the DKIM signature of the message on stdin with dkimpy, taking the public key from
the TXT record value in argv[1] (no DNS). Exit 0 when it verifies; otherwise dkimpy's log on stderr."""
import logging
import sys

import dkim

record = sys.argv[1].encode()
raw = sys.stdin.buffer.read()
logging.basicConfig(stream=sys.stderr, level=logging.DEBUG)
ok = dkim.verify(raw, logger=logging.getLogger("dkim"), dnsfunc=lambda name, timeout=5: record)
sys.exit(0 if ok else 1)
