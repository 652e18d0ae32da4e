"""Networks of one node: `docker network create / ls / inspect / rm / prune` (`Networks`).

Owns the network noun on a node: name rules, the predefined `bridge`,
`host` and `none` networks, and one path for every driver: the driver
validates, the network's scope (its driver's declared scope, netkit/scope.py)
plans and records its IPAM and state (the node's store, or the cluster
store for swarm-scoped drivers), the driver makes its kernel objects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netkit import drivers, validate
from netkit.errors import Conflict, Forbidden, InvalidArgument
from netkit.ids import NAME_RE, new_id, now
from netkit.model import Endpoint, Network, Scope
from netkit.refs import resolve
from netkit.scope import onlink_routes

if TYPE_CHECKING:
    from netkit.actions import Actions
    from netkit.drivers.base import Driver
    from netkit.ipam.plugin import IpamPlugin
    from netkit.fwsync import FirewallSync
    from netkit.scope import Scopes
    from netkit.specs import NetworkSpec
    from netkit.store import Store, Tx

PREDEFINED = ("bridge", "host", "none")


class Networks:
    """The networks of one node, as Docker's `network` verbs see them."""

    def __init__(self, store: "Store", actions: "Actions", firewall: "FirewallSync",
                 scopes: "Scopes") -> None:
        self.store = store
        self.actions = actions
        self.firewall = firewall
        self.scopes = scopes

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
                self.scopes.local.reserve(tx, net)

    # -- create ---------------------------------------------------------------
    def create(self, spec: "NetworkSpec") -> Network:
        if spec.name in PREDEFINED:
            raise Forbidden(f"operation is not permitted on predefined {spec.name} network ")
        if not NAME_RE.match(spec.name or ""):
            raise InvalidArgument(f"invalid network name {spec.name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        driver = drivers.get(spec.driver)
        validate.network_options(spec.options)
        driver.validate(spec)                                   # nothing made yet
        ipam = self._ipam_plugin(spec, driver)
        scope = self.scopes.of(driver.scope)
        with self.actions() as (tx, ctx):
            scope.check_create(tx, spec.name)
            plan = scope.plan(tx, ctx, spec, driver)
            net = Network(id=new_id(), name=spec.name, driver=driver.name, scope=driver.scope,
                          created=now(), ipam=plan.ipam,
                          internal=spec.internal or driver.forces_internal(spec),
                          attachable=spec.attachable, ipv4=plan.ipv4, ipv6=plan.ipv6,
                          options=plan.options, labels=dict(spec.labels),
                          ipam_driver=ipam.name, ipam_options=dict(spec.ipam_options))
            driver.check_network(net, tx.networks())     # cross-network rules (bridge names, passthru)
            scope.reserve(tx, net)
            driver.create_network(ctx, net)
            self.firewall.sync(tx, ctx)
        return net

    @staticmethod
    def _ipam_plugin(spec: "NetworkSpec", driver: "Driver") -> "IpamPlugin":
        """The --ipam-driver's plugin, its --ipam-opt validated (netkit/ipam/plugin.py)."""
        from netkit.ipam import plugin
        ipam = plugin.get(spec.ipam_driver)
        ipam.validate_options(spec.ipam_options)
        if driver.scope is not Scope.LOCAL and ipam.name != plugin.DEFAULT:
            raise InvalidArgument(f"ipam driver {ipam.name!r} cannot be used with the "
                                  f"{driver.scope.value}-scoped driver {driver.name}: "
                                  "its addresses are the cluster's")
        return ipam

    # -- read -----------------------------------------------------------------
    def ls(self) -> list[Network]:
        self.scopes.refresh()
        return self.store.read().networks()

    def get(self, ref: str) -> Network:
        self.scopes.refresh()
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
            self.scopes.of(net.scope).unreserve(tx, net)   # swarm: managers only, no endpoint anywhere
            eps = tx.endpoints(network_id=net.id)
            if eps:
                names = dict(tx.container_refs())
                active = ", ".join(f'(name:"{names.get(e.container_id, "")}" id:"{e.container_id[:12]}")'
                                   for e in eps)
                raise Conflict(f"error while removing network: network {net.name} has active "
                               f"endpoints {active}")
            tx.delete_network(net.id)
            driver = drivers.get(net.driver)
            driver.delete_network(ctx, net)
            driver.release_network(ctx, net, tx.networks())     # shared parents (macvlan VLAN links)
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
