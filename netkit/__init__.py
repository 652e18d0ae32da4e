"""netkit: Docker's container networking, for real, on Linux namespaces, without Docker.

The public API is `netkit.Engine`; importing this package stays cheap (the
engine and its kernel layer load on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from netkit.errors import NetkitError
from netkit.specs import ContainerSpec, EndpointSpec, NetworkSpec

__all__ = ["Engine", "NetkitError", "NetworkSpec", "ContainerSpec", "EndpointSpec"]
__version__ = "0.1.0"

if TYPE_CHECKING:
    from netkit.engine import Engine


def __getattr__(name: str) -> Any:
    if name == "Engine":
        from netkit.engine import Engine
        return Engine
    raise AttributeError(name)
