"""Program a node from the cluster store: what the node agent runs on every change.

`sync_node(engine)` mirrors the cluster's networks into the node's store and
makes the node's VXLAN peer entries match `peers.desired()`. It is
idempotent: a second run finds nothing to change. Until the agent loop
exists (README.md here), the engine calls `sync_cluster` for every member
after each committed cluster change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netkit.agent import peers
from netkit.kernel.journal import log

if TYPE_CHECKING:
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


def sync_cluster(engine: "Engine", store: "SqliteClusterStore") -> None:
    """sync_node on every member of `store`'s cluster (engines opened for the other nodes)."""
    from netkit.engine import Engine
    for member in store.read().members():
        if member.node == engine.node_name:
            sync_node(engine)
            continue
        if engine.host_store.read().node(member.node) is None:
            log.warning("cluster %s: member %s is not a node any more", store.cluster_id, member.node)
            continue
        with Engine(member.node, root=engine.root, run=engine.run_root) as other:
            sync_node(other)
