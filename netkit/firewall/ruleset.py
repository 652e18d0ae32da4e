"""The node's nftables ruleset, rendered from what the store says (pure, no I/O).

One script replaces netkit's tables atomically when applied with
``nft -f`` (``netkit.kernel.nft.apply``): each table is first created if
missing, then deleted, then defined again, all in one transaction. Nothing
else in the node's ruleset is touched, and no rule is ever patched in place;
rolling back means applying the previous text.

``table inet netkit`` (IPv4 and IPv6 in one table), chains in packet order:

``localnet``     filter, hook prerouting, priority raw (-300).
                 ``iifname != "lo" ip daddr 127.0.0.0/8 drop``. A packet from
                 the LAN addressed to 127.0.0.1 reaches prerouting (the
                 kernel's martian check comes later, at routing), where
                 ``fib daddr type local`` would DNAT it to a container: the
                 LAN could reach ports published on the node's loopback
                 (CVE-2020-8558; Docker drops ``-d 127.0.0.1 ! -i lo`` in its
                 raw table). It runs before conntrack, so de-NATed replies
                 (still addressed to the gateway there) pass. Rendered
                 whenever the table is.
``prerouting``   nat, hook prerouting, priority dstnat (-100). Per published
                 port: ``fib daddr type local`` (host IP 0.0.0.0) or
                 ``ip daddr <host_ip>``, then ``dnat ip to <ctr>:<port>``.
                 Traffic from the container's own bridge is DNATed too (what
                 Docker does with the userland proxy off). Ports on a
                 loopback host IP are left out: only the node reaches them.
``output``       nat, hook output, priority -100 (nft 1.0.6 only accepts the
                 name ``dstnat`` at prerouting): the same DNAT for packets the
                 node sends itself, 127.0.0.1 included.
``forward``      filter, hook forward, priority filter (0), policy accept.
                 ``accept`` here is not final (other tables' base chains still
                 see the packet), so the table only *drops* what netkit
                 isolates and leaves the node's own firewall in charge of the
                 rest. Order matters:

                 1. ``ct state established,related accept``: replies, and
                    connections admitted before (as Docker's DOCKER-CT);
                 2. internal networks: ``iifname br oifname != br drop`` and
                    ``oifname br iifname != br drop`` (nothing in or out; the
                    node itself and the gateway address are input/output,
                    not forward, so they stay reachable);
                 3. icc=false: ``iifname br oifname br drop``. The forward
                    hook sees traffic between two ports of one bridge only
                    when br_netfilter is on (bridge-nf-call-iptables=1); the
                    bridge table below covers the other case;
                 4. published ports: ``ct status dnat ip daddr <ctr> oifname br
                    <proto> dport <port> accept``: connections that came in
                    through the node's address:port (any source, other
                    networks included); the container's own address stays
                    unreachable from outside its network, as with Docker
                    28's direct-routing protection.
                    They come after 2 and 3 so they cannot open a hole in an
                    internal network;
                 5. isolation: ``iifname != br oifname br drop`` for every
                    non-internal bridge: nothing enters a network from another
                    network or from outside except 1 and 4. Leaving it
                    (``iifname br oifname eth0``) matches no drop: accepted.
``postrouting``  nat, hook postrouting, priority srcnat (100):
                 ``ip saddr <subnet> oifname != br masquerade`` (or ``snat ip
                 to <host_ipv4>``), ``ip6 saddr ... masquerade`` for IPv6
                 subnets, for non-internal networks with masquerade on; per
                 published port the hairpin ``ip saddr <ctr> ip daddr <ctr>
                 <proto> dport <port> masquerade`` (a container reaching its
                 own published port); and ``ip saddr 127.0.0.0/8 oifname br
                 masquerade`` for bridges with ports reachable at 127.0.0.1,
                 so replies come back to a routable address.

``table bridge netkit`` exists only when some network has icc=false: chain
``forward`` (filter, hook forward, priority filter) holds ``ip daddr <subnet>
drop`` / ``ip6 daddr <subnet> drop``. The bridge family's forward hook sees
only frames bridged from one port to another, never traffic to or from the
node (that is bridge input/output), so this blocks container-to-container
traffic inside the network and nothing else. The kernel may lack
``meta ibrname`` (CONFIG_NFT_BRIDGE_META), hence the destination subnet
identifies the network's bridge (subnets of a node's networks do not overlap).

Ports whose bridge belongs to an internal network are not published (Docker
does not program ports on ``--internal`` networks). A published port is
IPv4 (host and container addresses) or IPv6 (both): ``::`` is every local
IPv6 address of the node but ``::1`` (Docker's ``[::]`` binding; there is no
``route_localnet`` for IPv6, so loopback cannot be DNATed to a bridge), and
its rules say ``ip6`` / ``dnat ip6 to [addr]:port``. The filtering rules match
interfaces, so isolation, ``--internal`` and icc=false hold for both
families. Empty inputs render ``render_delete()``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from netkit.errors import InvalidArgument

TABLE = "netkit"
PROTOCOLS = ("tcp", "udp", "sctp")
LOOPBACK_V4 = ipaddress.ip_network("127.0.0.0/8")
# An interface name as the kernel accepts it (IFNAMSIZ-1), minus what could
# break out of an nft string.
_IFNAME = re.compile(r'[^\s"\'/\\;{}#]{1,15}')


@dataclass(frozen=True, slots=True)
class FwNetwork:
    """A network as the firewall sees it."""

    name: str
    bridge: str                       # Linux bridge of the network (or the macvlan/overlay egress bridge)
    subnets: tuple[str, ...]          # CIDRs, IPv4 and/or IPv6
    internal: bool = False
    icc: bool = True                  # com.docker.network.bridge.enable_icc
    masquerade: bool = True           # com.docker.network.bridge.enable_ip_masquerade
    snat_ipv4: str | None = None      # com.docker.network.host_ipv4: SNAT to it instead of masquerade


@dataclass(frozen=True, slots=True)
class FwPort:
    """One published port: host_ip:host_port/proto -> container_ip:container_port."""

    proto: str                        # "tcp" | "udp" | "sctp"
    host_ip: str                      # "0.0.0.0" / "::" (every local address) or one address
    host_port: int
    container_ip: str
    container_port: int
    bridge: str                       # bridge of the container's network


def render_delete() -> str:
    """The script that removes netkit's tables (and succeeds if they are absent)."""
    return "".join(f"table {family} {TABLE}\ndelete table {family} {TABLE}\n"
                   for family in ("inet", "bridge"))


