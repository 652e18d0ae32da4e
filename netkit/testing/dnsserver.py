"""A tiny authoritative DNS server (dnslib) to play an upstream in tests and labs.

    python -m netkit.testing.dnsserver [--port 53] [--record NAME=IP]... [--delay S]

Answers A queries for the given records, NXDOMAIN for anything else, on
UDP and TCP of every address of the namespace it runs in. Tests start it
inside their own namespaces: netkit never queries the machine's real
resolvers.
"""

from __future__ import annotations

import argparse
import sys
import time

from dnslib import QTYPE, RCODE, RR, A
from dnslib.server import BaseResolver, DNSServer


class Records(BaseResolver):
    def __init__(self, records: dict[str, str], delay: float) -> None:
        self.records = {k.lower().rstrip(".") + ".": v for k, v in records.items()}
        self.delay = delay

    def resolve(self, request, handler):
        if self.delay:
            time.sleep(self.delay)
        reply = request.reply()
        q = request.q
        ip = self.records.get(str(q.qname).lower())
        if ip is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif q.qtype in (QTYPE.A, QTYPE.ANY):
            reply.add_answer(RR(q.qname, QTYPE.A, rdata=A(ip), ttl=60))
        return reply


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m netkit.testing.dnsserver")
    ap.add_argument("--port", type=int, default=53)
    ap.add_argument("--address", default="0.0.0.0")
    ap.add_argument("--record", action="append", default=[], metavar="NAME=IP")
    ap.add_argument("--delay", type=float, default=0.0)
    args = ap.parse_args(argv)
    records = dict(r.split("=", 1) for r in args.record)
    resolver = Records(records, args.delay)
    servers = [DNSServer(resolver, port=args.port, address=args.address, tcp=tcp) for tcp in (False, True)]
    for s in servers:
        s.start_thread()
    print("ready", flush=True)
    try:
        while all(s.isAlive() for s in servers):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
