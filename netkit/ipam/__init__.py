"""IPAM: choosing subnets and handing out addresses (pure Python, netaddr).

    pools.py      Docker's predefined pools, first-fit subnet choice, the ULA /48
    config.py     --subnet/--ip-range/--gateway/--aux-address -> IPAMConfig tuples
    allocator.py  addresses inside a subnet: first-free over the store's index
    addresses.py  allocate(): hold one address in a node's or the cluster's store

Nothing here touches the kernel or the disk. Only addresses.py writes, and
only through the store transaction its caller passes in; the rest is given
what is taken and returns what is chosen.
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
from netkit.ipam.addresses import allocate
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
    "allocate",
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
