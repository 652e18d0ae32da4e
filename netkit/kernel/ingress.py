"""A node's ingress sandbox (Docker's `ingress_sbox`): its netns, its two links, its rules.

The sandbox is a netns `nki-<node>` with
- `eth0`: a veth whose node side `nk-ingress0` is a port of the ingress
  overlay's bridge `ov-<vni>` (the segment spanning the nodes), addressed with
  the sandbox's address on `ingress` (from the cluster IPAM);
- `eth1`: the way in from the node, a veth to the node's `nk-ingress1`, on a
  link-local /30 (node 169.254.254.1, sandbox 169.254.254.2; its default
  route points back at the node). Docker uses docker_gwbridge for this; a
  netkit node's netkit_gwbridge is a store-managed network made only for
  containers, so the sandbox has a point-to-point link of its own.
IPv4 forwarding is on in the sandbox. Everything is made through the action's
KernelSession (journaled); nft scripts are applied with netkit.kernel.nft.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from netkit.kernel import netns as ns
from netkit.kernel import nft

if TYPE_CHECKING:
    from netkit.kernel.session import KernelSession

PORT_LINK = "nk-ingress0"        # node side of the sandbox's ingress endpoint (a bridge port)
NODE_LINK = "nk-ingress1"        # node side of the way in
NODE_ADDR, SANDBOX_ADDR, LINK_PREFIX = "169.254.254.1", "169.254.254.2", 30
INGRESS_IF, NODE_IF = "eth0", "eth1"
MTU = 1450                        # the overlay's


def sandbox_netns(node: str) -> str:
    return f"nki-{node}"


def sandbox_address(netns: str) -> str | None:
    """The sandbox's ingress address ("ip/len"), None when it is missing or incomplete."""
    if not ns.exists(netns):
        return None
    from netkit.kernel.session import open_rtnl
    rt = open_rtnl(netns)
    try:
        names = {l["ifname"] for l in rt.link_dump()}
        found = [f"{ip}/{plen}" for label, ip, plen in rt.addr_dump(socket.AF_INET)
                 if label == INGRESS_IF]
    finally:
        rt.close()
    return found[0] if found and NODE_IF in names else None


def make_sandbox(kernel: "KernelSession", netns: str, bridge: int, address: str, mac: str) -> None:
    """A fresh sandbox `netns`: eth0 on the ingress bridge (`bridge`, index in the node) with
    `address` ("ip/len") and `mac`, eth1 to the node, forwarding on, default route home."""
    host = kernel.host
    sbox = kernel.create_netns(netns, {"ipv4/ip_forward": "1", "ipv6/conf/default/disable_ipv6": "1"})
    host.add_veth(PORT_LINK, INGRESS_IF, netns, peer_mac=mac, mtu=MTU, master=bridge)
    host.add_veth(NODE_LINK, NODE_IF, netns)
    index = host.link_index(NODE_LINK)
    assert index is not None
    host.add_addr(index, NODE_ADDR, LINK_PREFIX)
    host.up(index)
    ip, plen = address.split("/")
    for ifname, addr, prefix in ((INGRESS_IF, ip, int(plen)), (NODE_IF, SANDBOX_ADDR, LINK_PREFIX)):
        link = sbox.link_index(ifname)
        assert link is not None
        sbox.add_addr(link, addr, prefix)
        sbox.up(link)
    sbox.add_route(gateway=NODE_ADDR)


def remove_sandbox(kernel: "KernelSession", netns: str) -> None:
    """The sandbox and its node-side links (none is fine); in an action, when it commits."""
    kernel.host.delete_link(PORT_LINK)
    kernel.host.delete_link(NODE_LINK)
    if ns.exists(netns):
        kernel.delete_netns(netns)


def list_rules(netns: str) -> str | None:
    """`nft list table ip netkit_mesh` in `netns`, None without the table (or the netns)."""
    from netkit.firewall.mesh import TABLE
    if not ns.exists(netns):
        return None
    return nft.list_table(netns, "ip", TABLE)
