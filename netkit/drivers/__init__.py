"""Driver registry: built-ins by name; third-party ones from entry points."""

from __future__ import annotations

import importlib
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
    if target := _BUILTIN.get(name):
        module, _, attr = target.partition(":")
        driver = getattr(importlib.import_module(module), attr)()
    else:
        from importlib.metadata import entry_points  # 50-77 ms: only for third-party names
        for ep in entry_points(group="netkit.drivers", name=name):
            driver = ep.load()()
            break
        else:
            raise NotFound(f'plugin "{name}" not found')
        from netkit.drivers.base import Driver
        if not isinstance(driver, Driver):
            raise InvalidArgument(f'plugin "{name}" is not a network driver: netkit drivers '
                                  "derive from netkit.drivers.base.Driver")
    _cache[name] = driver
    return driver


def find(name: str) -> "Driver | None":
    """The driver registered as `name`, or None when none is installed."""
    try:
        return get(name)
    except NotFound:
        return None


def builtin_names() -> list[str]:
    return sorted(set(_BUILTIN) - {"null"})
