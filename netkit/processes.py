"""A container's processes (`Processes`): where they run, with what, and the node's agent.

A container's processes run in its sandbox (`spawn.Sandbox`): its netns, its
UTS namespace and its own mount namespace, made once when the container is
created (netkit.kernel.mntns: copied from the node's template, private,
with the container's /etc/hosts, /etc/resolv.conf and /etc/hostname) and
joined with setns by every start and exec. Each start is pid 1 of a new pid
namespace, a child of the node's agent (netkit/agent/), which this class
starts on demand and asks to start, stop, kill and wait. `docker exec`
runs from the caller, inside the container's namespaces including its pid
namespace, so it ends with the container.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

from netkit.agent import client as agent
from netkit.errors import Conflict, InternalError, InvalidArgument
from netkit.lifecycle import DEFAULT_STOP_TIMEOUT, RestartPolicy, parse_signal, parse_size
from netkit.model import Container, State

if TYPE_CHECKING:
    from netkit.kernel import spawn
    from netkit.kernel.caps import Creds
    from netkit.kernel.session import KernelSession
    from netkit.model import Node
    from netkit.paths import NodePaths
    from netkit.store import Store

MNT_TEMPLATE = "mnt.template"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """What the agent needs to start a container's process."""

    directory: str                  # the container's run dir (logs, FIFOs)
    box: "spawn.Sandbox"
    argv: tuple[str, ...]
    env: dict[str, str]
    policy: RestartPolicy
    auto_remove: bool
    log_max_size: int
    log_max_files: int


def check_log_options(opts: dict[str, str]) -> None:
    """``--log-opt`` as `docker run` checks it (json-file's max-size / max-file); loads no
    log writer (the CLI's `run` path stays light)."""
    unknown = sorted(set(opts) - {"max-size", "max-file"})
    if unknown:
        raise InvalidArgument(f"unknown log opt '{unknown[0]}' for json-file log driver")
    files = opts.get("max-file", "1")
    if not files.isdigit() or int(files) < 1:
        raise InvalidArgument(f"invalid value for max-file: {files}")
    if "max-size" in opts:
        parse_size(opts["max-size"])


def log_options(opts: dict[str, str]) -> dict[str, int]:
    """``--log-opt`` (json-file's max-size / max-file) as LogWriter arguments."""
    from netkit.agent.logs import DEFAULT_MAX_FILES, DEFAULT_MAX_SIZE
    check_log_options(opts)
    return {"max_size": parse_size(opts["max-size"]) if "max-size" in opts else DEFAULT_MAX_SIZE,
            "max_files": int(opts.get("max-file", DEFAULT_MAX_FILES))}


