"""Swarm mode on simulated nodes: `docker swarm init / join / leave`, members, roles (`Swarm`).

Owns cluster membership: a cluster is a `ClusterStore` (netkit.store.cluster)
shared by its member nodes, and a node's membership is the file
`<node state root>/swarm.json` naming the cluster. Managers create and
remove overlay networks; every member sees them. What a member's engine
does with the cluster's networks and addresses in every action is the
cluster scope's (netkit/cluster.py).
"""

from __future__ import annotations

import json
import os
import secrets
from typing import TYPE_CHECKING

from netkit.cluster import NOT_MANAGER  # noqa: F401  (re-exported: CLI and tests import it here)
from netkit.errors import Conflict, Forbidden, InvalidArgument, NotFound
from netkit.ids import now
from netkit.model import Scope
from netkit.paths import NodePaths
from netkit.store.cluster import (MANAGER, SWARM_FILE, WORKER, Member, SqliteClusterStore,
                                  read_cluster_id)

if TYPE_CHECKING:
    from netkit.actions import Actions
    from netkit.cluster import ClusterScope
    from netkit.containers import Containers
    from netkit.model import Node
    from netkit.store import Store

NOT_IN_SWARM = "This node is not part of a swarm"
ALREADY_IN_SWARM = ('This node is already part of a swarm. Use "netkit swarm leave" to leave this '
                    'swarm and join another one.')
LAST_MANAGER = ("You are attempting to leave the swarm on a node that is participating as a manager. "
                "Removing the last manager erases all current state of the swarm. Use `--force` to "
                "ignore this message.")
MANAGER_LEAVE = ("You are attempting to leave the swarm on a node that is participating as a manager. "
                 "Use `--force` to ignore this message.")


class Swarm:
    """Membership of one node in a cluster, and what the host knows of every node's."""

    def __init__(self, store: "Store", host_store: "Store", root: str, run_root: str, node: "Node",
                 actions: "Actions", cluster: "ClusterScope", containers: "Containers") -> None:
        self.store = store
        self.host_store = host_store
        self.root = root
        self.run_root = run_root
        self.node = node
        self.node_name = node.name
        self.paths = NodePaths.of(node.name, root, run_root)
        self.actions = actions
        self.cluster = cluster
        self.containers = containers

    def _path(self) -> str:
        return os.path.join(self.paths.root, SWARM_FILE)

    # -- swarm init / join / leave ----------------------------------------------------
    def init(self) -> str:
        """`docker swarm init`: a new cluster with this node as its manager; returns its id."""
        vtep = self.cluster.vtep()
        if self.cluster.store() is not None:
            raise Conflict(ALREADY_IN_SWARM)
        cid = secrets.token_hex(16)[:25]
        store = SqliteClusterStore(self.root, cid, create=True)
        try:
            with store.transaction() as c:
                c.add_member(Member(self.node_name, MANAGER, vtep, now()))
            self._write_membership(cid)
        except BaseException:
            store.destroy()
            raise
        self.cluster.use(store)
        self.cluster.ensure_agent(poke=True)
        return cid

    def join(self, manager: str) -> str:
        """`docker swarm join`: join the cluster of node `manager` (same LAN) as a worker."""
        vtep = self.cluster.vtep()
        if self.cluster.store() is not None:
            raise Conflict(ALREADY_IN_SWARM)
        other = self.host_store.read().node(manager)
        if other is None:
            raise NotFound(f"node {manager} not found")
        if other.name == self.node_name:
            raise InvalidArgument("a node cannot join itself")
        if other.lan != self.node.lan:
            raise InvalidArgument(f"node {manager} is not on this node's LAN {self.node.lan}")
        cid = read_cluster_id(NodePaths.of(manager, self.root, self.run_root).root)
        if cid is None:
            raise Forbidden(f"node {manager} is not a swarm manager")
        store = SqliteClusterStore(self.root, cid)
        with store.transaction() as c:
            m = c.member(manager)
            if m is None or m.role != MANAGER:
                raise Forbidden(f"node {manager} is not a swarm manager")
            c.add_member(Member(self.node_name, WORKER, vtep, now()))
        try:
            self._write_membership(cid)
        except BaseException:
            with store.transaction() as c:
                c.remove_member(self.node_name)
            raise
        self.cluster.use(store)
        self.cluster.sync_node()                # mirrors the cluster's networks here
        self.cluster.poke_members(store)
        self.cluster.ensure_agent(poke=True)
        return cid

    def _write_membership(self, cid: str) -> None:
        from netkit import sandbox
        os.makedirs(self.paths.root, exist_ok=True)
        sandbox.write_file(self._path(), json.dumps({"cluster": cid}) + "\n")

    def leave(self, force: bool = False) -> None:
        """`docker swarm leave [-f]`: -f also disconnects this node's containers from
        swarm networks; the last member to leave deletes the cluster's files."""
        store = self.cluster.store()
        if store is None:
            raise Conflict(NOT_IN_SWARM)
        me = store.read().member(self.node_name)
        if me is not None and me.role == MANAGER and not force:
            managers = [m for m in store.read().members() if m.role == MANAGER]
            raise Conflict(LAST_MANAGER if len(managers) <= 1 else MANAGER_LEAVE)
        attached = [(ep.network_id, c) for c in self.containers.ps(all=True) for ep in c.endpoints
                    if ep.network_id in {n.id for n in self.store.read().networks()
                                         if n.scope is Scope.SWARM}]
        if attached and not force:
            names = ", ".join(sorted({c.name for _, c in attached}))
            raise Conflict(f"containers on this node are attached to swarm networks ({names}): "
                           "disconnect them or use --force")
        for network_id, c in attached:
            self.containers.disconnect(network_id, c.id, force=True)
        path = self._path()
        with self.actions() as (tx, ctx):
            c = self.cluster.write()
            for ep in c.endpoints(node=self.node_name):      # published, but gone from here
                self.cluster.release_addresses(c, ep.network_id, ep.ipv4, ep.ipv6)
                c.withdraw_endpoint(ep.id)
            c.remove_member(self.node_name)
            last = not c.members()
            for net in tx.networks():
                if net.scope is Scope.SWARM and not tx.count_endpoints(net.id):
                    tx.delete_network(net.id)
            os.unlink(path)
            ctx.kernel.journal.push(f"restore {path}", lambda: self._write_membership(store.cluster_id))
        self.cluster.use(None)
        if last:
            store.destroy()
        else:
            store.close()
        self.cluster.left()

    def roles(self) -> dict[str, str]:
        """Each simulated node's role: "manager", "worker" or "" (not in a swarm)."""
        stores: dict[str, SqliteClusterStore | None] = {}
        out = {}
        try:
            for node in self.host_store.read().nodes():
                cid = read_cluster_id(NodePaths.of(node.name, self.root, self.run_root).root)
                out[node.name] = ""
                if cid is None:
                    continue
                if cid not in stores:
                    try:
                        stores[cid] = SqliteClusterStore(self.root, cid)
                    except NotFound:
                        stores[cid] = None
                store = stores[cid]
                m = store.read().member(node.name) if store is not None else None
                out[node.name] = m.role if m else ""
        finally:
            for s in stores.values():
                if s is not None:
                    s.close()
        return out

    def members(self) -> list[Member]:
        """The members of this node's cluster (`docker node ls` on a manager)."""
        store = self.cluster.store()
        if store is None:
            raise Conflict(NOT_IN_SWARM)
        return store.read().members()
