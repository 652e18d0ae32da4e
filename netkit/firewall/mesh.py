"""The routing mesh's nftables text (pure, no I/O): a node's rules and its ingress sandbox's.

Docker publishes an ingress port on every node with iptables DNAT rules into
its `ingress_sbox` and IPVS inside it; this kernel has no IPVS, so the
sandbox spreads connections with nftables `numgen inc` maps instead.

``table ip netkit_mesh`` in the node's netns (its own table: `inet netkit`
is regenerated from the node's store and never patched):

``prerouting``  nat, hook prerouting, priority dstnat - 1 (before the node's
                own published ports): ``ip daddr <LAN ip> tcp dport { P, ... }
                dnat ip to <sandbox>``, the node's LAN address as the LAN and
                the node's local containers reach it;
``output``      nat, hook output, priority -101: the same for connections the
                node makes itself.

``table ip netkit_mesh`` in the sandbox's netns:

``prerouting``  nat, priority dstnat: per published port ``tcp dport P dnat ip
                to numgen inc mod N map { 0 : <task> . <target>, ... }`` over
                the service's running tasks' ingress addresses (one task: a plain
                dnat; none: no rule, the sandbox refuses the connection);
``postrouting`` nat, priority srcnat: ``ip daddr <ingress subnet> ct status dnat
                snat ip to <sandbox's ingress address>``, so a task's replies
                come back through the sandbox that NATed the connection.

Each script replaces the whole table in one transaction (``nft -f``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

TABLE = "netkit_mesh"
PROTOCOLS = ("tcp", "udp")


@dataclass(frozen=True, slots=True)
class MeshPort:
    """One ingress-published port and where its connections go (task addresses, no prefix)."""

    protocol: str
    published: int
    target: int
    backends: tuple[str, ...] = ()


def _ip(value: str) -> str:
    return str(ipaddress.IPv4Address(value))       # ValueError on anything else


def _check(port: MeshPort) -> None:
    if port.protocol not in PROTOCOLS:
        raise ValueError(f"unsupported protocol {port.protocol!r}")
    for p in (port.published, port.target):
        if not isinstance(p, int) or not 1 <= p <= 65535:
            raise ValueError(f"invalid port {p!r}")
    for b in port.backends:
        _ip(b)


def _replace(body: list[str]) -> str:
    """Create-if-missing, delete, define: one atomic replacement of the table."""
    out = f"table ip {TABLE} {{}}\ndelete table ip {TABLE}\n"
    if body:
        out += f"table ip {TABLE} {{\n" + "".join(body) + "}\n"
    return out


def _chain(name: str, hook: str, priority: str, rules: list[str]) -> str:
    return (f"\tchain {name} {{\n\t\ttype nat hook {hook} priority {priority}; policy accept;\n"
            + "".join(f"\t\t{r}\n" for r in rules) + "\t}\n")


def render_delete() -> str:
    """Remove the mesh's table (none is fine)."""
    return _replace([])


def render_node(lan_ip: str, sandbox_ip: str, ports: list[MeshPort]) -> str:
    """The node's table: its LAN address's published ports into the sandbox (none: no table)."""
    lan, sandbox = _ip(lan_ip), _ip(sandbox_ip)
    for p in ports:
        _check(p)
    rules = []
    for proto in PROTOCOLS:
        published = sorted({p.published for p in ports if p.protocol == proto})
        if published:
            rules.append(f"ip daddr {lan} {proto} dport {{ {', '.join(map(str, published))} }} "
                         f"dnat ip to {sandbox}")
    if not rules:
        return _replace([])
    return _replace([_chain("prerouting", "prerouting", "dstnat - 1", rules),
                     _chain("output", "output", "-101", rules)])


def render_sandbox(ingress_ip: str, subnet: str, ports: list[MeshPort]) -> str:
    """The sandbox's table: round robin over each port's tasks, SNAT to the sandbox."""
    me = _ip(ingress_ip)
    net = ipaddress.IPv4Network(subnet, strict=False)
    rules = []
    for p in sorted(ports, key=lambda p: (p.protocol, p.published)):
        _check(p)
        backends = sorted(set(p.backends), key=ipaddress.IPv4Address)
        if len(backends) == 1:
            rules.append(f"{p.protocol} dport {p.published} dnat ip to {backends[0]}:{p.target}")
        elif backends:
            entries = ", ".join(f"{i} : {b} . {p.target}" for i, b in enumerate(backends))
            rules.append(f"{p.protocol} dport {p.published} dnat ip to numgen inc mod "
                         f"{len(backends)} map {{ {entries} }}")
    if not ports:
        return _replace([])
    return _replace([_chain("prerouting", "prerouting", "dstnat", rules),
                     _chain("postrouting", "postrouting", "srcnat",
                            [f"ip daddr {net} ct status dnat snat ip to {me}"])])
