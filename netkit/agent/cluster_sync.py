"""The node's cluster sync loop: the node agent programs its own node from the cluster store.

`ClusterSync` runs on the node agent's asyncio loop (netkit/agent/server.py)
of every simulated node. While the node is a swarm member it looks at the
cluster store whenever the store changed and, when it moved, on ONE worker
thread of its own (its own `Engine(node, in_agent=True)`, its own store
connections and netlink sockets):

- `sync_node(engine)` (`ClusterScope.sync_node`, netkit/cluster.py) mirrors
  the cluster's networks into the node's store and makes the node's VXLAN
  FDB/neighbour entries equal to `peers.desired()` (less the members that
  are down); idempotent;
- `remote_entries()` reads the overlay endpoints of the OTHER nodes (up
  ones) as the resolver's typed entries, which it then pushes to the node's
  resolver (`netkit.dns.client.set_remote`, the daemon's `remote` command:
  the whole set, the daemon applies the difference).

How it learns that the store changed depends on the store. SQLite (one
machine): it polls `version()` every `MEMBER_POLL`, and the acting engine
pokes it (the agent's `cluster` request). etcd: a watcher thread of its
own (`_Watch`, its own store connection) blocks in `wait_change()` (an etcd
watch) and wakes the loop on every change; the same thread holds the
node's lease (`keep_alive` every `LEASE_TTL / 3`) and looks at the other
members' leases every `WATCH_SLICE`, so a member whose lease expired is
withdrawn (its peers and names) and put back when its lease is renewed,
without any cluster change. A store that cannot be reached changes
nothing on the node (containers keep their connectivity); the watch and
the sync retry until it is back, then converge by themselves.

The version counts as applied (`applied`, in the agent's `ping` reply)
only once both succeeded. While there are other nodes' names the node's
resolver runs (the agent starts it, also with no local container; it
exits once it has neither a sandbox nor such a name), and a resolver that
(re)starts gets them without waiting for a cluster change: the agent's
resolver watchdog compares the resolver's pid with the one it pushed to,
every tick (`serve_resolver`). The loop itself never blocks: the asyncio
side only waits, compares and hands work to the worker thread, so the
agent answers while it syncs.

On a manager the loop also runs the join listener (netkit/agent/join.py:
TCP on the node's advertise address, port 2377): a join request is
admitted on the worker thread (`netkit.swarm.admit`).

Off swarm the loop only looks at the membership file, every `IDLE_POLL`
(swarm init / join poke the agent); it starts its thread and engine on
the first membership it sees.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from netkit.dns.entries import ContainerEntries, NetworkEntry
    from netkit.engine import Engine

MEMBER_POLL = 0.05      # seconds between two looks at the cluster store's version (SQLite)
WATCHED_POLL = 1.0      # etcd: the watch wakes the loop; this only retries a failed sync
IDLE_POLL = 1.0         # seconds between two looks at the membership of a non-member
WATCH_SLICE = 1.0       # etcd: longest wait_change, i.e. how often the leases are looked at
RETRY = 0.5             # etcd: pause of the watcher after a failure
log = logging.getLogger("netkit.agent")

Remote = tuple["dict[str, ContainerEntries]", "dict[str, NetworkEntry]"]


def sync_node(engine: "Engine") -> int:
    """Bring `engine`'s node in step with its cluster; returns the number of kernel changes
    (the engine's cluster scope does it: netkit/cluster.py)."""
    return engine.cluster.sync_node()


def remote_entries(cluster_tx, node: str, down: "set[str] | frozenset[str]" = frozenset()) -> Remote:
    """The resolver's entries for the overlay endpoints of nodes other than `node` and not
    `down` (pure): ({container id: its endpoints, no sandbox}, {network id: network entry})."""
    from netkit.dns.entries import ContainerEntries, EndpointEntry
    from netkit.dnssync import network_entry
    nets = {n.id: n for n in cluster_tx.networks()}
    eps: dict[str, list[EndpointEntry]] = {}
    used: dict[str, NetworkEntry] = {}
    for ep in sorted(cluster_tx.endpoints(), key=lambda e: (e.container_id, e.network_id, e.id)):
        net = nets.get(ep.network_id)
        if ep.node == node or ep.node in down or net is None or not (ep.ipv4 or ep.ipv6):
            continue
        names = tuple(dict.fromkeys(n.lower().rstrip(".") for n in ep.names if n))
        eps.setdefault(ep.container_id, []).append(EndpointEntry(
            ep.container_id, ep.container_name, ep.network_id,
            ep.ipv4.split("/")[0] if ep.ipv4 else None,
            ep.ipv6.split("/")[0] if ep.ipv6 else None,
            names or (ep.container_name.lower(),), f"~{ep.node} {ep.container_id} {ep.id}"))
        used[ep.network_id] = network_entry(net)
    return {cid: ContainerEntries(None, tuple(lst)) for cid, lst in eps.items()}, used


def converged(engine: "Engine") -> bool:
    """Has the agent of `engine`'s node applied its cluster's current version? (True off
    swarm.) Tests wait on it; it asks the agent, never starts it."""
    from netkit.agent import client
    cluster = engine.cluster.store()
    if cluster is None:
        return True
    applied = client.status(engine.paths.run).get("applied")
    return applied is not None and applied >= cluster.version()


class _Worker:
    """The kernel and store side, used from the ONE thread of the sync (`tick`, `admit`,
    `close`)."""

    def __init__(self, node: str, root: str, run: str,
                 local: "Callable[..., dict] | None" = None) -> None:
        self.node, self.root, self.run = node, root, run
        self.local = local                      # the agent's request_in_loop (server.py)
        self.engine: "Engine | None" = None
        self.cluster_id: str | None = None      # the cluster of the last tick that synced
        self.down: set[str] = set()             # the members that were down at that tick
        self.role: str | None = None            # this node's role at the last tick
        self.due: float | None = None           # monotonic time the services' step asked for

    def _engine(self) -> "Engine":
        if self.engine is None:
            from netkit.engine import Engine
            # in_agent: no agent management from inside the agent
            self.engine = Engine(self.node, root=self.root, run=self.run, in_agent=True)
            self.engine.faults = None
            # its container requests (a swarm task's start, stop, kill) run on the agent's
            # loop: the task containers are the agent's children like any other
            self.engine.runtime.processes.local = self.local
        return self.engine

    def tick(self, applied: int | None, poked: bool = False) -> tuple[int, int, Remote] | None:
        """When the cluster moved past `applied` (or a member went down or came back): sync
        the node; (version, kernel changes, the other nodes' entries). None when there is
        nothing to do (or no cluster). The services' step (netkit/services/tick.py) runs after
        a sync, when poked, and when the time it asked for came (`due`)."""
        engine = self._engine()
        cluster = engine.cluster.store()
        if cluster is None:
            return None
        version = cluster.version()
        c = cluster.read()
        me = c.member(self.node)
        self.role = me.role if me is not None else None
        down = engine.cluster.down(cluster, c)
        if version == applied and cluster.cluster_id == self.cluster_id and down == self.down:
            if poked or (self.due is not None and time.monotonic() >= self.due):
                self._services(engine, cluster, down)
            return None
        self.cluster_id = cluster.cluster_id
        changes = sync_node(engine)
        cluster = engine.cluster.store()
        if cluster is None:
            return None
        self.down = down
        self._services(engine, cluster, down)
        return version, changes, remote_entries(cluster.read(), self.node, down)

    def _services(self, engine: "Engine", cluster, down: set[str]) -> None:
        from netkit.services import tick
        wait = tick.step(engine, cluster, self.node, down)
        self.due = None if wait is None else time.monotonic() + wait

    def wait(self) -> float | None:
        """Seconds until the services' step is due (None: not before a change)."""
        return None if self.due is None else max(0.0, self.due - time.monotonic())

    def admit(self, msg: dict) -> dict:
        """A join request that reached this node's join port (netkit/agent/join.py)."""
        from netkit.errors import Forbidden
        from netkit.store.cluster import MANAGER
        from netkit.swarm import NOT_MANAGER, admit
        cluster = self._engine().cluster.store()
        me = cluster.read().member(self.node) if cluster is not None else None
        if cluster is None or me is None or me.role != MANAGER:
            raise Forbidden(NOT_MANAGER)
        return admit(cluster, str(msg.get("token") or ""), str(msg.get("node") or ""),
                     str(msg.get("vtep") or ""),
                     key_root=self._engine().paths.root)     # secrets: the cluster key

    def start_resolver(self) -> int:
        return self._engine().cluster.start_resolver()

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


class _Watch(threading.Thread):
    """etcd: watches the cluster store and holds the node's lease, on a thread of its own
    with a store connection of its own; `wake()` (thread-safe) whenever the cluster changed
    or a member went down or came back."""

    def __init__(self, node: str, root: str, url: str, cluster_id: str,
                 wake: Callable[[], object]) -> None:
        super().__init__(name="netkit-cluster-watch", daemon=True)
        self.node, self.root, self.url, self.cluster_id = node, root, url, cluster_id
        self.wake = wake
        self.stopped = threading.Event()

    def run(self) -> None:
        from netkit.cluster import LEASE_TTL, open_store
        store = None
        version: int | None = None
        alive: set[str] | None = None
        renew = 0.0
        error: str | None = None
        while not self.stopped.is_set():
            try:
                if store is None:
                    store = open_store(self.url, self.cluster_id, self.root)
                if time.monotonic() >= renew:
                    store.keep_alive(self.node, LEASE_TTL)
                    renew = time.monotonic() + LEASE_TTL / 3
                now_alive = store.alive()
                if now_alive != alive:
                    alive = now_alive
                    self.wake()
                found = store.wait_change(-1 if version is None else version,
                                          max(0.0, min(WATCH_SLICE, renew - time.monotonic())))
                if found != version:
                    version = found
                    self.wake()
                if error is not None:
                    log.info("cluster store reachable again")
                    error = None
                    self.wake()
            except Exception as exc:             # noqa: BLE001 - retried until it is back
                text = f"{type(exc).__name__}: {exc}"
                if text != error:
                    log.warning("cluster watch: %s (retrying)", text)
                error = text
                version = None                   # resync once it is back
                self.stopped.wait(RETRY)
        if store is not None:
            try:
                store.close()
            except Exception:                    # noqa: BLE001 - on the way out
                pass

    def stop(self) -> None:
        self.stopped.set()


class ClusterSync:
    """The cluster sync of one simulated node, on the agent's asyncio loop."""

    def __init__(self, node: str, root: str, run: str, run_dir: str,
                 local: "Callable[..., dict] | None" = None) -> None:
        from netkit.paths import NodePaths
        self.node, self.root, self.run_root, self.run_dir = node, root, run, run_dir
        self.local = local                      # container requests of the worker's engine
        self.node_root = NodePaths.of(node, root, run).root
        self.member = False                     # the node was a swarm member at the last look
        self.applied: int | None = None         # cluster version applied (None: not a member)
        self.error: str | None = None           # the last failure, logged once
        self.want: Remote = ({}, {})            # the other nodes' entries the resolver must serve
        self.sent: int | None = None            # pid of the resolver that serves exactly `want`
        # pid of the resolver last given non-empty entries; at start: the one that runs, if
        # any (it ran before this agent and may hold names the node no longer has; one
        # started later got none from this agent)
        from netkit.dns import client as dns
        self.holder: int | None = dns.pid(run_dir)
        self.poked = asyncio.Event()
        self.stopped = False
        self.membership: dict | None = None     # swarm.json at the last look
        self._watch: _Watch | None = None       # etcd: the watcher of the current membership
        self._pool: "ThreadPoolExecutor | None" = None
        self._worker: _Worker | None = None
        self._serving = asyncio.Lock()
        from netkit.agent.join import JoinListener
        self.listener = JoinListener(self._admit)

    # -- requests (the agent's control socket) -----------------------------------------
    def poke(self) -> None:
        """The cluster changed (a `cluster` request): look now instead of at the next poll."""
        self.poked.set()

    # -- the loop ----------------------------------------------------------------------
    async def run(self) -> None:
        while not self.stopped:
            poll = IDLE_POLL if not self.member else WATCHED_POLL if self._watch else MEMBER_POLL
            due = self._worker.wait() if self._worker is not None else None
            if due is not None:
                poll = min(poll, due)
            try:
                await asyncio.wait_for(self.poked.wait(), poll)
            except asyncio.TimeoutError:
                pass
            poked = self.poked.is_set()
            self.poked.clear()
            if self.stopped:
                return
            try:
                await self.step(poked)
                self.error = None
            except Exception as exc:              # noqa: BLE001 - retried on the next tick
                text = f"{type(exc).__name__}: {exc}"
                if text != self.error:            # once per distinct failure
                    log.exception("cluster sync failed (retrying)")
                self.error = text

    def is_member(self) -> bool:
        from netkit.cluster import read_membership
        return read_membership(self.node_root) is not None

    def _watching(self, membership: dict | None) -> None:
        """etcd: a watcher for this membership (a new one when it changed; none off swarm
        and on SQLite)."""
        from netkit.cluster import SQLITE, store_url
        if membership == self.membership:
            return
        self.membership = membership
        if self._watch is not None:
            self._watch.stop()
            self._watch = None
        if membership is not None and store_url(membership) != SQLITE:
            loop = asyncio.get_running_loop()
            self._watch = _Watch(self.node, self.root, store_url(membership),
                                 membership["cluster"],
                                 lambda: loop.call_soon_threadsafe(self.poked.set))
            self._watch.start()

    async def step(self, poked: bool = False) -> None:
        """One look: membership, then (member) the cluster's version; sync when it moved."""
        from netkit.cluster import read_membership
        membership = read_membership(self.node_root)
        self._watching(membership)
        if membership is None:
            if self.member:
                log.info("not a swarm member any more")
            self.member = False
            self.applied = None
            await self.listener.listen(None)
            await self._serve(({}, {}))
            return
        if not self.member:
            log.info("swarm member: watching the cluster store")
        self.member = True
        worker = self.worker()
        try:
            result = await self._in_worker(worker.tick, self.applied, poked)
        finally:
            from netkit.store.cluster import MANAGER
            await self.listener.listen(membership.get("advertise")
                                       if worker.role == MANAGER else None)
        if result is None:
            return
        version, changes, remote = result
        await self._serve(remote)
        if changes or self.applied is None:
            log.info("cluster version %s applied: %d kernel changes, %d remote containers",
                     version, changes, len(remote[0]))
        self.applied = version

    # -- the resolver --------------------------------------------------------------------
    async def _serve(self, remote: Remote) -> None:
        if remote != self.want:
            self.want, self.sent = remote, None
        await self.serve_resolver()

    async def serve_resolver(self) -> None:
        """Give the node's resolver the other nodes' entries unless it has them (cheap when
        it does: one look at its pid); start it when none runs and there are some. Raises
        when a running resolver does not take them."""
        from netkit.dns import client as dns
        if not self.want[0] and self.holder is None:
            return                                  # nothing given to any resolver: none to take
        async with self._serving:
            remote, nets = self.want
            pid = dns.pid(self.run_dir)
            if pid is None:
                if not remote:
                    self.holder = None              # no resolver: none holds any
                    return
                if not self.is_member():
                    return                          # it just left: the next step drops them
                pid = await self._in_worker(self.worker().start_resolver)
            if pid == self.sent:
                return
            if not remote and self.holder != pid:   # never given any: holds none
                self.sent = pid
                return
            reply = await self._in_worker(dns.set_remote, self.run_dir, remote, nets)
            if reply is None:
                if dns.pid(self.run_dir) == pid:
                    raise RuntimeError(f"resolver (pid {pid}) did not take the other nodes' names")
                return                              # it exited meanwhile: its successor is next
            if (remote, nets) == self.want:
                self.sent = pid
            self.holder = pid if remote else None

    async def _admit(self, msg: dict) -> dict:
        reply = await self._in_worker(self.worker().admit, msg)
        self.poke()
        return reply

    # -- the worker thread ---------------------------------------------------------------
    def worker(self) -> _Worker:
        if self._worker is None:
            self._worker = _Worker(self.node, self.root, self.run_root, self.local)
        return self._worker

    async def _in_worker(self, fn: Callable, *args: Any) -> Any:
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="netkit-cluster-sync")
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def close(self) -> None:
        """Stop the loop; close the worker's engine on its thread."""
        self.stopped = True
        self.poked.set()
        if self._watch is not None:
            self._watch.stop()
            self._watch = None
        await self.listener.close()
        if self._pool is not None:
            if self._worker is not None:
                try:
                    await self._in_worker(self._worker.close)
                except Exception:                   # noqa: BLE001 - on the way out
                    log.exception("cluster sync: close failed")
            self._pool.shutdown(wait=False)
            self._pool = None


__all__ = ["ClusterSync", "converged", "remote_entries", "sync_node"]
