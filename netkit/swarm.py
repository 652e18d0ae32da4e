"""Swarm mode on simulated nodes: `docker swarm init / join / join-token / leave`, members, roles (`Swarm`).

Owns cluster membership: a cluster is a `ClusterStore` (netkit.store.cluster)
shared by its member nodes, and a node's membership is the file
`<node state root>/swarm.json` naming the cluster, its store (url) and the
node's advertise address (netkit/cluster.py). `init --cluster-store
etcd://...` keeps the cluster in etcd, else in the embedded SQLite file.
A node joins over the network with a token (`join --token T ADDR`: the
manager's agent admits it, netkit/agent/join.py) or, on one machine, by
naming a manager node (`join --manager NODE`, which reads that node's
files). Managers create and remove overlay networks; every member sees
them. What a member's engine does with the cluster's networks and
addresses in every action is the cluster scope's (netkit/cluster.py).
"""

from __future__ import annotations

import json
import os
import secrets
from typing import TYPE_CHECKING

from netkit.cluster import NOT_MANAGER  # noqa: F401  (re-exported: CLI and tests import it here)
from netkit.cluster import (LEASE_TTL, SQLITE, down_members, leased, read_membership,
                            store_url)
from netkit.errors import Conflict, Forbidden, InvalidArgument, NetkitError, NotFound
from netkit.ids import now
from netkit.model import Scope
from netkit.paths import NodePaths
from netkit.services.model import NODE
from netkit.store.cluster import MANAGER, SWARM_FILE, WORKER, Member, read_cluster_id  # noqa: F401

if TYPE_CHECKING:
    from netkit.actions import Actions
    from netkit.cluster import ClusterScope
    from netkit.containers import Containers
    from netkit.model import Node
    from netkit.store import Store
    from netkit.store.cluster import ClusterStore, ClusterTx

NOT_IN_SWARM = "This node is not part of a swarm"
ALREADY_IN_SWARM = ('This node is already part of a swarm. Use "netkit swarm leave" to leave this '
                    'swarm and join another one.')
MANAGER_LEAVING = "You are attempting to leave the swarm on a node that is participating as a manager."
LAST_MANAGER = (f"{MANAGER_LEAVING} Removing the last manager erases all current state of the swarm. "
                "Use `--force` to ignore this message.")
QUORUM_LOST = ("Removing this node leaves {left} managers out of {total}. Without a Raft quorum your "
               "swarm will be inaccessible. ")
MANAGER_LEAVE = ("The only way to restore a swarm that has lost consensus is to reinitialize it with "
                 "`--force-new-cluster`. Use `--force` to suppress this message.")
WORKER_VIEW = ("This node is not a swarm manager. Worker nodes can't be used to view or modify "
               "cluster state. Please run this command on a manager node or promote the current "
               "node to a manager.")
READY, DOWN = "Ready", "Down"
ROTATED = "Successfully rotated {role} join token."


def manager_leave_message(reachable: int, unreachable: int) -> str:
    """Docker's refusal of `swarm leave` without --force on a manager, by the managers that
    are up (`reachable`, this one among them) and down (daemon/cluster/swarm.go Leave)."""
    if reachable - 2 <= unreachable:                 # removing it loses the quorum
        if reachable == 1 and unreachable == 0:
            return LAST_MANAGER
        return (f"{MANAGER_LEAVING} "
                + QUORUM_LOST.format(left=reachable - 1, total=reachable + unreachable)
                + MANAGER_LEAVE)
    return f"{MANAGER_LEAVING} {MANAGER_LEAVE}"


