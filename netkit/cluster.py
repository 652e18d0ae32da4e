"""The cluster scope of one node: swarm networks and their IPAM in the cluster store (`ClusterScope`).

`ClusterScope` implements netkit/scope.py's interface for swarm-scoped
drivers (overlay) and owns the node's side of the cluster.

A cluster is a `ClusterStore` (netkit.store.cluster) shared by its member
nodes; a node's membership is the file `<node state root>/swarm.json`,
{"cluster": id, "store": url, "advertise": "ip:port"} (netkit/swarm.py
joins and leaves). The store's url says which backend holds the cluster:
"sqlite" (or none, the embedded default: one shared file on one machine)
or "etcd://host:port,..." (netkit.store.etcd, reached through the node's
own netns); `open_store` is the one factory. Managers create and remove
overlay networks; every member sees them.

How cluster state meets the node's own store: swarm networks are mirrored
into the node's `networks` table (scope swarm, same id) whenever the node's
engine acts or lists networks, so endpoints keep their foreign keys and all
local code sees one list of networks. Addresses of swarm networks are held
in the cluster store only (two nodes never hand out one address), and each
overlay endpoint is published there for the other nodes' peer tables.

One action = one node-store transaction + at most one cluster-store
transaction, opened on first use and committed just before the node store
(a failed action rolls back both): the scope's action hooks. After a
committed cluster change the acting engine programs its own node
(`sync_node`) and, on the SQLite store, pokes the other members' agents;
each node's agent (the node agent's cluster sync, netkit/agent/README.md)
watches the store (etcd: a watch; SQLite: `version()` polled) and
programs its node itself. An engine never touches another node's kernel.

On etcd each member's agent holds a lease (`keep_alive`); a member whose
lease expired is down: the others program none of its endpoints (VXLAN
peers, DNS names) until it is back. When the store cannot be reached,
reads that only refresh this node's copy of the cluster's networks are
skipped (local actions go on) and the first action that needs the cluster
fails with ClusterUnavailable, once, before it changed anything.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from netkit.actions import Hooks
from netkit.errors import (AlreadyExists, ClusterUnavailable, Conflict, Forbidden,
                           InvalidArgument, NetkitError, NotFound)
from netkit.kernel.journal import log
from netkit.model import Endpoint, Network, Scope
from netkit.paths import NodePaths
from netkit.scope import NetworkPlan, name_taken
from netkit.store.cluster import MANAGER, SWARM_FILE, ClusterEndpoint, SqliteClusterStore

if TYPE_CHECKING:
    from netkit.actions import Actions, KernelSessions
    from netkit.drivers.base import Driver, DriverContext
    from netkit.model import Container, Node
    from netkit.processes import Processes
    from netkit.resolver import ResolverClient
    from netkit.specs import NetworkSpec
    from netkit.store import Store, Tx
    from netkit.store.cluster import ClusterStore, ClusterTx

FIRST_VNI = 4096                     # below: avoided, 802.1Q (Docker's rule)
NOT_MANAGER = ('This node is not a swarm manager. Use "netkit swarm init" or "netkit swarm join" '
               'to connect this node to swarm and try again.')


SQLITE = "sqlite"                    # the store url of the embedded default
# an action that needs an unreachable store fails after one such wait (its first call; the
# rest of the action then fails at once), so within 10 s with the command's own start-up
STORE_TIMEOUT = 8.0
LEASE_TTL = 10.0                     # seconds: a member whose agent's lease is older is down


def read_membership(node_root: str) -> dict | None:
    """The node's swarm.json: {"cluster", "store" (absent: sqlite), "advertise"}; None off swarm."""
    try:
        with open(os.path.join(node_root, SWARM_FILE)) as f:
            found = json.load(f)
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and found.get("cluster") else None


def store_url(membership: dict) -> str:
    return membership.get("store") or SQLITE


def open_store(url: str, cluster_id: str, root: str, *, netns: str | None = None,
               create: bool = False, timeout: float = STORE_TIMEOUT) -> "ClusterStore":
    """The cluster store `url` names: "sqlite" (the shared file under `root`) or
    "etcd://h:p,..." (its connections opened in `netns`; None: the caller's; each call
    fails with ClusterUnavailable within `timeout` s when no majority answers)."""
    if url == SQLITE:
        return SqliteClusterStore(root, cluster_id, create=create)
    from netkit.store.etcd import EtcdClusterStore, parse_store_url
    return EtcdClusterStore(parse_store_url(url), cluster_id, create=create, netns=netns,
                            timeout=timeout)


