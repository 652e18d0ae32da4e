"""Where a network's state lives: one interface, a local and a cluster implementation.

libnetwork's DataScope idea. A driver declares its scope (`driver.scope`:
Scope.LOCAL or Scope.SWARM), a network records it, and every step that
reads or writes a network's shared state goes through the scope's
implementation, so `network create`, join and leave take one path for
every driver:

    check_create(tx, name)       may a network of that name be created here?
    plan(tx, ctx, spec, driver)  the new network's IPAM configs, families and options
    reserve(tx, net)             record the new network, hold its reserved addresses
    unreserve(tx, net)           `network rm`: drop what reserve recorded (refuse if in use)
    allocate(tx, net, fam, static, owner)   hold an endpoint's address
    release(tx, net, ep)         free an endpoint's addresses
    publish(tx, net, ep, ctr)    make a new endpoint known where the scope needs it
    withdraw(tx, net, ep)        the reverse, when it leaves
    new_mac(ipv4)                the MAC of an endpoint without --mac-address
    refresh()                    before a read of the node's networks
    local_gateway                endpoints may take the default route (and published
                                 ports) through the network's gateway on this node

`LocalScope` (here) keeps everything in the node's store. `ClusterScope`
(netkit/cluster.py) keeps networks, addresses and endpoints in the cluster
store every member shares and mirrors the networks into the node's store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from netkit.errors import AlreadyExists
from netkit.model import IPAMConfig, Scope

if TYPE_CHECKING:
    from netkit.drivers.base import Driver, DriverContext
    from netkit.model import Container, Endpoint, Network
    from netkit.specs import NetworkSpec
    from netkit.store import Tx


@dataclass(frozen=True, slots=True)
class NetworkPlan:
    """What a scope decides for a new network before it exists."""

    ipam: tuple[IPAMConfig, ...]
    ipv4: bool
    ipv6: bool
    options: dict[str, str]


class NetworkScope(Protocol):
    """Where the state of a network lives (see the module docstring)."""

    local_gateway: bool

    def check_create(self, tx: "Tx", name: str) -> None: ...
    def plan(self, tx: "Tx", ctx: "DriverContext", spec: "NetworkSpec",
             driver: "Driver") -> NetworkPlan: ...
    def reserve(self, tx: "Tx", net: "Network") -> None: ...
    def unreserve(self, tx: "Tx", net: "Network") -> None: ...
    def allocate(self, tx: "Tx", net: "Network", family: int, static: str | None,
                 owner: str) -> str | None: ...
    def release(self, tx: "Tx", net: "Network", ep: "Endpoint") -> None: ...
    def publish(self, tx: "Tx", net: "Network", ep: "Endpoint", ctr: "Container") -> None: ...
    def withdraw(self, tx: "Tx", net: "Network", ep: "Endpoint") -> None: ...
    def new_mac(self, ipv4: str | None) -> str: ...
    def refresh(self) -> None: ...


def onlink_routes(ctx: "DriverContext") -> list[str]:
    """On-link (scope link) IPv4 routes of the node: pools overlapping them are skipped."""
    out = []
    for r in ctx.kernel.host.routes():
        if r["scope"] == 253 and r["dst"] and r["dst_len"]:
            out.append(f"{r['dst']}/{r['dst_len']}")
    return out


def name_taken(tx: "Tx", name: str) -> bool:
    """Does the node's store have a network of that name (local, or a mirrored swarm one)?"""
    return any(n == name for _, n in tx.network_refs())


class LocalScope:
    """Networks of this node only: their rows and addresses are in the node's store."""

    local_gateway = True

    def __init__(self, node_name: str) -> None:
        self.node_name = node_name

    def check_create(self, tx: "Tx", name: str) -> None:
        if name_taken(tx, name):
            raise AlreadyExists(f"network with name {name} already exists")

    def plan(self, tx: "Tx", ctx: "DriverContext", spec: "NetworkSpec",
             driver: "Driver") -> NetworkPlan:
        from netkit.ipam import plugin
        # macvlan: a given subnet is the parent's LAN, so the node's on-link route is no conflict
        onlink = [] if driver.onlink_subnets and spec.subnets else onlink_routes(ctx)
        taken = tx.all_subnets() + onlink
        cfgs = plugin.get(spec.ipam_driver).pools(plugin.PoolRequest(
            spec.subnets, spec.ip_ranges, spec.gateways, spec.aux_addresses, spec.ipam_options,
            ipv4=spec.ipv4, ipv6=spec.ipv6, taken=taken, skip_gateway=not driver.allocates_gateway,
            one_subnet_per_family=driver.one_subnet_per_family,
            v6_seed=f"{self.node_name}:{spec.name}"))
        return NetworkPlan(ipam=cfgs, ipv4=any(c.family == 4 for c in cfgs),
                           ipv6=any(c.family == 6 for c in cfgs), options=dict(spec.options))

    def reserve(self, tx: "Tx", net: "Network") -> None:
        from netkit import ipam
        tx.insert_network(net)
        for cfg in net.ipam:
            for value, owner in ipam.reserved(cfg).items():
                tx.hold_address(net.id, cfg.family, ipam.to_key(value, cfg.family), owner)

    def unreserve(self, tx: "Tx", net: "Network") -> None:
        pass              # the network's row goes with its addresses (tx.delete_network)

    def allocate(self, tx: "Tx", net: "Network", family: int, static: str | None,
                 owner: str) -> str | None:
        from netkit.ipam import plugin
        return plugin.of(net).allocate(tx, net, family, static, owner)

    def release(self, tx: "Tx", net: "Network", ep: "Endpoint") -> None:
        from netkit.ipam import plugin
        for family, addr in ((4, ep.ipv4), (6, ep.ipv6)):
            if addr:
                plugin.of(net).release(tx, net, family, addr)

    def publish(self, tx: "Tx", net: "Network", ep: "Endpoint", ctr: "Container") -> None:
        pass              # the node's store row is all there is

    def withdraw(self, tx: "Tx", net: "Network", ep: "Endpoint") -> None:
        pass

    def new_mac(self, ipv4: str | None) -> str:
        from netkit import ipam
        return ipam.random_mac()

    def refresh(self) -> None:
        pass


class Scopes:
    """The scope implementation of each declared scope."""

    def __init__(self, local: LocalScope, cluster: NetworkScope) -> None:
        self.local = local
        self.cluster = cluster
        self._by_scope: dict[Scope, NetworkScope] = {Scope.LOCAL: local, Scope.SWARM: cluster}

    def of(self, scope: Scope) -> NetworkScope:
        """The implementation for a driver's (or a network's) declared scope."""
        return self._by_scope[scope]

    def refresh(self) -> None:
        """Bring the node's view of every scope's networks up to date (before a read)."""
        for impl in self._by_scope.values():
            impl.refresh()
