"""The macvlan driver: containers get their own MAC address on a node interface.

Network: `-o parent=IF` names an interface of the node (on a simulated node
usually `eth0`, its port on the LAN). Containers appear on that LAN as
hosts of their own: the LAN's router is their `--gateway`, and IPAM never
allocates a gateway address or puts one on the node (reference §2.4, §4).

- `-o macvlan_mode=bridge|private|vepa|passthru` (default bridge).
- No parent: the network is internal (forced, as Docker) and its parent
  is a private device `dm-<id12>` made and removed with the network.
  Docker uses a `dummy` link, and so does netkit where the kernel has one.
  Kernels without the dummy module answer EOPNOTSUPP; netkit then makes a
  Linux bridge with no ports under the same name. Like a dummy it is an
  Ethernet device (macvlan refuses other types) with no uplink: frames a
  child sends to it are flooded to no port and never delivered to the
  node, so children in bridge mode reach each other only inside the
  macvlan port, exactly as on a dummy. It is made without a MAC: setting
  one runs the bridge's port state selection, which turns the carrier of
  a port-less bridge off, and children of a lower without carrier are down.
- Parent `name.vid` that does not exist: an 802.1q subinterface is made
  on `name` and brought up; it is deleted on `network rm` by the last
  macvlan network using it. Kernels without 8021q refuse with Unsupported.
- Passthru is exclusive both ways: no other macvlan network may share
  its parent.

Join: the child is created directly inside the container's netns under
its final name (`eth0`, `eth1`...) with the planned MAC (IFLA_NET_NS_FD;
the kernel resolves the parent index in the node's netns). In passthru
mode the kernel gives the child the parent's MAC, which is what is
returned. The kernel rule Docker documents holds: a node cannot reach its
own macvlan children through the parent, and they cannot reach it.

Links the driver makes on the node carry ifalias `netkit-macvlan`, not the
`netkit` tag of bridges: `system prune` treats `netkit`-tagged links the
store does not list as its own orphans.
"""

from __future__ import annotations

import re
from typing import Iterable

from netkit.drivers.base import Driver, DriverContext, JoinResult
from netkit.drivers.bridge import (OPT_DNS_ORDER, OPT_IFACE_PREFIX, OPT_MTU, check_common,
                                   check_ifname, configure_sandbox, mtu_of)
from netkit.drivers.checks import link_drift
from netkit.errors import Conflict, InvalidArgument, NotFound, Unsupported
from netkit.kernel import netns as kns
from netkit.model import Container, Endpoint, Network, Scope
from netkit.specs import NetworkSpec

OPT_PARENT = "parent"
OPT_MODE = "macvlan_mode"
MODES = ("bridge", "private", "vepa", "passthru")
OPTIONS = frozenset({OPT_PARENT, OPT_MODE, OPT_MTU, OPT_IFACE_PREFIX, OPT_DNS_ORDER})
DUMMY_PREFIX = "dm-"
OWNED = "netkit-macvlan"          # ifalias of the parent links this driver made
_ATOI = re.compile(r"^[+-]?[0-9]+$")   # what Go's strconv.Atoi accepts


def mode_of(options: dict[str, str]) -> str:
    return options.get(OPT_MODE) or "bridge"


def dummy_name(network_id: str) -> str:
    """The private parent of a network without `-o parent` (Docker: `dm-<id12>`)."""
    return DUMMY_PREFIX + network_id[:12]


def parent_of(net: Network) -> str:
    return net.options.get(OPT_PARENT) or dummy_name(net.id)


def split_vlan(name: str) -> tuple[str, int]:
    """`eth0.10` -> ("eth0", 10), with Docker's messages (moby parseVlan)."""
    parts = name.split(".")
    if len(parts) != 2:
        raise InvalidArgument("required interface name format is: name.vlan_id, ex. eth0.10 for "
                              f"vlan 10, instead received {name}")
    if not _ATOI.match(parts[1]):
        raise InvalidArgument(f"unable to parse a valid vlan id from: {parts[1]} "
                              "(ex. eth0.10 for vlan 10)")
    return parts[0], int(parts[1])


def check_vid(vid: int) -> None:
    """A VLAN id is 12 bits; 0 and 4095 are reserved."""
    if not 1 <= vid <= 4094:
        raise InvalidArgument(f"vlan id must be between 1-4094, received: {vid}")


