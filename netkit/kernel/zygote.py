"""The node agent's forker: container inits cloned from a small process, not from the agent.

`spawn.start_init` forks its caller. In the node agent (a ~25 MB Python
process with threads and two log FIFOs per container) that costs, per
container start: the thread that joins the namespaces ~0.3 ms, the fork
~0.45 ms, the child's after-fork work before any of its own ~0.75 ms (the
interpreter's after-fork hooks, copy-on-write faults) and the exec ~0.7 ms
(the kernel tears down the copy of the agent), more with every container's
fds. The zygote is a small single-threaded Python process that the agent
starts once (`Zygote`, ``python -m netkit.kernel.zygote FD RUN_DIR``). For each start
the agent sends it the sandbox, the command and the fds (stdio and the
report pipe) over a socketpair; it clones the init with
``CLONE_PARENT | CLONE_NEWPID`` and answers with its pid. So:

- the init is the *agent's* child (CLONE_PARENT), pid 1 of a new PID
  namespace: the agent reaps it, supervises it and signals it as before;
- the init does exactly what `start_init`'s does (spawn._enter, then
  spawn._init: its namespaces, /proc, sysctls, creds, exec) and reports on
  the same close-on-exec pipe, which the agent reads: EOF once exec'd, or
  Docker's error;
- nothing of the agent is copied: the zygote has a few MB and a few fds;
- the init waits at a gate (a pipe) once it is ready, and execs when the
  agent, which has its pid by then, lets it go: after `hold` (the
  resolver's update for the container) when one is given. An init whose
  zygote ended before answering, or whose `hold` failed, ends at the gate
  (EOF) without exec: nothing runs that the agent does not know.

The clone is a raw clone(2) through libc's syscall() (Python has no
os.clone), so the child does not get the interpreter's after-fork
bookkeeping (PyOS_AfterFork_Child). That is sound here because the zygote
has one thread (no lock can be held by another), and the child runs only
spawn's child code, which ends in exec or os._exit. Architectures without a
known clone number, or a kernel that refuses the clone, make the agent fall
back to `spawn.start_init` (logged once).

The zygote ends when the agent does (EOF on its socket); the agent reaps
it like any child. A zygote that died is started again at the next start.
"""

from __future__ import annotations

import array
import ctypes
import logging
import os
import pickle
import platform
import socket
import sys
import threading
from typing import Callable

from netkit.kernel import caps
from netkit.kernel import spawn
from netkit.kernel.proc import _record, _reset_signals, pipe

log = logging.getLogger("netkit.agent")

CLONE_PARENT = 0x00008000
CLONE_NEWPID = 0x20000000
SIGCHLD = 17
SYS_CLONE = {"x86_64": 56, "aarch64": 220, "riscv64": 220}   # same argument order on these
MAX_MESSAGE = 1 << 20
MAX_FDS = 5                     # the report pipe, the gate and up to three stdio fds
TIMEOUT = 10.0                  # seconds the agent waits for an answer


class Unavailable(Exception):
    """The zygote cannot start inits here (no clone number, refused, not answering)."""


# -- in the agent ----------------------------------------------------------------------