delete_script = render_delete


def needs_route_localnet(ports: Iterable[FwPort]) -> bool:
    """True if a port is reachable at 127.0.0.1, which needs
    ``net.ipv4.conf.all.route_localnet=1`` in the node (DNAT from loopback
    to a bridge is otherwise dropped as martian)."""
    return any(_localhost_reachable(p) for p in ports)


def render(networks: Sequence[FwNetwork], ports: Sequence[FwPort]) -> str:
    """The complete script that replaces netkit's tables with this state."""
    nets = sorted(networks, key=lambda n: (n.bridge, n.name))
    for net in nets:
        _check_network(net)
    for port in ports:
        _check_port(port)
    if not nets and not ports:
        return render_delete()
    internal = {n.bridge for n in nets if n.internal}
    published = sorted((p for p in ports if p.bridge not in internal),
                       key=lambda p: (p.proto, p.host_ip, p.host_port,
                                      p.container_ip, p.container_port, p.bridge))
    chains = [
        _chain("localnet", "filter", "prerouting", "raw",
               ['iifname != "lo" ip daddr 127.0.0.0/8 drop']),
        _chain("prerouting", "nat", "prerouting", "dstnat",
               _dnat(p for p in published if not _on_loopback(p))),
        _chain("output", "nat", "output", "-100", _dnat(published)),
        _chain("forward", "filter", "forward", "filter", _forward(nets, published)),
        _chain("postrouting", "nat", "postrouting", "srcnat", _postrouting(nets, published)),
    ]
    out = [render_delete(), _table("inet", chains)]
    no_icc = [_bridge_drop(n) for n in nets if not n.icc]
    if any(no_icc):
        out.append(_table("bridge", [_chain("forward", "filter", "forward", "filter",
                                            [r for rules in no_icc for r in rules])]))
    return "".join(out)


# --- rules -------------------------------------------------------------------

def _dnat(ports: Iterable[FwPort]) -> list[str]:
    rules = []
    for p in ports:
        if _is_v4(p.host_ip):
            match = ("meta nfproto ipv4 fib daddr type local" if p.host_ip == "0.0.0.0"
                     else f"ip daddr {p.host_ip}")
            to = f"dnat ip to {p.container_ip}:{p.container_port}"
        else:
            match = ("meta nfproto ipv6 fib daddr type local ip6 daddr != ::1" if p.host_ip == "::"
                     else f"ip6 daddr {p.host_ip}")
            to = f"dnat ip6 to [{p.container_ip}]:{p.container_port}"
        rules.append(f"{match} {p.proto} dport {p.host_port} {to}")
    return rules


def _forward(nets: Sequence[FwNetwork], ports: Sequence[FwPort]) -> list[str]:
    rules = ["ct state established,related accept"]
    for n in nets:
        if n.internal:
            rules += [f'iifname "{n.bridge}" oifname != "{n.bridge}" drop',
                      f'oifname "{n.bridge}" iifname != "{n.bridge}" drop']
    rules += [f'iifname "{n.bridge}" oifname "{n.bridge}" drop' for n in nets if not n.icc]
    # only connections that came through the port's DNAT: the container's own
    # address stays unreachable from outside its network (Docker 28's raw-table
    # "direct routing" protection), the host address:port is the way in
    rules += [f'ct status dnat {_family(p.container_ip)} daddr {p.container_ip} oifname "{p.bridge}" '
              f'{p.proto} dport {p.container_port} accept' for p in ports]
    rules += [f'iifname != "{n.bridge}" oifname "{n.bridge}" drop'
              for n in nets if not n.internal]
    return _unique(rules)


