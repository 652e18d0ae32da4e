"""IPAM: choosing subnets and handing out addresses (pure Python, netaddr).

    pools.py      Docker's predefined pools, first-fit subnet choice, the ULA /48
    config.py     --subnet/--ip-range/--gateway/--aux-address -> IPAMConfig tuples
    allocator.py  addresses inside a subnet: first-free over the store's index

Nothing here touches the kernel, the store or the disk: callers pass in what
is taken and persist what is chosen.
"""

from __future__ import annotations

from netkit.ipam.allocator import (
    AddressPool,
    check_static,
    first_free,
    from_key,
    int_to_ip,
    ip_to_int,
    parse_cidr,
    pool_of,
    random_mac,
    reserved,
    to_key,
    validate_mac,
)
from netkit.ipam.config import build_ipam
from netkit.ipam.pools import (
    DEFAULT_GLOBAL_POOLS,
    DEFAULT_LOCAL_POOLS,
    choose_subnet,
    choose_subnet_v6,
    overlaps,
    ula_base,
)

__all__ = [
    "DEFAULT_GLOBAL_POOLS",
    "DEFAULT_LOCAL_POOLS",
    "AddressPool",
    "build_ipam",
    "check_static",
    "choose_subnet",
    "choose_subnet_v6",
    "first_free",
    "from_key",
    "int_to_ip",
    "ip_to_int",
    "overlaps",
    "parse_cidr",
    "pool_of",
    "random_mac",
    "reserved",
    "to_key",
    "ula_base",
    "validate_mac",
]