def admit(store: "ClusterStore", token: str, node: str, vtep: str, *,
          key_root: str | None = None) -> dict:
    """A manager's side of a join over the network: the token names a role of this cluster;
    the node becomes a member. The reply the joiner gets (cluster id, store url, role; the
    cluster key for secrets from the manager's node root `key_root`)."""
    import hmac
    from netkit.agent.join import WRONG_TOKEN, check_token
    check_token(token)
    with store.transaction() as c:
        role = next((r for r in (WORKER, MANAGER)
                     if hmac.compare_digest(c.meta(f"token.{r}") or "", token)), None)
        if role is None:
            raise Forbidden(WRONG_TOKEN)
        if c.member(node) is not None:
            raise Conflict(f"a node named {node} is already a member of this swarm")
        if any(m.vtep == vtep for m in c.members()):
            raise Conflict(f"address {vtep} is already used by a member of this swarm")
        c.add_member(Member(node, role, vtep, now()))
    reply: dict[str, str | None] = {"cluster": store.cluster_id, "store": store.url, "role": role}
    if key_root is not None:                    # secrets: the cluster key (services/secrets.py)
        from netkit.services.swarmkey import key_text
        reply["key"] = key_text(key_root)
    return reply


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
    def init(self, advertise_addr: str | None = None, cluster_store: str | None = None) -> str:
        """`docker swarm init`: a new cluster with this node as its manager, in the embedded
        SQLite store or in etcd (`cluster_store` "etcd://h:p,..."); returns its id."""
        from netkit.agent.join import new_token
        vtep = self.cluster.vtep()
        advertise = self._advertise(advertise_addr, vtep)
        if self.cluster.store() is not None:
            raise Conflict(ALREADY_IN_SWARM)
        url = SQLITE if cluster_store in (None, "", SQLITE) else cluster_store
        cid = secrets.token_hex(16)[:25]
        store = self.cluster.open(url, cid, create=True)
        try:
            with store.transaction() as c:
                c.add_member(Member(self.node_name, MANAGER, vtep, now()))
                for role in (WORKER, MANAGER):
                    c.set_meta(f"token.{role}", new_token(cid))
                from netkit.services import mesh          # routing mesh: the `ingress` network
                mesh.create_ingress(c)
            url = store.url
            self._write_membership({"cluster": cid, "store": url, "advertise": advertise})
            from netkit.services.swarmkey import create_key    # secrets: the cluster key
            create_key(self.paths.root)
            if leased(store):
                store.keep_alive(self.node_name, LEASE_TTL)
        except BaseException:
            store.destroy()
            raise
        self.cluster.use(store, url)
        self.cluster.ensure_agent(poke=True)
        return cid

    def _advertise(self, addr: str | None, vtep: str) -> str:
        """"ip:port" other nodes reach this one by (its LAN address; port 2377 by default)."""
        from netkit.agent.join import JOIN_PORT, parse_address
        host, port = parse_address(addr or vtep, JOIN_PORT)
        if host != vtep:
            raise InvalidArgument(f"advertise address {host} is not an address of this node "
                                  f"(its LAN address is {vtep})")
        return f"{host}:{port}"

    def join(self, manager: str | None = None, *, token: str | None = None,
             remote: str | None = None) -> str:
        """`docker swarm join --token TOKEN ADDR[:PORT]`: join over the network, sharing no
        file; or (`manager`, one machine) join the cluster of that node as a worker."""
        vtep = self.cluster.vtep()
        if (manager is None) == (token is None or remote is None):
            raise InvalidArgument("swarm join needs --token TOKEN and the manager's ADDR[:PORT] "
                                  "(or --manager NODE)")
        if self.cluster.store() is not None:
            raise Conflict(ALREADY_IN_SWARM)
        if manager is not None:
            return self._join_node(manager, vtep)
        from netkit.agent import join
        join.check_token(token or "")
        join.parse_address(remote or "")
        reply = join.request(self.node.netns, remote or "",
                             {"op": "join", "token": token, "node": self.node_name, "vtep": vtep})
        cid, url = str(reply["cluster"]), str(reply["store"])
        try:
            store = self.cluster.open(url, cid)
        except NetkitError:
            self._unjoin(None, url, cid)
            raise
        from netkit.services.swarmkey import accept_key      # secrets: the manager's key
        accept_key(self.paths.root, reply.get("key"))
        self._joined(store, {"cluster": cid, "store": url, "advertise": f"{vtep}:{join.JOIN_PORT}"})
        return cid

    def _join_node(self, manager: str, vtep: str) -> str:
        """The one-machine join: the manager node's files name its cluster."""
        other = self.host_store.read().node(manager)
        if other is None:
            raise NotFound(f"node {manager} not found")
        if other.name == self.node_name:
            raise InvalidArgument("a node cannot join itself")
        if other.lan != self.node.lan:
            raise InvalidArgument(f"node {manager} is not on this node's LAN {self.node.lan}")
        theirs = read_membership(NodePaths.of(manager, self.root, self.run_root).root)
        if theirs is None:
            raise Forbidden(f"node {manager} is not a swarm manager")
        cid, url = theirs["cluster"], store_url(theirs)
        store = self.cluster.open(url, cid)
        with store.transaction() as c:
            m = c.member(manager)
            if m is None or m.role != MANAGER:
                raise Forbidden(f"node {manager} is not a swarm manager")
            c.add_member(Member(self.node_name, WORKER, vtep, now()))
        from netkit.agent.join import JOIN_PORT
        from netkit.services import swarmkey as sealing     # secrets: the manager's key
        key = sealing.read_key(NodePaths.of(manager, self.root, self.run_root).root)
        if key is not None:
            sealing.write_key(self.paths.root, key)
        self._joined(store, {"cluster": cid, "store": url, "advertise": f"{vtep}:{JOIN_PORT}"})
        return cid

    def _joined(self, store: "ClusterStore", membership: dict) -> None:
        """A member now: the membership file (else out again), the lease, this node in step."""
        try:
            self._write_membership(membership)
            if leased(store):
                store.keep_alive(self.node_name, LEASE_TTL)
        except BaseException:
            self._unjoin(store, membership["store"], membership["cluster"])
            raise
        self.cluster.use(store, membership["store"])
        self.cluster.sync_node()                # mirrors the cluster's networks here
        if not leased(store):
            self.cluster.poke_members(store)
        self.cluster.ensure_agent(poke=True)

    def _unjoin(self, store: "ClusterStore | None", url: str, cid: str) -> None:
        """Undo the member row of a join that failed after the manager admitted it."""
        from netkit.services.swarmkey import remove_key      # secrets
        remove_key(self.paths.root)
        try:
            store = store or self.cluster.open(url, cid)
            with store.transaction() as c:
                c.remove_member(self.node_name)
        except NetkitError as exc:
            from netkit.kernel.journal import log
            log.warning("node %s: could not undo its membership: %s", self.node_name, exc)
        try:
            os.unlink(self._path())
        except FileNotFoundError:
            pass

    def _write_membership(self, membership: dict) -> None:
        from netkit import sandbox
        os.makedirs(self.paths.root, exist_ok=True)
        sandbox.write_file(self._path(), json.dumps(membership) + "\n")

    def leave(self, force: bool = False) -> None:
        """`docker swarm leave [-f]`: -f also disconnects this node's containers from
        swarm networks; the last member to leave deletes the cluster's files."""
        store = self.cluster.store()
        if store is None:
            raise Conflict(NOT_IN_SWARM)
        seen = store.read()
        me = seen.member(self.node_name)
        if me is not None and me.role == MANAGER and not force:
            down = self.down(store, seen) - {self.node_name}
            managers = [m.node for m in seen.members() if m.role == MANAGER]
            raise Conflict(manager_leave_message(len(set(managers) - down),
                                                 len(set(managers) & down)))
        from netkit.services.runner import remove_task_containers
        remove_task_containers(self.containers)     # Docker: the node's tasks go with it
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
        membership = self.cluster.membership() or {"cluster": store.cluster_id}
        with self.actions() as (tx, ctx):
            from netkit.services import mesh              # routing mesh: sandbox and rules go
            mesh.teardown(ctx, tx)
            ctl = self.cluster.write()
            for ep in ctl.endpoints(node=self.node_name):    # published, but gone from here
                self.cluster.release_addresses(ctl, ep.network_id, ep.ipv4, ep.ipv6)
                ctl.withdraw_endpoint(ep.id)
            ctl.remove_member(self.node_name)
            ctl.delete_object(NODE, self.node_name)     # its availability and labels
            from netkit.services import drain
            drain.forget(ctl, self.node_name)           # its acks of retired tasks
            last = not ctl.members()
            for net in tx.networks():
                if net.scope is Scope.SWARM and not tx.count_endpoints(net.id):
                    tx.delete_network(net.id)
            os.unlink(path)
            ctx.kernel.journal.push(f"restore {path}", lambda: self._write_membership(membership))
        self.cluster.use(None)
        from netkit.services.swarmkey import remove_key      # secrets: the key goes with it
        remove_key(self.paths.root)
        if last:
            store.destroy()
        else:
            store.close()
        self.cluster.left()

    # -- what the members and the host see -------------------------------------------
    def manager_store(self) -> "ClusterStore":
        """This node's cluster store, when this node is a manager (what `node ls`, `join-token`
        and the other cluster-wide views need): Docker's refusals off swarm and on a worker."""
        store = self.cluster.store()
        if store is None:
            raise Forbidden(NOT_MANAGER)
        me = store.read().member(self.node_name)
        if me is None:
            raise Forbidden(NOT_MANAGER)
        if me.role != MANAGER:
            raise Forbidden(WORKER_VIEW)
        return store

    def join_token(self, role: str = WORKER, rotate: bool = False) -> str:
        """`docker swarm join-token [--rotate] worker|manager` (managers only): the token
        (`rotate`: a new one first; the old one no longer admits anyone)."""
        from netkit.agent.join import new_token
        if role not in (WORKER, MANAGER):
            raise InvalidArgument(f"unknown role {role}: use worker or manager")
        store = self.manager_store()
        token = store.read().meta(f"token.{role}")
        if token is None or rotate:        # rotated, or a cluster made before tokens
            with store.transaction() as w:
                token = w.meta(f"token.{role}")
                if token is None or rotate:
                    token = new_token(store.cluster_id)
                    w.set_meta(f"token.{role}", token)
        return token

    def advertise(self) -> str:
        """The "ip:port" other nodes join this one by."""
        found = self.cluster.membership()
        if found is None:
            raise Conflict(NOT_IN_SWARM)
        from netkit.agent.join import JOIN_PORT
        return found.get("advertise") or f"{self.cluster.vtep()}:{JOIN_PORT}"

    def roles(self) -> dict[str, str]:
        """Each simulated node's role: "manager", "worker", "" (not in a swarm) or "unknown"
        (its cluster store cannot be reached)."""
        stores: dict[tuple[str, str], "ClusterStore | None"] = {}
        out = {}
        try:
            for node in self.host_store.read().nodes():
                found = read_membership(NodePaths.of(node.name, self.root, self.run_root).root)
                out[node.name] = ""
                if found is None:
                    continue
                key = (found["cluster"], store_url(found))
                if key not in stores:
                    stores[key] = None
                    try:
                        from netkit.cluster import open_store
                        stores[key] = open_store(key[1], key[0], self.root, netns=node.netns)
                    except NotFound:
                        pass
                    except NetkitError:
                        out[node.name] = "unknown"
                        continue
                store = stores[key]
                try:
                    m = store.read().member(node.name) if store is not None else None
                except NetkitError:
                    out[node.name] = "unknown"
                    continue
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

    def nodes(self) -> list[tuple[Member, str]]:
        """`docker node ls` on a member: each member with its status, "Ready" or "Down"
        (etcd: its agent's lease expired; SQLite, one machine: its agent is not running)."""
        store = self.cluster.store()
        if store is None:
            raise Conflict(NOT_IN_SWARM)
        c = store.read()
        down = self.down(store, c)
        return [(m, DOWN if m.node in down else READY) for m in c.members()]

    def down(self, store: "ClusterStore", c: "ClusterTx") -> set[str]:
        """The members shown Down (etcd: lease expired; SQLite: agent not running)."""
        from netkit.agent import client
        if leased(store):
            return down_members(store, c)
        return {m.node for m in c.members()
                if client.pid(NodePaths.of(m.node, self.root, self.run_root).run) is None}

    def info(self) -> dict:
        """The swarm section of `netkit info`: membership, the store, its endpoints' health."""
        found = self.cluster.membership()
        if found is None:
            return {"state": "inactive"}
        out: dict = {"state": "active", "cluster": found["cluster"], "store": store_url(found),
                     "advertise": found.get("advertise") or ""}
        try:
            store = self.cluster.store()
        except NetkitError as exc:                  # unreachable: say so, and what was asked
            return {**out, "state": "error", "error": str(exc)}
        if store is None:
            return {**out, "state": "error", "error": f"cluster {found['cluster']} is gone"}
        out["endpoints"] = [{"endpoint": ep, "healthy": ok, "detail": detail}
                            for ep, ok, detail in store.health()]
        try:
            c = store.read()
            me = c.member(self.node_name)
            members = c.members()
            out.update(role=me.role if me else "", nodes=len(members),
                       managers=sum(m.role == MANAGER for m in members),
                       down=sorted(down_members(store, c)))
        except NetkitError as exc:
            out.update(state="error", error=str(exc))
        return out
