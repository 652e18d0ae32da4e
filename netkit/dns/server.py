"""The resolver loop: 127.0.0.11:53 (UDP and TCP) inside every sandbox netns.

One asyncio loop on one thread serves every sandbox. The socket a query
arrives on says which sandbox asked, hence which table answers it.

Hot path (UDP, no EDNS, lower-case name): bytes 2..12 of the query select
the reply flags from :data:`wire.FAST_HEADERS` (and prove it is a plain
one-question query); bytes 12.. are the question, looked up as is in the
sandbox's fast table; the reply is the query ID + flags + stored bytes. A
readable socket is drained in one callback, so the loop's own cost is
shared by a batch of queries. Everything else (EDNS0, upper case, TCP,
truncation, shuffled order, NOTIMP, unusual shapes) goes through
:meth:`Server.handle`, which parses by hand and falls back on dnslib;
unknown names are forwarded by :class:`upstream.Forwarder` in tasks, so
they never hold up the names we know.

What is served is a :class:`netkit.dns.catalog.Catalog`. :meth:`Server.update` applies
a few containers' changes to it in place, on the loop (no query sees a
half-made change): sandboxes of new containers get their sockets, those
of gone ones are closed, every other sandbox keeps its sockets, its table
object and its round-robin counters, and only the changed names' entries
of the tables are rewritten. :meth:`Server.apply` / :meth:`Server.replace`
serve a full rebuild (built off the loop), swapping the tables.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import random
import socket
import struct
from typing import cast
from functools import partial

from netkit.dns import redirect, wire
from netkit.dns.catalog import Catalog, Delta, Sandbox
from netkit.dns.entries import ORDER_SHUFFLE, ContainerEntries, NetworkEntry, Snapshot
from netkit.dns.upstream import Forwarder
from netkit.errors import NetkitError
from netkit.kernel import netns as knetns

LISTEN_IP = redirect.IP   # the resolver's ports on it: the kernel's pick (netkit.dns.redirect)
BATCH = 256             # datagrams per readiness callback before yielding
# TCP limits, per sandbox (Docker's resolver: miekg/dns's 2 s read and 8 s idle timeouts)
TCP_IDLE = 8.0          # seconds a TCP client may stay silent between queries
TCP_READ = 2.0          # seconds to send the rest of a query once its length came
TCP_PER_CLIENT = 32     # open connections per client address; more are closed at once
RCVBUF = 1 << 20
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)    # not exported by Python
log = logging.getLogger("netkit.dns")


class _State:
    """A served sandbox: its sockets, its (swappable) table, its rr counters."""

    __slots__ = ("sandbox", "fast", "udp", "tcp", "tcp_server", "conns", "clients", "counters")

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.fast = sandbox.table.fast
        self.udp: socket.socket | None = None
        self.tcp: socket.socket | None = None
        self.tcp_server: asyncio.AbstractServer | None = None
        self.conns: set[asyncio.StreamWriter] = set()
        self.clients: dict[str, int] = {}      # open TCP connections per client address
        self.counters: dict[bytes, int] = {}


HIGH_FD = 1024      # FD_SETSIZE: libnftables (redirect.install) select()s its netlink socket


def _high_fd(sock: socket.socket) -> socket.socket:
    """`sock` moved to an fd number >= HIGH_FD (where the limit allows).

    Two sockets per container would otherwise fill fds 0..1023 by ~500
    containers, and libnftables' netlink socket, opened for the next
    container's redirect, then gets an fd select() cannot take: glibc aborts
    the resolver ("bit out of range 0 - FD_SETSIZE on fd_set"). Keeping the
    served sockets above 1023 leaves the low fds to libraries that select().
    """
    try:
        fd = fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD_CLOEXEC, HIGH_FD)
    except OSError:                         # RLIMIT_NOFILE <= 1024: stay where it is
        return sock
    moved = socket.socket(sock.family, sock.type, sock.proto, fileno=fd)
    sock.close()
    return moved


def bind_sockets(netns: str, *, reuse: bool = False) -> tuple[socket.socket, socket.socket]:
    """UDP and TCP sockets on 127.0.0.11 inside `netns`, and the redirect of :53 to them.

    One trip into the netns makes both sockets (a socket stays in the netns
    it was made in), binds them to ports the kernel picks and writes the
    nftables redirect (netkit.dns.redirect) of 127.0.0.11:53 to them. With
    `reuse` (a resolver's first load: a restarted one) it first tries the
    ports the netns already redirects to, and leaves the rules alone when it
    gets them. Where nftables cannot do it (no libnftables, a kernel without
    netdev egress hooks) it falls back to 127.0.0.11:53 itself, as before.
    """
    def pair(want: tuple[int, int] | None) -> tuple[socket.socket, socket.socket]:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except BaseException:
            udp.close()
            raise
        try:
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            _bind(udp, want[0] if want else 0)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            _bind(tcp, want[1] if want else 0)
        except BaseException:
            udp.close()
            tcp.close()
            raise
        return udp, tcp

    def make() -> tuple[socket.socket, socket.socket]:
        try:
            want = redirect.current() if reuse else None
        except NetkitError:
            want = None
        udp, tcp = pair(want)
        got = (udp.getsockname()[1], tcp.getsockname()[1])
        if got == want:
            return udp, tcp
        try:
            redirect.install(*got)
        except NetkitError as exc:          # no nftables for it: port 53 itself
            udp.close()
            tcp.close()
            _warn_no_redirect(netns, exc)
            return pair((redirect.PORT, redirect.PORT))
        except BaseException:
            udp.close()
            tcp.close()
            raise
        return udp, tcp

    udp, tcp = knetns.run_in(netns, make)
    udp, tcp = _high_fd(udp), _high_fd(tcp)
    try:
        try:
            udp.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
        except OSError:
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        udp.setblocking(False)
        tcp.listen(128)
        tcp.setblocking(False)
    except BaseException:
        udp.close()
        tcp.close()
        raise
    return udp, tcp


def _bind(sock: socket.socket, port: int) -> None:
    """Bind to 127.0.0.11:`port`, or a port of the kernel's choosing if that one is taken."""
    try:
        sock.bind((LISTEN_IP, port))
    except OSError as exc:
        if not port or port == redirect.PORT or exc.errno != errno.EADDRINUSE:
            raise
        sock.bind((LISTEN_IP, 0))


_warned: list[str] = []


def _warn_no_redirect(netns: str, exc: Exception) -> None:
    if not _warned:
        _warned.append(netns)
        log.warning("cannot redirect 127.0.0.11:53 (netns %s: %s): listening on port 53 "
                    "itself, so containers cannot bind it", netns, exc)


def _unredirect(netns: str) -> None:
    """Remove the redirect from `netns` (a container that no longer needs the resolver)."""
    if knetns.exists(netns):
        knetns.run_in(netns, redirect.remove)


class Server:
    """All sandboxes of a catalog, served on the running asyncio loop."""

    def __init__(self, *, timeout: float | None = None, max_inflight: int | None = None) -> None:
        self.forwarder = Forwarder(timeout, max_inflight)
        self.fresh = True           # before the first load: reuse the netns' redirect ports
        self.states: dict[str, _State] = {}
        self.catalog = Catalog()
        self.version: int | None = None
        self._lock: asyncio.Lock | None = None
        self._tasks: set[asyncio.Task] = set()

    # -- lifecycle -------------------------------------------------------------

    @property
    def lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def apply(self, snapshot: Snapshot) -> None:
        """Serve `snapshot`: open new sandboxes, close gone ones, swap the rest's tables."""
        async with self.lock:
            loop = asyncio.get_running_loop()
            catalog = await loop.run_in_executor(None, Catalog.from_snapshot, snapshot)
            await self._replace(catalog, snapshot.version)

    async def replace(self, catalog: Catalog, version: int | None) -> None:
        """Serve a freshly built `catalog` (a full reload), as :meth:`apply`."""
        async with self.lock:
            await self._replace(catalog, version)

    async def _replace(self, catalog: Catalog, version: int | None) -> None:
        built = catalog.sandboxes
        for cid in list(self.states):
            new = built.get(cid)
            if new is None or new.netns != self.states[cid].sandbox.netns:
                self._close(cid, unredirect=True)
        opened = failed = 0
        for cid, sb in built.items():
            st = self.states.get(cid)
            if st is not None:      # unchanged sandbox: keep sockets, new table
                st.sandbox, st.fast = sb, sb.table.fast
                if st.counters:
                    st.counters = {k: v for k, v in st.counters.items()
                                   if k in sb.table.answers}
                continue
            if await self._open(sb):
                opened += 1
            else:
                failed += 1
        self.catalog = catalog
        self.version = version
        self.fresh = False
        log.info("loaded version %s: %d sandboxes (%d opened, %d failed), %d containers "
                 "with names", self.version, len(self.states), opened, failed,
                 len(catalog.records.endpoints))

    async def update(self, changes: dict[str, ContainerEntries],
                     networks: dict[str, NetworkEntry] | None = None,
                     version: int | None = None) -> Delta:
        """Apply the new entries of a few containers (``ContainerEntries()``: gone) in place.

        Only their names are recomputed; sandboxes not among them keep their
        sockets, tables and round-robin counters.
        """
        async with self.lock:
            return await self._update(changes, networks, version)

    async def _update(self, changes: dict[str, ContainerEntries],
                      networks: dict[str, NetworkEntry] | None,
                      version: int | None) -> Delta:
        delta = self.catalog.update(changes, networks)
        for cid in delta.closed:
            if cid in self.states:
                self._close(cid, unredirect=True)
        todo = list(delta.opened)
        for sb in delta.changed:
            st = self.states.get(sb.container_id)
            if st is None or st.sandbox.netns != sb.netns:
                if st is not None:
                    self._close(sb.container_id, unredirect=True)
                todo.append(sb)
            else:
                st.sandbox, st.fast = sb, sb.table.fast
        for cid in changes:             # served by the catalog but not listening yet: retry
            served = self.catalog.sandboxes.get(cid)
            if served is not None and cid not in self.states and served not in todo:
                todo.append(served)
        for sb in todo:
            await self._open(sb)
        if version is not None:
            self.version = version
        self.fresh = False
        return delta

    async def _open(self, sb: Sandbox) -> bool:
        try:
            udp, tcp = bind_sockets(sb.netns, reuse=self.fresh)
        except Exception as exc:
            log.error("sandbox %s: cannot listen in netns %s: %s", sb.container_id[:12],
                      sb.netns, exc)
            return False
        st = _State(sb)
        st.udp, st.tcp = udp, tcp
        loop = asyncio.get_running_loop()
        loop.add_reader(udp.fileno(), self._on_udp, st)
        st.tcp_server = await asyncio.start_server(partial(self._on_tcp, st), sock=tcp)
        self.states[sb.container_id] = st
        return True

    def _close(self, cid: str, unredirect: bool = False) -> None:
        """Stop serving a sandbox; with `unredirect`, also drop its netns' redirect (if the
        netns is still there: a container that left its last DNS network)."""
        st = self.states.pop(cid)
        if st.udp is not None:
            asyncio.get_running_loop().remove_reader(st.udp.fileno())
            st.udp.close()
        if st.tcp_server is not None:
            st.tcp_server.close()
        for writer in list(st.conns):
            writer.close()
        if unredirect:
            try:
                _unredirect(st.sandbox.netns)
            except Exception as exc:
                log.warning("sandbox %s: cannot remove the redirect in netns %s: %s",
                            cid[:12], st.sandbox.netns, exc)

    def ports(self) -> dict[str, tuple[str, int, int]]:
        """{container id: (netns, udp port, tcp port)} of every served sandbox."""
        return {cid: (st.sandbox.netns, st.udp.getsockname()[1], st.tcp.getsockname()[1])
                for cid, st in self.states.items() if st.udp is not None and st.tcp is not None}

    async def close(self) -> None:
        """Stop serving every sandbox and cancel forwards in flight."""
        for cid in list(self.states):
            self._close(cid)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- UDP ------------------------------------------------------------------------

    def _on_udp(self, st: _State) -> None:
        sock = cast(socket.socket, st.udp)      # the reader is registered only while it is open
        recv, send = sock.recvfrom, sock.sendto
        heads, fast, counters = wire.FAST_HEADERS, st.fast, st.counters
        for _ in range(BATCH):
            try:
                data, addr = recv(4096)
            except OSError:         # BlockingIOError: drained
                return
            flags = heads.get(data[2:12])
            if flags is not None:
                key = data[12:]
                entry = fast.get(key)
                if entry is not None:
                    if entry.__class__ is bytes:
                        reply = data[:2] + flags + entry
                    else:           # round robin: one stored rotation per position
                        n = counters.get(key, 0)
                        counters[key] = n + 1
                        reply = data[:2] + flags + entry[n % len(entry)]  # type: ignore[operator]  # a tuple here
                    try:
                        send(reply, addr)
                    except OSError:
                        pass
                    continue
            self._udp_slow(st, data, addr)

    def _udp_slow(self, st: _State, data: bytes, addr) -> None:
        try:
            result = self.handle(st, data, tcp=False)
        except Exception:           # never let one packet stop the loop
            log.exception("sandbox %s: cannot answer a query", st.sandbox.container_id[:12])
            return
        if isinstance(result, bytes):
            _sendto(cast(socket.socket, st.udp), result, addr)
        elif result is not None:
            self._spawn(self._forward_udp(st, result, addr))

    async def _forward_udp(self, st: _State, query: wire.Query, addr) -> None:
        servers, in_netns = st.sandbox.forward_servers()
        reply = await self.forwarder.forward(query.data, query.question, servers,
                                             st.sandbox.netns if in_netns else None, tcp=False)
        if st.udp is not None and st.udp.fileno() >= 0:
            _sendto(st.udp, reply, addr)

    # -- TCP ------------------------------------------------------------------------

    async def _on_tcp(self, st: _State, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        client = peer[0] if peer else ""
        if st.clients.get(client, 0) >= TCP_PER_CLIENT:
            writer.close()          # over the per-client limit: refused at once
            return
        st.clients[client] = st.clients.get(client, 0) + 1
        st.conns.add(writer)
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE)
                data = await asyncio.wait_for(
                    reader.readexactly(struct.unpack("!H", head)[0]), TCP_READ)
                try:
                    result = self.handle(st, data, tcp=True)
                except Exception:
                    log.exception("sandbox %s: cannot answer a TCP query",
                                  st.sandbox.container_id[:12])
                    continue
                if isinstance(result, bytes):
                    writer.write(struct.pack("!H", len(result)) + result)
                    await asyncio.wait_for(writer.drain(), TCP_IDLE)
                elif result is not None:    # answered when it comes: pipelining
                    self._spawn(self._forward_tcp(st, result, writer))
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError, OSError):
            pass
        finally:
            st.conns.discard(writer)
            left = st.clients.get(client, 1) - 1
            if left:
                st.clients[client] = left
            else:
                st.clients.pop(client, None)
            writer.close()

    async def _forward_tcp(self, st: _State, query: wire.Query,
                           writer: asyncio.StreamWriter) -> None:
        servers, in_netns = st.sandbox.forward_servers()
        reply = await self.forwarder.forward(query.data, query.question, servers,
                                             st.sandbox.netns if in_netns else None, tcp=True)
        if not writer.is_closing():
            writer.write(struct.pack("!H", len(reply)) + reply)

    # -- answering ------------------------------------------------------------------

    def handle(self, st: _State, data: bytes, tcp: bool) -> bytes | wire.Query | None:
        """Reply bytes, a Query to forward, or None (no reply) for one message."""
        query: wire.Query | None
        try:
            query = wire.Query(data)
        except wire.FormError:
            query = _via_dnslib(data)
            if query is None:
                if len(data) >= 12 and not data[2] & 0x80:
                    return wire.error_reply(data, wire.FORMERR)
                return None
        if query.opcode != 0:
            return wire.error_reply(data, wire.NOTIMP)
        if query.qdcount == 0:
            return None             # Docker: no question, no reply
        answer = st.sandbox.table.answers.get(query.key) if query.qclass == wire.CLASS_IN \
            else None
        if answer is None:
            if not st.sandbox.forward_servers()[0]:     # nobody to ask: no task needed
                return wire.error_reply(query.data, wire.SERVFAIL, query.question)
            return query
        recs = answer.records
        if len(recs) > 1:
            if answer.order == ORDER_SHUFFLE:
                recs = tuple(random.sample(recs, len(recs)))
            else:
                n = st.counters.get(query.key, 0)
                st.counters[query.key] = n + 1
                k = n % len(recs)
                recs = recs[k:] + recs[:k]
        return wire.build_reply(query, recs, wire.TCP_MAX if tcp else query.udp_size)

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _sendto(sock: socket.socket, data: bytes, addr) -> None:
    try:
        sock.sendto(data, addr)
    except OSError:
        pass                        # full buffer or closed socket: UDP may drop


def _via_dnslib(data: bytes) -> wire.Query | None:
    """Unusual but valid shapes (compressed question, extra sections) made plain."""
    try:
        from dnslib import DNSRecord, EDNS0
        msg = DNSRecord.parse(data)
        if len(msg.questions) != 1 or msg.header.qr or msg.header.opcode:
            return None
        plain = DNSRecord(msg.header, q=msg.questions[0])
        plain.header.an = plain.header.auth = 0
        for rr in msg.ar:
            if rr.rtype == wire.QTYPE_OPT:
                plain.add_ar(EDNS0(udp_len=rr.edns_len, version=(rr.ttl >> 16) & 0xFF))
        packed = bytes(plain.pack())
        query = wire.Query(packed)
        return query
    except Exception:
        return None
