"""A container's processes (`Processes`): where they run, their environment, their state.

A container's command runs in its sandbox (`spawn.Sandbox`: its netns, UTS
namespace and /etc files, or those it shares); whether it still runs is
read from the kernel (pid alive, else the exit file the shim wrote). The
verbs that start and stop processes (`run`, `exec`; later `start`, `stop`,
`restart`) are in netkit/containers.py and use these.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import TYPE_CHECKING, Any

from netkit.kernel import spawn
from netkit.model import Container, State

if TYPE_CHECKING:
    from netkit.model import Node
    from netkit.paths import NodePaths
    from netkit.store import Store


class Processes:
    """The processes of one node's containers."""

    def __init__(self, store: "Store", paths: "NodePaths", node: "Node") -> None:
        self.store = store
        self.paths = paths
        self.node = node

    def live(self, c: Container) -> Container:
        """The container with its process state read from the kernel (pid alive / exit file)."""
        if c.state is not State.RUNNING or not c.pid:
            return c
        if spawn.pid_alive(c.pid, c.options.get("pid_start")):       # type: ignore[arg-type]
            return c
        code = c.exit_code
        exit_file = os.path.join(self.paths.container_dir(c.id), "exit")
        # the shim writes the exit file right after reaping the command: give it a moment,
        # so a dead process is never reported as exited without its code
        for _ in range(50):
            try:
                with open(exit_file) as f:
                    code = int(f.read().strip() or 0)
                break
            except (OSError, ValueError):
                if not os.path.isdir(os.path.dirname(exit_file)):
                    break
                time.sleep(0.01)
        return dataclasses.replace(c, state=State.EXITED, exit_code=code)

    def box(self, ctr: Container) -> spawn.Sandbox:
        """Where a container's processes run: its netns + UTS + files (or those it shares)."""
        owner = ctr.shares_netns_of or ctr.id
        if ctr.network_mode == "host":
            if not self.node.simulated:
                return spawn.Sandbox(netns=None)
            return spawn.Sandbox(netns=self.node.netns, uts=os.path.join(self.paths.run, "uts"),
                                 binds=self._node_binds())
        d = self.paths.container_dir(owner)
        return spawn.Sandbox(netns=ctr.netns, uts=os.path.join(d, "uts"),
                             binds=((os.path.join(d, "hosts"), "/etc/hosts"),
                                    (os.path.join(d, "resolv.conf"), "/etc/resolv.conf")))

    def _node_binds(self) -> tuple[tuple[str, str], ...]:
        return ((os.path.join(self.paths.run, "hosts"), "/etc/hosts"),
                (os.path.join(self.paths.run, "resolv.conf"), "/etc/resolv.conf"))

    def env(self, ctr: Container) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
               "HOSTNAME": ctr.hostname, "HOME": "/root"}
        if "TERM" in os.environ:
            env["TERM"] = os.environ["TERM"]
        env.update(ctr.options.get("env") or {})                          # type: ignore[arg-type]
        return env

    def set_state(self, cid: str, state: State, **kw: Any) -> None:
        with self.store.transaction() as tx:
            tx.set_container_state(cid, state, **kw)
