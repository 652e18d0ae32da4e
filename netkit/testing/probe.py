"""A tiny echo server and client for reachability checks inside containers.

    python -m netkit.testing.probe serve tcp|udp PORT
    python -m netkit.testing.probe probe tcp|udp HOST PORT [--timeout S]

The server answers every message with the address it saw the client at,
so a probe shows both that the path works and what source address arrived
(masquerade visible), over IPv4 or IPv6 (a dual-stack socket); it exits 0 on SIGTERM (as pid 1 of a container it
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


def _listen(kind: int, port: int) -> socket.socket:
    """A dual-stack socket on [::]:port (IPv4 peers as ::ffff:a.b.c.d), or 0.0.0.0:port
    where the namespace has no IPv6."""
    try:
        s = socket.socket(socket.AF_INET6, kind)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        addr: tuple = ("::", port)
    except OSError:
        s, addr = socket.socket(socket.AF_INET, kind), ("0.0.0.0", port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(addr)
    return s


def _seen(peer: tuple) -> bytes:
    """The client's address as the server saw it, IPv4 ones as a.b.c.d."""
    host = peer[0]
    return (host[7:] if host.startswith("::ffff:") and "." in host else host).encode()


def serve(proto: str, port: int) -> None:
    signal.signal(signal.SIGTERM, _stopped)
    if proto == "udp":
        s = _listen(socket.SOCK_DGRAM, port)
        while True:
            data, peer = s.recvfrom(2048)
            s.sendto(_seen(peer), peer)
    s = _listen(socket.SOCK_STREAM, port)
    s.listen(64)
    while True:
        conn, peer = s.accept()
        threading.Thread(target=_answer, args=(conn, peer), daemon=True).start()


def _answer(conn: socket.socket, peer: tuple) -> None:
    with conn:
        try:
            conn.recv(64)
            conn.sendall(_seen(peer))
        except OSError:
            pass


def probe(proto: str, host: str, port: int, timeout: float) -> int:
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as s:
        s.settimeout(timeout)
        try:
            if proto == "udp":
                s.sendto(b"hi", (host, port))
                data = s.recvfrom(2048)[0]
            else:
                s.connect((host, port))
                s.sendall(b"hi")
                data = s.recv(2048)
        except OSError as exc:
            print(f"unreachable: {exc}", file=sys.stderr)
            return 1
    print(data.decode())
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m netkit.testing.probe")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("proto", choices=("tcp", "udp"))
    s.add_argument("port", type=int)
    p = sub.add_parser("probe")
    p.add_argument("proto", choices=("tcp", "udp"))
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--timeout", type=float, default=1.0)
    args = ap.parse_args(argv)
    if args.cmd == "serve":
        serve(args.proto, args.port)
        return 0
    return probe(args.proto, args.host, args.port, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
