"""Forwarding to upstream servers (libnetwork ``forwardExtDNS``).

A query the tables cannot answer goes to at most 3 servers in turn, over
the client's protocol. ``--dns`` servers are dialled from inside the
container netns (a socket made there with ``socket_in``); the node's
resolv.conf servers from the resolver's own netns. An error, a timeout,
SERVFAIL or REFUSED moves on to the next server; any other rcode
(NXDOMAIN included) is relayed with the client's query ID. When all fail,
or there is nobody to ask, the client gets SERVFAIL. Over the in-flight
limit it gets REFUSED at once.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import random
import socket
import struct
import time

from netkit.dns import wire

DEFAULT_TIMEOUT = 4.0
DEFAULT_MAX_INFLIGHT = 1024
log = logging.getLogger("netkit.dns")


def parse_server(server: str) -> tuple[int, tuple]:
    """``10.0.0.53``, ``10.0.0.53:5353``, ``fd00::53`` or ``[fd00::53]:5353`` -> (family, addr)."""
    host, port = server, 53
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if server.startswith("["):
            host, _, rest = server[1:].partition("]")
            port = int(rest.lstrip(":") or 53)
        else:
            host, _, p = server.rpartition(":")
            port = int(p)
        ip = ipaddress.ip_address(host)
    if ip.version == 6:
        return socket.AF_INET6, (str(ip), port, 0, 0)
    return socket.AF_INET, (str(ip), port)


class Forwarder:
    """Relays unknown questions; counts and caps the forwards in flight."""

    def __init__(self, timeout: float | None = None, max_inflight: int | None = None) -> None:
        self.timeout = timeout if timeout is not None else \
            float(os.environ.get("NETKIT_DNS_TIMEOUT", DEFAULT_TIMEOUT))
        self.max_inflight = max_inflight if max_inflight is not None else \
            int(os.environ.get("NETKIT_DNS_MAX_INFLIGHT", DEFAULT_MAX_INFLIGHT))
        self.inflight = 0
        self._refused_logged = 0.0

    async def forward(self, data: bytes, question: bytes, servers: tuple[str, ...],
                      netns: str | None, tcp: bool) -> bytes:
        """The reply for query `data` (client ID kept); netns None: dial from here."""
        if not servers:
            return wire.error_reply(data, wire.SERVFAIL, question)
        if self.inflight >= self.max_inflight:
            now = time.monotonic()
            if now - self._refused_logged > 2:
                self._refused_logged = now
                log.warning("more than %d queries in flight: answering REFUSED", self.max_inflight)
            return wire.error_reply(data, wire.REFUSED, question)
        self.inflight += 1
        try:
            for server in servers:
                qid = random.randbytes(2)
                try:
                    reply = await asyncio.wait_for(
                        self._exchange(server, netns, qid + data[2:], qid, tcp), self.timeout)
                except Exception as exc:    # timeout, refused, bad reply, netns gone...
                    log.debug("upstream %s: %r", server, exc)
                    continue
                if reply[3] & 0x0F in (wire.SERVFAIL, wire.REFUSED):
                    continue
                return data[:2] + reply[2:]
            return wire.error_reply(data, wire.SERVFAIL, question)
        finally:
            self.inflight -= 1

    async def _exchange(self, server: str, netns: str | None, payload: bytes,
                        qid: bytes, tcp: bool) -> bytes:
        family, addr = parse_server(server)
        kind = socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
        if netns is None:
            sock = socket.socket(family, kind)
        else:
            from netkit.kernel.netns import socket_in
            sock = socket_in(netns, family, kind)
        loop = asyncio.get_running_loop()
        try:
            sock.setblocking(False)
            if tcp:
                await loop.sock_connect(sock, addr)
                await loop.sock_sendall(sock, struct.pack("!H", len(payload)) + payload)
                size = struct.unpack("!H", await _recv_exactly(loop, sock, 2))[0]
                reply = await _recv_exactly(loop, sock, size)
                if len(reply) < 12 or reply[:2] != qid:
                    raise ValueError("reply does not match the query")
                return reply
            sock.connect(addr)
            await loop.sock_sendall(sock, payload)
            while True:     # a connected socket only sees the server; skip stray IDs
                reply = await loop.sock_recv(sock, 65535)
                if len(reply) >= 12 and reply[:2] == qid and reply[2] & 0x80:
                    return reply
        finally:
            sock.close()


async def _recv_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = await loop.sock_recv(sock, n - len(buf))
        if not chunk:
            raise EOFError("upstream closed the connection")
        buf += chunk
    return buf
