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

Third-party drivers register under the entry point group ``netkit.drivers``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

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


class Driver(Protocol):
    name: ClassVar[str]
    scope: ClassVar[Scope]
    has_dns: ClassVar[bool]          # user networks of this driver get the embedded DNS
    allocates_gateway: ClassVar[bool]  # IPAM reserves a gateway address (macvlan: only if given)

    def validate(self, spec: NetworkSpec) -> None: ...
    def create_network(self, ctx: DriverContext, net: Network) -> None: ...
    def delete_network(self, ctx: DriverContext, net: Network) -> None: ...
    def join(self, ctx: DriverContext, net: Network, ep: Endpoint, ctr: Container) -> JoinResult: ...
    def leave(self, ctx: DriverContext, net: Network, ep: Endpoint, ctr: Container) -> None: ...


class Checkable(Protocol):
    """Optional: report drift between the store and the kernel (CNI CHECK)."""

    def check(self, ctx: DriverContext, net: Network) -> list[str]: ...
