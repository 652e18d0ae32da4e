"""Where state and runtime files live: NETKIT_ROOT, NETKIT_RUN, per node a sub-root.

A simulated node keeps its state under `NETKIT_ROOT/nodes/<name>` and its
runtime files under `NETKIT_RUN/nodes/<name>`, unless it was created with
roots of its own (`netkit node create --state-dir DIR --run-dir DIR`): the
real host's registry then records them in `NETKIT_ROOT/nodes/<name>.roots`
(JSON {"state": DIR, "run": DIR}), and nothing of the node lives in the
shared trees (a node that shares no files with the others, as a real host).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

NETNS_PREFIX = "nk"
ROOTS_SUFFIX = ".roots"
NS_DIR = "ns"            # below a node's run dir: its containers' UTS and mount namespace files


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
        own = private_roots(root, node)
        if own is not None:
            return own
        return cls(os.path.join(root, "nodes", node), os.path.join(run, "nodes", node))

    @property
    def db(self) -> str:
        return os.path.join(self.root, "netkit.db")

    def container_dir(self, container_id: str) -> str:
        return os.path.join(self.run, "containers", container_id)

    @property
    def containers_dir(self) -> str:
        return os.path.join(self.run, "containers")

    @property
    def ns_dir(self) -> str:
        """The containers' namespace files: a private mount point of its own (kernel/mntns.py)."""
        return os.path.join(self.run, NS_DIR)

    def ns_file(self, container_id: str, kind: str) -> str:
        """Container `container_id`'s persisted namespace file, `kind` "uts" or "mnt":
        `ns/<id>.<kind>`, or where netkit bound it before (`containers/<id>/<kind>`: kept
        below the mount holding the container's files, it made every open_tree of those
        scan two mounts per container) while that one is there and the new one is not."""
        path = os.path.join(self.run, NS_DIR, f"{container_id}.{kind}")
        if not os.path.lexists(path):
            old = os.path.join(self.container_dir(container_id), kind)
            if os.path.lexists(old):
                return old
        return path

    def container_ids(self) -> set[str]:
        """The ids of the containers with a run dir or a namespace file here."""
        ids: set[str] = set()
        for d in (self.containers_dir, self.ns_dir):
            try:
                ids.update(name.split(".")[0] for name in os.listdir(d))
            except FileNotFoundError:
                pass
        return ids


def roots_file(root: str, node: str) -> str:
    """Where the host's registry records the private roots of `node`."""
    return os.path.join(root, "nodes", node + ROOTS_SUFFIX)


def private_roots(root: str, node: str) -> NodePaths | None:
    """The roots `node` was created with (None: the shared trees)."""
    try:
        with open(roots_file(root, node)) as f:
            own = json.load(f)
        return NodePaths(own["state"], own["run"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        from netkit.errors import InternalError
        raise InternalError(f"node {node}: unreadable {roots_file(root, node)}: {exc}") from None


def node_netns(name: str) -> str:
    return f"{NETNS_PREFIX}n-{name}"


def lan_netns(name: str) -> str:
    return f"{NETNS_PREFIX}l-{name}"


def container_netns_prefix(node: str) -> str:
    return f"{NETNS_PREFIX}c-{node or 'host'}-"


def container_netns(node: str, container_id: str) -> str:
    return container_netns_prefix(node) + container_id[:12]
