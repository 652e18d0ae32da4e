"""127.0.0.11:53 redirected to the resolver's own ports, inside a container's netns.

The resolver listens on 127.0.0.11 at ports the kernel picks (UDP and TCP,
one pair per sandbox), so port 53 of the container stays free for its own
services (a DNS server may bind 0.0.0.0:53). Docker does the same with a
DNAT rule in the container's nat OUTPUT chain (DOCKER_OUTPUT) and an SNAT
rule in POSTROUTING (DOCKER_POSTROUTING). netkit rewrites the ports on the
loopback device itself, with one nftables table of the netdev family there:
ingress turns 127.0.0.11:53 into the resolver's port on the way in,
egress turns the resolver's port back into 53 on the way out::

    table netdev netkit-dns {
        chain ingress { type filter hook ingress device "lo" priority -500; policy accept;
            ip daddr 127.0.0.11 udp dport 53 udp dport set UDP
            ip daddr 127.0.0.11 tcp dport 53 tcp dport set TCP }
        chain egress { type filter hook egress device "lo" priority -500; policy accept;
            ip saddr 127.0.0.11 udp sport UDP udp sport set 53
            ip saddr 127.0.0.11 tcp sport TCP tcp sport set 53 }
    }

The effect is Docker's (a query to 127.0.0.11:53 reaches the resolver, its
answer comes from 127.0.0.11:53), but stateless: no conntrack entry per
query, nothing stale when a restarted resolver moves ports, and a packet
capture in the container still sees port 53 both ways (the rewrite happens
after the capture point on the way in and before it on the way out).

The functions here run in the calling thread's netns (the resolver calls
them on netkit.kernel.netns's worker, already inside the container's netns,
in the same trip that makes the sockets): one libnftables batch, no process.
"""

from __future__ import annotations

import re

from netkit.kernel import nftlib

TABLE = "netkit-dns"
IP = "127.0.0.11"
PORT = 53
_RULE = re.compile(r"ip daddr 127\.0\.0\.11 (udp|tcp) dport 53 \1 dport set (\d+)")


def render(udp_port: int, tcp_port: int) -> str:
    """The nft script that (re)writes the table for these ports, as one transaction."""
    hook = 'type filter hook {} device "lo" priority -500; policy accept;'
    return (f"add table netdev {TABLE}\nflush table netdev {TABLE}\n"
            f"add chain netdev {TABLE} ingress {{ {hook.format('ingress')} }}\n"
            f"add chain netdev {TABLE} egress {{ {hook.format('egress')} }}\n"
            f"add rule netdev {TABLE} ingress ip daddr {IP} udp dport {PORT} "
            f"udp dport set {udp_port}\n"
            f"add rule netdev {TABLE} ingress ip daddr {IP} tcp dport {PORT} "
            f"tcp dport set {tcp_port}\n"
            f"add rule netdev {TABLE} egress ip saddr {IP} udp sport {udp_port} "
            f"udp sport set {PORT}\n"
            f"add rule netdev {TABLE} egress ip saddr {IP} tcp sport {tcp_port} "
            f"tcp sport set {PORT}\n")


def parse(listing: str) -> tuple[int, int] | None:
    """(udp, tcp) ports that `nft list table netdev netkit-dns` redirects to, None if incomplete."""
    found = {proto: int(port) for proto, port in _RULE.findall(listing)}
    if "udp" in found and "tcp" in found:
        return found["udp"], found["tcp"]
    return None


def install(udp_port: int, tcp_port: int) -> None:
    """Write the redirect into this thread's netns (KernelError if the kernel refuses)."""
    nftlib.apply(render(udp_port, tcp_port), "redirect 127.0.0.11:53 to the resolver")


def current() -> tuple[int, int] | None:
    """The (udp, tcp) ports this thread's netns redirects 127.0.0.11:53 to, None if none."""
    rc, out, _ = nftlib.run(f"list table netdev {TABLE}")
    return parse(out) if rc == 0 else None


def remove() -> None:
    """Delete the redirect from this thread's netns (nothing to do if there is none)."""
    nftlib.run(f"delete table netdev {TABLE}")
