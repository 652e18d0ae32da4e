"""The driver contract (libnetwork's driverapi.Driver, in Python).

Order of calls: validate -> create_network -> (join -> leave)* -> delete_network.

- ``validate(spec)`` makes nothing; it rejects bad options with Docker's words.
- The other methods change the kernel only through ``ctx.kernel`` (every
  change journaled there, so a failed action undoes it), never open their
  own netlink sockets and never touch the store.
- ``leave`` and ``delete_network`` succeed when their objects are already
  gone (CNI DEL semantics), which keeps rollback and ``system prune`` simple.
- Endpoint planning (addresses, MAC, interface name) is done by the engine
  before ``join``; the driver makes what the plan says and returns a
  ``JoinResult``.

Every driver derives from ``Driver`` and declares what it can do as class
attributes and methods with defaults there; ``system check|prune`` ask a
driver that is ``Checkable`` which kernel objects are its own and whether
they are healthy. Third-party drivers register under the entry point group
``netkit.drivers`` (subclassing a built-in driver under another name is fine:
everything is asked of the driver, never of its name).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Iterable, Protocol, runtime_checkable

from netkit.kernel.session import KernelSession
from netkit.model import Container, Endpoint, Network, Node, Scope
from netkit.specs import NetworkSpec


@dataclass(frozen=True, slots=True)
class DriverContext:
    node: Node               # which host: its netns (None = the real machine)
    kernel: KernelSession    # handles for this action; every change it makes is journaled
    sandbox_removed: bool = False   # leave(): the container's netns is about to go


@dataclass(frozen=True, slots=True)
class JoinResult:
    ifname: str
    mac: str
    host_ifname: str | None = None
    gateway_v4: str | None = None
    gateway_v6: str | None = None


class Driver(ABC):
    """Base class of every driver (built-in or third-party): the contract above, plus the
    capabilities the engine asks about, each declared here with its default (libnetwork's
    optional driver interfaces). The engine never compares a driver's name to a string."""

    name: ClassVar[str]
    scope: ClassVar[Scope] = Scope.LOCAL
    has_dns: ClassVar[bool] = True           # user networks of this driver get the embedded DNS
    allocates_gateway: ClassVar[bool] = True  # IPAM reserves a gateway (macvlan: only a given one)
    maps_ports: ClassVar[bool] = True        # -p/-P publish through the node (else: ignored, warned)
    onlink_subnets: ClassVar[bool] = False   # a given subnet may be a LAN the node is on (macvlan)
    one_subnet_per_family: ClassVar[bool] = False   # one IPv4 and one IPv6 subnet at most (bridge)
    network_mode: ClassVar[str | None] = None  # "host" / "none": a mode of the sandbox, no endpoints

    def forces_internal(self, spec: NetworkSpec) -> bool:
        """The network is internal whatever --internal says (macvlan without a parent)."""
        return False

    def check_network(self, net: Network, others: Iterable[Network]) -> None:
        """Cross-network rules at `network create` (`others`: every network of the node):
        raise the Docker error if `net` may not exist beside them."""

    def release_network(self, ctx: DriverContext, net: Network, others: Iterable[Network]) -> None:
        """After `network rm` of `net`: free what it shared with `others` and none of them
        uses any more (macvlan: the VLAN parent it made)."""

    def node_bridge(self, net: Network) -> str | None:
        """The node's Linux bridge that is `net` (Docker's bridge driver model): the node's
        firewall routes, NATs, isolates and publishes ports there, and `capture network:NAME`
        listens on it. None: the network is no such bridge."""
        return None

    @abstractmethod
    def validate(self, spec: NetworkSpec) -> None: ...
    @abstractmethod
    def create_network(self, ctx: DriverContext, net: Network) -> None: ...
    @abstractmethod
    def delete_network(self, ctx: DriverContext, net: Network) -> None: ...
    @abstractmethod
    def join(self, ctx: DriverContext, net: Network, ep: Endpoint, ctr: Container) -> JoinResult: ...
    @abstractmethod
    def leave(self, ctx: DriverContext, net: Network, ep: Endpoint, ctr: Container) -> None: ...


@runtime_checkable
class Checkable(Protocol):
    """Optional: a network's own kernel objects on this node and their health (CNI CHECK).

    `system check` and `system prune` ask only this (netkit/drivers/checks.py):
    `owned_links` names the node's links the network uses (prune never removes
    them, check never calls them orphans); `check` says what is wrong with
    them, one line each ("bridge br-1 is missing"). `in_use`: the network has
    endpoints on this node. A driver that is not Checkable owns nothing there.
    """

    def owned_links(self, net: Network, in_use: bool) -> set[str]: ...
    def check(self, ctx: DriverContext, net: Network, in_use: bool) -> list[str]: ...
