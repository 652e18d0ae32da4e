"""Driver registry: built-ins by name; third-party ones from entry points."""

from __future__ import annotations

from typing import TYPE_CHECKING

from netkit.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from netkit.drivers.base import Driver

_BUILTIN = {
    "bridge": "netkit.drivers.bridge:BridgeDriver",
    "macvlan": "netkit.drivers.macvlan:MacvlanDriver",
    "host": "netkit.drivers.null:HostDriver",
    "null": "netkit.drivers.null:NullDriver",
    "none": "netkit.drivers.null:NullDriver",
    "overlay": "netkit.drivers.overlay:OverlayDriver",
}
_cache: dict[str, "Driver"] = {}


def get(name: str) -> "Driver":
    """The driver registered as `name` (NotFound as Docker says it when there is none)."""
    driver = _cache.get(name)
    if driver is not None:
        return driver
    from netkit.drivers.base import Driver
    from netkit.plugins import load
    found = load("netkit.drivers", name, _BUILTIN)
    if not isinstance(found, Driver):
        raise InvalidArgument(f'plugin "{name}" is not a network driver: netkit drivers '
                              "derive from netkit.drivers.base.Driver")
    _cache[name] = found
    return found


def find(name: str) -> "Driver | None":
    """The driver registered as `name`, or None when none is installed."""
    try:
        return get(name)
    except NotFound:
        return None


def is_builtin(name: str) -> bool:
    """One of netkit's own drivers (every netkit process has it; a plugin may be installed
    only where the calling process finds it)."""
    return name in _BUILTIN


def builtin_names() -> list[str]:
    return sorted(set(_BUILTIN) - {"null"})
