"""Docker's container lifecycle on one node (`Runtime`): run, start, stop, restart, kill,
wait, logs, exec -- and the node agent's side of it.

A container joins its networks when it starts and leaves them when its
process ends for good (netkit/containers.py `attach` / `detach`); the
process itself is the agent's child (netkit/agent/server.py), which
reports back through the methods at the end of this class
(`process_spec`, `record_started`, `record_exit`, ...), each one short
action of its own. The CLI never holds the store's write lock while it
waits for the agent.

States (``State.Status``): created -> running -> exited, or
running -> restarting -> running under a restart policy; a container
without a command (a bare sandbox) is running from its start to its stop in
netkit's lifecycle (`Container.state`: its networks are joined), but having
no process it shows as Docker's ``created`` (`Container.status`: ps,
inspect, no start/stop/die events).
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Iterator

from netkit import events, planning
from netkit.errors import Conflict, InvalidArgument, NetkitError, NotFound
from netkit.ids import now
from netkit.lifecycle import parse_signal
from netkit.model import Container, State

if TYPE_CHECKING:
    from netkit.actions import Actions
    from netkit.agent.logs import LogEntry
    from netkit.containers import Containers
    from netkit.processes import Processes, ProcessSpec
    from netkit.resolver import ResolverClient
    from netkit.specs import ContainerSpec
    from netkit.store import Store

STDIO = (0, 1, 2)
FOLLOW_POLL = 0.1                # seconds between two looks at a followed log


class Runtime:
    """The lifecycle verbs of one node's containers."""

    def __init__(self, store: "Store", actions: "Actions", containers: "Containers",
                 processes: "Processes", resolver: "ResolverClient") -> None:
        self.store = store
        self.actions = actions
        self.containers = containers
        self.processes = processes
        self.resolver = resolver

    # -- run, start ------------------------------------------------------------------------
    def run(self, spec: "ContainerSpec") -> tuple[Container, int | None]:
        """`docker run`: create and start in one action, then the process (-d or attached)."""
        from netkit.containers import check_spec
        planning.check_run(spec)
        check_spec(spec)
        with self.actions() as (tx, ctx):
            ctr = self.containers.make(tx, ctx, spec)
            ctr = self.containers.attach(tx, ctx, ctr)
            ctr = self._mark_started(tx, ctr)
            agent_dns = _builtin_only(tx, ctr)
        return self._launch(ctr, attach=not spec.detach, agent_dns=agent_dns)

    def start(self, ref: str, *, attach: bool = False) -> tuple[Container, int | None]:
        """`docker start [-a]`: join the networks again, then start the command."""
        ctr = self.containers.get(ref)
        if ctr.state in (State.RUNNING, State.RESTARTING):
            return ctr, None                          # Docker: starting a running container is a no-op
        with self.actions() as (tx, ctx):
            ctr = self.containers.lookup(tx, ref)
            ctr = self.containers.attach(tx, ctx, ctr)
            ctr = self._mark_started(tx, ctr)
            agent_dns = _builtin_only(tx, ctr)
        return self._launch(ctr, attach=attach, agent_dns=agent_dns)

    def _mark_started(self, tx, ctr: Container) -> Container:
        """Running from the moment its networks are joined (its names resolve); the agent
        records the process's pid and start time once it started it."""
        tx.set_container_state(ctr.id, State.RUNNING)
        stamp = now()
        tx.update_container(ctr.id, started_at=stamp, error="")
        return dataclasses.replace(ctr, state=State.RUNNING, started_at=stamp)

    def _launch(self, ctr: Container, *, attach: bool,
                agent_dns: bool = True) -> tuple[Container, int | None]:
        """Its names served by the resolver, then its process. A detached one's update is
        the agent's, made while the init gets ready (the init execs after it), unless
        `agent_dns` is False (a network of a plugin driver, which the agent and the
        resolver it would start may not find: the caller updates the resolver first)."""
        agent_dns = agent_dns and not attach and bool(ctr.command)
        if not agent_dns:
            self.resolver.after_change(ctr.id)
        if not ctr.command:
            return ctr, None
        try:
            if attach:
                code = self.processes.start_attached(ctr, STDIO)
                return dataclasses.replace(ctr, state=State.EXITED, exit_code=code), code
            pid = self.processes.start(ctr, dns=agent_dns)
        except NetkitError as exc:
            self._start_failed(ctr, exc)
            raise
        return dataclasses.replace(ctr, state=State.RUNNING, pid=pid), None

    def _start_failed(self, ctr: Container, exc: NetkitError) -> None:
        """The process could not start: the container leaves its networks again and keeps
        the error and exit code (Docker: it stays 'created'); --rm removes it."""
        try:
            with self.actions() as (tx, ctx):
                current = tx.container(ctr.id)
                if current is None or current.pid:     # gone, or the agent did start it
                    return
                self.containers.detach(tx, ctx, current)
                tx.set_container_state(ctr.id, State.CREATED, exit_code=exc.exit_code)
                tx.update_container(ctr.id, error=str(exc))
            self.resolver.after_change(ctr.id)
            if ctr.auto_remove:
                self.containers.remove(ctr.id, force=True)
        except NotFound:
            pass

    # -- stop, restart, kill, wait --------------------------------------------------------------
    def stop(self, ref: str, timeout: int | None = None) -> Container:
        """`docker stop`: the stop signal, SIGKILL after the grace period; it leaves its networks."""
        ctr = self.containers.get(ref)
        if self.processes.supervised(ctr):
            self.processes.stop(ctr, timeout)
        elif ctr.state is State.RUNNING:            # a bare sandbox
            self._exited(ctr.id, 0, restarting=False)
        if ctr.status in (State.RUNNING, State.RESTARTING):    # not a bare sandbox (created)
            events.record(self.store, "container", "stop", ctr.id, {"name": ctr.name})
        try:
            return self.containers.get(ctr.id)
        except NotFound:                            # --rm
            return dataclasses.replace(ctr, state=State.EXITED)

    def restart(self, ref: str, timeout: int | None = None) -> Container:
        """`docker restart`: stop, then start."""
        ctr = self.stop(ref, timeout)
        ctr = self.start(ctr.id)[0]
        events.record(self.store, "container", "restart", ctr.id, {"name": ctr.name})
        return ctr

    def kill(self, ref: str, signal: str | int = "KILL") -> Container:
        """`docker kill [-s SIGNAL]`."""
        parse_signal(signal)
        ctr = self.containers.get(ref)
        if not self.processes.supervised(ctr) or ctr.state is not State.RUNNING:
            raise Conflict(f"cannot kill container: {ref}: container {ctr.id} is not running")
        events.record(self.store, "container", "kill", ctr.id,
                      {"name": ctr.name, "signal": str(parse_signal(signal))})
        self.processes.kill(ctr, signal)
        return ctr

    def wait(self, ref: str) -> int:
        """`docker wait`: blocks until the container's process ended; its exit code."""
        ctr = self.containers.get(ref)
        if self.processes.supervised(ctr):
            code = self.processes.wait(ctr)
            if code is not None:
                return code
            ctr = self.containers.get(ctr.id)
        return ctr.exit_code or 0

    # -- exec ----------------------------------------------------------------------------------
    def exec(self, container: str, command: list[str], *, capture: list[bytes] | None = None,
             capture_stderr: bool = False, timeout: float | None = None) -> int:
        """`docker exec`: a command in a running container; its exit code."""
        ctr = self.containers.get(container)
        if ctr.state is not State.RUNNING:
            raise Conflict(f"container {ctr.id} is not running")
        if not command:
            raise InvalidArgument("no command given")
        return self.processes.exec(ctr, list(command), capture=capture,
                                   capture_stderr=capture_stderr, timeout=timeout)

    # -- logs ----------------------------------------------------------------------------------
    def logs(self, ref: str, *, tail: int | None = None) -> list["LogEntry"]:
        """`docker logs [--tail N]`: what the container wrote, oldest first."""
        from netkit.agent import logs as logfiles
        ctr = self.containers.get(ref)
        return logfiles.read(self.processes.container_dir(ctr.id), tail)

    def follow_logs(self, ref: str, *, tail: int | None = None) -> Iterator["LogEntry"]:
        """`docker logs -f`: the entries so far, then new ones until the container stops."""
        from netkit.agent import logs as logfiles
        ctr = self.containers.get(ref)
        d = self.processes.container_dir(ctr.id)
        start = logfiles.size_of(d)
        yield from logfiles.read(d, tail)
        follower = logfiles.follow(d, start)
        while True:
            _, entries = next(follower)
            yield from entries
            if entries:
                continue
            current = self.store.read().container(ctr.id)
            if current is None or current.state not in (State.RUNNING, State.RESTARTING):
                yield from next(follower)[1]            # what it wrote last
                return
            time.sleep(FOLLOW_POLL)

    # -- the agent's side -----------------------------------------------------------------------
    def process_spec(self, cid: str) -> "ProcessSpec":
        ctr = self.store.read().container(cid)
        if ctr is None:
            raise NotFound(f"No such container: {cid}")
        return self.processes.spec(ctr)

    def record_started(self, cid: str, pid: int, start_time: int | None, *, restart: bool) -> None:
        """The agent started the container's process."""
        with self.store.transaction() as tx:
            ctr = tx.container(cid)
            if ctr is None:
                return
            tx.set_container_state(cid, State.RUNNING, pid=pid, pid_start=start_time, exit_code=0)
            tx.update_container(cid, started_at=now(), error="",
                                restart_count=ctr.restart_count + (1 if restart else 0))

    def record_exit(self, cid: str, code: int, *, restarting: bool, error: str = "",
                    leave: bool = True) -> None:
        """The container's process ended: restarting (networks kept) or exited (networks
        left, unless `leave` is false: it is being removed; --rm: removed)."""
        auto_remove = self._exited(cid, code, restarting=restarting, error=error, leave=leave)
        if auto_remove and not restarting and leave:
            try:
                self.containers.remove(cid, force=True)
            except NotFound:
                pass

    def _exited(self, cid: str, code: int, *, restarting: bool, error: str = "",
                leave: bool = True) -> bool:
        """Record the end of its process. Without `leave` (rm -f is removing it) the
        resolver is left to the remover, which tells it once the container is gone."""
        with self.actions() as (tx, ctx):
            ctr = tx.container(cid)
            if ctr is None:
                return False
            tx.set_container_state(cid, State.RESTARTING if restarting else State.EXITED,
                                   exit_code=code)
            tx.update_container(cid, finished_at=now(), error=error)
            if not restarting and leave:
                self.containers.detach(tx, ctx, ctr)
        if leave:
            self.resolver.after_change(cid)
        return ctr.auto_remove

    def restart_count(self, cid: str) -> int:
        ctr = self.store.read().container(cid)
        if ctr is None:
            raise NotFound(f"No such container: {cid}")
        return ctr.restart_count

    def exit_code(self, cid: str) -> int | None:
        ctr = self.store.read().container(cid)
        return None if ctr is None else ctr.exit_code

    def supervised(self) -> list[Container]:
        """Containers whose process the agent runs or restarts (to adopt after its restart)."""
        return [c for c in self.store.read().containers(with_endpoints=False)
                if self.processes.supervised(c)]

    def log_options(self, ctr: Container) -> dict[str, int]:
        from netkit.processes import log_options
        return log_options(dict(ctr.options.get("log_opts") or {}))

    def container_dir(self, cid: str) -> str:
        return self.processes.container_dir(cid)

    def heal_resolver(self) -> bool:
        """The resolver died (killed): start it again. True when it did."""
        from netkit.dns import client
        if not client.crashed(self.resolver.run_dir):
            return False
        self.resolver.start()
        return True


def _builtin_only(tx, ctr: Container) -> bool:
    """Are all the networks the container joined of netkit's own drivers?"""
    from netkit import drivers
    return all(drivers.is_builtin(net.driver) for ep in ctr.endpoints
               if (net := tx.network(ep.network_id)) is not None)
