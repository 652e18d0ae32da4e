"""Predefined address pools and the first-fit choice of a network's subnet.

Mirrors libnetwork's ``ipamutils`` defaults and ``allocatePredefinedPool``
(reference §2.1-2.2): walk the pools in order, split each into prefixes of
its size, take the lowest prefix that overlaps nothing taken. "Taken" is the
existing networks' subnets plus the host's on-link routes, so a released
subnet is reused as soon as it is the lowest gap.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable

from netkit.errors import Exhausted, InvalidArgument
from netkit.ipam.allocator import BITS, int_to_ip, ip_to_int, parse_cidr, span

# Docker's localScopeDefaultNetworks as (base, size): 15 /16s, then 16 /20s.
DEFAULT_LOCAL_POOLS: tuple[tuple[str, int], ...] = (
    ("172.17.0.0/16", 16),
    ("172.18.0.0/16", 16),
    ("172.19.0.0/16", 16),
    ("172.20.0.0/14", 16),
    ("172.24.0.0/14", 16),
    ("172.28.0.0/14", 16),
    ("192.168.0.0/16", 20),
)
# globalScopeDefaultNetworks: swarm-scope (overlay) networks.
DEFAULT_GLOBAL_POOLS: tuple[tuple[str, int], ...] = (("10.0.0.0/8", 24),)


def prefix_range(text: str) -> tuple[int, int, int]:
    """``(family, first, last)`` of a CIDR, leniently.

    Used for what the system reports (routes, interface addresses,
    nameservers): host bits are masked, a bare address is a /32 or /128.
    """
    if "/" not in text:
        family, value = ip_to_int(text)
        return family, value, value
    family, value, plen = parse_cidr(text)
    return (family, *span(family, value, plen))


def overlaps(a: str, b: str) -> bool:
    """Whether two prefixes share an address; different families never do."""
    fa, first_a, last_a = prefix_range(a)
    fb, first_b, last_b = prefix_range(b)
    return fa == fb and first_a <= last_b and first_b <= last_a


def _merged(taken: Iterable[str], family: int) -> tuple[list[int], list[int]]:
    """Taken prefixes of one family as sorted, disjoint [start, end] ranges.

    Disjoint ranges have ascending ends too, so one bisect on the ends finds
    the first range that can touch a candidate.
    """
    ranges = sorted(r[1:] for r in map(prefix_range, taken) if r[0] == family)
    starts: list[int] = []
    ends: list[int] = []
    for start, end in ranges:
        if ends and start <= ends[-1] + 1:
            ends[-1] = max(ends[-1], end)
        else:
            starts.append(start)
            ends.append(end)
    return starts, ends


def choose_subnet(
    taken: Iterable[str],
    *,
    pools: Iterable[tuple[str, int]] = DEFAULT_LOCAL_POOLS,
    prefixlen: int | None = None,
) -> str:
    """The lowest free subnet of the first pool that has one (first fit).

    ``prefixlen`` asks for that size instead of each pool's own (Docker's
    ``--subnet 0.0.0.0/24``); only pools split at that size or coarser can
    serve it. Cost: sorting ``taken``, then one jump per taken range met,
    never one test per candidate (10.0.0.0/8 in /24s is 65,536 of them).
    """
    taken = list(taken)
    merged: dict[int, tuple[list[int], list[int]]] = {}
    usable = False
    for base, size in pools:
        family, value, base_len = parse_cidr(base)
        if size < base_len or size > BITS[family]:
            raise InvalidArgument(f"invalid address pool {base}: size {size} does not fit")
        plen = size if prefixlen is None else prefixlen
        if plen < size or plen > BITS[family]:
            continue
        usable = True
        if family not in merged:
            merged[family] = _merged(taken, family)
        starts, ends = merged[family]
        pool_first, pool_last = span(family, value, base_len)
        step = 1 << (BITS[family] - plen)
        candidate = pool_first
        i = bisect.bisect_left(ends, candidate)
        while candidate + step - 1 <= pool_last:
            while i < len(ends) and ends[i] < candidate:
                i += 1
            if i == len(starts) or starts[i] > candidate + step - 1:
                return f"{int_to_ip(candidate, family)}/{plen}"
            # Jump past the overlapping range, aligned up to the candidate size.
            candidate = (ends[i] + step) // step * step
    if not usable:
        raise InvalidArgument("invalid address pool")
    raise Exhausted("all predefined address pools have been fully subnetted")


def ula_base(seed: str) -> str:
    """The host's ULA /48, as Docker's ``deriveULABaseNetwork``.

    Global ID = the 40 low bits of the first 8 bytes of sha256(seed), after
    ``fd``. The seed (Docker: the host ID) keeps it stable across restarts.
    """
    digest = hashlib.sha256(seed.encode()).digest()
    global_id = int.from_bytes(digest[:8], "big") & ((1 << 40) - 1)
    return f"{int_to_ip((0xFD << 120) | (global_id << 80), 6)}/48"


def choose_subnet_v6(taken: Iterable[str], seed: str, *, prefixlen: int | None = None) -> str:
    """The first free /64 (or ``prefixlen``) of the host's ULA /48, for ``--ipv6``
    without ``--subnet``."""
    return choose_subnet(taken, pools=((ula_base(seed), 64),), prefixlen=prefixlen)
