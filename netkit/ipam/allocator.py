"""Addresses inside a subnet: the hot path of every container start.

Docker keeps a bitmap per subnet. netkit keeps no per-address table at all,
so a /8 costs what a /24 costs: a pool is six integers, the store keeps the
allocated addresses as fixed-width hex keys (string order == numeric order,
so an ordinary index answers "taken addresses >= x"), and first_free() walks
that index from a hint, reading only the run of taken addresses at the hint.

Allocation is first-free (lowest free address), as Docker does for local
networks (reference §2.3).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import netaddr

from netkit.errors import Exhausted, InvalidArgument
from netkit.model import IPAMConfig

BITS = {4: 32, 6: 128}
_MAC = re.compile(r"[0-9a-f]{2}([:-])[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}")


def ip_to_int(ip: str) -> tuple[int, int]:
    """``"10.0.0.1"`` -> ``(4, 167772161)``.

    Strict, like Go's ParseIP: no prefix, no zone, no short or octal forms.
    """
    if not isinstance(ip, str):
        raise InvalidArgument(f"invalid IP address: {ip}")
    try:
        addr = netaddr.IPAddress(ip)
    except (netaddr.AddrFormatError, ValueError):
        raise InvalidArgument(f"invalid IP address: {ip}") from None
    return addr.version, int(addr)


def int_to_ip(value: int, family: int) -> str:
    """The canonical text of an address (RFC 5952 for IPv6)."""
    return str(netaddr.IPAddress(value, family))


@functools.lru_cache(maxsize=4096)
def parse_cidr(cidr: str) -> tuple[int, int, int]:
    """``"10.1.2.3/16"`` -> ``(4, 0x0a010203, 16)``: family, address as written, length.

    Host bits are kept so callers can say "it should be ..." (Docker does).
    Cached: the same few subnets are parsed on every allocation.
    """
    addr, sep, length = cidr.partition("/") if isinstance(cidr, str) else ("", "", "")
    try:
        family, value = ip_to_int(addr)
    except InvalidArgument:
        raise InvalidArgument(f"invalid CIDR address: {cidr}") from None
    if not sep or not (length.isascii() and length.isdigit()) or int(length) > BITS[family]:
        raise InvalidArgument(f"invalid CIDR address: {cidr}")
    return family, value, int(length)


def span(family: int, value: int, prefixlen: int) -> tuple[int, int]:
    """First and last address of the prefix holding ``value``."""
    host = (1 << (BITS[family] - prefixlen)) - 1
    first = value & ~host
    return first, first | host


def to_key(value: int, family: int) -> str:
    """Fixed-width lowercase hex, so the store's string order is numeric order."""
    return f"{value:08x}" if family == 4 else f"{value:032x}"


def from_key(key: str) -> int:
    return int(key, 16)


@dataclass(frozen=True, slots=True)
class AddressPool:
    """Where dynamic addresses come from: [first, last] within the subnet.

    ``first > last`` means the pool is empty (only static addresses possible).
    """

    family: int
    prefixlen: int
    subnet_first: int
    subnet_last: int
    first: int
    last: int


def pool_of(cfg: IPAMConfig) -> AddressPool:
    """The dynamic range of one IPAM config.

    Excluded, as in Docker: the IPv4 network and broadcast addresses (kept
    for /31 and /32, RFC 3021) and the IPv6 subnet-router anycast address
    (kept for /127 and /128, RFC 6164, where both addresses are hosts).
    """
    family, value, plen = parse_cidr(cfg.subnet)
    net, bcast = span(family, value, plen)
    first, last = net, bcast
    if cfg.ip_range:
        rfam, rvalue, rplen = parse_cidr(cfg.ip_range)
        if rfam == family:
            rfirst, rlast = span(rfam, rvalue, rplen)
            first, last = max(first, rfirst), min(last, rlast)
    if family == 4 and plen < 31:
        first, last = max(first, net + 1), min(last, bcast - 1)
    elif family == 6 and plen < 127:
        first = max(first, net + 1)
    return AddressPool(family, plen, net, bcast, first, last)


