"""`host` and `none`: the predefined networks that make no interfaces.

`host` shares the node's netns (the container has no netns of its own);
`none` gives the container a netns with only loopback. Neither can be
created by users nor joined by a second network (Docker's rules, enforced
by the engine).
"""

from __future__ import annotations

from netkit.drivers.base import Driver, DriverContext, JoinResult
from netkit.errors import Forbidden
from netkit.model import Container, Endpoint, Network, Scope
from netkit.specs import NetworkSpec


class _Null(Driver):
    name = "null"
    scope = Scope.LOCAL
    has_dns = False
    allocates_gateway = False
    network_mode = "none"

    def validate(self, spec: NetworkSpec) -> None:
        raise Forbidden(f"only one instance of \"{self.name}\" network is allowed")

    def create_network(self, ctx: DriverContext, net: Network) -> None:
        pass

    def delete_network(self, ctx: DriverContext, net: Network) -> None:
        pass

    def join(self, ctx: DriverContext, net: Network, ep: Endpoint, ctr: Container) -> JoinResult:
        return JoinResult(ifname="", mac="")

    def leave(self, ctx: DriverContext, net: Network, ep: Endpoint, ctr: Container) -> None:
        pass


class NullDriver(_Null):
    name = "null"


class HostDriver(_Null):
    name = "host"
    network_mode = "host"
