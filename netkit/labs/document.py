"""The whole lab file's schema: Compose's top level plus `x-netkit` (LANs, nodes, swarm, checks).

Apart from netkit/labs/schema.py because the `checks` list is parsed by
netkit/labs/checks.py, which builds its own checkers from schema.py: the
document needs both, and neither needs the document.
"""

from __future__ import annotations

from typing import Any

from netkit.labs import checks, swarm
from netkit.labs.schema import (IMAGES, KV, LAN, RUNTIME, NAME, NETWORK, NODE, NODE_HINT, NODE_NAME, SERVICE,
                                Anything, Ctx, Custom, Either, Ignored, List, Map, Obj, Str,
                                Bool, got)
from netkit.labs.source import Path


def _check_list(value: Any, path: Path, ctx: Ctx) -> Any:
    if not isinstance(value, list):
        raise ctx.fail(path, f"expected a list of checks, got {got(value)}")
    return [checks.parse(item, path + (i,), ctx) for i, item in enumerate(value)]


SECRET = Obj({"file": Str(), "environment": Str(), "content": Str(), "name": Str(),
              "external": Either(Bool(), Obj({"name": Str()})), "labels": KV,
              "driver": Ignored(RUNTIME), "driver_opts": Ignored(RUNTIME),
              "template_driver": Ignored(RUNTIME)})
INCLUDE = Either(Str(), Obj({"path": Either(Str(), List(Str())), "project_directory": Str(),
                             "env_file": Either(Str(), List(Str()))}, required=("path",)))

X_NETKIT = Obj({
    "lans": Map(LAN, NODE_NAME, NODE_HINT),
    "nodes": Map(NODE, NODE_NAME, NODE_HINT),
    "swarm": Obj({"manager": Str(), "workers": Either(Str(), List(Str(), unique=True))},
                 required=("manager",), extensions=False),
    "checks": Custom("a list of checks", _check_list),
    # stacks deployed on the swarm's manager once the swarm and the lab's networks exist:
    # stack name -> compose file(s), relative to the lab file (netkit/services/stack.py)
    "stacks": Map(Either(Str(), List(Str())), r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$",
                  "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
    # swarm services and secrets made on the manager (`service create`, `secret create`)
    "services": Map(swarm.SERVICE, NAME, "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
    "secrets": Map(swarm.SECRET, NAME, "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
}, extensions=False)

TOP = Obj({
    "name": Str(r"^[a-z0-9][a-z0-9_-]*$", "it must contain only characters from [a-z0-9_-] "
                "and start with [a-z0-9]"),
    "version": Anything(),                        # obsolete in Compose; accepted silently
    "services": Map(SERVICE, NAME, "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
    "networks": Map(NETWORK, NAME, "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
    "volumes": Ignored(IMAGES), "configs": Ignored(RUNTIME), "models": Ignored(RUNTIME),
    "secrets": Map(SECRET, NAME, "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
    "include": List(INCLUDE),
    "x-netkit": X_NETKIT,
})