def _postrouting(nets: Sequence[FwNetwork], ports: Sequence[FwPort]) -> list[str]:
    rules = []
    for n in nets:
        if n.internal or not n.masquerade:
            continue
        for subnet in map(_cidr, n.subnets):
            if ":" in subnet:
                rules.append(f'ip6 saddr {subnet} oifname != "{n.bridge}" masquerade')
            elif n.snat_ipv4:
                rules.append(f'ip saddr {subnet} oifname != "{n.bridge}" snat ip to {n.snat_ipv4}')
            else:
                rules.append(f'ip saddr {subnet} oifname != "{n.bridge}" masquerade')
    rules += [f"{_family(p.container_ip)} saddr {p.container_ip} {_family(p.container_ip)} daddr "
              f"{p.container_ip} {p.proto} dport {p.container_port} masquerade" for p in ports]
    rules += [f'ip saddr 127.0.0.0/8 oifname "{br}" masquerade'
              for br in sorted({p.bridge for p in ports if _localhost_reachable(p)})]
    return _unique(rules)


def _bridge_drop(net: FwNetwork) -> list[str]:
    return [f"{_family(s)} daddr {s} drop" for s in map(_cidr, net.subnets)]


# --- text --------------------------------------------------------------------

def _chain(name: str, type_: str, hook: str, priority: str, rules: list[str]) -> str:
    if not rules:
        return ""
    body = "".join(f"\t\t{r}\n" for r in rules)
    return (f"\tchain {name} {{\n"
            f"\t\ttype {type_} hook {hook} priority {priority}; policy accept;\n"
            f"{body}\t}}\n")


def _table(family: str, chains: list[str]) -> str:
    return f"table {family} {TABLE} {{\n" + "".join(c for c in chains if c) + "}\n"


def _cidr(subnet: str) -> str:
    """The network of a CIDR, host bits cleared (``10.0.0.1/24`` -> ``10.0.0.0/24``)."""
    return str(ipaddress.ip_network(subnet, strict=False))


def _family(address: str) -> str:
    """The nft payload family of an address or CIDR: ``ip`` or ``ip6``."""
    return "ip6" if ":" in address else "ip"


def _unique(rules: list[str]) -> list[str]:
    return list(dict.fromkeys(rules))


def _on_loopback(p: FwPort) -> bool:
    return ipaddress.ip_address(p.host_ip) in LOOPBACK_V4 or p.host_ip == "::1"


def _localhost_reachable(p: FwPort) -> bool:
    """Reachable at 127.0.0.1 (IPv4 only: IPv6 has no route_localnet)."""
    return p.host_ip == "0.0.0.0" or ipaddress.ip_address(p.host_ip) in LOOPBACK_V4


# --- validation (the text goes to nft: nothing may break out of it) -------------

def _check_ifname(name: str, what: str) -> None:
    if not isinstance(name, str) or not _IFNAME.fullmatch(name):
        raise InvalidArgument(f"invalid bridge name for {what}: {name!r}")


def _check_network(net: FwNetwork) -> None:
    _check_ifname(net.bridge, f"network {net.name}")
    for subnet in net.subnets:
        try:
            ipaddress.ip_network(subnet, strict=False)
        except (ValueError, TypeError):
            raise InvalidArgument(f"invalid subnet {subnet!r} in network {net.name}") from None
    if net.snat_ipv4 is not None and not _is_v4(net.snat_ipv4):
        raise InvalidArgument(f"invalid host_ipv4 {net.snat_ipv4!r} in network {net.name}")


def _check_port(p: FwPort) -> None:
    what = f"{p.host_ip}:{p.host_port}/{p.proto}"
    if p.proto not in PROTOCOLS:
        raise InvalidArgument(f"invalid proto: {p.proto!r}")
    for port in (p.host_port, p.container_port):
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise InvalidArgument(f"invalid port {port!r} in mapping {what}")
    if _version(p.host_ip) is None or _version(p.host_ip) != _version(p.container_ip):
        raise InvalidArgument(f"published ports need host and container addresses of one "
                              f"family: {what} -> {p.container_ip}")
    _check_ifname(p.bridge, f"port {what}")


def _version(text: str) -> int | None:
    try:
        return ipaddress.ip_address(text).version
    except (ValueError, TypeError):
        return None


def _is_v4(text: str) -> bool:
    return _version(text) == 4
