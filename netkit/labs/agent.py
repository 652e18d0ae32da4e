"""The helper lab checks run inside containers (standard library only, starts fast).

    python -m netkit.labs.agent reach tcp|udp HOST PORT [--timeout S] [--count N]
                                 [--resolver system|dns]
    python -m netkit.labs.agent resolve NAME [--queries N] [--timeout S]

`reach` prints one JSON line ``{"ok", "peers", "detail"}``; TCP is ok once
the connection is established (any server will do), UDP once any reply
comes back. `--resolver system` finds HOST as applications do
(getaddrinfo); `--resolver dns` asks the nameserver afresh for each try and
takes its first answer. glibc sorts A records (RFC 6724 rule 9), so with
`system` a client on the same subnet keeps picking the same replica of a
round-robin name (moby#22744); `dns` shows the rotation.

`resolve` reads /etc/hosts first, then asks the first nameserver of
/etc/resolv.conf directly and prints one JSON line per query with the A
records in the order the server sent them.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
import time


def _resolve_host(host: str, resolver: str) -> str:
    if resolver == "dns" and not _is_ip(host):
        static = _hosts_lookup(host)
        if static:
            return static[0]
        server = _nameserver()
        if server is None:
            raise OSError("no nameserver in /etc/resolv.conf")
        rcode, addrs = _ask(server, host, os.getpid() & 0xFFFF, 2.0)
        if not addrs:
            raise OSError(f"{host}: {rcode}")
        return addrs[0]
    return socket.getaddrinfo(host, None, socket.AF_INET)[0][4][0]


def _is_ip(text: str) -> bool:
    try:
        socket.inet_aton(text)
        return text.count(".") == 3
    except OSError:
        return False


def _attempt(proto: str, host: str, port: int, timeout: float, resolver: str) -> tuple[bool, str, str]:
    """One try: (ok, peer address or "", detail)."""
    try:
        ip = _resolve_host(host, resolver)
    except OSError as exc:
        return False, "", f"{host} does not resolve: {exc.strerror or exc}"
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    start = time.monotonic()
    with socket.socket(socket.AF_INET, kind) as s:
        s.settimeout(timeout)
        try:
            s.connect((ip, port))
            src = s.getsockname()[0]
            if proto == "udp":
                s.send(b"netkit-reach\n")
                data = s.recv(2048)
                ms = (time.monotonic() - start) * 1000
                return True, ip, f"reply {data[:40]!r} from {ip}:{port}/udp to {src} in {ms:.1f} ms"
            ms = (time.monotonic() - start) * 1000
            return True, ip, f"connected to {ip}:{port}/tcp from {src} in {ms:.1f} ms"
        except socket.timeout:
            what = "no reply" if proto == "udp" else "no answer"
            return False, ip, f"{what} from {ip}:{port}/{proto} within {timeout:g}s"
        except OSError as exc:
            return False, ip, f"{ip}:{port}/{proto}: {(exc.strerror or str(exc)).lower()}"


def reach(proto: str, host: str, port: int, timeout: float, count: int, resolver: str) -> int:
    """`count` tries; ok only if every one succeeds. Prints {"ok", "peers", "detail"}."""
    oks, peers, details = [], [], []
    for _ in range(count):
        ok, peer, detail = _attempt(proto, host, port, timeout, resolver)
        oks.append(ok)
        peers.append(peer)
        details.append(detail)
    if count == 1:
        detail = details[0]
    else:
        done = [p for p, ok in zip(peers, oks) if ok]
        detail = f"{sum(oks)}/{count} ok" + (f", answered by {' '.join(done)}" if done else "")
        bad = [d for d, ok in zip(details, oks) if not ok]
        if bad:
            detail += f"; {bad[0]}"
    print(json.dumps({"ok": all(oks), "peers": peers, "detail": detail}), flush=True)
    return 0 if all(oks) else 1


def _hosts_lookup(name: str) -> list[str]:
    out = []
    try:
        with open("/etc/hosts") as f:
            for line in f:
                fields = line.split("#", 1)[0].split()
                if len(fields) > 1 and name.lower() in (n.lower() for n in fields[1:]) and "." in fields[0]:
                    out.append(fields[0])
    except OSError:
        pass
    return out


def _nameserver() -> str | None:
    try:
        with open("/etc/resolv.conf") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 2 and fields[0] == "nameserver":
                    return fields[1]
    except OSError:
        pass
    return None


_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def _query(name: str, qid: int) -> bytes:
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".") if p) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1)


def _skip_name(data: bytes, pos: int) -> int:
    while True:
        n = data[pos]
        if n & 0xC0 == 0xC0:
            return pos + 2
        if n == 0:
            return pos + 1
        pos += n + 1


def _answers(data: bytes, qid: int) -> tuple[str, list[str]]:
    rid, flags, qd, an, _, _ = struct.unpack("!HHHHHH", data[:12])
    if rid != qid:
        return "BADID", []
    pos = 12
    for _ in range(qd):
        pos = _skip_name(data, pos) + 4
    out = []
    for _ in range(an):
        pos = _skip_name(data, pos)
        rtype, _, _, rdlen = struct.unpack("!HHIH", data[pos:pos + 10])
        pos += 10
        if rtype == 1 and rdlen == 4:
            out.append(socket.inet_ntoa(data[pos:pos + 4]))
        pos += rdlen
    return _RCODES.get(flags & 0xF, str(flags & 0xF)), out


def _ask(server: str, name: str, qid: int, timeout: float) -> tuple[str, list[str]]:
    """One A query, straight to `server`: (rcode, addresses in the server's order)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(_query(name, qid), (server, 53))
            while True:
                data, _ = s.recvfrom(4096)
                rcode, addrs = _answers(data, qid)
                if rcode != "BADID":
                    return rcode, addrs
        except socket.timeout:
            return "timeout", []
        except OSError as exc:
            return (exc.strerror or str(exc)).lower(), []


def resolve(name: str, queries: int, timeout: float) -> int:
    static = _hosts_lookup(name)
    if static:
        for _ in range(queries):
            print(json.dumps({"via": "/etc/hosts", "rcode": "NOERROR", "addresses": static}), flush=True)
        return 0
    server = _nameserver()
    if server is None:
        print(json.dumps({"via": "nothing", "rcode": "no nameserver in /etc/resolv.conf", "addresses": []}))
        return 2
    found = False
    for i in range(queries):
        rcode, addrs = _ask(server, name, (os.getpid() + i * 7919) & 0xFFFF, timeout)
        found = found or bool(addrs)
        print(json.dumps({"via": f"dns {server}", "rcode": rcode, "addresses": addrs}), flush=True)
    return 0 if found else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m netkit.labs.agent")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("reach")
    r.add_argument("proto", choices=("tcp", "udp"))
    r.add_argument("host")
    r.add_argument("port", type=int)
    r.add_argument("--timeout", type=float, default=1.0)
    r.add_argument("--count", type=int, default=1)
    r.add_argument("--resolver", choices=("system", "dns"), default="system")
    q = sub.add_parser("resolve")
    q.add_argument("name")
    q.add_argument("--queries", type=int, default=1)
    q.add_argument("--timeout", type=float, default=2.0)
    args = ap.parse_args(argv)
    if args.cmd == "reach":
        return reach(args.proto, args.host, args.port, args.timeout, args.count, args.resolver)
    return resolve(args.name, args.queries, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