class Zygote:
    """The agent's handle on its zygote: started on first use, again if it died."""

    def __init__(self, run_dir: str = "") -> None:
        self.run_dir = run_dir              # in its argv only: which node's it is, for ps
        self.sock: socket.socket | None = None
        self.pid: int | None = None
        self.lock = threading.Lock()
        self.broken = platform.machine() not in SYS_CLONE

    def start_init(self, box: spawn.Sandbox, argv: list[str], env: dict[str, str] | None = None,
                   *, stdin: int | None = None, stdout: int | None = None,
                   stderr: int | None = None,
                   hold: Callable[[int], None] | None = None) -> tuple[int, int]:
        """spawn.start_init's contract (same returns and errors), the init cloned by the zygote.

        `hold(pid)` runs while the init makes itself ready (its namespaces,
        /proc, creds): the init execs only once it returned (the resolver's
        update for the container overlaps the init's set-up). If hold raises,
        the init ends without exec and the error is raised here.
        """
        if not self.broken:
            try:
                return self._start(box, argv, env, (stdin, stdout, stderr), hold)
            except Unavailable as exc:
                self.broken = True
                self.close()
                log.warning("container inits are forked by the agent itself: %s", exc)
        if hold is not None and argv:
            hold(0)
        return spawn.start_init(box, argv, env, stdin=stdin, stdout=stdout, stderr=stderr)

    def _start(self, box: spawn.Sandbox, argv: list[str], env: dict[str, str] | None,
               stdio: tuple[int | None, int | None, int | None],
               hold: Callable[[int], None] | None) -> tuple[int, int]:
        if not argv:
            return spawn.start_init(box, argv, env)        # its InvalidArgument
        # every init waits at a gate until we have its pid: one whose zygote died before
        # answering ends there (EOF) rather than run unknown to the agent
        r, w = pipe()
        gate_r, gate_w = pipe()
        try:
            payload = pickle.dumps((box, list(argv), env, tuple(fd is not None for fd in stdio)))
            fds = [w, gate_r, *(fd for fd in stdio if fd is not None)]
            with self.lock:
                answer = self._ask(payload, fds)
        except BaseException:
            _close(r, gate_w)
            raise
        finally:
            _close(w, gate_r)
        if not answer.startswith(b"P"):
            _close(r, gate_w)
            raise Unavailable(answer[1:].decode(errors="replace"))
        pid = int(answer[1:])
        try:
            if hold is not None:
                hold(pid)
        except BaseException:
            _close(r, gate_w)                           # EOF at the gate: the init exits
            spawn.wait_quietly(pid)
            raise
        try:
            os.write(gate_w, b"g")
        except OSError:
            pass                                        # it failed before the gate: its report says why
        finally:
            _close(gate_w)
        return spawn.started(pid, r)

    def _ask(self, payload: bytes, fds: list[int]) -> bytes:
        """Send one request and read its answer. A zygote found gone before it had the
        request is replaced once; one that ends or hangs after it had it is not asked again
        (the init it may have cloned ends at its gate)."""
        for _attempt in (1, 2):
            sock = self._ensure()
            try:
                sock.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
            except OSError:
                self.close()                            # EPIPE: it died meanwhile
                continue
            try:
                answer = sock.recv(4096)
            except TimeoutError:
                self.close()
                raise Unavailable("the zygote does not answer") from None
            except OSError:
                answer = b""
            if answer:
                return answer
            self.close()
            raise Unavailable("the zygote ended during a start")
        raise Unavailable("the zygote exits at once")

    def _ensure(self) -> socket.socket:
        if self.sock is not None:
            return self.sock
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            argv = [sys.executable, "-m", "netkit.kernel.zygote", "3", self.run_dir]
            self.pid = os.posix_spawn(sys.executable, argv, os.environ, setsid=True,
                                      file_actions=[(os.POSIX_SPAWN_DUP2, theirs.fileno(), 3)])
        except OSError as exc:
            ours.close()
            raise Unavailable(f"cannot start the zygote: {exc}") from None
        finally:
            theirs.close()
        ours.settimeout(TIMEOUT)
        self.sock = ours
        return ours

    def prestart(self) -> None:
        """Start the zygote now (the agent's start), so the first container does not wait for
        its interpreter; where it cannot run, the agent forks inits itself."""
        if self.broken:
            return
        try:
            self._ensure()
        except Unavailable as exc:
            self.broken = True
            log.warning("container inits are forked by the agent itself: %s", exc)

    def close(self) -> None:
        """Let the zygote go (it exits on EOF; its parent, the agent, reaps it)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.pid = None


def _close(*fds: int) -> None:
    for fd in fds:
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass


# -- in the zygote ---------------------------------------------------------------------

def _clone_fn():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    number = SYS_CLONE[platform.machine()]

    def clone(flags: int) -> int:
        pid = libc.syscall(ctypes.c_long(number), ctypes.c_ulong(flags | SIGCHLD),
                           ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
        if pid < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"clone: {os.strerror(err)}")
        return pid
    return clone


def _child(box: spawn.Sandbox, argv: list[str], env: dict[str, str] | None,
           fds: list[int], given: tuple[bool, bool, bool]) -> None:
    """The init, right after the clone: as spawn._fork_init's child, then spawn._init."""
    w, gate, rest = fds[0], fds[1], iter(fds[2:])
    stdio = tuple(next(rest) if g else None for g in given)
    try:
        spawn._enter(box, own_mnt=True)
    except BaseException as exc:
        _record(w, "K", f"cannot enter the container: {exc}")
        os._exit(126)
    spawn._init(argv, env, stdio, w, box.creds, gate=gate, signals=False)     # type: ignore[arg-type]


def serve(sock: socket.socket) -> int:
    clone = _clone_fn()
    caps.prepare()                      # libc and capset buffers made here, not in each child
    while True:
        try:
            msg, anc, _flags, _addr = sock.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(MAX_FDS * 4),
                                                   socket.MSG_CMSG_CLOEXEC)
        except InterruptedError:
            continue
        fds: list[int] = []
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                arr = array.array("i")
                arr.frombytes(data[:len(data) - len(data) % arr.itemsize])
                fds.extend(arr)
        if not msg:
            return 0                    # the agent is gone
        try:
            box, argv, env, given = pickle.loads(msg)
            pid = clone(CLONE_PARENT | CLONE_NEWPID)
            if pid == 0:
                try:                    # the init: never back into this loop, whatever happens
                    _child(box, argv, env, fds, given)
                finally:
                    os._exit(126)
            answer = f"P{pid}"
        except BaseException as exc:    # told to the agent, which falls back
            answer = f"E{exc}"
        finally:
            for fd in fds:
                os.close(fd)
        try:
            sock.send(answer.encode())
        except OSError:
            return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    fd = int(args[0])
    os.closerange(fd + 1, 1 << 20)      # only stdio (the agent's log) and our socket
    _reset_signals()                    # the inits start from default dispositions
    sock = socket.socket(fileno=fd)
    os.set_inheritable(fd, False)
    return serve(sock)


if __name__ == "__main__":
    sys.exit(main())
