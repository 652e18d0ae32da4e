"""Swarm mode on simulated nodes: membership, overlay networks, cluster IPAM (SwarmMixin).

A cluster is a `ClusterStore` (netkit.store.cluster) shared by its member
nodes; a node's membership is the file `<node state root>/swarm.json`
naming the cluster. Managers create and remove overlay networks; every
member sees them.

How cluster state meets the node's own store: swarm networks are mirrored
into the node's `networks` table (scope swarm, same id) whenever the node's
engine acts or lists networks, so endpoints keep their foreign keys and all
local code sees one list of networks. Addresses of swarm networks are held
in the cluster store only (two nodes never hand out one address), and each
overlay endpoint is published there for the other nodes' peer tables.

One action = one node-store transaction + at most one cluster-store
transaction, opened on first use and committed just before the node store
(a failed action rolls back both). After a committed cluster change the
acting engine programs its own node (netkit.agent.watch.sync_node) and
pokes the other members' agents; each node's agent (its resident resolver
process, netkit/agent/README.md) watches `ClusterStore.version()` and
programs its node itself. An engine never touches another node's kernel.
"""

from __future__ import annotations

import json
import os
import secrets
from typing import TYPE_CHECKING

from netkit.errors import (AlreadyExists, Conflict, Forbidden, InvalidArgument, NetkitError,
                           NotFound)
from netkit.kernel.journal import log
from netkit.model import Endpoint, Network, Scope
from netkit.paths import NodePaths
from netkit.store.cluster import MANAGER, WORKER, ClusterEndpoint, Member, SqliteClusterStore

if TYPE_CHECKING:
    from netkit.engine import Engine
    from netkit.drivers.base import DriverContext
    from netkit.model import Container
    from netkit.specs import NetworkSpec
    from netkit.store import Tx
    from netkit.store.cluster import SqliteClusterTx

SWARM_FILE = "swarm.json"
GWBRIDGE = "netkit_gwbridge"         # docker_gwbridge: egress of containers on overlays only
FIRST_VNI = 4096                     # below: avoided, 802.1Q (Docker's rule)
NOT_MANAGER = ('This node is not a swarm manager. Use "netkit swarm init" or "netkit swarm join" '
               'to connect this node to swarm and try again.')
NOT_IN_SWARM = "This node is not part of a swarm"
ALREADY_IN_SWARM = ('This node is already part of a swarm. Use "netkit swarm leave" to leave this '
                    'swarm and join another one.')
LAST_MANAGER = ("You are attempting to leave the swarm on a node that is participating as a manager. "
                "Removing the last manager erases all current state of the swarm. Use `--force` to "
                "ignore this message.")
MANAGER_LEAVE = ("You are attempting to leave the swarm on a node that is participating as a manager. "
                 "Use `--force` to ignore this message.")


def read_cluster_id(node_root: str) -> str | None:
    try:
        with open(os.path.join(node_root, SWARM_FILE)) as f:
            return json.load(f)["cluster"]
    except (OSError, ValueError, KeyError):
        return None


def mac_from_ip(ipv4: str) -> str:
    """02:42 + the four bytes of the address (libnetwork's GenerateMACFromIP): an address
    reused by another container keeps its MAC, so stale ARP entries stay correct."""
    return "02:42:" + ":".join(f"{int(b):02x}" for b in ipv4.split("/")[0].split("."))


