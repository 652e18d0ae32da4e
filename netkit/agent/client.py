"""The control client of a node's agent (the CLI's and the library's side).

Files under ``<node run dir>/agent/`` (directory mode 0700):

    control     unix stream socket, owner only; one JSON request per connection
    agent.pid   the agent's pid, removed when it stops (left behind: it was killed)
    agent.log   what the agent logs (starts, exits, restarts, errors)
    spawn.lock  held while a client checks for / starts an agent

A request is one JSON object on one line, optionally with file descriptors
attached (SCM_RIGHTS: the caller's stdin/stdout/stderr for an attached
``start``). Each reply is one JSON line: ``{"ok": true, ...}`` or
``{"ok": false, "error": "...", "code": N}``. An attached start gets a
second reply, ``{"exit": N}``, when the container's process ends.
Requests (see netkit/agent/server.py for what each does):

    ping                              -> pid, started, containers, applied
                                         (applied: the cluster version the node's cluster
                                         sync applied; null off swarm)
    cluster                           -> {} at once (a poke: the cluster store changed,
                                         look now instead of at the next poll)
    start   id [attach]               -> pid (the container's init, host pid)
    stop    id [timeout] [signal]     -> exit_code (once stopped)
    kill    id signal                 -> {}
    wait    id                        -> exit_code (once it is not running)
    forget  id                        -> {} (the container is being removed)
    shutdown                          -> {} (then the agent exits; containers keep running)

:func:`ensure_running` starts the agent (in the node's netns, detached)
unless it answers; :func:`request` raises :class:`AgentUnavailable` when
no agent answers.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from typing import Iterator, Sequence

from netkit.errors import InternalError, NetkitError

AGENT_DIR = "agent"
MODULE = "netkit.agent"
START_TIMEOUT = 10.0
REQUEST_TIMEOUT = 30.0


class AgentUnavailable(InternalError):
    """No agent answers on the node's control socket."""


class AgentError(NetkitError):
    """The agent refused or failed a request; `code` is the exit code Docker would give."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code
        self.exit_code = code


def agent_dir(run_dir: str) -> str:
    return os.path.join(run_dir, AGENT_DIR)


def path(run_dir: str, name: str) -> str:
    return os.path.join(run_dir, AGENT_DIR, name)


def pid(run_dir: str) -> int | None:
    """The agent's pid if it is alive and really the agent of `run_dir`."""
    try:
        with open(path(run_dir, "agent.pid")) as f:
            value = int(f.read().strip())
        with open(f"/proc/{value}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        with open(f"/proc/{value}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return None
    except (OSError, ValueError, IndexError):
        return None
    if MODULE.encode() not in argv or b"--run-dir" not in argv:
        return None
    i = argv.index(b"--run-dir")
    if i + 1 >= len(argv) or os.path.realpath(argv[i + 1].decode()) != os.path.realpath(run_dir):
        return None
    return value


def crashed(run_dir: str) -> bool:
    """An agent died without stopping (killed): its pid file is left behind."""
    return os.path.exists(path(run_dir, "agent.pid")) and pid(run_dir) is None


def _connect(run_dir: str, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    try:
        sock.connect(path(run_dir, "control"))
    except OSError as exc:
        sock.close()
        raise AgentUnavailable(f"node agent not running ({exc.strerror or exc})") from None
    return sock


def _send(sock: socket.socket, msg: dict, fds: Sequence[int]) -> None:
    data = json.dumps(msg).encode() + b"\n"
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.sendall(data)


def _replies(sock: socket.socket) -> Iterator[dict]:
    buf = b""
    while True:
        while b"\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                if buf:
                    raise AgentUnavailable("node agent closed the connection mid-reply")
                return
            buf += chunk
        line, buf = buf.split(b"\n", 1)
        yield json.loads(line)


def _check(reply: dict) -> dict:
    if not reply.get("ok", "exit" in reply):
        raise AgentError(str(reply.get("error") or "agent request failed"), int(reply.get("code") or 1))
    return reply


def request(run_dir: str, op: str, *, patience: float = REQUEST_TIMEOUT, **args: object) -> dict:
    """One request, its one reply within `patience` seconds (AgentError on a refusal)."""
    timeout = patience
    with _connect(run_dir, timeout) as sock:
        try:
            _send(sock, {"op": op, **args}, ())
            for reply in _replies(sock):
                return _check(reply)
        except socket.timeout:
            raise AgentUnavailable(f"node agent did not answer {op} within {timeout:g} s") from None
        except OSError as exc:
            raise AgentUnavailable(f"node agent: {exc}") from None
    raise AgentUnavailable(f"node agent gave no reply to {op}")


def attach(run_dir: str, container_id: str, fds: Sequence[int], *, on_start=None,
           forward: Sequence[int] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)) -> int:
    """Start the container's process with our stdio (fds) and wait for its exit code.

    Signals in `forward` that we receive meanwhile are sent to the container
    (Docker's --sig-proxy). `on_start(pid)` runs once it started.
    """
    sock = _connect(run_dir, REQUEST_TIMEOUT)
    old: dict[int, object] = {}

    def proxy(signum: int, _frame: object) -> None:
        try:
            request(run_dir, "kill", id=container_id, signal=signum, proxy=True, patience=5.0)
        except NetkitError:
            pass

    try:
        _send(sock, {"op": "start", "id": container_id, "attach": True}, fds)
        replies = _replies(sock)
        first = _check(next(replies))
        if on_start is not None:
            on_start(int(first["pid"]))
        sock.settimeout(None)
        if _main_thread():
            for sig in forward:
                old[sig] = signal.signal(sig, proxy)
        for reply in replies:
            if "exit" in reply:
                return int(reply["exit"])
        raise AgentUnavailable("node agent went away while the container ran")
    except StopIteration:
        raise AgentUnavailable("node agent gave no reply to start") from None
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)          # type: ignore[arg-type]
        sock.close()


