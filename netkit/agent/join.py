"""Joining a swarm over the network: join tokens, the managers' listener, the joiner's request.

`netkit swarm join --token TOKEN ADDR[:PORT]` needs nothing but the network
between the nodes (no shared file). The manager's node agent listens on
its advertise address, TCP port 2377 (Docker's), inside its node's netns
(`JoinListener`, on the agent's asyncio loop). The joiner connects from
inside its own node's netns (`request`) and sends one JSON line:

    {"op": "join", "token": TOKEN, "node": NAME, "vtep": ADDR}

The manager checks the token against the cluster store's (netkit/swarm.py
`admit`), adds the member and answers one line:

    {"ok": true, "cluster": ID, "store": URL, "role": "worker"|"manager"}
    {"ok": false, "error": "..."}

then the joiner opens the store itself (etcd through its own netns).

Tokens have Docker's shape, SWMTKN-1-<digest>-<secret>: the digest (50
base-36 digits of the cluster id's SHA-256) names the cluster, the secret
(25 base-36 digits) admits a worker or a manager; both tokens live in the
cluster store's meta (`token.worker`, `token.manager`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import secrets
import socket
from typing import Awaitable, Callable

from netkit.errors import Forbidden, InvalidArgument, NetkitError

JOIN_PORT = 2377
TIMEOUT = 10.0
REFUSED_PATIENCE = 2.0          # seconds a refused connection is tried again
TOKEN_RE = re.compile(r"^SWMTKN-1-([0-9a-z]{50})-([0-9a-z]{25})$")
INVALID_TOKEN = "invalid join token"
WRONG_TOKEN = "A valid join token is necessary to join this cluster"
DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
log = logging.getLogger("netkit.agent")


class JoinRefused(Forbidden):
    """The manager refused the join (its one-line reason)."""


def _base36(value: int, width: int) -> str:
    out = ""
    while value:
        value, d = divmod(value, 36)
        out = DIGITS[d] + out
    return out.rjust(width, "0")[-width:]


def new_token(cluster_id: str) -> str:
    """A fresh join token of the cluster `cluster_id`."""
    digest = _base36(int.from_bytes(hashlib.sha256(cluster_id.encode()).digest(), "big"), 50)
    return f"SWMTKN-1-{digest}-{_base36(secrets.randbits(128), 25)}"


def check_token(token: str) -> None:
    """InvalidArgument (Docker's words) unless `token` has a join token's shape."""
    if not TOKEN_RE.match(token or ""):
        raise InvalidArgument(INVALID_TOKEN)


def parse_address(address: str, default_port: int = JOIN_PORT) -> tuple[str, int]:
    """"ip[:port]" -> (ip, port); InvalidArgument on anything else (IPv4 only)."""
    import ipaddress
    host, _, port = address.partition(":")
    try:
        ipaddress.IPv4Address(host)
        number = int(port) if port else default_port
        if not 0 < number < 65536:
            raise ValueError(port)
    except ValueError:
        raise InvalidArgument(f"invalid address {address!r}: expected IP[:PORT]") from None
    return host, number


def request(netns: str | None, address: str, msg: dict, timeout: float = TIMEOUT) -> dict:
    """Send one join request to the manager at `address` from inside `netns`; its reply.
    Raises JoinRefused with the manager's reason, or NetkitError when it cannot be reached."""
    import time
    host, port = parse_address(address)
    deadline = time.monotonic() + timeout
    sock = _connect(netns, host, port, deadline)
    try:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        sock.sendall(json.dumps(msg).encode() + b"\n")
        buf = b""
        while b"\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    except OSError as exc:
        reason = "timeout" if isinstance(exc, socket.timeout) else (exc.strerror or str(exc))
        raise NetkitError(f"could not reach the swarm manager at {host}:{port}: {reason}") from None
    finally:
        sock.close()
    try:
        reply = json.loads(buf.split(b"\n", 1)[0])
    except ValueError:
        raise NetkitError(f"the swarm manager at {host}:{port} gave no answer") from None
    if not reply.get("ok"):
        raise JoinRefused(str(reply.get("error") or "join refused"))
    return reply


def _connect(netns: str | None, host: str, port: int, deadline: float) -> socket.socket:
    """A TCP connection from inside `netns`; a refused one is tried again until `deadline`
    for `REFUSED_PATIENCE` (a manager's agent starts listening a moment after `swarm init`)."""
    import time
    from netkit.kernel import netns as kns
    refused_until = min(deadline, time.monotonic() + REFUSED_PATIENCE)
    while True:
        sock = kns.socket_in(netns, socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            sock.connect((host, port))
            return sock
        except ConnectionRefusedError as exc:
            sock.close()
            if time.monotonic() >= refused_until:
                raise NetkitError(f"could not reach the swarm manager at {host}:{port}: "
                                  f"{exc.strerror}") from None
            time.sleep(0.05)
        except OSError as exc:
            sock.close()
            reason = "timeout" if isinstance(exc, socket.timeout) else (exc.strerror or str(exc))
            raise NetkitError(f"could not reach the swarm manager at {host}:{port}: {reason}") from None


Handler = Callable[[dict], Awaitable[dict]]


class JoinListener:
    """The join port of a manager's agent: one JSON request and one reply per connection."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.address: str | None = None           # "ip:port" it listens on
        self._server: asyncio.AbstractServer | None = None
        self._failed: str | None = None           # the address it could not listen on

    async def listen(self, address: str | None) -> None:
        """Listen on `address` ("ip:port"; None: not at all), moving if it changed."""
        if address == self.address or (address is not None and address == self._failed):
            return                      # listening there, or could not: said once, not again
        await self.close()
        if address is None:
            return
        host, port = parse_address(address)
        try:
            self._server = await asyncio.start_server(self._serve, host, port, reuse_address=True)
        except OSError as exc:
            log.warning("join listener on %s: %s", address, exc.strerror or exc)
            self._failed = address
            return
        self.address = address
        log.info("listening for swarm joins on %s", address)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), TIMEOUT)
            try:
                msg = json.loads(line)
                if not isinstance(msg, dict) or msg.get("op") != "join":
                    raise ValueError("not a join request")
                reply = {"ok": True, **await self.handler(msg)}
            except NetkitError as exc:
                reply = {"ok": False, "error": str(exc)}
            except ValueError as exc:
                reply = {"ok": False, "error": f"bad request: {exc}"}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (OSError, asyncio.TimeoutError):
            pass
        except Exception:                     # noqa: BLE001 - the agent keeps serving
            log.exception("join request failed")
        finally:
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.address = None


__all__ = ["JOIN_PORT", "JoinListener", "JoinRefused", "check_token", "new_token",
           "parse_address", "request"]
