"""The bridge driver: one Linux bridge per network, one veth per endpoint.

Host side: bridge `br-<id12>` (or `-o com.docker.network.bridge.name`,
`netkit0` for the predefined `bridge` network) carrying the gateway
address; each endpoint's veth host end `vethXXXXXXX` is a port of it.
Container side: the veth peer is created directly inside the container's
netns under its final name (`eth0`, `eth1`...), with its MAC and MTU, so no
move or rename round-trips are needed.
"""

from __future__ import annotations

import re
import secrets
import socket
from typing import Iterable

from netkit.drivers.base import Driver, DriverContext, JoinResult
from netkit.drivers.checks import link_drift
from netkit.errors import Conflict, InvalidArgument
from netkit.kernel.session import TAG
from netkit.model import Container, Endpoint, Network, Scope
from netkit.specs import NetworkSpec

OPT_NAME = "com.docker.network.bridge.name"
OPT_MTU = "com.docker.network.driver.mtu"
OPT_ICC = "com.docker.network.bridge.enable_icc"
OPT_MASQ = "com.docker.network.bridge.enable_ip_masquerade"
OPT_HOST_BINDING = "com.docker.network.bridge.host_binding_ipv4"
OPT_IFACE_PREFIX = "com.docker.network.container_iface_prefix"
OPT_HOST_IPV4 = "com.docker.network.host_ipv4"
OPT_DNS_ORDER = "netkit.dns.order"
OPTIONS = frozenset({OPT_NAME, OPT_MTU, OPT_ICC, OPT_MASQ, OPT_HOST_BINDING, OPT_IFACE_PREFIX,
                     OPT_HOST_IPV4, OPT_DNS_ORDER, "com.docker.network.bridge.default_bridge"})
DEFAULT_BRIDGE = "netkit0"
IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


def check_ifname(name: str, what: str = "interface name") -> str:
    if len(name) > 15:
        raise InvalidArgument(f"{what} {name} is too long: at most 15 characters")
    if not IFNAME.match(name) or name in (".", ".."):
        raise InvalidArgument(f"invalid {what}: {name}")
    return name


def check_bool(options: dict[str, str], key: str) -> None:
    if key in options and options[key].lower() not in ("true", "false", "1", "0"):
        raise InvalidArgument(f"invalid value {options[key]!r} for option {key}: want true or false")


def check_common(options: dict[str, str], known: frozenset[str], driver: str) -> None:
    for key in options:
        if key not in known:
            raise InvalidArgument(f"unknown option {key} for driver {driver}")
    if OPT_MTU in options:
        try:
            mtu = int(options[OPT_MTU])
        except ValueError:
            mtu = 0
        if not 68 <= mtu <= 65535:
            raise InvalidArgument(f"invalid MTU {options[OPT_MTU]}: must be between 68 and 65535")
    order = options.get(OPT_DNS_ORDER, "rr")
    if order not in ("rr", "shuffle"):
        raise InvalidArgument(f"invalid value {order!r} for option {OPT_DNS_ORDER}: want rr or shuffle")


def bridge_name(net: Network) -> str:
    if net.name == "bridge":
        return DEFAULT_BRIDGE
    return net.options.get(OPT_NAME) or f"br-{net.id[:12]}"


def mtu_of(net: Network) -> int | None:
    return int(net.options[OPT_MTU]) if OPT_MTU in net.options else None


def random_mac() -> str:
    b = bytearray(secrets.token_bytes(6))
    b[0] = (b[0] & 0xFC) | 0x02
    return ":".join(f"{x:02x}" for x in b)