class SwarmMixin:
    # -- membership state ---------------------------------------------------------
    def _swarm_path(self: "Engine") -> str:
        return os.path.join(self.paths.root, SWARM_FILE)

    def _cluster(self: "Engine") -> SqliteClusterStore | None:
        """This node's cluster store, or None off swarm (opened once per engine)."""
        if not self.node_name:
            return None
        cid = read_cluster_id(self.paths.root)
        cached = getattr(self, "_cluster_store", None)
        if cid is None:
            return None
        if cached is not None and cached.cluster_id == cid:
            return cached
        if cached is not None:
            cached.close()
            self._cluster_store = None
        try:
            store = SqliteClusterStore(self.root, cid)
        except NotFound:
            log.warning("node %s: cluster %s is gone", self.node_name, cid)
            return None
        self._cluster_store = store
        return store

    def _cluster_write(self: "Engine") -> "SqliteClusterTx":
        """The cluster transaction of the current action (BEGIN IMMEDIATE on first use)."""
        open_tx = getattr(self, "_cluster_txn", None)
        if open_tx is not None:
            return open_tx[1]
        store = self._cluster()
        if store is None:
            raise Forbidden(NOT_MANAGER)
        self._cluster_txn = (store, store.begin())
        return self._cluster_txn[1]

    def _require_manager(self: "Engine", ctx_tx: "SqliteClusterTx") -> None:
        me = ctx_tx.member(self.node_name)
        if me is None or me.role != MANAGER:
            raise Forbidden(NOT_MANAGER)

    def _vtep(self: "Engine") -> str:
        if not self.node_name or not self.node.ip:
            raise InvalidArgument("swarm mode needs a simulated node with a LAN address "
                                  "(netkit node create NAME --lan LAN --ip CIDR; then --node NAME)")
        return self.node.ip.split("/")[0]

    # -- hooks of Engine._action ----------------------------------------------------
    def _swarm_begin(self: "Engine", tx: "Tx") -> None:
        self._cluster_txn = None
        self._cluster_dirty = None
        cluster = self._cluster()
        if cluster is not None:
            self._mirror(tx, cluster)

    def _swarm_commit(self: "Engine") -> None:
        open_tx = getattr(self, "_cluster_txn", None)
        if open_tx is not None:
            self._cluster_txn = None
            open_tx[0].commit()
            self._cluster_dirty = open_tx[0]

    def _swarm_abort(self: "Engine") -> None:
        open_tx = getattr(self, "_cluster_txn", None)
        self._cluster_txn = None
        self._cluster_dirty = None
        if open_tx is not None:
            open_tx[0].rollback()

    def _swarm_after(self: "Engine") -> None:
        """After every action: on a committed cluster change program this node and poke the
        other members' agents (they program their own nodes); keep this node's agent running."""
        store = getattr(self, "_cluster_dirty", None)
        self._cluster_dirty = None
        if getattr(self, "_in_agent", False):
            return                              # the agent's own sync: nothing more to do
        if store is not None:
            from netkit.agent.watch import poke_members, sync_node
            if self._cluster() is not None:
                sync_node(self)                 # this node is in step when the action returns
            poke_members(self, store)
        self._ensure_agent()

    def _ensure_agent(self: "Engine") -> None:
        """A swarm member's agent runs: (re)start it if it is not (cheap when it runs)."""
        if getattr(self, "_in_agent", False) or not self.node_name \
                or read_cluster_id(self.paths.root) is None:
            return
        from netkit.dns import daemon
        if daemon._pid(self._dns_run_dir()) is not None:
            return
        try:
            self._start_resolver()
        except NetkitError as exc:                # best effort: `system check` reports it
            log.warning("node %s: agent did not start: %s", self.node_name, exc)

    def _stop_agent(self: "Engine") -> None:
        """After leaving the swarm: stop the agent, unless it still serves DNS sandboxes
        (then it drops the other nodes' names itself on its next look)."""
        from netkit.dns import daemon
        run_dir = self._dns_run_dir()
        if self._dns_needed():
            daemon.poke(run_dir)
        else:
            daemon.stop(run_dir)

    def swarm_agents(self: "Engine") -> dict[str, str]:
        """Each simulated node's agent (its resident process): "running" or "stopped"."""
        from netkit.dns import daemon
        return {node.name: "running" if daemon._pid(
                    NodePaths.of(node.name, self.root, self.run_root).run) is not None
                else "stopped" for node in self.host_store.read().nodes()}

    def _swarm_refresh(self: "Engine") -> None:
        """Mirror the cluster's networks before a read (network ls / inspect)."""
        cluster = self._cluster()
        if cluster is not None:
            with self.store.transaction() as tx:
                self._mirror(tx, cluster)

    def _mirror(self: "Engine", tx: "Tx", cluster: SqliteClusterStore) -> None:
        """Make the node's swarm-scope network rows match the cluster's networks."""
        theirs = {n.id: n for n in cluster.read().networks()}
        mine = {n.id for n in tx.networks() if n.scope is Scope.SWARM}
        names = {name for _, name in tx.network_refs()}
        for network_id, net in theirs.items():
            if network_id in mine:
                continue
            if net.name in names:
                log.warning("node %s: swarm network %s hidden by a local network of that name",
                            self.node_name, net.name)
                continue
            tx.insert_network(net)
        for network_id in mine - set(theirs):
            if not tx.count_endpoints(network_id):
                tx.delete_network(network_id)

    # -- swarm init / join / leave ----------------------------------------------------
    def swarm_init(self: "Engine") -> str:
        """`docker swarm init`: a new cluster with this node as its manager; returns its id."""
        from netkit.engine import now
        vtep = self._vtep()
        if self._cluster() is not None:
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
        self._cluster_store = store
        self._ensure_agent()
        return cid

    def swarm_join(self: "Engine", manager: str) -> str:
        """`docker swarm join`: join the cluster of node `manager` (same LAN) as a worker."""
        from netkit.engine import now
        vtep = self._vtep()
        if self._cluster() is not None:
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
        self._cluster_store = store
        from netkit.agent.watch import poke_members, sync_node
        sync_node(self)                         # mirrors the cluster's networks here
        poke_members(self, store)
        self._ensure_agent()
        return cid

    def _write_membership(self: "Engine", cid: str) -> None:
        from netkit import sandbox
        os.makedirs(self.paths.root, exist_ok=True)
        sandbox.write_file(self._swarm_path(), json.dumps({"cluster": cid}) + "\n")

    def swarm_leave(self: "Engine", force: bool = False) -> None:
        """`docker swarm leave [-f]`: -f also disconnects this node's containers from
        swarm networks; the last member to leave deletes the cluster's files."""
        store = self._cluster()
        if store is None:
            raise Conflict(NOT_IN_SWARM)
        me = store.read().member(self.node_name)
        if me is not None and me.role == MANAGER and not force:
            managers = [m for m in store.read().members() if m.role == MANAGER]
            raise Conflict(LAST_MANAGER if len(managers) <= 1 else MANAGER_LEAVE)
        attached = [(ep.network_id, c) for c in self.containers(all=True) for ep in c.endpoints
                    if ep.network_id in {n.id for n in self.store.read().networks()
                                         if n.scope is Scope.SWARM}]
        if attached and not force:
            names = ", ".join(sorted({c.name for _, c in attached}))
            raise Conflict(f"containers on this node are attached to swarm networks ({names}): "
                           "disconnect them or use --force")
        for network_id, c in attached:
            self.disconnect(network_id, c.id, force=True)
        path = self._swarm_path()
        with self._action() as (tx, ctx):
            c = self._cluster_write()
            for ep in c.endpoints(node=self.node_name):      # published, but gone from here
                self._cluster_release(c, ep.network_id, ep.ipv4, ep.ipv6)
                c.withdraw_endpoint(ep.id)
            c.remove_member(self.node_name)
            last = not c.members()
            for net in tx.networks():
                if net.scope is Scope.SWARM and not tx.count_endpoints(net.id):
                    tx.delete_network(net.id)
            os.unlink(path)
            ctx.kernel.journal.push(f"restore {path}", lambda: self._write_membership(store.cluster_id))
        self._cluster_store = None
        if last:
            store.destroy()
        else:
            store.close()
        self._stop_agent()

    def swarm_roles(self: "Engine") -> dict[str, str]:
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

    def swarm_members(self: "Engine") -> list[Member]:
        """The members of this node's cluster (`docker node ls` on a manager)."""
        store = self._cluster()
        if store is None:
            raise Conflict(NOT_IN_SWARM)
        return store.read().members()

    def system_reset(self: "Engine") -> list[str]:
        """`system reset` on a swarm node leaves the swarm first (-f), then resets."""
        removed = []
        if self._cluster() is not None:
            self.swarm_leave(force=True)
            removed.append("swarm membership")
        return removed + super().system_reset()           # type: ignore[misc]

    # -- overlay networks ----------------------------------------------------------------
    def _create_overlay(self: "Engine", spec: "NetworkSpec") -> Network:
        """`docker network create -d overlay` (managers only)."""
        from netkit import drivers, ipam
        from netkit.agent.peers import VNI_OPTION
        from netkit.engine import new_id, now
        driver = drivers.get(spec.driver)
        driver.validate(spec)
        with self._action() as (tx, ctx):
            c = self._cluster_write()
            self._require_manager(c)
            if any(n.name == spec.name for n in c.networks()) or \
                    any(name == spec.name for _, name in tx.network_refs()):
                raise AlreadyExists(f"network with name {spec.name} already exists")
            cfgs = ipam.build_ipam(spec.subnets, spec.ip_ranges, spec.gateways, spec.aux_addresses,
                                   ipv4=True, ipv6=False, taken=c.all_subnets(),
                                   pools=ipam.DEFAULT_GLOBAL_POOLS)
            used = set(c.vnis().values())
            if VNI_OPTION in spec.options:
                vni = int(spec.options[VNI_OPTION])
                if vni in used:
                    raise Conflict(f"VXLAN id {vni} is already in use")
            else:
                vni = next(v for v in range(FIRST_VNI, 1 << 24) if v not in used)
            net = Network(id=new_id(), name=spec.name, driver=driver.name, scope=Scope.SWARM,
                          created=now(), ipam=cfgs, internal=spec.internal,
                          attachable=spec.attachable, ipv4=True, ipv6=False,
                          options={**spec.options, VNI_OPTION: str(vni)}, labels=dict(spec.labels))
            c.insert_network(net, vni)
            for cfg in net.ipam:
                for value, owner in ipam.reserved(cfg).items():
                    c.hold_address(net.id, cfg.family, ipam.to_key(value, cfg.family), owner)
            tx.insert_network(net)
            driver.create_network(ctx, net)
        return net

    def _swarm_remove_network(self: "Engine", net: Network) -> None:
        """Checks and cluster rows of `network rm` on a swarm network (inside the action)."""
        c = self._cluster_write()
        self._require_manager(c)
        eps = c.endpoints(network_id=net.id)
        if eps:
            active = ", ".join(f'(name:"{e.container_name}" id:"{e.container_id[:12]}" node:"{e.node}")'
                               for e in eps)
            raise Conflict(f"error while removing network: network {net.name} has active "
                           f"endpoints {active}")
        c.delete_network(net.id)

    # -- egress: netkit_gwbridge (Docker's docker_gwbridge) ---------------------------------
    def _swarm_gateway(self: "Engine", tx: "Tx", ctx: "DriverContext", ctr: "Container",
                       eps: list[Endpoint]) -> None:
        """A container whose networks are all overlays, not all internal, gets one more
        endpoint on the node's local bridge `netkit_gwbridge` and its default route there.

        The endpoint is not added to `eps`: it is not one of the container's networks for
        /etc/hosts or port publishing, as docker_gwbridge is not in Docker.
        """
        from netkit.drivers.bridge import default_route
        from netkit.specs import EndpointSpec
        nets = [tx.network(ep.network_id) for ep in eps]
        if not nets or any(n is None or n.scope is not Scope.SWARM for n in nets) \
                or all(n.internal for n in nets):
            return
        gw_net = self._ensure_gwbridge(tx, ctx)
        ep = self._join(tx, ctx, gw_net, ctr, EndpointSpec(GWBRIDGE), eps)
        default_route(ctx, ctr, gw_net.gateway_v4 if ep.ipv4 else None, None)
        self._sync_firewall(tx, ctx)

    def _ensure_gwbridge(self: "Engine", tx: "Tx", ctx: "DriverContext") -> Network:
        """The node's `netkit_gwbridge` network, created in this action if missing."""
        from netkit import drivers, ipam
        from netkit.drivers import bridge
        from netkit.engine import new_id, now
        for network_id, name in tx.network_refs():
            if name == GWBRIDGE:
                found = tx.network(network_id)
                assert found is not None
                return found
        cfgs = ipam.build_ipam((), (), (), {}, taken=tx.all_subnets() + self._onlink_routes(ctx),
                               one_subnet_per_family=True)
        net = Network(id=new_id(), name=GWBRIDGE, driver="bridge", created=now(), ipam=cfgs,
                      options={bridge.OPT_NAME: GWBRIDGE, bridge.OPT_ICC: "false",
                               bridge.OPT_MASQ: "true"})
        tx.insert_network(net)
        self._reserve(tx, net)
        drivers.get("bridge").create_network(ctx, net)
        return net

    # -- endpoints: cluster-wide IPAM and publishing ---------------------------------------
    def _swarm_allocate(self: "Engine", net: Network, family: int, static: str | None,
                        owner: str) -> str | None:
        """Engine._allocate for swarm networks: the address is held in the cluster store."""
        from netkit.engine import allocate
        return allocate(self._cluster_write(), net, family, static, owner, hints=False)

    def _cluster_release(self: "Engine", c: "SqliteClusterTx", network_id: str,
                         *addrs: str | None) -> None:
        from netkit import ipam
        for addr in addrs:
            if addr:
                family, value = ipam.ip_to_int(addr.split("/")[0])
                c.release_address(network_id, family, ipam.to_key(value, family))

    def _swarm_release(self: "Engine", net: Network, ep: Endpoint) -> None:
        """Engine._release for swarm networks: free the addresses, withdraw the endpoint."""
        c = self._cluster_write()
        self._cluster_release(c, net.id, ep.ipv4, ep.ipv6)
        c.withdraw_endpoint(ep.id)

    def _swarm_publish(self: "Engine", net: Network, ep: Endpoint, ctr: "Container") -> None:
        """Tell the cluster about a new endpoint: the other nodes program it as a peer."""
        from netkit.sandbox import dns_names
        names = tuple(dns_names(ctr.name, ep.aliases, ctr.short_id, ctr.hostname))
        self._cluster_write().publish_endpoint(ClusterEndpoint(
            id=ep.id, network_id=net.id, node=self.node_name, container_id=ctr.id,
            container_name=ctr.name, ipv4=ep.ipv4, ipv6=ep.ipv6, mac=ep.mac, vtep=self._vtep(),
            names=names))
