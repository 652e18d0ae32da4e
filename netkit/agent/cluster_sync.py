"""The node's cluster sync loop: the node agent programs its own node from the cluster store.

`ClusterSync` runs on the node agent's asyncio loop (netkit/agent/server.py)
of every simulated node. While the node is a swarm member it looks at the
cluster store's `version()` every `MEMBER_POLL` (or at once on a poke, the
agent's `cluster` request) and, when it moved, on ONE worker thread of its
own (its own `Engine(node, in_agent=True)`, its own store connections and
netlink sockets):

- `sync_node(engine)` (`ClusterScope.sync_node`, netkit/cluster.py) mirrors
  the cluster's networks into the node's store and makes the node's VXLAN
  FDB/neighbour entries equal to `peers.desired()`; idempotent;
- `remote_entries()` reads the overlay endpoints of the OTHER nodes as the
  resolver's typed entries, which it then pushes to the node's resolver
  (`netkit.dns.client.set_remote`, the daemon's `remote` command: the
  whole set, the daemon applies the difference).

The version counts as applied (`applied`, in the agent's `ping` reply)
only once both succeeded. While there are other nodes' names the node's
resolver runs (the agent starts it, also with no local container; it
exits once it has neither a sandbox nor such a name), and a resolver that
(re)starts gets them without waiting for a cluster change: the agent's
resolver watchdog compares the resolver's pid with the one it pushed to,
every tick (`serve_resolver`). The loop itself never blocks: the asyncio
side only waits, compares and hands work to the worker thread, so the
agent answers while it syncs.

Off swarm the loop only looks at the membership file, every `IDLE_POLL`
(swarm init / join poke the agent); it starts its thread and engine on
the first membership it sees.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from netkit.dns.entries import ContainerEntries, NetworkEntry
    from netkit.engine import Engine

MEMBER_POLL = 0.05      # seconds between two looks at the cluster store's version
IDLE_POLL = 1.0         # seconds between two looks at the membership of a non-member
ANY = -1                # `holder`: whichever resolver runs
log = logging.getLogger("netkit.agent")

Remote = tuple["dict[str, ContainerEntries]", "dict[str, NetworkEntry]"]


def sync_node(engine: "Engine") -> int:
    """Bring `engine`'s node in step with its cluster; returns the number of kernel changes
    (the engine's cluster scope does it: netkit/cluster.py)."""
    return engine.cluster.sync_node()


def remote_entries(cluster_tx, node: str) -> Remote:
    """The resolver's entries for the overlay endpoints of nodes other than `node` (pure):
    ({container id: its endpoints, no sandbox}, {network id: network entry})."""
    from netkit.dns.entries import ContainerEntries, EndpointEntry
    from netkit.dnssync import network_entry
    nets = {n.id: n for n in cluster_tx.networks()}
    eps: dict[str, list[EndpointEntry]] = {}
    used: dict[str, NetworkEntry] = {}
    for ep in sorted(cluster_tx.endpoints(), key=lambda e: (e.container_id, e.network_id, e.id)):
        net = nets.get(ep.network_id)
        if ep.node == node or net is None or not (ep.ipv4 or ep.ipv6):
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
    """The kernel and store side, used from the ONE thread of the sync (`tick`, `close`)."""

    def __init__(self, node: str, root: str, run: str) -> None:
        self.node, self.root, self.run = node, root, run
        self.engine: "Engine | None" = None
        self.cluster_id: str | None = None      # the cluster of the last tick that synced

    def _engine(self) -> "Engine":
        if self.engine is None:
            from netkit.engine import Engine
            # in_agent: no agent management from inside the agent
            self.engine = Engine(self.node, root=self.root, run=self.run, in_agent=True)
            self.engine.faults = None
        return self.engine

    def tick(self, applied: int | None) -> tuple[int, int, Remote] | None:
        """When the cluster moved past `applied`: sync the node; (version, kernel changes,
        the other nodes' entries). None when there is nothing to do (or no cluster)."""
        engine = self._engine()
        cluster = engine.cluster.store()
        if cluster is None:
            return None
        version = cluster.version()
        if version == applied and cluster.cluster_id == self.cluster_id:
            return None
        self.cluster_id = cluster.cluster_id
        changes = sync_node(engine)
        cluster = engine.cluster.store()
        if cluster is None:
            return None
        return version, changes, remote_entries(cluster.read(), self.node)

    def start_resolver(self) -> int:
        return self._engine().cluster.start_resolver()

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


class ClusterSync:
    """The cluster sync of one simulated node, on the agent's asyncio loop."""

    def __init__(self, node: str, root: str, run: str, run_dir: str) -> None:
        from netkit.paths import NodePaths
        self.node, self.root, self.run_root, self.run_dir = node, root, run, run_dir
        self.node_root = NodePaths.of(node, root, run).root
        self.member = False                     # the node was a swarm member at the last look
        self.applied: int | None = None         # cluster version applied (None: not a member)
        self.error: str | None = None           # the last failure, logged once
        self.want: Remote = ({}, {})            # the other nodes' entries the resolver must serve
        self.sent: int | None = None            # pid of the resolver that serves exactly `want`
        # pid of the resolver last given non-empty entries; at start: any (a resolver that
        # ran before this agent may hold names the node no longer has)
        self.holder: int | None = ANY
        self.poked = asyncio.Event()
        self.stopped = False
        self._pool: "ThreadPoolExecutor | None" = None
        self._worker: _Worker | None = None
        self._serving = asyncio.Lock()

    # -- requests (the agent's control socket) -----------------------------------------
    def poke(self) -> None:
        """The cluster changed (a `cluster` request): look now instead of at the next poll."""
        self.poked.set()

    # -- the loop ----------------------------------------------------------------------
    async def run(self) -> None:
        while not self.stopped:
            try:
                await asyncio.wait_for(self.poked.wait(), MEMBER_POLL if self.member else IDLE_POLL)
            except asyncio.TimeoutError:
                pass
            self.poked.clear()
            if self.stopped:
                return
            try:
                await self.step()
                self.error = None
            except Exception as exc:              # noqa: BLE001 - retried on the next tick
                text = f"{type(exc).__name__}: {exc}"
                if text != self.error:            # once per distinct failure
                    log.exception("cluster sync failed (retrying)")
                self.error = text

    def is_member(self) -> bool:
        from netkit.store.cluster import read_cluster_id
        return read_cluster_id(self.node_root) is not None

    async def step(self) -> None:
        """One look: membership, then (member) the cluster's version; sync when it moved."""
        if not self.is_member():
            if self.member:
                log.info("not a swarm member any more")
            self.member = False
            self.applied = None
            await self._serve(({}, {}))
            return
        if not self.member:
            log.info("swarm member: watching the cluster store")
        self.member = True
        result = await self._in_worker(self.worker().tick, self.applied)
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
            if not remote and self.holder not in (pid, ANY):    # never given any: holds none
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

    # -- the worker thread ---------------------------------------------------------------
    def worker(self) -> _Worker:
        if self._worker is None:
            self._worker = _Worker(self.node, self.root, self.run_root)
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
        if self._pool is not None:
            if self._worker is not None:
                try:
                    await self._in_worker(self._worker.close)
                except Exception:                   # noqa: BLE001 - on the way out
                    log.exception("cluster sync: close failed")
            self._pool.shutdown(wait=False)
            self._pool = None


__all__ = ["ClusterSync", "converged", "remote_entries", "sync_node"]