def leased(store: "ClusterStore") -> bool:
    """Does `store` hold its members' leases (a networked store)? On the embedded SQLite
    store every member counts as up, as before."""
    return store.url != SQLITE


def down_members(store: "ClusterStore", c: "ClusterTx") -> set[str]:
    """The members of a leased store whose lease expired."""
    if not leased(store):
        return set()
    return {m.node for m in c.members()} - store.alive()


def mac_from_ip(ipv4: str) -> str:
    """02:42 + the four bytes of the address (libnetwork's GenerateMACFromIP): an address
    reused by another container keeps its MAC, so stale ARP entries stay correct."""
    return "02:42:" + ":".join(f"{int(b):02x}" for b in ipv4.split("/")[0].split("."))


class ClusterScope:
    """Swarm-scoped state of one node's engine: its cluster store and the action's
    cluster transaction. On the real host (no node name) it is never a member."""

    local_gateway = False     # no default route through a swarm network: egress is netkit_gwbridge

    def __init__(self, store: "Store", root: str, run_root: str, node: "Node", actions: "Actions",
                 kernel: "KernelSessions", resolver: "ResolverClient", processes: "Processes", *,
                 in_agent: bool) -> None:
        self.node_store = store
        self.root = root                # NETKIT_ROOT: cluster stores live under it
        self.run_root = run_root
        self.paths = NodePaths.of(node.name, root, run_root)
        self.node = node
        self.node_name = node.name
        self.actions = actions
        self.kernel = kernel
        self.resolver = resolver
        self.processes = processes      # the node agent's handle (it runs the cluster sync)
        self.in_agent = in_agent        # the engine of the node's own agent: no agent management
        self._store: "ClusterStore | None" = None             # opened on first use
        self._url: str | None = None                          # the url it was opened with
        self._txn: tuple["ClusterStore", "ClusterTx"] | None = None   # this action's
        self._dirty: "ClusterStore | None" = None             # committed a change this action
        self._unreachable: NetkitError | None = None          # this action found the store down
        self._seen: "ClusterTx | None" = None                 # the cluster as this action began
        actions.register(Hooks(begin=self._begin, commit=self._commit, abort=self._abort,
                               after=self._after))

    # -- membership state ---------------------------------------------------------
    def membership(self) -> dict | None:
        """This node's swarm.json (None off swarm; the real host is never a member)."""
        return read_membership(self.paths.root) if self.node_name else None

    def store(self) -> "ClusterStore | None":
        """This node's cluster store, or None off swarm (opened once per engine)."""
        found = self.membership()
        if found is None:
            return None
        cid, url = found["cluster"], store_url(found)
        cached = self._store
        if cached is not None and cached.cluster_id == cid and self._url == url:
            return cached
        if cached is not None:
            cached.close()
            self._store = None
        try:
            store = self.open(url, cid)
        except NotFound:
            log.warning("node %s: cluster %s is gone", self.node_name, cid)
            return None
        self.use(store, url)
        return store

    def open(self, url: str, cluster_id: str, *, create: bool = False) -> "ClusterStore":
        """A store of this node's: etcd through the node's netns (the agent runs in it)."""
        return open_store(url, cluster_id, self.root, create=create,
                          netns=None if self.in_agent else self.node.netns)

    def use(self, store: "ClusterStore | None", url: str | None = None) -> None:
        """After `swarm init / join` (a store) or `leave` (None; the caller closes it)."""
        self._store = store
        self._url = url if store is not None else None

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    def write(self) -> "ClusterTx":
        """The cluster transaction of the current action (BEGIN IMMEDIATE on first use)."""
        if self._txn is not None:
            return self._txn[1]
        if self._unreachable is not None:
            raise self._unreachable             # found down this action: fail at once
        store = self.store()
        if store is None:
            raise Forbidden(NOT_MANAGER)
        self._txn = (store, store.begin())
        return self._txn[1]

    def require_manager(self, c: "ClusterTx") -> None:
        me = c.member(self.node_name)
        if me is None or me.role != MANAGER:
            raise Forbidden(NOT_MANAGER)

    def down(self, store: "ClusterStore", c: "ClusterTx") -> set[str]:
        """Members whose lease expired (never this node: it acts, so it is up)."""
        return down_members(store, c) - {self.node_name}

    def vtep(self) -> str:
        if not self.node_name or not self.node.ip:
            raise InvalidArgument("swarm mode needs a simulated node with a LAN address "
                                  "(netkit node create NAME --lan LAN --ip CIDR; then --node NAME)")
        return self.node.ip.split("/")[0]

    # -- hooks of every action ------------------------------------------------------
    def _begin(self, tx: "Tx") -> None:
        self._txn = None
        self._dirty = None
        self._unreachable = None
        self._seen = None
        try:
            cluster = self.store()
            if cluster is not None:
                self._seen = cluster.read()    # one snapshot: mirrored, and sync_node's
                self._mirror(tx, self._seen)   # mirror the cluster's networks
        except ClusterUnavailable as exc:      # local actions go on; cluster ones fail on write()
            log.info("node %s: %s", self.node_name, exc)
            self._unreachable = exc

    def _commit(self) -> None:
        if self._txn is not None:
            store = self._txn[0]
            self._txn = None
            store.commit()
            self._dirty = store

    def _abort(self) -> None:
        open_tx = self._txn
        self._txn = None
        self._dirty = None
        if open_tx is not None:
            try:
                open_tx[0].rollback()
            except ClusterUnavailable as exc:  # nothing was committed: etcd drops it itself
                log.info("node %s: rollback: %s", self.node_name, exc)

    def _after(self) -> None:
        """After every action: on a committed cluster change program this node and poke the
        other members' agents (they program their own nodes); keep this node's agent running."""
        store = self._dirty
        self._dirty = None
        if self.in_agent:
            return                              # the agent's own sync: nothing more to do
        if store is not None:
            if self.store() is not None:
                self.sync_node()                # this node is in step when the action returns
            if not leased(store):               # etcd: the other agents watch the store
                self.poke_members(store)
        self.ensure_agent()

    # -- the node's agent ------------------------------------------------------------
    def ensure_agent(self, *, poke: bool = False) -> None:
        """A swarm member's agent runs: (re)start it if it is not (cheap when it runs);
        `poke`: and have it look at the cluster at once (swarm init / join)."""
        if self.in_agent or self.membership() is None:
            return
        from netkit.agent import client
        try:
            self.processes.ensure_agent()
        except NetkitError as exc:                # best effort: `system check` reports it
            log.warning("node %s: agent did not start: %s", self.node_name, exc)
            return
        if poke:
            client.poke(self.paths.run)

    def left(self) -> None:
        """After leaving the swarm: the agent drops the other nodes' names and peers now
        (a poke; it keeps running, as the node's agent)."""
        from netkit.agent import client
        client.poke(self.paths.run)

    def start_resolver(self) -> int:
        """The node agent's: start the node's resolver for the other nodes' names (a member
        node's resolver runs while it has them, also with no local container); its pid."""
        return self.resolver.start()

    def sync_node(self) -> int:
        """Bring this node in step with its cluster; returns the number of kernel changes.

        Mirrors the cluster's networks into the node's store and makes the
        node's VXLAN peer entries match `peers.desired()` less the endpoints of
        members that are down; idempotent. Raises ClusterUnavailable (changing
        nothing) when the store cannot be reached.
        """
        from netkit.agent import peers
        saved, self.kernel.faults = self.kernel.faults, None   # a test's fault plan targets the action
        try:
            with self.actions() as (tx, ctx):   # mirrors the cluster's networks on begin
                if self._unreachable is not None:
                    raise self._unreachable
                want: set = set()
                cluster = self.store()
                if cluster is not None:
                    c = self._seen if self._seen is not None else cluster.read()
                    down = self.down(cluster, c)
                    want = {p for p in peers.desired(c, self.node_name) if p.node not in down}
                return peers.apply(ctx.kernel.host, want)
        finally:
            self.kernel.faults = saved

    def poke_members(self, store: "ClusterStore") -> list[str]:
        """Tell the agents of the other members that the cluster changed (a `cluster` line on
        their control sockets: they re-read at once instead of at their next poll). Never
        waits for their sync, never starts them; returns the members whose agent answered."""
        from netkit.agent import client
        out = []
        for member in store.read().members():
            if member.node == self.node_name:
                continue
            if client.poke(NodePaths.of(member.node, self.root, self.run_root).run):
                out.append(member.node)
        return out

    # -- the node's view of the cluster's networks -----------------------------------
    def refresh(self) -> None:
        """Mirror the cluster's networks before a read (network ls / inspect)."""
        try:
            cluster = self.store()
            if cluster is not None:
                with self.node_store.transaction() as tx:
                    self._mirror(tx, cluster.read())
        except ClusterUnavailable as exc:       # list what this node knows
            log.info("node %s: %s", self.node_name, exc)

    def _mirror(self, tx: "Tx", c: "ClusterTx") -> None:
        """Make the node's swarm-scope network rows match the cluster's networks."""
        theirs = {n.id: n for n in c.networks()}
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

    # -- the scope interface (netkit/scope.py) -------------------------------------------
    def check_create(self, tx: "Tx", name: str) -> None:
        """Managers only; the name is free in the cluster and on this node."""
        c = self.write()
        self.require_manager(c)
        if any(n.name == name for n in c.networks()) or name_taken(tx, name):
            raise AlreadyExists(f"network with name {name} already exists")

    def plan(self, tx: "Tx", ctx: "DriverContext", spec: "NetworkSpec",
             driver: "Driver") -> NetworkPlan:
        """IPv4 only, from the global pools, apart from every subnet of the cluster; a VXLAN
        id (the cluster store keys its networks by VNI, as Docker's manager allocates them)."""
        from netkit import ipam
        from netkit.agent.peers import VNI_OPTION
        c = self.write()
        cfgs = ipam.build_ipam(spec.subnets, spec.ip_ranges, spec.gateways, spec.aux_addresses,
                               ipv4=True, ipv6=False, taken=c.all_subnets(),
                               skip_gateway=not driver.allocates_gateway,
                               pools=ipam.DEFAULT_GLOBAL_POOLS)
        used = set(c.vnis().values())
        if VNI_OPTION in spec.options:
            vni = int(spec.options[VNI_OPTION])
            if vni in used:
                raise Conflict(f"VXLAN id {vni} is already in use")
        else:
            vni = next(v for v in range(FIRST_VNI, 1 << 24) if v not in used)
        return NetworkPlan(ipam=cfgs, ipv4=True, ipv6=False,
                           options={**spec.options, VNI_OPTION: str(vni)})

    def reserve(self, tx: "Tx", net: Network) -> None:
        """The network and its reserved addresses in the cluster store; mirrored here."""
        from netkit import ipam
        from netkit.agent.peers import VNI_OPTION
        c = self.write()
        c.insert_network(net, int(net.options[VNI_OPTION]))
        for cfg in net.ipam:
            for value, owner in ipam.reserved(cfg).items():
                c.hold_address(net.id, cfg.family, ipam.to_key(value, cfg.family), owner)
        tx.insert_network(net)

    def unreserve(self, tx: "Tx", net: Network) -> None:
        """Managers only, and no endpoint on any node; the cluster's row goes."""
        c = self.write()
        self.require_manager(c)
        from netkit.services import mesh      # ingress: refused while a service publishes
        if mesh.is_ingress(net):
            mesh.check_remove(c, net)
        eps = c.endpoints(network_id=net.id)
        if eps:
            active = ", ".join(f'(name:"{e.container_name}" id:"{e.container_id[:12]}" node:"{e.node}")'
                               for e in eps)
            raise Conflict(f"error while removing network: network {net.name} has active "
                           f"endpoints {active}")
        c.delete_network(net.id)

    def allocate(self, tx: "Tx", net: Network, family: int, static: str | None,
                 owner: str) -> str | None:
        """An address of a swarm network: held in the cluster store (no two nodes share one)."""
        from netkit.ipam import allocate
        return allocate(self.write(), net, family, static, owner, hints=False)

    def release_addresses(self, c: "ClusterTx", network_id: str, *addrs: str | None) -> None:
        from netkit import ipam
        for addr in addrs:
            if addr:
                family, value = ipam.ip_to_int(addr.split("/")[0])
                c.release_address(network_id, family, ipam.to_key(value, family))

    def release(self, tx: "Tx", net: Network, ep: Endpoint) -> None:
        self.release_addresses(self.write(), net.id, ep.ipv4, ep.ipv6)

    def publish(self, tx: "Tx", net: Network, ep: Endpoint, ctr: "Container") -> None:
        """Tell the cluster about a new endpoint: the other nodes program it as a peer."""
        from netkit.sandbox import dns_names
        names = tuple(dns_names(ctr.name, ep.aliases, ctr.short_id, ctr.hostname))
        self.write().publish_endpoint(ClusterEndpoint(
            id=ep.id, network_id=net.id, node=self.node_name, container_id=ctr.id,
            container_name=ctr.name, ipv4=ep.ipv4, ipv6=ep.ipv6, mac=ep.mac, vtep=self.vtep(),
            names=names))

    def withdraw(self, tx: "Tx", net: Network, ep: Endpoint) -> None:
        self.write().withdraw_endpoint(ep.id)

    def new_mac(self, ipv4: str | None) -> str:
        """Docker's overlay: the MAC follows the address, so peers' ARP caches stay right."""
        from netkit import ipam
        return mac_from_ip(ipv4) if ipv4 else ipam.random_mac()
