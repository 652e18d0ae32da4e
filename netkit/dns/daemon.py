"""The resident resolver process of a node.

Files under ``<run_dir>/dns/``:

    control         unix stream socket, one command per line (below)
    resolver.pid    the daemon's pid; removed when it stops or exits by itself,
                    so one left behind by a dead process means it was killed
    ready           JSON {pid, version, sandboxes, started}: what it served at its
                    last full load (and, shortly after, at its last update)
    resolver.log    one line per event (start, full load, bind failure, error, exit)
    spawn.lock      held by a client while it checks for / starts a daemon
    snapshot.json   snapshot mode only: what to serve (:func:`write_snapshot`)

``python -m netkit.dns.daemon --run-dir DIR --store DB --host-resolv FILE``
runs it in the foreground in *store mode*, the engine's: the daemon reads
the node's SQLite store itself (read-only) and the node's resolv.conf
(its servers are the upstreams of sandboxes without ``--dns``). It builds
everything from the store once at start; afterwards the engine tells it
which containers changed and it re-reads just those. On a swarm member,
the node agent (netkit/agent/cluster_sync.py) tells it the other nodes'
overlay endpoints (``remote``); it keeps them across reloads and serves
them as names like the node's own. It exits by itself when an ``update``
or ``remote`` leaves it nothing: no sandbox and no other node's endpoint
(so a swarm node's next container does not wait for a new resolver).

Without ``--store`` it runs in *snapshot mode* (tests, bench.dns_qps):
it serves ``snapshot.json`` and every command reloads that file.

Control protocol: one line per command, one line per reply, sent once the
change is served (a sandbox's sockets are bound before ``ok``)::

    update <cid> [<cid>...]   -> ok <version> <sandboxes>
        re-read these containers from the store (absent = removed) and apply
        the difference: their names, their sandboxes; nothing else changes
    remote <json>             -> ok <version> <sandboxes>
        serve exactly these other nodes' endpoints (the JSON of
        netkit.dns.entries.entries_to_json: container id -> ContainerEntries
        without sandbox, network id -> NetworkEntry); applies the difference
    reload                    -> ok <version> <sandboxes>
        full rebuild from the store (or the snapshot)
    status                    -> ok <version> <sandboxes>
    ports                     -> ok <json>
        {container id: [netns, udp port, tcp port]} of every served sandbox: where
        its netns' redirect of 127.0.0.11:53 must point (netkit.dns.redirect)
    (other)                   -> err <reason>

``version`` increases with every update or reload (snapshot mode: the
snapshot's version); ``sandboxes`` is how many it serves. A daemon on its
way out answers ``gone``. As a backstop it re-reads the whole store when
the store changed but no update came for 2 s (applying only the
difference), reloads when the node's resolv.conf servers change, and on
SIGHUP; SIGTERM stops it.

The client side (:func:`update`, :func:`ensure_running`, :func:`notify`,
:func:`stop`, :func:`status`, ...) is netkit.dns.client, which imports
nothing of this module; its names are still reachable here.
:class:`Resolver` runs the same server in a thread of the caller's process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

from netkit.dns.client import MODULE, _dir, _path, _unlink, _write_atomic, load_snapshot
# the client side, still reachable here for the daemon's callers (tests, bench)
from netkit.dns.client import (DNS_DIR, WAIT, _alive, _control, _pid,  # noqa: F401
                               crashed, ensure_running, notify, set_remote, status, stop,
                               update, write_snapshot)
from netkit.dns.entries import ContainerEntries, NetworkEntry, Snapshot, entries_from_json

if TYPE_CHECKING:
    from netkit.dns.server import Server

POLL = 2.0
READY_DELAY = 0.5       # seconds after an update before the ready file is rewritten
CONTROL_LIMIT = 1 << 26  # bytes of one control line (a `remote` line lists every endpoint)
log = logging.getLogger("netkit.dns")


# -- in-process ---------------------------------------------------------------------

class Resolver:
    """The resolver on a background thread of this process (no daemon).

        r = Resolver(snapshot).start()      # a netkit.dns.entries.Snapshot
        r.reload(new_snapshot)              # returns once it serves new_snapshot
        r.update({cid: ContainerEntries(sandbox, endpoints)}, networks)   # a few containers
        r.stop()

    Usable as a context manager. `timeout` and `max_inflight` override the
    forwarding defaults (4 s, 1024).
    """

    def __init__(self, snapshot: Snapshot | None = None, *, timeout: float | None = None,
                 max_inflight: int | None = None) -> None:
        self._snapshot = snapshot if snapshot is not None else Snapshot()
        self._timeout, self._max_inflight = timeout, max_inflight
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.server: Server | None = None

    def start(self) -> "Resolver":
        from netkit.dns.server import Server
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                server = self.server = Server(timeout=self._timeout,
                                              max_inflight=self._max_inflight)
                loop.run_until_complete(server.apply(self._snapshot))
            except BaseException as exc:
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(server.close())
                loop.run_until_complete(loop.shutdown_default_executor())
                loop.close()

        self._thread = threading.Thread(target=run, name="netkit-dns", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            raise failure[0]
        return self

    def reload(self, snapshot: Snapshot) -> None:
        """Serve `snapshot` (sockets of unchanged sandboxes stay open)."""
        assert self._loop is not None and self.server is not None, "Resolver not started"
        asyncio.run_coroutine_threadsafe(self.server.apply(snapshot), self._loop).result()

    def update(self, changes: dict[str, ContainerEntries],
               networks: dict[str, NetworkEntry] | None = None, version: int | None = None):
        """Apply a few containers' new entries (``ContainerEntries()``: removed); the Delta."""
        assert self._loop is not None and self.server is not None, "Resolver not started"
        return asyncio.run_coroutine_threadsafe(
            self.server.update(changes, networks, version), self._loop).result()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop = self._thread = None

    @property
    def version(self) -> int | None:
        return self.server.version if self.server else None

    def __enter__(self) -> "Resolver":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# -- the daemon -----------------------------------------------------------------------