class BridgeDriver(Driver):
    name = "bridge"
    scope = Scope.LOCAL
    has_dns = True
    allocates_gateway = True
    one_subnet_per_family = True     # "bridge driver doesn't support multiple subnets"

    def validate(self, spec: NetworkSpec) -> None:
        check_common(spec.options, OPTIONS, self.name)
        for key in (OPT_ICC, OPT_MASQ):
            check_bool(spec.options, key)
        if OPT_NAME in spec.options:
            check_ifname(spec.options[OPT_NAME], "bridge name")
        prefix = spec.options.get(OPT_IFACE_PREFIX)
        if prefix is not None:
            check_ifname(prefix + "99", "container interface prefix")

    def check_network(self, net: Network, others: Iterable[Network]) -> None:
        """Two networks cannot be one bridge (any driver whose networks are node bridges)."""
        from netkit import drivers
        mine = bridge_name(net)
        for other in others:
            driver = drivers.find(other.driver)
            if other.id != net.id and driver is not None and driver.node_bridge(other) == mine:
                raise Conflict(f"cannot create network {net.id} ({mine}): conflicts with network "
                               f"{other.id} ({mine}): networks have same bridge name")

    def node_bridge(self, net: Network) -> str | None:
        return bridge_name(net)

    # -- system check / prune (Checkable) -------------------------------------------
    def owned_links(self, net: Network, in_use: bool) -> set[str]:
        return {bridge_name(net)}

    def check(self, ctx: DriverContext, net: Network, in_use: bool) -> list[str]:
        name = bridge_name(net)
        if net.predefined and not in_use and not ctx.kernel.host.has_link(name):
            return []                       # the default bridge is made on first use
        return link_drift(ctx.kernel.host, name, "bridge")

    # -- network ---------------------------------------------------------------
    def create_network(self, ctx: DriverContext, net: Network) -> None:
        host = ctx.kernel.host
        name = bridge_name(net)
        index = host.add_bridge(name, mac=random_mac(), mtu=mtu_of(net), netfilter=True)
        # No IPv6 autoconfiguration, RS or DAD unless the network has IPv6:
        # captures must show only what containers send.
        host.sysctl(f"ipv6/conf/{name}/disable_ipv6", "0" if net.ipv6 else "1")
        if net.ipv6:
            host.sysctl(f"ipv6/conf/{name}/accept_ra", "0")
        for cfg in net.ipam:
            if cfg.gateway:
                host.add_addr(index, cfg.gateway, int(cfg.subnet.split("/")[1]))
        host.set_link(index, state="up", ifalias=TAG)

    def ensure_network(self, ctx: DriverContext, net: Network) -> None:
        """Create the bridge if missing (the predefined network's, made on first use)."""
        if not ctx.kernel.host.has_link(bridge_name(net)):
            self.create_network(ctx, net)

    def delete_network(self, ctx: DriverContext, net: Network) -> None:
        ctx.kernel.host.delete_link(bridge_name(net))

    # -- endpoints -------------------------------------------------------------
    def join(self, ctx: DriverContext, net: Network, ep: Endpoint, ctr: Container) -> JoinResult:
        assert ctr.netns is not None
        if net.name == "bridge":
            self.ensure_network(ctx, net)
        host = ctx.kernel.host
        host_if = ep.host_ifname or f"veth{secrets.token_hex(4)[:7]}"
        mtu = mtu_of(net)
        if not ctx.node.simulated:
            # the real host's default may autoconfigure IPv6 on new links; simulated
            # nodes disable it by default, so their veths never send RS/DAD/MLD.
            host.add_veth(host_if, ep.ifname, ctr.netns, peer_mac=ep.mac, mtu=mtu)
            host.sysctl(f"ipv6/conf/{host_if}/disable_ipv6", "1")
            host.set_link(host_if, master=host.link_index(bridge_name(net)), state="up")
        else:
            host.add_veth(host_if, ep.ifname, ctr.netns, peer_mac=ep.mac, mtu=mtu,
                          master=host.link_index(bridge_name(net)))
        configure_sandbox(ctx, net, ep, ctr)
        return JoinResult(ifname=ep.ifname, mac=ep.mac, host_ifname=host_if,
                          gateway_v4=net.gateway_v4, gateway_v6=net.gateway_v6)

    def leave(self, ctx: DriverContext, net: Network, ep: Endpoint, ctr: Container) -> None:
        if ctx.sandbox_removed:
            return      # deleting the netns removes the veth pair; the kernel batches it
        if ep.host_ifname:
            ctx.kernel.host.delete_link(ep.host_ifname)


def configure_sandbox(ctx: DriverContext, net: Network, ep: Endpoint, ctr: Container) -> None:
    """Address and bring up ep.ifname inside the container (shared by drivers)."""
    sandbox = ctx.kernel.netns(ctr.netns)
    index = sandbox.link_index(ep.ifname)
    if index is None:
        raise InvalidArgument(f"interface {ep.ifname} did not appear in the container")
    if ep.ipv6:
        sandbox.sysctl(f"ipv6/conf/{ep.ifname}/disable_ipv6", "0")
        sandbox.sysctl(f"ipv6/conf/{ep.ifname}/accept_ra", "0")
    for addr in (ep.ipv4, ep.ipv6):
        if addr:
            ip, plen = addr.split("/")
            sandbox.add_addr(index, ip, int(plen))
    sandbox.set_link(index, state="up")


def default_route(ctx: DriverContext, ctr: Container, gw4: str | None, gw6: str | None) -> None:
    """Point the container's default routes at the chosen gateways (replacing old ones)."""
    sandbox = ctx.kernel.netns(ctr.netns)
    for gw, family in ((gw4, socket.AF_INET), (gw6, socket.AF_INET6)):
        sandbox.del_route(family=family)
        if gw:
            sandbox.add_route(gateway=gw, family=family)
