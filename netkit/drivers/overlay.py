"""The overlay driver: one VXLAN segment per swarm network, spanning the nodes.

Per node and network, made on the node's first endpoint and removed with
its last: a bridge `ov-<vni:06x>` and a vxlan device `vx-<vni:06x>` (id
VNI, dstport 4789, local = the node's LAN address, dev eth0, nolearning,
proxy) enslaved to it, both in the node's netns. Each endpoint is a veth
(MTU 1450 = 1500 - 50 bytes of VXLAN encapsulation) from the bridge into
the container. Docker keeps these in a private netns per network and puts
the gateway address on the bridge; netkit gives overlay endpoints no
default route, so the bridge carries no address.

Peers (the FDB and neighbour entries for endpoints on other nodes) are not
the driver's business: netkit.agent.peers programs them from the cluster
store after each change is committed. Networks and their IPAM live in the
cluster store (netkit.swarm); the driver only makes kernel objects.
"""

from __future__ import annotations

import secrets

from netkit.agent.peers import VNI_OPTION, bridge_name, vxlan_name
from netkit.drivers.base import Driver, DriverContext, JoinResult
from netkit.drivers.bridge import configure_sandbox, random_mac
from netkit.drivers.checks import link_drift
from netkit.errors import InvalidArgument, Unsupported
from netkit.kernel.session import TAG
from netkit.model import Container, Endpoint, Network, Scope
from netkit.specs import NetworkSpec

VXLAN_PORT = 4789
MTU = 1450
OPTIONS = frozenset({VNI_OPTION})


def vni_of(net: Network) -> int:
    return int(net.options[VNI_OPTION])


class OverlayDriver(Driver):
    name = "overlay"
    scope = Scope.SWARM
    has_dns = True
    allocates_gateway = True      # Docker reserves .1 on overlays too; containers start at .2
    maps_ports = False            # no published ports through an overlay (no routing mesh)

    def validate(self, spec: NetworkSpec) -> None:
        if spec.options.get("encrypted") is not None:
            raise Unsupported("encrypted overlay networks are not supported by netkit")
        for key in spec.options:
            if key not in OPTIONS:
                raise InvalidArgument(f"unknown option {key} for driver {self.name}")
        if VNI_OPTION in spec.options:
            try:
                vni = int(spec.options[VNI_OPTION])
            except ValueError:
                vni = -1
            if not 1 <= vni < 1 << 24:
                raise InvalidArgument(f"invalid VXLAN id {spec.options[VNI_OPTION]!r}: want 1-16777215")
        if spec.ipv6:
            raise Unsupported("IPv6 on overlay networks is not supported by netkit yet")
        if len(spec.subnets) > 1:
            raise InvalidArgument("netkit overlay networks take one --subnet")

    # -- system check / prune (Checkable) -------------------------------------------
    def owned_links(self, net: Network, in_use: bool) -> set[str]:
        """The segment, while the network has an endpoint on the node (leave removes it)."""
        vni = vni_of(net)
        return {bridge_name(vni), vxlan_name(vni)} if in_use else set()

    def check(self, ctx: DriverContext, net: Network, in_use: bool) -> list[str]:
        if not in_use:
            return []
        br, vx = bridge_name(vni_of(net)), vxlan_name(vni_of(net))
        return (link_drift(ctx.kernel.host, br, "bridge") +
                link_drift(ctx.kernel.host, vx, "vxlan", master=br))

    # -- network: nothing until the node's first endpoint -------------------------
    def create_network(self, ctx: DriverContext, net: Network) -> None:
        pass

    def delete_network(self, ctx: DriverContext, net: Network) -> None:
        host = ctx.kernel.host
        host.delete_link(vxlan_name(vni_of(net)))
        host.delete_link(bridge_name(vni_of(net)))

    def ensure_segment(self, ctx: DriverContext, net: Network) -> int:
        """The network's bridge + vxlan device on this node (made if missing); the bridge index."""
        host = ctx.kernel.host
        vni = vni_of(net)
        br = bridge_name(vni)
        index = host.link_index(br)
        if index is not None:
            return index
        if not ctx.node.ip:
            raise InvalidArgument("overlay networks need a node with a LAN address (netkit node create --lan)")
        eth0 = host.link_index("eth0")
        if eth0 is None:
            raise InvalidArgument(f"node {ctx.node.name} has no eth0")
        index = host.add_bridge(br, mac=random_mac(), mtu=MTU)
        vx = vxlan_name(vni)
        vx_index = host.add_vxlan(vx, vni, local=ctx.node.ip.split("/")[0], link=eth0,
                                  port=VXLAN_PORT, mtu=MTU)
        host.set_link(vx_index, master=index, state="up")
        host.set_port_learning(vx_index, False)      # remote MACs come from the cluster, not traffic
        host.set_link(index, state="up", ifalias=TAG)   # netkit's: `system check` knows its ports
        return index

    # -- endpoints -------------------------------------------------------------
    def join(self, ctx: DriverContext, net: Network, ep: Endpoint, ctr: Container) -> JoinResult:
        assert ctr.netns is not None
        master = self.ensure_segment(ctx, net)
        host_if = ep.host_ifname or f"veth{secrets.token_hex(4)[:7]}"
        ctx.kernel.host.add_veth(host_if, ep.ifname, ctr.netns, peer_mac=ep.mac, mtu=MTU,
                                 master=master)
        configure_sandbox(ctx, net, ep, ctr)
        return JoinResult(ifname=ep.ifname, mac=ep.mac, host_ifname=host_if)

    def leave(self, ctx: DriverContext, net: Network, ep: Endpoint, ctr: Container) -> None:
        """Delete the veth (even when the sandbox goes: the port count below needs it
        gone now), then the segment if that was the node's last endpoint on it."""
        if ep.host_ifname:
            ctx.kernel.host.delete_link(ep.host_ifname)
        self.release_segment(ctx, net)

    def release_segment(self, ctx: DriverContext, net: Network) -> None:
        """Delete the network's segment on this node if no port but its vxlan is left."""
        host = ctx.kernel.host
        br = host.link_index(bridge_name(vni_of(net)))
        if br is None:
            return
        ports = [l for l in host.links() if l["master"] == br and l["kind"] != "vxlan"]
        if not ports:
            self.delete_network(ctx, net)
