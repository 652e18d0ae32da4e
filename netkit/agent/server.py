"""The node agent: one resident process per node, parent of every container process.

``python -m netkit.agent --run-dir DIR --node NAME --root ROOT --run RUN``
runs in the node's netns (the real host's agent in the root netns), as a
child subreaper, so every container's init is re-parented to it and reaped
by it. It

- starts container processes on request (``start``), each as pid 1 of a
  new pid namespace inside the container's net, UTS and mount namespaces,
  cloned as its own child by a small forker process (netkit.kernel.zygote;
  netkit.kernel.spawn.start_init where that is not possible), and records
  pid, start time, exit code and finish time in the node's store;
- drains their stdout/stderr into per-container json logs with a size cap
  (netkit.agent.logs); the pipes are FIFOs that the container holds open
  for reading too, so a container never gets SIGPIPE while the agent is
  away (it blocks once 1 MiB is buffered, until the agent is back);
- applies restart policies with Docker's back-off (netkit.lifecycle), and
  when a container's process ends for good it has the engine release the
  container's networks (and remove ``--rm`` containers);
- stops (signal, grace period, SIGKILL), kills and waits on request;
- watches the node's resolver and starts it again within a fraction of a
  second when it died (its pid file left behind);
- on a simulated node, runs the node's cluster sync loop
  (netkit.agent.cluster_sync: swarm peers, the other nodes' names pushed to
  the resolver, again whenever the resolver restarted, and the services'
  step: a swarm task's container is started and stopped by the sync's
  worker engine through `request_in_loop`, so it is this agent's child like
  any other).

If the agent itself is killed the containers keep running; the next
netkit command on the node starts a new agent, which adopts the running
containers (pidfd; it is not their parent, so their exit codes are not
knowable: it records 255, as Docker does for a container whose exit status
is lost) and marks those that ended meanwhile as exited with 255.

Engine work (store transactions, network release) runs on this thread,
between events; the CLI never holds the store's write lock while it waits
for the agent, so the two cannot deadlock.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import signal
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from netkit.agent import client
from netkit.agent.cluster_sync import ClusterSync
from netkit.agent.logs import LogWriter, Output
from netkit.errors import NetkitError
from netkit.lifecycle import Backoff, RestartPolicy, parse_signal

if TYPE_CHECKING:
    from netkit.engine import Engine

log = logging.getLogger("netkit.agent")
TICK = 0.2                     # seconds between two looks at the resolver
UNKNOWN_EXIT = 255             # exit code recorded when it cannot be known


@dataclass(eq=False)
class Proc:
    """One supervised container process (its init: pid 1 of its pid namespace)."""

    cid: str
    pid: int
    start_time: int | None
    policy: RestartPolicy
    auto_remove: bool
    started: float = field(default_factory=time.monotonic)
    child: bool = True                 # our child (reaped) or adopted (pidfd, exit unknown)
    pidfd: int | None = None
    output: Output | None = None       # FIFOs and log (None: attached to a client's stdio)
    stopping: bool = False             # stop/kill asked: no restart
    leave: bool = True                 # on exit, release its networks (not when being removed)
    exit_waiters: list[asyncio.Future] = field(default_factory=list)
    attached: socket.socket | None = None


class Agent:
    def __init__(self, run_dir: str, node: str, root: str, run: str) -> None:
        self.run_dir = run_dir
        self.node, self.root, self.run = node, root, run
        self.started = time.time()
        self.procs: dict[str, Proc] = {}           # container id -> running process
        self.by_pid: dict[int, Proc] = {}
        self.backoff: dict[str, Backoff] = {}
        self.restart_timers: dict[str, asyncio.TimerHandle] = {}
        self.restart_waiters: dict[str, list[asyncio.Future]] = {}
        self.engine: "Engine | None" = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping = False
        self.cluster: ClusterSync | None = None     # a simulated node's cluster sync
        from netkit.kernel.zygote import Zygote
        self.zygote = Zygote(run_dir)                    # clones the inits (kernel/zygote.py)

    # -- the engine: this node's, used only on this thread ------------------------------
    def _engine(self) -> "Engine":
        if self.engine is None:
            from netkit.engine import Engine
            self.engine = Engine(self.node or None, root=self.root, run=self.run, in_agent=True)
        return self.engine

    # -- processes ----------------------------------------------------------------------
    def start(self, cid: str, fds: list[int] | None = None, *, restart: bool = False,
              dns: bool = False) -> Proc:
        """Start the container's init; with `dns`, bring the resolver up to date with the
        container while the init makes itself ready (it execs once the names are served)."""
        engine = self._engine()
        spec = engine.runtime.process_spec(cid)
        if cid in self.procs:
            raise client.AgentError(f"container {cid} is already running", 1)
        theirs: list[int] = []
        output = None
        if fds:
            stdio = (fds + [fds[-1]] * 3)[:3]
        else:
            output, theirs = Output.make(spec.directory, LogWriter(
                spec.directory, max_size=spec.log_max_size, max_files=spec.log_max_files))
            null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            stdio = [null, *theirs]
            theirs.append(null)
        try:
            hold = (lambda _pid: engine.runtime.resolver.after_change(cid)) if dns else None
            pid, start_time = self.zygote.start_init(spec.box, list(spec.argv), spec.env,
                                                     stdin=stdio[0], stdout=stdio[1], stderr=stdio[2],
                                                     hold=hold)
        except BaseException:
            if output is not None:
                output.close()
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        proc = Proc(cid, pid, start_time, spec.policy, spec.auto_remove, output=output)
        self._track(proc)
        engine.runtime.record_started(cid, pid, start_time, restart=restart)
        log.info("started %s pid %d%s", cid[:12], pid, " (restart)" if restart else "")
        return proc

    def _track(self, proc: Proc) -> None:
        assert self.loop is not None
        self.procs[proc.cid] = proc
        self.by_pid[proc.pid] = proc
        for fd in proc.output.ends if proc.output is not None else ():
            self.loop.add_reader(fd, proc.output.pump, fd)      # type: ignore[union-attr]
        if proc.pidfd is not None:
            self.loop.add_reader(proc.pidfd, self._adopted_exit, proc)

    def _drain(self, proc: Proc) -> None:
        assert self.loop is not None
        if proc.output is not None:
            for fd in proc.output.ends:
                self.loop.remove_reader(fd)
            proc.output.close()
            proc.output = None

    def _reap(self) -> None:
        """SIGCHLD: collect every exited child (we are a subreaper: orphans come to us)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            proc = self.by_pid.get(pid)
            if proc is not None:
                from netkit.kernel import spawn
                self._exited(proc, spawn.exit_code(status))

    def _adopted_exit(self, proc: Proc) -> None:
        assert self.loop is not None and proc.pidfd is not None
        self.loop.remove_reader(proc.pidfd)
        os.close(proc.pidfd)
        proc.pidfd = None
        self._exited(proc, UNKNOWN_EXIT, error="exit status unknown: the node agent was "
                                               "restarted while the container ran")

    def _exited(self, proc: Proc, code: int, error: str = "") -> None:
        assert self.loop is not None
        self.procs.pop(proc.cid, None)
        self.by_pid.pop(proc.pid, None)
        self._drain(proc)
        uptime = time.monotonic() - proc.started
        engine = self._engine()
        try:
            count = engine.runtime.restart_count(proc.cid)
        except NetkitError:
            count = 0                           # removed meanwhile
        again = proc.policy.should_restart(code, count, stopped_by_user=proc.stopping)
        log.info("%s pid %d exited %d%s", proc.cid[:12], proc.pid, code,
                 ", restarting" if again else "")
        try:
            engine.runtime.record_exit(proc.cid, code, restarting=again, error=error, leave=proc.leave)
        except NetkitError as exc:
            log.warning("record exit of %s: %s", proc.cid[:12], exc)
            again = False
        if again:
            delay = self.backoff.setdefault(proc.cid, Backoff()).next(uptime)
            self.restart_timers[proc.cid] = self.loop.call_later(delay, self._restart, proc.cid)
        else:
            self.backoff.pop(proc.cid, None)
        self._done(proc, code, final=not again)
        if self.cluster is not None:            # a swarm task may have ended: report it now
            self.cluster.poke()

    def _done(self, proc: Proc, code: int, *, final: bool) -> None:
        for fut in proc.exit_waiters:
            if not fut.done():
                fut.set_result(code)
        if final:
            for fut in self.restart_waiters.pop(proc.cid, []):
                if not fut.done():
                    fut.set_result(code)
        if proc.attached is not None:
            _reply(proc.attached, {"exit": code})
            proc.attached.close()
            proc.attached = None

    def _restart(self, cid: str) -> None:
        self.restart_timers.pop(cid, None)
        try:
            self.start(cid, restart=True)
        except NetkitError as exc:
            log.warning("restart of %s failed: %s", cid[:12], exc)
            code = getattr(exc, "code", 1) or 1
            try:
                self._engine().runtime.record_exit(cid, code, restarting=False, error=str(exc))
            except NetkitError:
                pass
            for fut in self.restart_waiters.pop(cid, []):
                if not fut.done():
                    fut.set_result(code)

    def _cancel_restart(self, cid: str) -> bool:
        timer = self.restart_timers.pop(cid, None)
        if timer is None:
            return False
        timer.cancel()
        self.backoff.pop(cid, None)
        return True

    # -- adoption after a restart of the agent ------------------------------------------
    def adopt(self) -> None:
        """Find the containers that run (or should) and take them over."""
        from netkit.kernel import spawn
        from netkit.paths import NodePaths
        from netkit.store import Store
        store = Store(NodePaths.of(self.node, self.root, self.run).db)
        try:
            if not store.read().count_supervised():
                return                          # nothing to adopt: no engine needed yet
        finally:
            store.close()
        engine = self._engine()
        for ctr in engine.runtime.supervised():
            opts = ctr.options
            policy = RestartPolicy.from_json(opts.get("restart"))
            start = opts.get("pid_start")
            if ctr.state.value == "restarting":
                self._restart(ctr.id)
                continue
            if ctr.pid and spawn.pid_alive(ctr.pid, start):
                try:
                    pidfd = spawn.pidfd_open(ctr.pid, start)
                except OSError:
                    pidfd = None
                directory = engine.runtime.container_dir(ctr.id)
                output = Output.reopen(directory, LogWriter(directory, **engine.runtime.log_options(ctr)))
                proc = Proc(ctr.id, ctr.pid, start, policy, ctr.auto_remove,
                            child=False, pidfd=pidfd, output=output)
                self._track(proc)
                if pidfd is None:
                    self._adopted_exit_now(proc)
                log.info("adopted %s pid %d", ctr.id[:12], ctr.pid)
            else:
                proc = Proc(ctr.id, ctr.pid or 0, start, policy, ctr.auto_remove,
                            child=False)
                self.procs[proc.cid] = proc
                self._exited(proc, UNKNOWN_EXIT, error="exit status unknown: the process ended "
                                                       "while the node agent was not running")

    def _adopted_exit_now(self, proc: Proc) -> None:
        self._exited(proc, UNKNOWN_EXIT, error="exit status unknown")

    # -- the resolver ---------------------------------------------------------------------
    async def watch_resolver(self) -> None:
        from netkit.dns import client as dns
        while not self.stopping:
            await asyncio.sleep(TICK)
            try:
                if dns.crashed(self.run_dir) and self._engine().runtime.heal_resolver():
                    log.info("resolver was not running: started it again")
                if self.cluster is not None:      # a new resolver gets the other nodes' names
                    await self.cluster.serve_resolver()
            except NetkitError as exc:
                log.warning("resolver: %s", exc)
            except Exception:                     # noqa: BLE001 - the agent must keep going
                log.exception("resolver watchdog")

    # -- requests -------------------------------------------------------------------------
    async def handle(self, conn: socket.socket) -> None:
        assert self.loop is not None
        keep = False
        try:
            msg, fds = await self._recv(conn)
            if msg is None:
                return
            op = msg.get("op")
            if op == "start" and msg.get("attach"):
                proc = self.start(msg["id"], fds)
                proc.attached = conn
                keep = True
                _reply(conn, {"ok": True, "pid": proc.pid})
                return
            reply = await self._op(op, msg)
            _reply(conn, {"ok": True, **reply})
        except client.AgentError as exc:
            _reply(conn, {"ok": False, "error": str(exc), "code": exc.code})
        except NetkitError as exc:
            _reply(conn, {"ok": False, "error": str(exc), "code": getattr(exc, "exit_code", 1)})
        except Exception as exc:                  # noqa: BLE001 - report, keep serving
            log.exception("request failed")
            _reply(conn, {"ok": False, "error": f"{type(exc).__name__}: {exc}", "code": 1})
        finally:
            for fd in locals().get("fds") or []:
                os.close(fd)
            if not keep:
                conn.close()

    async def _op(self, op: Any, msg: dict) -> dict:
        assert self.loop is not None
        cid = str(msg.get("id") or "")
        if op == "ping":
            return {"pid": os.getpid(), "started": self.started, "containers": len(self.procs),
                    "applied": self.cluster.applied if self.cluster is not None else None}
        if op == "cluster":                       # a poke: answered at once
            if self.cluster is not None:
                self.cluster.poke()
            return {}
        if op == "start":
            proc = self.start(cid, dns=bool(msg.get("dns")))
            return {"pid": proc.pid}
        if op == "stop":
            return {"exit_code": await self._stop(cid, float(msg.get("timeout", 10)),
                                                  parse_signal(msg.get("signal"), signal.SIGTERM),
                                                  leave=bool(msg.get("leave", True)))}
        if op == "kill":
            running = self.procs.get(cid)
            if running is None:
                raise client.AgentError(f"container {cid} is not running", 1)
            sig = parse_signal(msg.get("signal"))
            if not msg.get("proxy"):
                running.stopping = True
            _signal(running, sig)
            return {}
        if op == "wait":
            return {"exit_code": await self._wait(cid)}
        if op == "shutdown":
            self.loop.call_soon(self.shutdown)
            return {}
        raise client.AgentError(f"unknown request {op!r}")

    def request_in_loop(self, op: str, *, wait: float, **args: object) -> dict:
        """A container request (`start`, `stop`, `kill`, `wait`) from ANOTHER thread of this
        agent -- the cluster sync's worker engine, whose `Processes.local` this is: it runs on
        the loop as one that came over the control socket would (same lifecycle as `run -d`:
        this agent's child, supervised, reaped, its exit recorded) and returns its reply. Gives
        up after `wait` s, or at once when the agent stops (the worker must not hang)."""
        import concurrent.futures
        loop = self.loop
        assert loop is not None
        fut = asyncio.run_coroutine_threadsafe(self._op(op, dict(args)), loop)
        deadline = time.monotonic() + wait
        while True:
            try:
                return fut.result(max(0.0, min(0.5, deadline - time.monotonic())))
            except concurrent.futures.TimeoutError:
                if self.stopping or loop.is_closed() or time.monotonic() >= deadline:
                    fut.cancel()
                    raise client.AgentUnavailable(f"node agent did not answer {op} within "
                                                  f"{wait:g} s") from None

    async def _stop(self, cid: str, timeout: float, sig: int, *, leave: bool = True) -> int | None:
        assert self.loop is not None
        if self._cancel_restart(cid):            # restarting: stop waiting, leave networks
            code = self._engine().runtime.exit_code(cid)
            self._engine().runtime.record_exit(cid, code or 0, restarting=False, leave=leave)
            for fut in self.restart_waiters.pop(cid, []):
                fut.set_result(code)
            return code
        proc = self.procs.get(cid)
        if proc is None:
            return None
        proc.stopping = True
        proc.leave = leave
        fut = self.loop.create_future()
        proc.exit_waiters.append(fut)
        if timeout != 0:
            _signal(proc, sig)
            if timeout < 0:                      # Docker's -1: wait as long as it takes
                return await fut
            try:
                return await asyncio.wait_for(asyncio.shield(fut), timeout)
            except asyncio.TimeoutError:
                pass
        _signal(proc, signal.SIGKILL)
        return await fut

    async def _wait(self, cid: str) -> int | None:
        assert self.loop is not None
        fut = self.loop.create_future()
        if cid in self.procs or cid in self.restart_timers:
            self.restart_waiters.setdefault(cid, []).append(fut)
            return await fut
        return self._engine().runtime.exit_code(cid)

    async def _recv(self, conn: socket.socket) -> tuple[dict | None, list[int]]:
        assert self.loop is not None
        buf = b""
        fds: list[int] = []
        while b"\n" not in buf:
            ready = self.loop.create_future()
            self.loop.add_reader(conn.fileno(), ready.set_result, None)
            try:
                await ready
            finally:
                self.loop.remove_reader(conn.fileno())
            try:
                data, got, _flags, _addr = socket.recv_fds(conn, 65536, 8)
            except BlockingIOError:
                continue
            for fd in got:                      # a client's stdio: never inherited by others
                os.set_inheritable(fd, False)
            fds.extend(got)
            if not data:
                return None, fds
            buf += data
        return json.loads(buf.split(b"\n", 1)[0]), fds

    # -- life of the agent ----------------------------------------------------------------
    def shutdown(self) -> None:
        self.stopping = True
        assert self.loop is not None
        self.loop.stop()

    async def serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        d = client.agent_dir(self.run_dir)
        os.makedirs(d, mode=0o700, exist_ok=True)
        os.chmod(d, 0o700)
        control = client.path(self.run_dir, "control")
        try:
            os.unlink(control)
        except FileNotFoundError:
            pass
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)
        try:
            srv.bind(control)
        finally:
            os.umask(old)
        srv.listen(256)
        self.loop.add_signal_handler(signal.SIGCHLD, self._reap)
        self.loop.add_signal_handler(signal.SIGTERM, self.shutdown)
        self.loop.add_signal_handler(signal.SIGINT, self.shutdown)
        self.adopt()
        self._reap()
        self.zygote.prestart()
        _write_atomic(client.path(self.run_dir, "agent.pid"), str(os.getpid()))
        watchdog = asyncio.ensure_future(self.watch_resolver())
        if self.node:
            self.cluster = ClusterSync(self.node, self.root, self.run, self.run_dir,
                                       local=self.request_in_loop)
            sync = asyncio.ensure_future(self.cluster.run())
        log.info("agent %d serving node %s", os.getpid(), self.node or "(host)")
        try:
            while not self.stopping:
                conn, _ = await self.loop.sock_accept(srv)
                conn.setblocking(False)
                asyncio.ensure_future(self.handle(conn))
        finally:
            watchdog.cancel()
            srv.close()
            self.zygote.close()
            if self.cluster is not None:
                sync.cancel()
                await self.cluster.close()


def _signal(proc: Proc, sig: int) -> None:
    from netkit.kernel import spawn
    spawn.signal_init(proc.pid, proc.start_time, sig)


def _reply(conn: socket.socket, msg: dict) -> None:
    try:
        conn.setblocking(True)
        conn.sendall(json.dumps(msg).encode() + b"\n")
    except OSError:
        pass


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m netkit.agent")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--node", default="")
    p.add_argument("--root", required=True)
    p.add_argument("--run", required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s agent[%(process)d] %(message)s")
    from netkit.kernel import spawn
    spawn.become_subreaper()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    agent = Agent(args.run_dir, args.node, args.root, args.run)
    try:
        asyncio.run(agent.serve())
    except RuntimeError as exc:            # loop.stop() from shutdown()
        if "Event loop stopped" not in str(exc):
            raise
    finally:
        pidfile = client.path(args.run_dir, "agent.pid")
        try:
            with open(pidfile) as f:
                mine = f.read().strip() == str(os.getpid())
            if mine:
                os.unlink(pidfile)
        except OSError:
            pass
        try:
            os.unlink(client.path(args.run_dir, "control"))
        except OSError:
            pass
        log.info("agent %d stopped", os.getpid())
    return 0
