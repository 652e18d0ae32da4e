"""Loading a plugin by name: netkit's built-ins from a table, others from an entry point group.

Drivers (`netkit.drivers`) and IPAM plugins (`netkit.ipam`) are found the
same way. The table of built-ins answers first: a source checkout that was
not reinstalled still finds them, and entry_points() (50-77 ms) is only
read for third-party names.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from netkit.errors import NotFound


def load(group: str, name: str, builtin: Mapping[str, str]) -> object:
    """A new instance of what `name` names (`builtin`: name -> "module:attr"), else of the
    entry point `name` of `group`; NotFound as Docker says it when there is none."""
    if target := builtin.get(name):
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)()
    from importlib.metadata import entry_points
    for ep in entry_points(group=group, name=name):
        return ep.load()()
    raise NotFound(f'plugin "{name}" not found')
