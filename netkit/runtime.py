"""Container processes on one node: the engine's side of the node agent.

The :class:`Runtime` knows where a container's processes run (its
:class:`~netkit.kernel.spawn.Sandbox`: netns, UTS and mount namespaces),
what they run with (command, environment, log options, restart policy),
and talks to the node's agent (netkit/agent/) to start, stop, kill and
wait for them. It also makes and removes a container's persistent mount
namespace (netkit.kernel.mntns). It holds no store transaction while it
waits for the agent: the agent writes the process's state itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

from netkit.agent import client as agent
from netkit.errors import Conflict
from netkit.lifecycle import DEFAULT_STOP_TIMEOUT, RestartPolicy, parse_signal, parse_size
from netkit.model import Container, Node, State
from netkit.paths import NodePaths

MNT_TEMPLATE = "mnt.template"


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """What the agent needs to start a container's process."""

    directory: str                  # the container's run dir (logs, FIFOs)
    box: object                     # netkit.kernel.spawn.Sandbox
    argv: tuple[str, ...]
    env: dict[str, str]
    policy: RestartPolicy
    auto_remove: bool
    log_max_size: int
    log_max_files: int


def log_options(opts: dict[str, str]) -> dict[str, int]:
    """``--log-opt`` (json-file's max-size / max-file) as LogWriter arguments."""
    from netkit.agent.logs import DEFAULT_MAX_FILES, DEFAULT_MAX_SIZE
    from netkit.errors import InvalidArgument
    unknown = set(opts) - {"max-size", "max-file"}
    if unknown:
        raise InvalidArgument(f"unknown log opt '{sorted(unknown)[0]}' for json-file log driver")
    files = opts.get("max-file", str(DEFAULT_MAX_FILES))
    if not files.isdigit() or int(files) < 1:
        raise InvalidArgument(f"invalid value for max-file: {files}")
    return {"max_size": parse_size(opts["max-size"]) if "max-size" in opts else DEFAULT_MAX_SIZE,
            "max_files": int(files)}