class MacvlanDriver(Driver):
    name = "macvlan"
    scope = Scope.LOCAL
    has_dns = True              # user networks: the embedded DNS, as on bridges
    allocates_gateway = False   # the gateway is the LAN's router: only a given one
    maps_ports = False          # -p / -P are ignored with a warning (engine)
    onlink_subnets = True       # a given subnet may be the node's own LAN (engine IPAM)

    # -- validation (pure) ------------------------------------------------------
    @staticmethod
    def forces_internal(spec: NetworkSpec) -> bool:
        """Without a parent the network is internal, whatever --internal says (Docker)."""
        return not spec.options.get(OPT_PARENT)

    def validate(self, spec: NetworkSpec) -> None:
        check_common(spec.options, OPTIONS, self.name)
        mode = mode_of(spec.options)
        if mode not in MODES:     # wording from moby macvlan_network.go
            raise InvalidArgument(f"requested macvlan mode '{mode}' is not valid, "
                                  "'bridge' mode is the macvlan driver default")
        if spec.options.get(OPT_PARENT) == "lo":
            raise InvalidArgument("loopback interface is not a valid macvlan parent link")
        prefix = spec.options.get(OPT_IFACE_PREFIX)
        if prefix is not None:
            check_ifname(prefix + "99", "container interface prefix")

    def check_network(self, net: Network, others: Iterable[Network]) -> None:
        """Passthru owns its parent: refuse sharing it, whichever network came first."""
        parent = net.options.get(OPT_PARENT)
        if not parent:
            return                # its own dm- device: never shared
        for other in others:
            if other.driver != self.name or other.id == net.id or \
                    other.options.get(OPT_PARENT) != parent:
                continue
            if mode_of(net.options) == "passthru":
                raise Conflict(f"cannot use mode passthru, macvlan network {other.id} is already "
                               f"using parent interface {parent}")
            if mode_of(other.options) == "passthru":
                raise Conflict(f"macvlan network {other.id} is already using parent interface "
                               f"{parent} in mode passthru")

    # -- network ---------------------------------------------------------------
    def create_network(self, ctx: DriverContext, net: Network) -> None:
        host = ctx.kernel.host
        parent = net.options.get(OPT_PARENT)
        if not parent:
            self._make_private_parent(ctx, net)
            return
        if host.has_link(parent):
            return                # the user's interface: used as it is, never changed
        if "." not in parent:
            # Docker would try it as a VLAN name and say "invalid subinterface vlan
            # name X, example formatting is eth0.10"; saying what is wrong is kinder
            raise NotFound(f"-o parent interface was not found on the host: {parent}")
        base, vid = split_vlan(parent)           # Docker's order: format, number, base, range
        base_index = host.link_index(base)
        if base_index is None:
            raise NotFound(f"-o parent interface was not found on the host: {base}")
        check_vid(vid)
        check_ifname(parent, "parent interface name")
        try:
            index = host.add_vlan(parent, base_index, vid)
        except Unsupported as exc:
            raise Unsupported(f"failed to create {parent} vlan link: operation not supported "
                              "(this kernel has no 802.1q VLAN support: module 8021q)") from exc
        host.set_link(index, state="up", ifalias=OWNED)

    def _make_private_parent(self, ctx: DriverContext, net: Network) -> None:
        """`dm-<id12>`: a dummy, else a port-less bridge (module docstring)."""
        host = ctx.kernel.host
        name = dummy_name(net.id)
        try:
            index = host.add_device(name, "dummy", mtu=mtu_of(net))
        except Unsupported:
            index = host.add_device(name, "bridge", mtu=mtu_of(net))
        host.sysctl(f"ipv6/conf/{name}/disable_ipv6", "1")     # no RS/DAD from the node on it
        host.set_link(index, state="up", ifalias=OWNED)

    def delete_network(self, ctx: DriverContext, net: Network) -> None:
        if not net.options.get(OPT_PARENT):
            ctx.kernel.host.delete_link(dummy_name(net.id))

    def release_network(self, ctx: DriverContext, net: Network, others: Iterable[Network]) -> None:
        """After `network rm`: delete a VLAN parent this driver made once no network uses it."""
        parent = net.options.get(OPT_PARENT)
        if not parent or "." not in parent:
            return
        if any(o.driver == self.name and o.id != net.id and o.options.get(OPT_PARENT) == parent
               for o in others):
            return
        info = ctx.kernel.host.link_info(parent)
        if info is not None and info["alias"] == OWNED and info["kind"] == "vlan":
            ctx.kernel.host.delete_link(parent)

    # -- system check / prune (Checkable) -------------------------------------------
    def owned_links(self, net: Network, in_use: bool) -> set[str]:
        """The parent: the driver's own `dm-` device or VLAN link, or the user's interface."""
        return {parent_of(net)}

    def check(self, ctx: DriverContext, net: Network, in_use: bool) -> list[str]:
        """The parent is there; one this driver made is up (its children are down if not)."""
        parent = parent_of(net)
        info = ctx.kernel.host.link_info(parent)
        if info is None:
            return [f"parent interface {parent} is missing"]
        if info["alias"] != OWNED:
            return []                      # the user's interface, used as it is
        return link_drift(ctx.kernel.host, parent, info["kind"], what="parent interface")

    # -- endpoints -------------------------------------------------------------
    def join(self, ctx: DriverContext, net: Network, ep: Endpoint, ctr: Container) -> JoinResult:
        assert ctr.netns is not None
        host = ctx.kernel.host
        parent = parent_of(net)
        index = host.link_index(parent)
        if index is None:         # removed behind netkit's back since `network create`
            raise NotFound(f"the requested parent interface {parent} was not found on the Docker host")
        mode = mode_of(net.options)
        host.add_macvlan(ep.ifname, index, mode=mode, netns=ctr.netns, mac=ep.mac, mtu=mtu_of(net))
        mac = ep.mac
        if mode == "passthru":    # the kernel gives the child the parent's MAC
            info = ctx.kernel.netns(ctr.netns).link_info(ep.ifname)
            mac = info["address"] if info and info["address"] else mac
        configure_sandbox(ctx, net, ep, ctr)
        return JoinResult(ifname=ep.ifname, mac=mac, gateway_v4=net.gateway_v4,
                          gateway_v6=net.gateway_v6)

    def leave(self, ctx: DriverContext, net: Network, ep: Endpoint, ctr: Container) -> None:
        if ctx.sandbox_removed or not ctr.netns or not kns.exists(ctr.netns):
            return                # deleting the netns deletes the child with it
        ctx.kernel.netns(ctr.netns).delete_link(ep.ifname)
