"""netkit's own IPAM plugins: `default` (first-fit, Docker's default IPAM) and `static`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from netkit.errors import InvalidArgument
from netkit.ipam.addresses import allocate
from netkit.ipam.allocator import ip_to_int, to_key
from netkit.ipam.config import build_ipam
from netkit.model import IPAMConfig

if TYPE_CHECKING:
    from netkit.ipam.plugin import PoolRequest
    from netkit.model import Network


class DefaultIpam:
    """Docker's default IPAM: the predefined pools (or the given subnets), first-fit
    addresses with a per-pool hint in the node's store. Takes no options."""

    name = "default"

    def validate_options(self, options: Mapping[str, str]) -> None:
        for key in options:
            raise InvalidArgument(f"ipam driver {self.name!r} has no option {key!r}")

    def pools(self, request: "PoolRequest") -> tuple[IPAMConfig, ...]:
        return build_ipam(request.subnets, request.ip_ranges, request.gateways,
                          dict(request.aux_addresses), ipv4=request.ipv4, ipv6=request.ipv6,
                          taken=list(request.taken), skip_gateway=request.skip_gateway,
                          v6_seed=request.v6_seed,
                          one_subnet_per_family=request.one_subnet_per_family)

    def allocate(self, rows: Any, net: "Network", family: int, static: str | None,
                 owner: str) -> str | None:
        return allocate(rows, net, family, static, owner, hints=True)

    def release(self, rows: Any, net: "Network", family: int, address: str) -> None:
        fam, value = ip_to_int(address.split("/")[0])
        key = to_key(value, fam)
        rows.release_address(net.id, fam, key)
        for seq, cfg in enumerate(net.ipam):
            if cfg.family == fam:            # the first-free hint may move down again
                hint = rows.pool_hint(net.id, seq)
                if hint is None or key < hint:
                    rows.set_pool_hint(net.id, seq, key)
                break


class StaticIpam(DefaultIpam):
    """The default pools, but no dynamic addresses: an endpoint gets the address given
    with --ip / --ip6 and nothing else (an address plan kept by hand)."""

    name = "static"

    def allocate(self, rows: Any, net: "Network", family: int, static: str | None,
                 owner: str) -> str | None:
        if static is None and net.config(family) is not None:
            flag = "--ip" if family == 4 else "--ip6"
            raise InvalidArgument(f"ipam driver \"static\" of network {net.name} hands out no "
                                  f"IPv{family} address: give one with {flag}")
        return super().allocate(rows, net, family, static, owner)
