"""A tiny echo server and client for reachability checks inside containers.

    python -m netkit.testing.probe serve tcp|udp PORT [--hostname]
    python -m netkit.testing.probe probe tcp|udp HOST PORT [--timeout S] [--count N]

The server answers every message with the address it saw the client at,
so a probe shows both that the path works and what source address arrived
(masquerade visible), or with `--hostname` its own host name (which of a
service's tasks answered: each task has a host name of its own); `--count
N` makes N connections (datagrams from N sockets), one answer per line,
to see how a load balancer spreads them, over IPv4 or IPv6 (a dual-stack socket); it exits 0 on SIGTERM (as pid 1 of a container it
would otherwise ignore it, and `stop` would wait out the grace period).
`probe` exits 0 and prints that address on success, 1 on timeout or
refusal. Traffic only goes where it is told: the caller picks an address
inside its own namespaces.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading


def _stopped(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _global_ipv6() -> bool:
    """Does this netns have a global IPv6 address (scope 00 in /proc/net/if_inet6)?"""
    try:
        with open("/proc/net/if_inet6") as f:
            return any(len(row) >= 6 and row[3] == "00" for row in map(str.split, f))
    except OSError:
        return False


def _listen(kind: int, port: int) -> socket.socket:
    """A dual-stack socket on [::]:port (IPv4 peers as ::ffff:a.b.c.d) where the namespace
    has a global IPv6 address, else 0.0.0.0:port (as an IPv4-only server shows in `ss`)."""
    s, addr = None, ("0.0.0.0", port)
    if _global_ipv6():
        try:
            s = socket.socket(socket.AF_INET6, kind)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            addr = ("::", port)
        except OSError:
            s = None
    if s is None:
        s = socket.socket(socket.AF_INET, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(addr)
    return s


def _seen(peer: tuple) -> bytes:
    """The client's address as the server saw it, IPv4 ones as a.b.c.d."""
    host = peer[0]
    return (host[7:] if host.startswith("::ffff:") and "." in host else host).encode()


def serve(proto: str, port: int, hostname: bool = False) -> None:
    signal.signal(signal.SIGTERM, _stopped)
    reply = (lambda peer: socket.gethostname().encode()) if hostname else _seen
    if proto == "udp":
        s = _listen(socket.SOCK_DGRAM, port)
        while True:
            data, peer = s.recvfrom(2048)
            s.sendto(reply(peer), peer)
    s = _listen(socket.SOCK_STREAM, port)
    s.listen(128)
    while True:
        conn, peer = s.accept()
        threading.Thread(target=_answer, args=(conn, reply(peer)), daemon=True).start()


def _answer(conn: socket.socket, reply: bytes) -> None:
    with conn:
        try:
            conn.recv(64)
            conn.sendall(reply)
        except OSError:
            pass


def _one(proto: str, host: str, port: int, timeout: float) -> str:
    """One connection (one datagram from a new socket): the answer; OSError if none."""
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as s:
        s.settimeout(timeout)
        if proto == "udp":
            s.sendto(b"hi", (host, port))
            return s.recvfrom(2048)[0].decode()
        s.connect((host, port))
        s.sendall(b"hi")
        return s.recv(2048).decode()


def probe(proto: str, host: str, port: int, timeout: float, count: int = 1) -> int:
    failed = 0
    for _ in range(count):
        try:
            print(_one(proto, host, port, timeout), flush=True)
        except OSError as exc:
            failed += 1
            print(f"unreachable: {exc}", file=sys.stderr)
            if count > 1:
                print(f"!{type(exc).__name__}", flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m netkit.testing.probe")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("proto", choices=("tcp", "udp"))
    s.add_argument("port", type=int)
    s.add_argument("--hostname", action="store_true", help="answer with this host's name")
    p = sub.add_parser("probe")
    p.add_argument("proto", choices=("tcp", "udp"))
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--timeout", type=float, default=1.0)
    p.add_argument("--count", type=int, default=1, help="connections to make, an answer each")
    args = ap.parse_args(argv)
    if args.cmd == "serve":
        serve(args.proto, args.port, args.hostname)
        return 0
    return probe(args.proto, args.host, args.port, args.timeout, args.count)


if __name__ == "__main__":
    sys.exit(main())