class _Daemon:
    def __init__(self, run_dir: str, store: str | None = None,
                 host_resolv: str | None = None) -> None:
        from netkit.dns.server import Server
        self.run_dir = run_dir
        self.remote: dict[str, ContainerEntries] = {}       # other nodes' endpoints (agent)
        self.remote_nets: dict[str, NetworkEntry] = {}
        self.server = Server()
        self.source = None
        if store:
            from netkit.dnssync import StoreSource
            self.source = StoreSource(store)
        self.host_resolv = host_resolv
        self.host_servers: list[str] = []
        self.resolv_stamp: tuple | None = None
        self.started = time.time()
        self.stamp: tuple | None = None         # snapshot mode: snapshot.json's stat
        self.seen_dv: int | None = None         # store's data_version at the last full read
        self.last_change = time.monotonic()
        self.retired = False
        self.lock = asyncio.Lock()              # bound to the loop that first uses it (run())
        self.stopping = asyncio.Event()
        self.ctl: asyncio.AbstractServer | None = None
        self.ctl_ino: int | None = None
        self._ready_handle: asyncio.TimerHandle | None = None

    # -- inputs --------------------------------------------------------------------

    def _stat(self) -> tuple | None:
        try:
            st = os.stat(_path(self.run_dir, "snapshot.json"))
            return (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            return None

    def _read_resolv(self) -> bool:
        """Re-read the node's resolv.conf if it changed; True when its servers did."""
        if not self.host_resolv:
            return False
        try:
            st = os.stat(self.host_resolv)
            stamp: tuple | None = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            stamp = None
        if stamp == self.resolv_stamp:
            return False
        self.resolv_stamp = stamp
        try:
            with open(self.host_resolv) as f:
                text = f.read()
        except OSError:
            text = ""
        from netkit.dnssync import host_servers_of
        servers = host_servers_of(text)
        changed = servers != self.host_servers
        self.host_servers = servers
        return changed

    def _next_version(self) -> int:
        return (self.server.version or 0) + 1

    # -- loads (all under self.lock) ------------------------------------------------

    async def full(self, why: str) -> None:
        """Rebuild everything from the store (or the snapshot file)."""
        if self.source is None:
            self.stamp = self._stat()
            snap = load_snapshot(self.run_dir)
            if snap.version != self.server.version or why == "start":
                log.info("reload (%s) to version %s", why, snap.version)
                await self.server.apply(snap)
            self._write_ready()
            return
        from netkit.dns.catalog import Catalog
        self._read_resolv()
        source, servers = self.source, self.host_servers
        self.seen_dv = source.data_version()

        def build() -> Catalog:
            changes, networks = source.read_all(servers)
            changes.update(self.remote)             # other nodes' overlay endpoints
            networks.update(self.remote_nets)
            return Catalog.build(changes, networks)

        t0 = time.monotonic()
        catalog = await asyncio.get_running_loop().run_in_executor(None, build)
        await self.server.replace(catalog, self._next_version())
        log.info("full load (%s) in %.0f ms: version %s", why, (time.monotonic() - t0) * 1000,
                 self.server.version)
        self._write_ready()

    async def update(self, ids: list[str]) -> None:
        """Re-read these containers and apply the difference."""
        if self.source is None:
            await self.full("control")
            return
        if self._read_resolv():
            await self.full("resolv.conf servers changed")
            return
        changes, networks = self.source.read(ids, self.host_servers)
        delta = await self.server.update(changes, networks, self._next_version())
        log.debug("update %s: +%d ~%d -%d sandboxes, %d names, %d ptrs", " ".join(ids),
                  len(delta.opened), len(delta.changed), len(delta.closed), delta.names,
                  delta.ptrs)
        self.last_change = time.monotonic()
        self._ready_soon()

    async def reconcile(self) -> None:
        """Backstop: read every container, apply those that differ from what is served."""
        source, servers = self.source, self.host_servers
        assert source is not None
        self.seen_dv = source.data_version()
        full, networks = await asyncio.get_running_loop().run_in_executor(
            None, source.read_all, servers)
        full.update(self.remote)
        networks.update(self.remote_nets)
        changes = self.server.catalog.diff(full)
        if changes:
            log.warning("backstop: %d containers were not up to date", len(changes))
            await self.server.update(changes, networks, self._next_version())
            self._write_ready()

    # -- ready file ---------------------------------------------------------------------

    def _write_ready(self) -> None:
        if self._ready_handle is not None:
            self._ready_handle.cancel()
            self._ready_handle = None
        if self.retired:
            return
        _write_atomic(_path(self.run_dir, "ready"), json.dumps({
            "pid": os.getpid(), "version": self.server.version or 0,
            "sandboxes": len(self.server.states), "started": self.started}))

    def _ready_soon(self) -> None:
        if self._ready_handle is None:
            self._ready_handle = asyncio.get_running_loop().call_later(
                READY_DELAY, self._write_ready)

    # -- lifecycle ------------------------------------------------------------------------

    async def poll(self) -> None:
        while True:
            await asyncio.sleep(POLL)
            try:
                async with self.lock:
                    if self.retired:
                        return
                    if self.source is None:
                        if self._stat() != self.stamp:
                            await self.full("poll")
                    elif self._read_resolv():
                        await self.full("resolv.conf servers changed")
                    elif (time.monotonic() - self.last_change >= POLL
                          and self.source.data_version() != self.seen_dv):
                        await self.reconcile()
            except Exception:
                log.exception("backstop check failed")

    async def set_remote(self, remote: dict[str, ContainerEntries],
                         nets: dict[str, NetworkEntry]) -> None:
        """Serve exactly `remote` as the other nodes' endpoints (only the difference)."""
        changes = {cid: e for cid, e in remote.items() if self.remote.get(cid) != e}
        for cid in self.remote:
            if cid not in remote:
                changes[cid] = ContainerEntries()
        self.remote, self.remote_nets = remote, nets
        if changes:
            delta = await self.server.update(changes, nets, self._next_version())
            log.info("other nodes' endpoints: %d containers (%d changed, %d names)",
                     len(remote), len(changes), delta.names)
            self._ready_soon()

    async def _locked_full(self, why: str) -> None:
        async with self.lock:
            if not self.retired:
                try:
                    await self.full(why)
                except Exception:
                    log.exception("reload (%s) failed", why)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.lock = asyncio.Lock()
        self.stopping = asyncio.Event()
        tasks: set[asyncio.Task] = set()

        def on_hup() -> None:
            task = loop.create_task(self._locked_full("signal"))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        loop.add_signal_handler(signal.SIGHUP, on_hup)
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        loop.add_signal_handler(signal.SIGINT, self.stopping.set)
        try:
            async with self.lock:
                # listen first: commands sent meanwhile wait for the lock (the first load)
                control = _path(self.run_dir, "control")
                _unlink(control)
                self.ctl = await asyncio.start_unix_server(self._on_control, path=control,
                                                           limit=CONTROL_LIMIT)
                self.ctl_ino = os.stat(control).st_ino
                await self.full("start")
            poller = loop.create_task(self.poll())
            await self.stopping.wait()
            poller.cancel()
        finally:
            if self.ctl is not None:
                self.ctl.close()
            self._unlink_control()
            await self.server.close()
            if self.source is not None:
                self.source.close()

    def _unlink_control(self) -> None:
        """Remove our control socket (never a successor's)."""
        if self.ctl_ino is None:
            return
        path = _path(self.run_dir, "control")
        try:
            if os.stat(path).st_ino == self.ctl_ino:
                os.unlink(path)
        except FileNotFoundError:
            pass
        self.ctl_ino = None

    def _retire(self, why: str = "no sandbox left") -> None:
        """Nothing left to serve: stop taking commands and exit.

        The control socket and then the pid file go first, so a client that
        arrives now starts a new daemon instead of talking to this one.
        """
        log.info("%s: exiting", why)
        self.retired = True
        if self.ctl is not None:
            self.ctl.close()
        self._unlink_control()
        _remove_own_files(self.run_dir)
        if self._ready_handle is not None:
            self._ready_handle.cancel()
            self._ready_handle = None
        self.stopping.set()

    async def _on_control(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                words = line.decode(errors="replace").split(None, 1)
                if not words:
                    continue
                cmd, rest = words[0], words[1] if len(words) > 1 else ""
                async with self.lock:
                    reply = await self._command(cmd, rest)
                writer.write(reply.encode())
                await writer.drain()
                if self.retired:
                    break
        except (ConnectionError, OSError, ValueError):    # ValueError: a line over the limit
            pass
        finally:
            writer.close()

    async def _command(self, cmd: str, rest: str) -> str:
        if self.retired:
            return "gone\n"
        try:
            if cmd == "update":
                await self.update(rest.split())
            elif cmd == "remote":
                await self.set_remote(*entries_from_json(json.loads(rest)))
            elif cmd == "reload":
                await self.full("control")
            elif cmd == "ports":
                ports = {cid: list(v) for cid, v in self.server.ports().items()}
                return f"ok {json.dumps(ports, separators=(',', ':'))}\n"
            elif cmd != "status":
                return f"err unknown command {cmd!r}\n"
        except Exception as exc:
            log.exception("%s failed", cmd)
            return f"err {type(exc).__name__}: {exc}\n".replace("\n", " ").rstrip() + "\n"
        reply = f"ok {self.server.version or 0} {len(self.server.states)}\n"
        if cmd in ("update", "remote") and self.source is not None \
                and not self.server.catalog.sandboxes and not self.remote:
            self._retire()
        return reply


def _remove_own_files(run_dir: str) -> None:
    """Remove resolver.pid and ready if they are this process's."""
    for name in ("resolver.pid", "ready"):
        path = _path(run_dir, name)
        try:
            with open(path) as f:
                text = f.read().strip()
            owner = json.loads(text).get("pid") if name == "ready" else int(text)
            if owner == os.getpid():
                os.unlink(path)
        except (OSError, ValueError, AttributeError):
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}",
                                     description="netkit embedded DNS resolver")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--store", help="the node's state database (store mode)")
    parser.add_argument("--host-resolv", help="the node's resolv.conf (upstreams)")
    args = parser.parse_args(argv)
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)   # two sockets per container
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    run_dir = os.path.abspath(args.run_dir)
    os.makedirs(_dir(run_dir), exist_ok=True)
    handler = logging.FileHandler(_path(run_dir, "resolver.log"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    # a SIGHUP before the loop's handler is in place must not kill us: the
    # first load reads everything anyway
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    _write_atomic(_path(run_dir, "resolver.pid"), f"{os.getpid()}\n")
    log.info("start pid %d in %s (%s)", os.getpid(), run_dir,
             f"store {args.store}" if args.store else "snapshot mode")
    try:
        daemon = _Daemon(run_dir, args.store, args.host_resolv)
        asyncio.run(daemon.run())
    except Exception:
        log.exception("resolver failed")
        return 1
    finally:
        _remove_own_files(run_dir)
        log.info("stop pid %d", os.getpid())
    return 0


if __name__ == "__main__":
    sys.exit(main())
