"""Service VIPs inside a container's netns: one nftables table that DNATs them to the tasks.

A swarm service in vip mode has one virtual address on each of its
networks (`Service.vips`). Docker programs IPVS in every container's
netns; this kernel has no IPVS (no ip_vs module), so netkit does the same
with nftables: one table of the ip family per container netns, rewritten
whole in one transaction whenever that container's VIPs or their backends
change (netkit/services/lb.py decides when)::

    table ip netkit-lb {
        chain nat { type nat hook output priority -100; policy accept;
            ip daddr 10.0.9.2 meta l4proto { tcp, udp }
                dnat to numgen inc mod 3 map { 0 : 10.0.9.5, 1 : 10.0.9.6, 2 : 10.0.9.7 } }
        chain refuse { type filter hook output priority 0; policy accept;
            ip daddr 10.0.9.3 meta l4proto tcp reject with tcp reset
            ip daddr 10.0.9.3 meta l4proto udp reject }
    }

Connections to VIP:any port (tcp and udp) from the container go round
robin to the backends (`numgen inc`: a counter per rule, so per container,
as IPVS's rr per sandbox); the NAT binding lives in conntrack, so a
connection stays on its task after the table changed, while new ones only
see the tasks that are left. A VIP with no backend is refused at once
(a reset for tcp, port unreachable for udp) instead of leaving the
connection to time out.

`render` is pure; the rest run libnftables in-process on
netkit.kernel.netns's worker, inside the container's netns (as
netkit/dns/redirect.py does for the resolver's port redirect).
"""

from __future__ import annotations

import os
from typing import Iterable, Sequence

from netkit.kernel import netns as knetns
from netkit.kernel import nftlib

TABLE = "netkit-lb"

Vip = tuple[str, Sequence[str]]          # (VIP address, backend addresses in rotation order)


def _rule(vip: str, backends: Sequence[str]) -> list[str]:
    if not backends:
        return [f"add rule ip {TABLE} refuse ip daddr {vip} meta l4proto tcp reject with tcp reset",
                f"add rule ip {TABLE} refuse ip daddr {vip} meta l4proto udp reject"]
    if len(backends) == 1:
        target = backends[0]
    else:
        pairs = ", ".join(f"{i} : {b}" for i, b in enumerate(backends))
        target = f"numgen inc mod {len(backends)} map {{ {pairs} }}"
    return [f"add rule ip {TABLE} nat ip daddr {vip} meta l4proto {{ tcp, udp }} dnat to {target}"]


def render(vips: Iterable[Vip]) -> str:
    """The nft script that (re)writes the table for `vips` as one transaction (pure).
    The VIPs are written in address order; each VIP's backends in the order given."""
    lines = [f"add table ip {TABLE}", f"flush table ip {TABLE}",
             f"add chain ip {TABLE} nat {{ type nat hook output priority -100; policy accept; }}",
             f"add chain ip {TABLE} refuse {{ type filter hook output priority 0; "
             "policy accept; }"]
    for vip, backends in sorted(vips, key=lambda v: tuple(int(x) for x in v[0].split("."))):
        lines += _rule(vip, backends)
    return "\n".join(lines) + "\n"


def netns_id(netns: str) -> int | None:
    """The inode of netns `netns` (a netns made again under the same name has another one),
    None if it is gone."""
    try:
        return os.stat(knetns.netns_path(netns)).st_ino
    except FileNotFoundError:
        return None


def install(netns: str, script: str) -> None:
    """Run `script` (from `render`) in netns `netns`; KernelError if the kernel refuses it,
    NotFound if the netns is gone."""
    knetns.run_in(netns, lambda: nftlib.apply(script, f"program service VIPs in netns {netns}"))


def remove(netns: str) -> None:
    """Delete the table from netns `netns` (nothing to do if there is none; NotFound if the
    netns is gone)."""
    knetns.run_in(netns, lambda: nftlib.run(f"delete table ip {TABLE}"))


def current(netns: str) -> str | None:
    """`nft list table ip netkit-lb` in netns `netns`, None if there is no such table."""
    rc, out, _ = knetns.run_in(netns, lambda: nftlib.run(f"list table ip {TABLE}"))
    return out if rc == 0 else None
