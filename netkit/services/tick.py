"""The services' share of a node agent's cluster sync: one call per tick (`step`).

The node agent's cluster sync (netkit/agent/cluster_sync.py) calls `step`
on its worker thread, with its own in-agent engine, after it synced the
node's networks: whenever the cluster store moved, a member went down or
came back, the agent was poked (a local container ended), or the time a
previous step asked for came. Each step function returns how many seconds
it wants until the next call at the latest (None: only on a change):

- `MANAGER_STEPS` run on the acting manager only (the reconciler: tasks for
  services, restarts, rescheduling, rolling updates);
- `NODE_STEPS` run on every member, in order (running this node's tasks,
  programming its load balancing, then acknowledging retired tasks that
  left it: netkit/services/drain.py).

Each is "module:function", imported on first use (a node with no services
imports nothing), called as fn(engine, cluster_store, down) where `down` is
the set of members that are down.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from netkit.engine import Engine
    from netkit.store.cluster import ClusterStore

MANAGER_STEPS: tuple[str, ...] = ("netkit.services.reconcile:step",)
NODE_STEPS: tuple[str, ...] = ("netkit.services.runner:step", "netkit.services.lb:step",
                               "netkit.services.mesh:step", "netkit.services.drain:step")
IDLE = 5.0              # s: the longest a member goes without a step while it has services
log = logging.getLogger("netkit.agent")
_loaded: dict[str, Callable[..., Any]] = {}


def _fn(name: str) -> Callable[..., Any]:
    if name not in _loaded:
        module, _, attr = name.partition(":")
        _loaded[name] = getattr(importlib.import_module(module), attr)
    return _loaded[name]


def acting_manager(c: Any, down: "set[str] | frozenset[str]") -> str | None:
    """The manager that reconciles: the first, by name, of the managers that are up."""
    from netkit.store.cluster import MANAGER
    managers = sorted(m.node for m in c.members() if m.role == MANAGER and m.node not in down)
    return managers[0] if managers else None


def step(engine: "Engine", cluster: "ClusterStore", node: str,
         down: "set[str] | frozenset[str]") -> float | None:
    """Run the steps due on `node`; seconds until the next call wanted (None: on a change)."""
    steps = NODE_STEPS
    if MANAGER_STEPS and acting_manager(cluster.read(), down) == node:
        steps = MANAGER_STEPS + steps
    waits = []
    for name in steps:
        try:
            wait = _fn(name)(engine, cluster, down)
        except Exception:                       # noqa: BLE001 - one step's fault stops no other
            log.exception("services: %s failed (retrying)", name)
            wait = 1.0
        if wait is not None:
            waits.append(wait)
    return min(waits) if waits else None