class Runtime:
    """Container processes of one node, through its agent (started on demand)."""

    def __init__(self, node: Node, paths: NodePaths, *, root: str, run_root: str,
                 in_agent: bool = False) -> None:
        self.node = node
        self.paths = paths
        self.root = root
        self.run_root = run_root
        self.in_agent = in_agent

    # -- the agent --------------------------------------------------------------------
    def ensure_agent(self) -> int:
        """The agent's pid; started unless it runs (never from inside the agent)."""
        if self.in_agent:
            return os.getpid()
        return agent.ensure_running(self.paths.run, node=self.node.name, root=self.root,
                                    run=self.run_root, netns=self.node.netns)

    def agent_status(self) -> dict:
        return agent.status(self.paths.run)

    def agent_alive(self) -> bool:
        return agent.pid(self.paths.run) is not None

    def stop_agent(self) -> None:
        agent.stop(self.paths.run)

    def _request(self, op: str, *, wait: float = agent.REQUEST_TIMEOUT, **args: object) -> dict:
        self.ensure_agent()
        return agent.request(self.paths.run, op, timeout=wait, **args)

    # -- where and how a container's processes run ------------------------------------------
    def container_dir(self, cid: str) -> str:
        return self.paths.container_dir(cid)

    def node_binds(self) -> tuple[tuple[str, str], ...]:
        return ((os.path.join(self.paths.run, "hosts"), "/etc/hosts"),
                (os.path.join(self.paths.run, "resolv.conf"), "/etc/resolv.conf"))

    def binds(self, ctr: Container) -> tuple[tuple[str, str], ...]:
        """The files bound over the host's in the container's mount namespace."""
        if ctr.network_mode == "host":
            return self.node_binds() if self.node.simulated else ()
        d = self.container_dir(ctr.shares_netns_of or ctr.id)
        return ((os.path.join(d, "hosts"), "/etc/hosts"),
                (os.path.join(d, "resolv.conf"), "/etc/resolv.conf"),
                (os.path.join(d, "hostname"), "/etc/hostname"))

    def uts_path(self, ctr: Container) -> str | None:
        if ctr.network_mode == "host":
            return os.path.join(self.paths.run, "uts") if self.node.simulated else None
        return os.path.join(self.container_dir(ctr.shares_netns_of or ctr.id), "uts")

    def mnt_path(self, ctr: Container) -> str | None:
        """The container's persistent mount namespace (None: the real host's host mode)."""
        if ctr.network_mode == "host" and not self.node.simulated:
            return None
        return os.path.join(self.container_dir(ctr.id), "mnt")

    def sandbox(self, ctr: Container) -> object:
        from netkit.kernel import spawn
        netns = self.node.netns if ctr.network_mode == "host" else ctr.netns
        return spawn.Sandbox(netns=netns, uts=self.uts_path(ctr), mnt=self.mnt_path(ctr))

    def make_mount_namespace(self, journal, ctr: Container) -> None:
        """Make the container's mount namespace once (undo pushed on `journal`)."""
        from netkit.kernel import mntns
        path = self.mnt_path(ctr)
        if path is None:
            return
        template = os.path.join(self.paths.run, MNT_TEMPLATE)
        mntns.ensure_template(template)
        netns = self.node.netns if ctr.network_mode == "host" else ctr.netns
        mntns.create(path, template=template, netns=netns, binds=self.binds(ctr))
        journal.push(f"remove mount namespace {path}", lambda: mntns.remove(path))

    def remove_mount_namespace(self, ctr: Container) -> None:
        from netkit.kernel import mntns
        path = self.mnt_path(ctr)
        if path is not None:
            mntns.remove(path)

    def env(self, ctr: Container) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
               "HOSTNAME": ctr.hostname, "HOME": "/root"}
        if "TERM" in os.environ:
            env["TERM"] = os.environ["TERM"]
        env.update(ctr.options.get("env") or {})                          # type: ignore[arg-type]
        return env

    def process_spec(self, ctr: Container) -> ProcessSpec:
        if not ctr.command:
            raise Conflict(f"container {ctr.id} has no command to run")
        logs = log_options(dict(ctr.options.get("log_opts") or {}))       # type: ignore[arg-type]
        return ProcessSpec(self.container_dir(ctr.id), self.sandbox(ctr), ctr.command, self.env(ctr),
                           RestartPolicy.from_json(ctr.options.get("restart")),   # type: ignore[arg-type]
                           ctr.auto_remove, logs["max_size"], logs["max_files"])

    # -- processes ----------------------------------------------------------------------
    def start(self, ctr: Container) -> int:
        """Start the container's command detached; its pid."""
        return int(self._request("start", id=ctr.id)["pid"])

    def start_attached(self, ctr: Container, fds: Sequence[int], on_start=None) -> int:
        """Start it with our stdio and wait; its exit code (signals are forwarded)."""
        self.ensure_agent()
        return agent.attach(self.paths.run, ctr.id, fds, on_start=on_start)

    def stop(self, ctr: Container, timeout: int | None = None) -> int | None:
        """Stop signal, then SIGKILL after `timeout` s; the exit code once it ended."""
        if timeout is None:
            timeout = int(ctr.options.get("stop_timeout") or DEFAULT_STOP_TIMEOUT)  # type: ignore[arg-type]
        sig = str(ctr.options.get("stop_signal") or "SIGTERM")
        reply = self._request("stop", id=ctr.id, timeout=timeout, signal=sig, wait=timeout + 30)
        return reply.get("exit_code")

    def kill(self, ctr: Container, sig: str | int) -> None:
        parse_signal(sig)                                     # the message, before anything
        self._request("kill", id=ctr.id, signal=str(sig))

    def wait(self, ctr: Container) -> int | None:
        return self._request("wait", id=ctr.id, wait=365 * 86400.0).get("exit_code")

    def exec(self, ctr: Container, argv: list[str], *, capture: list[bytes] | None = None,
             capture_stderr: bool = False, timeout: float | None = None) -> int:
        from netkit.kernel import spawn
        if ctr.state is not State.RUNNING:
            raise Conflict(f"container {ctr.id} is not running")
        start = ctr.options.get("pid_start")
        return spawn.exec_in(self.sandbox(ctr), ctr.pid or None, start, argv,   # type: ignore[arg-type]
                             self.env(ctr), capture=capture, capture_stderr=capture_stderr,
                             timeout=timeout)

    def process_alive(self, ctr: Container) -> bool:
        from netkit.kernel import spawn
        return bool(ctr.pid) and spawn.pid_alive(ctr.pid, ctr.options.get("pid_start"))  # type: ignore[arg-type]

