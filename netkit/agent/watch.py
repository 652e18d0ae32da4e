"""Program a node from the cluster store: what the node agent runs on every change.

`sync_node(engine)` mirrors the cluster's networks into the node's store and
makes the node's VXLAN peer entries match `peers.desired()`. It is
idempotent: a second run finds nothing to change.

`Agent` is the loop's state, run by the node's resident process (the DNS
resolver daemon, netkit/dns/daemon.py) on a thread of its own: each
`tick()` looks at the node's membership and the cluster's `version()` and,
when it moved, runs `sync_node` and reads the overlay endpoints of the other
nodes for the resolver (`remote_entries`). The acting engine syncs only its
own node and pokes the other nodes' agents (`poke_members`); it never
touches another node's kernel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netkit.agent import peers
from netkit.kernel.journal import log

if TYPE_CHECKING:
    from netkit.dns.entries import ContainerEntries, NetworkEntry
    from netkit.engine import Engine
    from netkit.store.cluster import SqliteClusterStore


def sync_node(engine: "Engine") -> int:
    """Bring `engine`'s node in step with its cluster; returns the number of kernel changes."""
    saved, engine.faults = engine.faults, None      # a test's fault plan targets the action, not this
    try:
        with engine._action() as (tx, ctx):         # mirrors the cluster's networks on begin
            cluster = engine._cluster()
            want = peers.desired(cluster.read(), engine.node_name) if cluster is not None else set()
            return peers.apply(ctx.kernel.host, want)
    finally:
        engine.faults = saved


def remote_entries(cluster_tx, node: str
                   ) -> tuple[dict[str, "ContainerEntries"], dict[str, "NetworkEntry"]]:
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


def run_dir_of(node: str, root: str, run: str) -> str:
    from netkit.paths import NodePaths
    return NodePaths.of(node, root, run).run


def poke_members(engine: "Engine", store: "SqliteClusterStore") -> list[str]:
    """Tell the agents of the other members that the cluster changed (a `cluster` line on
    their control sockets: they re-read at once instead of at their next poll). Never
    waits for their sync, never starts them; returns the members whose agent answered."""
    from netkit.dns import daemon
    out = []
    for member in store.read().members():
        if member.node == engine.node_name:
            continue
        if daemon.poke(run_dir_of(member.node, engine.root, engine.run_root)):
            out.append(member.node)
    return out


def converged(engine: "Engine") -> bool:
    """Has the agent of `engine`'s node applied the cluster's current version?
    (True off swarm.)"""
    from netkit.dns import daemon
    cluster = engine._cluster()
    if cluster is None:
        return True
    applied = daemon.agent_status(engine.paths.run).get("applied")
    return applied is not None and applied >= cluster.version()


class Agent:
    """The agent's kernel side, used from ONE thread of the daemon (`tick`, `close`)."""

    def __init__(self, node: str, root: str, run: str) -> None:
        from netkit.paths import NodePaths
        self.node, self.root, self.run = node, root, run
        self.node_root = NodePaths.of(node, root, run).root
        self.engine: "Engine | None" = None
        self.cluster_id: str | None = None      # the cluster of the last tick that synced

    def member(self) -> bool:
        from netkit.swarm import read_cluster_id
        return read_cluster_id(self.node_root) is not None

    def _engine(self) -> "Engine":
        if self.engine is None:
            from netkit.engine import Engine
            self.engine = Engine(self.node, root=self.root, run=self.run)
            self.engine.faults = None
            self.engine._in_agent = True        # no agent management from inside the agent
        return self.engine

    def version(self) -> int | None:
        """The cluster's version, None when the node is not a member (or its cluster is gone)."""
        if not self.member():
            return None
        cluster = self._engine()._cluster()
        return cluster.version() if cluster is not None else None

    def tick(self, applied: int | None) -> tuple[int, int, dict[str, "ContainerEntries"],
                                                 dict[str, "NetworkEntry"]] | None:
        """When the cluster moved past `applied`: sync the node; (version, kernel changes,
        remote DNS entries, their networks). None when there is nothing to do."""
        version = self.version()
        if version is None:
            return None
        engine = self._engine()
        cid = engine._cluster().cluster_id          # type: ignore[union-attr]
        if version == applied and cid == self.cluster_id:
            return None
        self.cluster_id = cid
        changes = sync_node(engine)
        cluster = engine._cluster()
        if cluster is None:
            return None
        remote, nets = remote_entries(cluster.read(), self.node)
        return version, changes, remote, nets

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


__all__ = ["Agent", "converged", "poke_members", "remote_entries", "sync_node"]
