"""What `system check` and `system prune` ask of the drivers (CNI CHECK).

For every network of the node, its driver, if it is `Checkable`, names the
links the network owns on the node and reports what is wrong with them.
Links no network owns but netkit tagged are orphans (netkit/system.py).
A network whose driver is not installed any more cannot say what it owns:
check and prune then fail with Docker's `plugin "x" not found` rather than
guess and delete a live object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from netkit import drivers
from netkit.drivers.base import Checkable, DriverContext
from netkit.model import Network

if TYPE_CHECKING:
    from netkit.kernel.session import NetnsHandle


class NetworkView(Protocol):
    """The part of a store transaction these questions need (read-only)."""

    def networks(self) -> list[Network]: ...
    def count_endpoints(self, network_id: str) -> int: ...


def owned_links(tx: NetworkView) -> set[str]:
    """The node's links that the store's networks own, as their drivers say."""
    out: set[str] = set()
    for net in tx.networks():
        driver = drivers.get(net.driver)
        if isinstance(driver, Checkable):
            out |= driver.owned_links(net, tx.count_endpoints(net.id) > 0)
    return out


def network_drift(ctx: DriverContext, tx: NetworkView) -> list[str]:
    """What is wrong with each network's kernel objects, one line each ([] = nothing)."""
    out = []
    for net in tx.networks():
        driver = drivers.get(net.driver)
        if isinstance(driver, Checkable):
            out += [f"network {net.name}: {line}"
                    for line in driver.check(ctx, net, tx.count_endpoints(net.id) > 0)]
    return out


def link_drift(host: "NetnsHandle", name: str, kind: str, *, what: str | None = None,
               master: str | None = None, up: bool = True) -> list[str]:
    """A link the driver made, as it made it: present, of `kind`, a port of `master`, up."""
    what = what or kind
    info = host.link_info(name)
    if info is None:
        return [f"{what} {name} is missing"]
    if info["kind"] != kind:
        return [f"{what} {name} is a {info['kind'] or 'plain link'}, not a {kind}"]
    out = []
    if master is not None and info["master"] != host.link_index(master):
        out.append(f"{what} {name} is not a port of {master}")
    if up and info["state"] != "up":
        out.append(f"{what} {name} is down")
    return out
