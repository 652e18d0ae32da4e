"""Networks of one node: `docker network create / ls / inspect / rm / prune` (`Networks`).

Owns the network noun on a node: name rules, the predefined `bridge`,
`host` and `none` networks, choosing a new network's subnets (IPAM config),
and calling its driver's create_network / delete_network inside the action.
A swarm-scoped network is created in the cluster store (netkit/cluster.py)
and mirrored into the node's store, so everything else sees one list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netkit import drivers
from netkit.errors import AlreadyExists, Conflict, Forbidden, InvalidArgument
from netkit.ids import NAME_RE, new_id, now
from netkit.model import Endpoint, Network, Scope
from netkit.refs import resolve

if TYPE_CHECKING:
    from netkit.actions import Actions
    from netkit.cluster import ClusterScope
    from netkit.drivers.base import DriverContext
    from netkit.fwsync import FirewallSync
    from netkit.specs import NetworkSpec
    from netkit.store import Store, Tx

PREDEFINED = ("bridge", "host", "none")


def onlink_routes(ctx: "DriverContext") -> list[str]:
    """On-link (scope link) IPv4 routes of the node: pools overlapping them are skipped."""
    out = []
    for r in ctx.kernel.host.routes():
        if r["scope"] == 253 and r["dst"] and r["dst_len"]:
            out.append(f"{r['dst']}/{r['dst_len']}")
    return out


def reserve(tx: "Tx", net: Network) -> None:
    """Hold the addresses a local network's IPAM reserves (gateway, aux) in the node's store."""
    from netkit import ipam
    for cfg in net.ipam:
        for value, owner in ipam.reserved(cfg).items():
            tx.hold_address(net.id, cfg.family, ipam.to_key(value, cfg.family), owner)


class Networks:
    """The networks of one node, as Docker's `network` verbs see them."""

    def __init__(self, store: "Store", actions: "Actions", firewall: "FirewallSync",
                 cluster: "ClusterScope", node_name: str) -> None:
        self.store = store
        self.actions = actions
        self.firewall = firewall
        self.cluster = cluster
        self.node_name = node_name

    # -- predefined networks --------------------------------------------------
    def ensure_predefined(self) -> None:
        names = {name for _, name in self.store.read().network_refs()}
        if set(PREDEFINED) <= names:
            return
        from netkit import ipam
        with self.actions() as (tx, ctx):
            names = {name for _, name in tx.network_refs()}
            for name, driver in (("bridge", "bridge"), ("host", "host"), ("none", "null")):
                if name in names:
                    continue
                cfgs: tuple = ()
                opts: dict[str, str] = {}
                if name == "bridge":
                    taken = tx.all_subnets() + onlink_routes(ctx)
                    cfgs = ipam.build_ipam((), (), (), {}, taken=taken)
                    opts = {"com.docker.network.bridge.default_bridge": "true",
                            "com.docker.network.bridge.enable_icc": "true",
                            "com.docker.network.bridge.enable_ip_masquerade": "true",
                            "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                            "com.docker.network.bridge.name": "netkit0",
                            "com.docker.network.driver.mtu": "1500"}
                net = Network(id=new_id(), name=name, driver=driver, created=now(), ipam=cfgs,
                              options=opts)
                tx.insert_network(net)
                reserve(tx, net)

    # -- create ---------------------------------------------------------------
    def create(self, spec: "NetworkSpec") -> Network:
        from netkit import ipam
        if spec.name in PREDEFINED:
            raise Forbidden(f"operation is not permitted on predefined {spec.name} network ")
        if not NAME_RE.match(spec.name or ""):
            raise InvalidArgument(f"invalid network name {spec.name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        if spec.driver == "overlay":
            return self.cluster.create_overlay(spec)            # swarm scope: netkit/cluster.py
        driver = drivers.get(spec.driver)
        driver.validate(spec)                                   # nothing made yet
        with self.actions() as (tx, ctx):
            if any(name == spec.name for _, name in tx.network_refs()):
                raise AlreadyExists(f"network with name {spec.name} already exists")
            # macvlan: a given subnet is the parent's LAN, so the node's on-link route is no conflict
            onlink = [] if getattr(driver, "onlink_subnets", False) and spec.subnets else onlink_routes(ctx)
            taken = tx.all_subnets() + onlink
            cfgs = ipam.build_ipam(spec.subnets, spec.ip_ranges, spec.gateways, spec.aux_addresses,
                                   ipv4=spec.ipv4, ipv6=spec.ipv6, taken=taken,
                                   skip_gateway=not driver.allocates_gateway,
                                   v6_seed=f"{self.node_name}:{spec.name}",
                                   one_subnet_per_family=spec.driver == "bridge")
            net = Network(id=new_id(), name=spec.name, driver=driver.name, scope=driver.scope,
                          created=now(), ipam=cfgs,
                          internal=spec.internal or getattr(driver, "forces_internal", lambda s: False)(spec),
                          attachable=spec.attachable, ipv4=any(c.family == 4 for c in cfgs),
                          ipv6=any(c.family == 6 for c in cfgs), options=dict(spec.options),
                          labels=dict(spec.labels))
            self._check_bridge_name(tx, net)
            if hasattr(driver, "check_network"):       # cross-network rules (macvlan passthru)
                driver.check_network(net, tx.networks())
            tx.insert_network(net)
            reserve(tx, net)
            driver.create_network(ctx, net)
            self.firewall.sync(tx, ctx)
        return net

    def _check_bridge_name(self, tx: "Tx", net: Network) -> None:
        if net.driver != "bridge":
            return
        from netkit.drivers.bridge import bridge_name
        mine = bridge_name(net)
        for other in tx.networks():
            if other.driver == "bridge" and bridge_name(other) == mine:
                raise Conflict(f"cannot create network {net.id} ({mine}): conflicts with network "
                               f"{other.id} ({bridge_name(other)}): networks have same bridge name")

    # -- read -----------------------------------------------------------------
    def ls(self) -> list[Network]:
        self.cluster.refresh()
        return self.store.read().networks()

    def get(self, ref: str) -> Network:
        self.cluster.refresh()
        return self.lookup(self.store.read(), ref)

    def lookup(self, tx: "Tx", ref: str) -> Network:
        """The network `ref` (name, id or unique id prefix) names in `tx`."""
        net = tx.network(resolve("network", tx.network_refs(), ref))
        assert net is not None
        return net

    def members(self, net: Network) -> list[tuple[Endpoint, str]]:
        tx = self.store.read()
        names = dict(tx.container_refs())
        return [(ep, names.get(ep.container_id, "")) for ep in tx.endpoints(network_id=net.id)]

    def inspect(self, refs: list[str]) -> list[dict]:
        from netkit.inspect import network_json
        return [network_json(net, self.members(net)) for net in map(self.get, refs)]

    # -- remove ---------------------------------------------------------------
    def remove(self, ref: str) -> Network:
        with self.actions() as (tx, ctx):
            net = self.lookup(tx, ref)
            if net.predefined:
                raise Forbidden(f"{net.name} is a pre-defined network and cannot be removed")
            if net.scope is Scope.SWARM:
                self.cluster.remove_network(net)       # managers only; no endpoint on any node
            eps = tx.endpoints(network_id=net.id)
            if eps:
                names = dict(tx.container_refs())
                active = ", ".join(f'(name:"{names.get(e.container_id, "")}" id:"{e.container_id[:12]}")'
                                   for e in eps)
                raise Conflict(f"error while removing network: network {net.name} has active "
                               f"endpoints {active}")
            tx.delete_network(net.id)
            drivers.get(net.driver).delete_network(ctx, net)
            if hasattr(drivers.get(net.driver), "release_network"):   # shared parents (macvlan VLAN links)
                drivers.get(net.driver).release_network(ctx, net, tx.networks())
            self.firewall.sync(tx, ctx)
        return net

    def prune(self) -> list[str]:
        removed = []
        for net in sorted(self.ls(), key=lambda n: n.name):
            if net.predefined or self.store.read().count_endpoints(net.id):
                continue
            try:
                self.remove(net.id)
            except Conflict:
                continue          # a container joined meanwhile
            removed.append(net.name)
        return removed
