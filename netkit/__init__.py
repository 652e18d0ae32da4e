"""netkit: Docker's container networking, for real, on Linux namespaces, without Docker.

The public API is `netkit.Engine`, the specs it takes, the errors it raises
and `Capture` / `WaitTimeout` (what `Engine.capture` returns and raises).
Importing this package stays cheap: the engine, its kernel layer and the
capture load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from netkit.errors import (AlreadyExists, ClusterUnavailable, Conflict, Exhausted, Forbidden,
                           InternalError, InvalidArgument, KernelError, NetkitError, NotFound,
                           Unsupported)
from netkit.specs import ContainerSpec, EndpointSpec, NetworkSpec

__all__ = ["Engine", "NetworkSpec", "ContainerSpec", "EndpointSpec", "Capture", "WaitTimeout",
           "NetkitError", "InvalidArgument", "NotFound", "AlreadyExists", "Conflict",
           "Forbidden", "Exhausted", "Unsupported", "KernelError", "ClusterUnavailable",
           "InternalError"]
__version__ = "0.1.0"

if TYPE_CHECKING:
    from netkit.capture.session import Capture, WaitTimeout
    from netkit.engine import Engine


def __getattr__(name: str) -> Any:
    if name == "Engine":
        from netkit.engine import Engine
        return Engine
    if name in ("Capture", "WaitTimeout"):
        from netkit.capture import session
        return getattr(session, name)
    raise AttributeError(f"module 'netkit' has no attribute {name!r}")
