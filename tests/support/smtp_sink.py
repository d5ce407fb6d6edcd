#!/usr/bin/env python3
"""A real SMTP server for the tests (aiosmtpd), saving every accepted message as a .eml file.

usage: smtp_sink.py OUTDIR [--port N] [--reject ADDRESS]... [--defer ADDRESS]... [--no-pipelining 1]
Listens on 127.0.0.1 (on a free port unless --port) and prints "listening PORT" once ready. Addresses given with
--reject get a permanent 550 at RCPT; --defer a transient 451. Writing "pause" to OUTDIR/control
makes every RCPT answer 421 until the file is removed (a stumbling server).
It offers PIPELINING (RFC 2920) unless --no-pipelining, and appends to OUTDIR/pipelining one line
per MAIL command: "1" when the client had already sent the commands after it (a pipelined
group), "0" when it waited for the reply.
"""
import asyncio
import os
import sys
import time
import uuid

from aiosmtpd.smtp import SMTP


class Handler:
    def __init__(self, outdir, reject, defer, pipelining):
        self.outdir = outdir
        self.reject = {a.lower() for a in reject}
        self.defer = {a.lower() for a in defer}
        self.pipelining = pipelining

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        grouped = len(getattr(server._reader, "_buffer", b"")) > 0
        with open(os.path.join(self.outdir, "pipelining"), "a") as f:
            f.write("1\n" if grouped else "0\n")
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if os.path.exists(os.path.join(self.outdir, "control")):
            return "421 4.3.2 Service not available, try again later"
        if address.lower() in self.reject:
            return "550 5.1.1 No such user here"
        if address.lower() in self.defer:
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        name = f"{time.time_ns()}-{uuid.uuid4().hex}.eml"
        tmp = os.path.join(self.outdir, "." + name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(tmp, os.path.join(self.outdir, name))
        return "250 2.0.0 Message accepted"


async def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    outdir = args[0]
    reject, defer = [], []
    port = 0
    pipelining = True
    rest = args[1:]
    while rest:
        flag, value, rest = rest[0], rest[1], rest[2:]
        if flag == "--port":
            port = int(value)
        elif flag == "--no-pipelining":
            pipelining = False
        else:
            (reject if flag == "--reject" else defer).append(value)
    os.makedirs(outdir, exist_ok=True)
    handler = Handler(outdir, reject, defer, pipelining)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="sink.test", data_size_limit=None),
        "127.0.0.1",
        port,
        reuse_address=True,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"listening {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
