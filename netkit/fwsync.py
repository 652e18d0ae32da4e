"""Keep the node's nftables table in step with the store (issue: firewall).

Inside every action that can change reachability, after the kernel work and
before the commit, the engine renders the whole ruleset from the store as
the transaction sees it (netkit.firewall, pure) and applies it atomically
(one `nft -f`), only when the text differs from what was applied last. The
undo step re-renders from the rolled-back store and applies that, so a
failed action leaves the previous ruleset in place. `FirewallSync` is the
engine's collaborator that does this; `firewall_script` the rendering input.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from netkit.drivers.base import DriverContext
from netkit.kernel import netns as kns

if TYPE_CHECKING:
    from netkit.model import Node
    from netkit.paths import NodePaths
    from netkit.store import Store, Tx

OPT_ICC = "com.docker.network.bridge.enable_icc"
OPT_MASQ = "com.docker.network.bridge.enable_ip_masquerade"
OPT_SNAT = "com.docker.network.host_ipv4"


def _true(value: str | None, default: bool = True) -> bool:
    return default if value is None else value.lower() in ("true", "1")


def firewall_script(tx: "Tx") -> str:
    """The node's whole ruleset, from the store as `tx` sees it."""
    from netkit import drivers
    from netkit.firewall import FwNetwork, FwPort, render, render_delete
    nets, bridges = [], {}
    in_use = {ep.network_id for ep in tx.endpoints()}
    for net in tx.networks():
        br = drivers.get(net.driver).node_bridge(net)    # bridge networks, whatever the driver's name
        if br is None or (net.predefined and net.id not in in_use):
            continue       # the predefined bridge counts once it exists (first container)
        bridges[net.id] = br
        nets.append(FwNetwork(name=net.name, bridge=br, subnets=tuple(c.subnet for c in net.ipam),
                              internal=net.internal, icc=_true(net.options.get(OPT_ICC)),
                              masquerade=_true(net.options.get(OPT_MASQ)),
                              snat_ipv4=net.options.get(OPT_SNAT)))
    ports = [FwPort(proto=pm.proto, host_ip=pm.host_ip, host_port=pm.host_port,
                    container_ip=pm.container_ip, container_port=pm.container_port,
                    bridge=bridges[pm.network_id])
             for _, pm in tx.ports() if pm.network_id in bridges]
    ports += _ipv6_ports(tx, bridges)
    if not nets:
        return render_delete()
    return render(nets, ports)


def _ipv6_ports(tx: "Tx", bridges: dict[str, str]) -> list:
    """Docker's ``[::]`` binding of each port published without a host IP, when the
    container's endpoint on the port's network has an IPv6 address (dual stack)."""
    from netkit.firewall import FwPort
    six = {(ep.container_id, ep.network_id): ep.ipv6_address for ep in tx.endpoints()
           if ep.ipv6_address}
    return [FwPort(proto=pm.proto, host_ip="::", host_port=pm.host_port,
                   container_ip=six[(cid, pm.network_id)], container_port=pm.container_port,
                   bridge=bridges[pm.network_id])
            for cid, pm in tx.ports()
            if pm.network_id in bridges and pm.host_ip == "0.0.0.0" and (cid, pm.network_id) in six]


class FirewallSync:
    """The node's nftables table, kept equal to what the node's store implies."""

    def __init__(self, store: "Store", paths: "NodePaths", node: "Node") -> None:
        self.store = store
        self.paths = paths
        self.node = node

    def _cache(self) -> str:
        return os.path.join(self.paths.run, "firewall.nft")

    def applied(self) -> str | None:
        """The ruleset netkit applied last (None: none applied)."""
        try:
            with open(self._cache()) as f:
                return f.read()
        except FileNotFoundError:
            return None

    def apply(self, script: str) -> None:
        """Apply `script` (one `nft -f`) and remember it and what the kernel lists for it."""
        from netkit.firewall import needs_route_localnet, render_delete
        from netkit.kernel import nft
        nft.apply(self.node.netns, script)
        os.makedirs(self.paths.run, exist_ok=True)
        if script == render_delete():
            for path in (self._cache(), self._cache() + ".list"):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            return
        with open(self._cache(), "w") as f:
            f.write(script)
        with open(self._cache() + ".list", "w") as f:     # what the kernel shows for it
            f.write(nft.list_table(self.node.netns) or "")

    def sync(self, tx: "Tx", ctx: DriverContext) -> None:
        """Render from the store (inside the transaction) and apply if it changed."""
        from netkit.firewall import render_delete
        script = firewall_script(tx)
        before = self.applied()
        if script == (before or render_delete()):
            return
        ctx.kernel.tick("apply nftables ruleset")
        wanted = []
        if before is None:
            # first ruleset of the node: routing between networks and the LAN, as Docker does
            wanted.append("ipv4/ip_forward")
        if self.node.simulated and any(net.ipv6 for net in tx.networks()):
            # dual stack: IPv6 routing between networks and the LAN, in simulated nodes only
            # (netkit never turns IPv6 forwarding on for the real host)
            wanted.append("ipv6/conf/all/forwarding")
        if "dnat ip to" in script:
            wanted.append("ipv4/conf/all/route_localnet")
        for key in wanted:
            old = kns.read_sysctl(self.node.netns, key).strip()
            if old != "1":
                ctx.kernel.host.sysctl(key, "1", undo=old)       # a failed action puts it back
        self.apply(script)
        ctx.kernel.journal.push("restore the previous nftables ruleset",
                                lambda: self.apply(firewall_script(self.store.read())))

    def check(self) -> list[str]:
        """Drift between the applied table and what the store implies."""
        from netkit.firewall import render_delete
        from netkit.kernel import nft
        want = firewall_script(self.store.read())
        have = nft.list_table(self.node.netns)
        if want == render_delete():
            return [] if have is None else ["firewall: table inet netkit exists but no network needs it"]
        if have is None:
            return ["firewall: table inet netkit is missing"]
        if want != self.applied():
            return ["firewall: the applied ruleset is not what the store implies"]
        try:
            with open(self._cache() + ".list") as f:
                listed = f.read()
        except FileNotFoundError:
            listed = None
        if listed is not None and listed != have:
            return ["firewall: table inet netkit was changed outside netkit"]
        return []