def reserved(cfg: IPAMConfig) -> dict[int, str]:
    """Addresses the network itself holds: never handed to a container.

    Aux addresses outside the ip-range are reserved too (Docker does not),
    so a static ``--ip`` cannot land on them.
    """
    family, value, plen = parse_cidr(cfg.subnet)
    net, bcast = span(family, value, plen)
    out: dict[int, str] = {}
    if cfg.gateway:
        gfam, gw = ip_to_int(cfg.gateway)
        if gfam == family and net <= gw <= bcast:
            out[gw] = "gateway"
    for name, ip in cfg.aux.items():
        afam, addr = ip_to_int(ip)
        if afam == family and net <= addr <= bcast:
            out.setdefault(addr, f"aux:{name}")
    return out


def first_free(
    pool: AddressPool,
    taken_from: Callable[[int], Iterable[int]],
    hint: int | None = None,
    *,
    label: str = "",
) -> int:
    """The lowest free address of ``pool`` at or above ``hint``.

    ``taken_from(start)`` yields the taken addresses >= start in ascending
    order (an indexed range query in the store); it may run past pool.last.
    Reading stops at the first gap, so the cost is the length of the run of
    taken addresses at the hint, never the size of the subnet.

    Hint invariant, kept by the caller: every address in [pool.first, hint)
    is taken. Store ``hint = allocated + 1`` after allocating and
    ``hint = min(hint, released)`` after releasing. ``None`` means pool.first.
    """
    candidate = pool.first if hint is None else max(pool.first, hint)
    if candidate <= pool.last:
        for taken in taken_from(candidate):
            if taken < candidate:       # tolerate a sloppy query
                continue
            if taken > candidate:       # a gap: candidate is free
                break
            candidate += 1
            if candidate > pool.last:
                break
        if candidate <= pool.last:
            return candidate
    raise Exhausted(f"no available IPv{pool.family} addresses on this network's address pools: {label}")


def check_static(cfgs: Sequence[IPAMConfig], ip: str) -> tuple[IPAMConfig, int]:
    """The config whose subnet holds a static ``--ip``/``--ip6``, and the address.

    Anywhere in the subnet is fine, also outside the ip-range (Docker
    recommends exactly that). Whether the address is free is the store's
    question, not this one's.
    """
    try:
        family, value = ip_to_int(ip)
    except InvalidArgument:
        guess = 6 if isinstance(ip, str) and ":" in ip else 4
        raise InvalidArgument(f"invalid IPv{guess} address: {ip}") from None
    for cfg in cfgs:
        sfam, svalue, plen = parse_cidr(cfg.subnet)
        if sfam != family:
            continue
        net, bcast = span(sfam, svalue, plen)
        if not net <= value <= bcast:
            continue
        if family == 4 and plen < 31 and value in (net, bcast):
            what = "network or broadcast address"
        elif family == 6 and plen < 127 and value == net:
            what = "subnet-router anycast address"
        else:
            return cfg, value
        raise InvalidArgument(f"requested address is out of range: {ip} is the {what} of {cfg.subnet}")
    raise InvalidArgument(f"no configured subnet contains IP address {ip}")


def random_mac() -> str:
    """A random locally administered unicast MAC.

    Docker used to derive ``02:42:<ip>``; now it is random, which also keeps
    a reused IP from meeting a stale neighbour entry with the old MAC.
    """
    octets = bytearray(os.urandom(6))
    octets[0] = (octets[0] | 0x02) & 0xFE    # locally administered, unicast
    return ":".join(f"{b:02x}" for b in octets)


def validate_mac(mac: str) -> str:
    """``"AA-BB-CC-DD-EE-FF"`` -> ``"aa:bb:cc:dd:ee:ff"``.

    Multicast and all-zero MACs are refused here, because the kernel refuses
    them later with a bare EADDRNOTAVAIL.
    """
    text = mac.strip().lower() if isinstance(mac, str) else ""
    if not _MAC.fullmatch(text):
        raise InvalidArgument(f"invalid MAC address: {mac}")
    octets = [int(part, 16) for part in re.split(r"[:-]", text)]
    if octets[0] & 0x01 or not any(octets):
        raise InvalidArgument(f"invalid MAC address: {mac}")
    return ":".join(f"{b:02x}" for b in octets)
