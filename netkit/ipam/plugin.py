"""IPAM plugins: the seam between a network and whoever chooses its subnets and addresses.

Docker's `--ipam-driver NAME --ipam-opt k=v`. A plugin is an object with the
`IpamPlugin` methods, registered under the entry point group `netkit.ipam`
(as drivers are under `netkit.drivers`); netkit's own are `default` (the
first-fit allocator of this package) and `static` (the default pools, but
only the addresses asked for with --ip/--ip6 are handed out). The network
records its plugin's name and options, so every later allocation of that
network goes to the same plugin.

A plugin never touches the kernel nor commits: it is given the network and
the store transaction of the action (`rows`, see store.sqlite.AddressRows),
and what it holds there commits or rolls back with the action.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from netkit.errors import InvalidArgument
from netkit.model import IPAMConfig

if TYPE_CHECKING:
    from netkit.model import Network

GROUP = "netkit.ipam"
DEFAULT = "default"

# Built-ins by name: also registered in pyproject's entry points; this table finds them
# in a source checkout that was not reinstalled, without the 50-77 ms of entry_points().
_BUILTIN = {
    "default": "netkit.ipam.builtin:DefaultIpam",
    "static": "netkit.ipam.builtin:StaticIpam",
}
_cache: dict[str, "IpamPlugin"] = {}


@dataclass(frozen=True, slots=True)
class PoolRequest:
    """What `network create` asks of a plugin: the user's --subnet/--ip-range/--gateway/
    --aux-address and --ipam-opt, the families wanted, and what the node already uses."""

    subnets: tuple[str, ...] = ()
    ip_ranges: tuple[str, ...] = ()
    gateways: tuple[str, ...] = ()
    aux_addresses: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)
    ipv4: bool = True
    ipv6: bool = False
    taken: Sequence[str] = ()                # subnets in use on the node (no overlap)
    skip_gateway: bool = False               # the driver wants no gateway (macvlan)
    one_subnet_per_family: bool = False
    v6_seed: str = ""                        # the ULA /48's seed (node:network)


@runtime_checkable
class IpamPlugin(Protocol):
    """An IPAM plugin (Docker's ipamapi.Ipam, reduced to what netkit asks)."""

    name: str

    def validate_options(self, options: Mapping[str, str]) -> None:
        """Refuse --ipam-opt it does not understand (InvalidArgument), before anything is made."""

    def pools(self, request: PoolRequest) -> tuple[IPAMConfig, ...]:
        """The new network's subnets, ranges, gateways (the gateway each subnet's network
        takes, None when the driver wants none) and aux addresses."""

    def allocate(self, rows: Any, net: "Network", family: int, static: str | None,
                 owner: str) -> str | None:
        """Hold one address ("ip/len") of `family` in `net` for `owner` in `rows`, the
        static one when given; None when the network has no subnet of that family."""

    def release(self, rows: Any, net: "Network", family: int, address: str) -> None:
        """Give back an address `allocate` returned (its "ip/len")."""


def get(name: str) -> IpamPlugin:
    """The IPAM plugin registered as `name` (Docker: `plugin "X" not found`)."""
    plugin = _cache.get(name or DEFAULT)
    if plugin is not None:
        return plugin
    name = name or DEFAULT
    from netkit.plugins import load
    found = load(GROUP, name, _BUILTIN)
    if not isinstance(found, IpamPlugin):
        raise InvalidArgument(f'plugin "{name}" is not an IPAM driver: netkit IPAM plugins '
                              "have the methods of netkit.ipam.plugin.IpamPlugin")
    _cache[name] = found
    return found


def of(net: "Network") -> IpamPlugin:
    """The plugin that allocates `net`'s addresses (the one it was created with)."""
    return get(net.ipam_driver)