def _main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


def _spawn_lock(run_dir: str):
    from netkit.kernel.daemon import spawn_lock
    return spawn_lock(path(run_dir, "spawn.lock"))


def ensure_running(run_dir: str, *, node: str, root: str, run: str, netns: str | None,
                   timeout: float = START_TIMEOUT) -> int:
    """The agent's pid: started (detached, in `netns`) unless one answers already."""
    if (found := pid(run_dir)) is not None and os.path.exists(path(run_dir, "control")):
        return found
    os.makedirs(agent_dir(run_dir), mode=0o700, exist_ok=True)
    deadline = time.monotonic() + timeout
    with _spawn_lock(run_dir):          # one client starts it, the others wait for it
        found = pid(run_dir)
        if found is None:
            argv = ["-m", MODULE, "--run-dir", os.path.abspath(run_dir), "--node", node,
                    "--root", os.path.abspath(root), "--run", os.path.abspath(run)]
            from netkit.kernel.daemon import spawn_daemon
            spawn_daemon(argv, netns=netns, logfile=path(run_dir, "agent.log"))
        while True:
            try:
                reply = request(run_dir, "ping", patience=max(0.05, deadline - time.monotonic()))
                return int(reply["pid"])
            except AgentUnavailable:
                if time.monotonic() > deadline:
                    raise AgentUnavailable(f"node agent did not start: see "
                                           f"{path(run_dir, 'agent.log')}") from None
                time.sleep(0.005)


def stop(run_dir: str, timeout: float = 5.0) -> None:
    """Stop the agent (its containers keep running) and wait for it; idempotent."""
    found = pid(run_dir)
    if found is None:
        return
    try:
        os.kill(found, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while pid(run_dir) == found and time.monotonic() < deadline:
        time.sleep(0.01)
    if pid(run_dir) == found:
        try:
            os.kill(found, signal.SIGKILL)
        except ProcessLookupError:
            pass


def status(run_dir: str) -> dict:
    """{running, pid, started, containers, applied} of the node's agent (no start);
    `applied`: the cluster version its cluster sync applied (None off swarm)."""
    try:
        reply = request(run_dir, "ping", patience=1.0)
    except NetkitError:
        return {"running": False, "pid": pid(run_dir), "started": None, "containers": 0,
                "applied": None}
    return {"running": True, "pid": reply.get("pid"), "started": reply.get("started"),
            "containers": reply.get("containers", 0), "applied": reply.get("applied")}


def poke(run_dir: str, timeout: float = 0.5) -> bool:
    """Tell the node's agent that the cluster changed (it looks at once instead of at its
    next poll); never waits for its sync, never starts it. False when none answered."""
    if not os.path.exists(path(run_dir, "control")):
        return False
    try:
        request(run_dir, "cluster", patience=timeout)
    except NetkitError:
        return False
    return True
