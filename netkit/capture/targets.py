"""What a capture target names: a netns and an interface in it.

    CONTAINER           the container's netns, every interface (lo included)
    network:NAME        the network's bridge, in the node's netns
    node:NAME           a simulated host's netns, every interface
    lan:NAME            the LAN's switch (bridge lan0) in the LAN's netns

``iface`` narrows the first, third and fourth to one interface. Every
interface means what ``tcpdump -i any`` means: a frame crossing two
interfaces of the netns (a veth and a bridge) is seen twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from netkit.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from netkit.engine import Engine

KINDS = ("container", "network", "node", "lan")
LAN_BRIDGE = "lan0"


@dataclass(frozen=True, slots=True)
class Target:
    ref: str                  # as the user wrote it
    kind: str                 # one of KINDS
    name: str                 # the container, network, node or LAN name
    netns: str | None         # None: the real host's netns
    iface: str | None         # None: every interface of the netns

    @property
    def label(self) -> str:
        where = self.iface or "any"
        return f"{self.kind} {self.name} ({where} in netns {self.netns or '(host)'})"


def split(ref: str) -> tuple[str, str]:
    """``"network:n1"`` -> ("network", "n1"); a bare name is a container."""
    kind, sep, name = ref.partition(":")
    if sep and kind in KINDS:
        if not name:
            raise InvalidArgument(f"invalid capture target {ref!r}: {kind}: needs a name")
        return kind, name
    return "container", ref


def resolve(engine: "Engine", ref: str, iface: str | None = None) -> Target:
    """The netns and interface that `ref` names, looked up through `engine`."""
    if not ref:
        raise InvalidArgument("no capture target given")
    if not iface or iface == "any":
        iface = None
    kind, name = split(ref)
    if kind == "container":
        ctr = engine.container(name)
        netns = ctr.netns if ctr.network_mode != "host" else engine.node.netns
        return Target(ref, kind, ctr.name, netns, iface)
    if kind == "network":
        from netkit import drivers
        net = engine.network(name)
        bridge = drivers.get(net.driver).node_bridge(net)
        if bridge is None:
            raise InvalidArgument(f"network {net.name} (driver {net.driver}) has no bridge to capture "
                                  "on: capture in a container or on the node instead")
        if iface is not None:
            raise InvalidArgument("network targets capture on the network's bridge: drop -i, "
                                  "or capture on node:NAME with -i")
        return Target(ref, kind, net.name, engine.node.netns, bridge)
    if kind == "node":
        node = next((n for n in engine.nodes() if n.name == name), None)
        if node is None:
            raise NotFound(f"node {name} not found")
        return Target(ref, kind, name, node.netns, iface)
    lan = next((x for x in engine.lans() if x.name == name), None)
    if lan is None:
        raise NotFound(f"lan {name} not found")
    return Target(ref, kind, name, lan.netns, iface or LAN_BRIDGE)
