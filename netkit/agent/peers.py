"""VXLAN peers of a node: what the cluster says (pure) and programming it (kernel).

Docker's peerDB in two functions. For every overlay network with an
endpoint on this node, each endpoint of that network on ANOTHER node is a
peer: the node gets a static FDB entry `<mac> dst <remote vtep>` (self,
permanent) and a permanent neighbour `<ip> lladdr <mac>` on the network's
vxlan device `vx-<vni:06x>`. The device has `nolearning` and `proxy`, so
ARP for a remote container is answered locally from the neighbour table
and nothing is flooded or learned.

`desired()` reads only the cluster store; `current()` reads only the
kernel; `apply()` makes the kernel match, touching only the difference,
so running it twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

VNI_OPTION = "com.docker.network.driver.overlay.vxlanid_list"


def vxlan_name(vni: int) -> str:
    return f"vx-{vni:06x}"


def bridge_name(vni: int) -> str:
    return f"ov-{vni:06x}"


@dataclass(frozen=True, slots=True)
class Peer:
    """One remote endpoint as this node must know it. Identity: (device, mac, ip, vtep);
    the other fields say who it is (for DNS) and are not compared."""

    device: str                      # vx-<vni:06x> on this node
    mac: str
    ip: str                          # the endpoint's IPv4 address, no prefix
    vtep: str                        # the remote node's LAN address
    vni: int = field(default=0, compare=False)
    network_id: str = field(default="", compare=False)
    node: str = field(default="", compare=False)
    container_name: str = field(default="", compare=False)
    names: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class Current:
    """Static peer entries found on this node's vxlan devices."""

    fdb: frozenset[tuple[str, str, str]]      # (device, mac, vtep)
    neigh: frozenset[tuple[str, str, str]]    # (device, ip, mac)


def desired(cluster, node: str) -> set[Peer]:
    """Peers `node` must have programmed, from a cluster store transaction (pure)."""
    vnis = cluster.vnis()
    by_net: dict[str, list] = {}
    for ep in cluster.endpoints():
        by_net.setdefault(ep.network_id, []).append(ep)
    out: set[Peer] = set()
    for network_id, eps in by_net.items():
        if network_id not in vnis or not any(ep.node == node for ep in eps):
            continue              # no local endpoint: no vxlan device here
        vni = vnis[network_id]
        for ep in eps:
            if ep.node == node or not ep.ipv4 or not ep.vtep:
                continue          # local, no address, or a service VIP (node "", no vtep)
            out.add(Peer(vxlan_name(vni), ep.mac, ep.ipv4.split("/")[0], ep.vtep, vni,
                         network_id, ep.node, ep.container_name, ep.names))
    return out


def current(handle) -> Current:
    """The static peer entries on every vx-* device of the handle's netns (kernel read)."""
    fdb: set[tuple[str, str, str]] = set()
    neigh: set[tuple[str, str, str]] = set()
    for link in handle.links():
        name = link["ifname"] or ""
        if link["kind"] != "vxlan" or not name.startswith("vx-"):
            continue
        fdb.update((name, mac, dst) for mac, dst in handle.fdb_entries(link["index"]))
        neigh.update((name, ip, mac) for ip, mac in handle.neighbours(link["index"]))
    return Current(frozenset(fdb), frozenset(neigh))


def plan(want: Iterable[Peer], have: Current, devices: set[str] | None = None
         ) -> tuple[list[tuple], list[tuple], list[tuple], list[tuple]]:
    """(fdb to add, fdb to delete, neigh to add, neigh to delete), pure.

    `devices` limits additions to vxlan devices that exist (None: all)."""
    want = [p for p in want if devices is None or p.device in devices]
    fdb = {(p.device, p.mac, p.vtep) for p in want}
    neigh = {(p.device, p.ip, p.mac) for p in want}
    return (sorted(fdb - have.fdb), sorted(have.fdb - fdb),
            sorted(neigh - have.neigh), sorted(have.neigh - neigh))


def apply(handle, want: Iterable[Peer], have: Current | None = None) -> int:
    """Make the handle's netns hold exactly `want`'s static entries; returns the number of
    changes (0 when already in step). Each change is a kernel call of the handle's session:
    counted, journaled (a failed action puts the entries back as they were)."""
    if have is None:
        have = current(handle)
    devices = {l["ifname"] for l in handle.links() if l["kind"] == "vxlan"}
    add_fdb, del_fdb, add_neigh, del_neigh = plan(want, have, devices)
    for dev, ip, mac in del_neigh:
        handle.del_neighbour(dev, ip, mac)
    for dev, mac, vtep in del_fdb:
        handle.del_fdb(dev, mac, vtep)
    for dev, mac, vtep in add_fdb:
        handle.add_fdb(dev, mac, vtep)
    for dev, ip, mac in add_neigh:
        handle.set_neighbour(dev, ip, mac)
    return len(add_fdb) + len(del_fdb) + len(add_neigh) + len(del_neigh)


__all__ = ["Current", "Peer", "apply", "current", "desired", "plan", "vxlan_name", "bridge_name"]
