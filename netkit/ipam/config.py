"""From ``--subnet/--ip-range/--gateway/--aux-address`` to validated IPAM configs.

The checks run in Docker's order: the CLI's ``consolidateIpam`` first (each
range, gateway and aux address goes to the given subnet that contains it),
then the daemon's ``validateIpamConfig``, then the pool overlap check
(reference §2.4-2.6). Messages are Docker's, on one line: where the daemon
prefixes ``invalid network config:\\n``, netkit drops the prefix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from netkit.errors import Conflict, InvalidArgument
from netkit.ipam.allocator import BITS, int_to_ip, ip_to_int, parse_cidr, pool_of, span
from netkit.ipam.pools import DEFAULT_LOCAL_POOLS, choose_subnet, choose_subnet_v6, overlaps
from netkit.model import IPAMConfig

_MULTICAST_V6 = span(6, 0xFF << 120, 8)
_MULTICAST_V4 = span(4, 224 << 24, 4)
_LOOPBACK_V4 = span(4, 127 << 24, 8)
_LOOPBACK_V6 = (1, 1)
_LINK_LOCAL_V6 = span(6, 0xFE80 << 112, 64)


@dataclass(slots=True)
class _Entry:
    """One ``--subnet`` while it is being filled in."""

    given: str                       # as the user wrote it, for messages
    family: int
    value: int                       # the address as written (host bits kept)
    prefixlen: int
    ip_range: str | None = None
    gateway: str | None = None
    aux: dict[str, str] = field(default_factory=dict)

    @property
    def first(self) -> int:
        return span(self.family, self.value, self.prefixlen)[0]

    @property
    def last(self) -> int:
        return span(self.family, self.value, self.prefixlen)[1]

    @property
    def size_only(self) -> bool:
        """``0.0.0.0/24`` or ``::/56``: "any pool, but this size" (Docker's RequestPool)."""
        return self.value == 0

    @property
    def cidr(self) -> str:
        return f"{int_to_ip(self.first, self.family)}/{self.prefixlen}"

    def contains(self, family: int, value: int) -> bool:
        return family == self.family and self.first <= value <= self.last


def _parse_subnet(text: str) -> _Entry:
    try:
        family, value, plen = parse_cidr(text)
    except InvalidArgument as exc:
        raise InvalidArgument(f"invalid subnet: {exc}") from None
    entry = _Entry(text, family, value, plen)
    if entry.first != value:
        raise InvalidArgument(f"invalid subnet {text}: it should be {entry.cidr}")
    if not entry.size_only:
        _usable(entry, text)
    # Docker's validateIPv6Subnet: the kernel's fe80::/64 is on every link.
    if (family == 6 and (entry.first, entry.last) != _LINK_LOCAL_V6
            and entry.first <= _LINK_LOCAL_V6[1] and _LINK_LOCAL_V6[0] <= entry.last):
        raise InvalidArgument(f"'{text}' clashes with the Link-Local prefix 'fe80::/64'")
    return entry


def _usable(entry: _Entry, text: str) -> None:
    """Subnets no container address can come from: multicast (IPv6: Docker's
    validateIPv6Subnet; IPv4 the same), loopback, and the IPv4 broadcast."""
    def within(block: tuple[int, int]) -> bool:
        return entry.first <= block[1] and block[0] <= entry.last
    if within(_MULTICAST_V6 if entry.family == 6 else _MULTICAST_V4):
        raise InvalidArgument(f"multicast subnet '{text}' is not allowed")
    if within(_LOOPBACK_V6 if entry.family == 6 else _LOOPBACK_V4):
        raise InvalidArgument(f"loopback subnet '{text}' is not allowed")
    if entry.family == 4 and entry.last == (1 << 32) - 1:
        raise InvalidArgument(f"subnet '{text}' holds the broadcast address 255.255.255.255")


def _match(entries: Sequence[_Entry], family: int, value: int) -> _Entry | None:
    """The given subnet containing an address; given subnets never overlap."""
    return next((e for e in entries if not e.size_only and e.contains(family, value)), None)


def _add_range(entries: Sequence[_Entry], text: str) -> None:
    try:
        family, value, plen = parse_cidr(text)
    except InvalidArgument as exc:
        raise InvalidArgument(f"invalid ip-range: {exc}") from None
    # Like the CLI, match on the range's first address as written.
    entry = _match(entries, family, value)
    if entry is None:
        raise InvalidArgument(f"no matching subnet for range {text}")
    if entry.ip_range is not None:
        raise InvalidArgument(
            f"cannot configure multiple ranges ({text}, {entry.ip_range}) on the same subnet ({entry.given})")
    # Docker's validateIPRange order: size first, then host bits.
    if plen < entry.prefixlen:
        raise InvalidArgument(
            f"invalid ip-range {text}: CIDR block is bigger than its parent subnet {entry.given}")
    first, _ = span(family, value, plen)
    if first != value:
        raise InvalidArgument(f"invalid ip-range {text}: it should be {int_to_ip(first, family)}/{plen}")
    entry.ip_range = text
    pool = pool_of(IPAMConfig(entry.cidr, f"{int_to_ip(first, family)}/{plen}"))
    if pool.first > pool.last:       # e.g. only the network or broadcast address
        raise InvalidArgument(f"invalid ip-range {text}: it holds no usable address of {entry.given}")


def _add_gateway(entries: Sequence[_Entry], text: str) -> None:
    try:
        family, value = ip_to_int(text)
    except InvalidArgument:
        raise InvalidArgument(f"invalid gateway address: {text}") from None
    entry = _match(entries, family, value)
    if entry is None:
        raise InvalidArgument(f"no matching subnet for gateway {text}")
    if entry.gateway is not None:
        raise InvalidArgument(f"cannot configure multiple gateways ({text}, {entry.gateway}) "
                              f"for the same subnet ({entry.given})")
    entry.gateway = int_to_ip(value, family)


def _add_aux(entries: Sequence[_Entry], name: str, text: str) -> None:
    try:
        family, value = ip_to_int(text)
    except InvalidArgument:
        raise InvalidArgument(f"invalid aux-address {name}={text}: not an IP address") from None
    entry = _match(entries, family, value)
    if entry is None:
        raise InvalidArgument(f"no matching subnet for aux-address {text}")
    entry.aux[name] = int_to_ip(value, family)


def build_ipam(
    subnets: Iterable[str],
    ip_ranges: Iterable[str],
    gateways: Iterable[str],
    aux: Mapping[str, str],
    *,
    ipv4: bool = True,
    ipv6: bool = False,
    taken: Iterable[str] = (),
    skip_gateway: bool = False,
    v6_seed: str = "",
    pools: Iterable[tuple[str, int]] = DEFAULT_LOCAL_POOLS,
    one_subnet_per_family: bool = False,
) -> tuple[IPAMConfig, ...]:
    """Validate a network's address flags and fill in what was left out.

    ``taken``: the subnets of existing networks and the host's on-link
    routes. A family without ``--subnet`` gets the first free subnet of
    ``pools`` (IPv4) or of the ULA /48 derived from ``v6_seed`` (IPv6). An
    IPv6 ``--subnet`` enables IPv6 even without ``ipv6=True``: asking for the
    subnet says what is wanted (older Docker silently dropped it instead).
    An IPv4 ``--subnet`` with ``ipv4=False`` is a contradiction and refused.
    ``skip_gateway``: no automatic gateway (macvlan; a given one is kept).
    Returns IPv4 configs first, with normalised text.
    """
    subnets, ip_ranges, gateways = list(subnets), list(ip_ranges), list(gateways)
    taken = list(taken)
    if len(subnets) < len(ip_ranges) or len(subnets) < len(gateways):
        raise InvalidArgument("every ip-range or gateway must have a corresponding subnet")
    entries = [_parse_subnet(s) for s in subnets]
    for i, a in enumerate(entries):
        for b in entries[:i]:
            if a.family == b.family and a.first <= b.last and b.first <= a.last:
                raise InvalidArgument("multiple overlapping subnet configuration is not supported")
    if one_subnet_per_family and any(
            sum(e.family == f for e in entries) > 1 for f in BITS):
        raise InvalidArgument("bridge driver doesn't support multiple subnets")
    for r in ip_ranges:
        _add_range(entries, r)
    for g in gateways:
        _add_gateway(entries, g)
    for name, ip in aux.items():
        _add_aux(entries, name, ip)

    ipv6 = ipv6 or any(e.family == 6 for e in entries)
    if not ipv4 and not ipv6:
        raise InvalidArgument("IPv4 or IPv6 must be enabled")
    for e in entries:
        if e.family == 4 and not ipv4:
            raise InvalidArgument(f"invalid subnet {e.given}: IPv4 is disabled")
        if not e.size_only:
            for t in taken:
                if overlaps(e.cidr, t):
                    raise Conflict("invalid pool request: Pool overlaps with other one on this address space")

    # Automatic subnets must avoid the given ones as well as the taken ones.
    taken += [e.cidr for e in entries if not e.size_only]
    pools = tuple(pools)
    configs: list[tuple[str, _Entry | None]] = []
    for e in entries:
        if e.size_only:
            chosen = _choose(e.family, taken, pools, v6_seed, e.prefixlen)
            configs.append((chosen, None))
            taken.append(chosen)
        else:
            configs.append((e.cidr, e))
    for family, wanted in ((4, ipv4), (6, ipv6)):
        if wanted and not any(e.family == family for e in entries):
            subnet = _choose(family, taken, pools, v6_seed, None)
            configs.append((subnet, None))
            taken.append(subnet)

    out = [_config(subnet, e, skip_gateway) for subnet, e in configs]
    return tuple(sorted(out, key=lambda c: c.family))


def _choose(family: int, taken: list[str], pools: tuple[tuple[str, int], ...],
            v6_seed: str, prefixlen: int | None) -> str:
    if family == 4:
        return choose_subnet(taken, pools=pools, prefixlen=prefixlen)
    return choose_subnet_v6(taken, v6_seed, prefixlen=prefixlen)


def _config(subnet: str, entry: _Entry | None, skip_gateway: bool) -> IPAMConfig:
    ip_range: str | None = None
    gateway = entry.gateway if entry else None
    if entry and entry.ip_range:
        family, value, plen = parse_cidr(entry.ip_range)
        ip_range = f"{int_to_ip(value, family)}/{plen}"
    if gateway is None and not skip_gateway:
        # Docker takes the first free address of the pool endpoints draw
        # from: the range's first address, or the subnet's first host.
        pool = pool_of(IPAMConfig(subnet, ip_range))
        gateway = int_to_ip(pool.first, pool.family)
    return IPAMConfig(subnet, ip_range, gateway, dict(entry.aux) if entry else {})
