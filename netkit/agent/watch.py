"""Program a node from the cluster store: what the node agent runs on every change.

`sync_node(engine)` mirrors the cluster's networks into the node's store and
makes the node's VXLAN peer entries match `peers.desired()` (the engine's
cluster scope does it, netkit/cluster.py). It is idempotent: a second run
finds nothing to change.

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

from netkit.kernel.journal import log

if TYPE_CHECKING:
    from netkit.dns.entries import ContainerEntries, NetworkEntry
    from netkit.engine import Engine
    from netkit.store.cluster import SqliteClusterStore


def sync_node(engine: "Engine") -> int:
    """Bring `engine`'s node in step with its cluster; returns the number of kernel changes
    (the engine's cluster scope does it: netkit/cluster.py)."""
    return engine.cluster.sync_node()


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
    """Tell the agents of the other members that the cluster changed; the members whose
    agent answered (the engine's cluster scope does it: netkit/cluster.py)."""
    return engine.cluster.poke_members(store)


def converged(engine: "Engine") -> bool:
    """Has the agent of `engine`'s node applied the cluster's current version?
    (True off swarm.)"""
    from netkit.dns import client
    cluster = engine.cluster.store()
    if cluster is None:
        return True
    applied = client.agent_status(engine.paths.run).get("applied")
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
        from netkit.store.cluster import read_cluster_id
        return read_cluster_id(self.node_root) is not None

    def _engine(self) -> "Engine":
        if self.engine is None:
            from netkit.engine import Engine
            # in_agent: no agent management from inside the agent
            self.engine = Engine(self.node, root=self.root, run=self.run, in_agent=True)
            self.engine.faults = None
        return self.engine

    def version(self) -> int | None:
        """The cluster's version, None when the node is not a member (or its cluster is gone)."""
        if not self.member():
            return None
        cluster = self._engine().cluster.store()
        return cluster.version() if cluster is not None else None

    def tick(self, applied: int | None) -> tuple[int, int, dict[str, "ContainerEntries"],
                                                 dict[str, "NetworkEntry"]] | None:
        """When the cluster moved past `applied`: sync the node; (version, kernel changes,
        remote DNS entries, their networks). None when there is nothing to do."""
        version = self.version()
        if version is None:
            return None
        engine = self._engine()
        cid = engine.cluster.store().cluster_id     # type: ignore[union-attr]
        if version == applied and cid == self.cluster_id:
            return None
        self.cluster_id = cid
        changes = sync_node(engine)
        cluster = engine.cluster.store()
        if cluster is None:
            return None
        remote, nets = remote_entries(cluster.read(), self.node)
        return version, changes, remote, nets

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


__all__ = ["Agent", "converged", "poke_members", "remote_entries", "sync_node"]