class Processes:
    """The processes of one node's containers, through its agent (started on demand)."""

    def __init__(self, store: "Store", paths: "NodePaths", node: "Node", *, root: str,
                 run_root: str, in_agent: bool = False) -> None:
        self.store = store
        self.paths = paths
        self.node = node
        self.root = root
        self.run_root = run_root
        self.in_agent = in_agent
        # in the agent: runs a request on the agent's own loop from another of its threads
        # (the cluster sync's worker engine: netkit/agent/server.py `Agent.request_in_loop`)
        self.local: Callable[..., dict] | None = None
        self._private = False                   # `_private_dirs` made
        from netkit.secure import private_dir
        private_dir(run_root, "run directory")        # 0700, not a symlink, ours

    # -- the agent ------------------------------------------------------------------------
    def ensure_agent(self) -> int:
        """The agent's pid; started unless it runs."""
        if self.in_agent:
            return os.getpid()
        return agent.ensure_running(self.paths.run, node=self.node.name, root=self.root,
                                    run=self.run_root, netns=self.node.netns)

    def heal(self) -> None:
        """Before reporting containers: an agent that died is started again, and it
        finds its containers (their state is honest once this returns)."""
        if self.in_agent or agent.pid(self.paths.run) is not None:
            return
        if self.store.read().count_supervised():
            self.ensure_agent()

    def agent_status(self) -> dict:
        return agent.status(self.paths.run)

    def stop_agent(self) -> None:
        agent.stop(self.paths.run)

    def _request(self, op: str, *, wait: float = agent.REQUEST_TIMEOUT, **args: object) -> dict:
        if self.in_agent:
            if self.local is None:
                raise InternalError(f"the node agent cannot ask itself to {op}")
            return self.local(op, wait=wait, **args)
        self.ensure_agent()
        return agent.request(self.paths.run, op, patience=wait, **args)

    # -- where and how a container's processes run ------------------------------------------
    def container_dir(self, cid: str) -> str:
        return self.paths.container_dir(cid)

    def binds(self, ctr: Container) -> tuple[tuple[str, str], ...]:
        """The files bound over the host's in the container's mount namespace."""
        if ctr.network_mode == "host":
            if not self.node.simulated:
                return ()
            d = self.paths.run
            return ((os.path.join(d, "hosts"), "/etc/hosts"),
                    (os.path.join(d, "resolv.conf"), "/etc/resolv.conf"))
        d = self.container_dir(ctr.shares_netns_of or ctr.id)
        return ((os.path.join(d, "hosts"), "/etc/hosts"),
                (os.path.join(d, "resolv.conf"), "/etc/resolv.conf"),
                (os.path.join(d, "hostname"), "/etc/hostname"))

    def _netns(self, ctr: Container) -> str | None:
        return self.node.netns if ctr.network_mode == "host" else ctr.netns

    def _uts(self, ctr: Container) -> str | None:
        if "external" in ctr.options:          # a caller's namespace (attached.py): netns only
            return None
        if ctr.network_mode == "host":
            return os.path.join(self.paths.run, "uts") if self.node.simulated else None
        return self.paths.ns_file(ctr.shares_netns_of or ctr.id, "uts")

    def mnt_path(self, ctr: Container) -> str | None:
        """The container's persistent mount namespace (None: host mode on the real host, or
        a caller's namespace: netkit makes none for it)."""
        if "external" in ctr.options or (ctr.network_mode == "host" and not self.node.simulated):
            return None
        return self.paths.ns_file(ctr.id, "mnt")

    def new_uts(self, cid: str) -> str:
        """Where new container `cid`'s UTS namespace file goes, its directory ready."""
        self._private_dirs()
        return self.paths.ns_file(cid, "uts")

    def _private_dirs(self) -> list[str]:
        """The run dir and the directory of the containers' namespace files, each a private
        mount point of its own (kernel/mntns.py): the files bound into a container stay on
        a mount without a child per container."""
        dirs = [self.paths.run, self.paths.ns_dir]
        if not self._private:                   # once: they stay until the node goes
            from netkit.kernel import mntns
            for d in dirs:
                mntns.private_mount_point(d)
            self._private = True
        return dirs

    def box(self, ctr: Container) -> "spawn.Sandbox":
        from netkit.kernel import spawn
        return spawn.Sandbox(netns=self._netns(ctr), uts=self._uts(ctr), mntns=self.mnt_path(ctr),
                             creds=self.creds(ctr), hide=self.hidden())

    def hidden(self) -> tuple[str, ...]:
        """What no container sees: netkit's state and run roots (an empty read-only mount)."""
        return (self.root, self.run_root)

    @staticmethod
    def creds(ctr: Container) -> "Creds":
        """The container's capabilities, user and sysctls (Docker's defaults unless set)."""
        from netkit.kernel import caps
        p: dict = ctr.options.get("privileges") or {}
        privileged = bool(p.get("privileged"))
        return caps.Creds(caps.capability_mask(tuple(p.get("cap_add", ())), tuple(p.get("cap_drop", ())),
                                               privileged),
                          caps.resolve_user(p.get("user")),
                          tuple((p.get("sysctls") or {}).items()), privileged)

    def make_mount_namespace(self, kernel: "KernelSession", ctr: Container) -> None:
        """The container's mount namespace, made once (its removal journaled)."""
        from netkit.kernel import mntns
        path = self.mnt_path(ctr)
        if path is None:
            return
        template = os.path.join(self.paths.run, MNT_TEMPLATE)
        mntns.ensure_template(template, detach=self._private_dirs(), hide=self.hidden())
        kernel.create_mntns(path, template=template, netns=self._netns(ctr), binds=self.binds(ctr),
                            layer=os.path.join(self.container_dir(ctr.id), "layer"))

    def remove_mount_namespace(self, ctr: Container) -> None:
        from netkit.kernel import mntns
        path = self.mnt_path(ctr)
        if path is not None:
            mntns.remove(path)

    def remove_template(self) -> None:
        """The node's template mount namespace (node rm, system reset: once no container is
        left). The private mount points of the run dir and of its namespace files stay:
        the node's own UTS namespace file (and on the real host every node's) is bound below
        the first, and releasing it would detach them; node rm releases both with the node
        (nodes.py `_force_clean`)."""
        from netkit.kernel import mntns
        mntns.remove(os.path.join(self.paths.run, MNT_TEMPLATE))

    def env(self, ctr: Container) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", DEFAULT_PATH), "HOSTNAME": ctr.hostname, "HOME": "/root"}
        if "TERM" in os.environ:
            env["TERM"] = os.environ["TERM"]
        user = (ctr.options.get("privileges") or {}).get("user")
        if user:                        # Docker: the user's home from passwd, else /
            from netkit.kernel import caps
            env["HOME"] = caps.resolve_user(user).home                    # type: ignore[union-attr]
        env.update(ctr.options.get("env") or {})
        return env

    def spec(self, ctr: Container) -> ProcessSpec:
        if not ctr.command:
            raise Conflict(f"container {ctr.id} has no command to run")
        logs = log_options(dict(ctr.options.get("log_opts") or {}))
        return ProcessSpec(self.container_dir(ctr.id), self.box(ctr), ctr.command, self.env(ctr),
                           RestartPolicy.from_json(ctr.options.get("restart")),
                           ctr.auto_remove, logs["max_size"], logs["max_files"])

    # -- processes ----------------------------------------------------------------------
    @staticmethod
    def supervised(ctr: Container) -> bool:
        """Does the agent have (or will it restart) a process of this container?"""
        return bool(ctr.command) and (ctr.state is State.RESTARTING or
                                      (ctr.state is State.RUNNING and bool(ctr.pid)))

    def start(self, ctr: Container, *, dns: bool = False) -> int:
        """Start the container's command detached; its pid (the agent records the rest).
        With `dns` the agent also brings the resolver up to date with the container, while
        the init gets ready: it execs once its names are served."""
        return int(self._request("start", id=ctr.id, dns=dns)["pid"])

    def start_attached(self, ctr: Container, fds: Sequence[int]) -> int:
        """Start it with our stdio and wait; its exit code (our signals are forwarded)."""
        self.ensure_agent()
        return agent.attach(self.paths.run, ctr.id, fds)

    def stop(self, ctr: Container, timeout: int | None = None, *, leave: bool = True) -> int | None:
        """Stop signal, SIGKILL after `timeout` s; the exit code once it ended. Without
        `leave` the agent does not release its networks (the caller removes it)."""
        if timeout is None:                     # --stop-timeout 0 is 0, not the default
            own = ctr.options.get("stop_timeout")
            timeout = DEFAULT_STOP_TIMEOUT if own is None else int(own)
        sig = str(ctr.options.get("stop_signal") or "SIGTERM")
        reply = self._request("stop", id=ctr.id, timeout=timeout, signal=sig, leave=leave,
                              wait=(timeout if timeout >= 0 else 365 * 86400) + agent.REQUEST_TIMEOUT)
        return reply.get("exit_code")

    def kill(self, ctr: Container, sig: str | int) -> None:
        self._request("kill", id=ctr.id, signal=str(parse_signal(sig)))

    def wait(self, ctr: Container) -> int | None:
        return self._request("wait", id=ctr.id, wait=365 * 86400.0).get("exit_code")

    def exec(self, ctr: Container, argv: list[str], *, capture: list[bytes] | None = None,
             capture_stderr: bool = False, timeout: float | None = None) -> int:
        """`docker exec`: in the container's namespaces (and pid namespace, when it has a
        process); returns the command's exit code."""
        from netkit.kernel import spawn
        box, env = self.box(ctr), self.env(ctr)
        start = ctr.options.get("pid_start")
        if ctr.pid and start is not None:
            return spawn.exec_in(box, ctr.pid, start, argv, env, capture=capture,
                                 capture_stderr=capture_stderr, timeout=timeout)
        return spawn.run_foreground(box, argv, env, capture=capture,
                                    capture_stderr=capture_stderr, timeout=timeout)
