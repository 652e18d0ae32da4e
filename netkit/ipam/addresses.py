"""Holding one address of a network in a store: the static one asked for, or the lowest free.

`allocate()` serves both scopes: the node's store (local networks, which
keep a first-free hint per pool) and the cluster store (swarm networks,
cluster-wide). Both pass their transaction as `rows`, which has the
address rows of netkit.store.sqlite.AddressRows (+ the pool hints of a
node store). The choice itself is allocator.py's (pure).
"""

from __future__ import annotations

from typing import Any

from netkit.errors import Conflict, InvalidArgument
from netkit.ipam.allocator import check_static, first_free, from_key, int_to_ip, pool_of, to_key
from netkit.model import Network


def allocate(rows: Any, net: Network, family: int, static: str | None, owner: str, *,
             hints: bool) -> str | None:
    """Hold an address for `owner` in `net` in `rows` (a node or cluster store
    transaction, see store.sqlite.AddressRows): the static one, or the lowest free.
    With `hints` the pool's first-free hint is read and moved (node stores keep one)."""
    if static:
        cfg, value = check_static(net.ipam, static)
        if cfg.family != family:
            raise InvalidArgument(f"invalid IPv{family} address: {static}")
        key = to_key(value, family)
        if rows.address_owner(net.id, family, key) is not None:
            raise Conflict("failed to set up container networking: Address already in use")
        rows.hold_address(net.id, family, key, owner)
        return f"{int_to_ip(value, family)}/{cfg.subnet.split('/')[1]}"
    cfg = net.config(family)
    if cfg is None:
        return None
    seq = net.ipam.index(cfg)
    pool = pool_of(cfg)
    hint = None
    if hints and (hint_key := rows.pool_hint(net.id, seq)):
        hint = from_key(hint_key)
    value = first_free(
        pool, lambda start: map(from_key, rows.taken_from(net.id, family, to_key(start, family))),
        hint, label=f"{net.name} ({net.id})")
    key = to_key(value, family)
    rows.hold_address(net.id, family, key, owner)
    if hints:
        rows.set_pool_hint(net.id, seq, to_key(value + 1, family) if value < pool.last else key)
    return f"{int_to_ip(value, family)}/{cfg.subnet.split('/')[1]}"
