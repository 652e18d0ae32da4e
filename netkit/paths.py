"""Where state and runtime files live: NETKIT_ROOT, NETKIT_RUN, per node a sub-root."""

from __future__ import annotations

import os
from dataclasses import dataclass

NETNS_PREFIX = "nk"


def default_root() -> str:
    return os.environ.get("NETKIT_ROOT") or "/var/lib/netkit"


def default_run() -> str:
    return os.environ.get("NETKIT_RUN") or "/run/netkit"


@dataclass(frozen=True, slots=True)
class NodePaths:
    """State and runtime directories of one node ("" = the real host)."""

    root: str
    run: str

    @classmethod
    def of(cls, node: str, root: str, run: str) -> "NodePaths":
        if not node:
            return cls(root, run)
        return cls(os.path.join(root, "nodes", node), os.path.join(run, "nodes", node))

    @property
    def db(self) -> str:
        return os.path.join(self.root, "netkit.db")

    def container_dir(self, container_id: str) -> str:
        return os.path.join(self.run, "containers", container_id)

    @property
    def containers_dir(self) -> str:
        return os.path.join(self.run, "containers")


def node_netns(name: str) -> str:
    return f"{NETNS_PREFIX}n-{name}"


def lan_netns(name: str) -> str:
    return f"{NETNS_PREFIX}l-{name}"


def container_netns_prefix(node: str) -> str:
    return f"{NETNS_PREFIX}c-{node or 'host'}-"


def container_netns(node: str, container_id: str) -> str:
    return container_netns_prefix(node) + container_id[:12]
