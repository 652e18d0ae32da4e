"""Start processes inside a container's namespaces.

The child joins the container's netns and UTS namespace, gets a private
mount namespace in which the container's own /etc/hosts and
/etc/resolv.conf are bind-mounted over the host's (what `ip netns exec`
does with /etc/netns/NAME), then execs. Detached processes get a small
shim (a forked copy of this process, no exec) that waits for the command
and writes its exit status, so `ps` can report it later.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from dataclasses import dataclass

from netkit.errors import InvalidArgument, KernelError
from netkit.kernel import netns as ns


@dataclass(frozen=True, slots=True)
class Sandbox:
    """Where a process runs: netns name (None: stay), UTS bind path, file binds."""

    netns: str | None
    uts: str | None = None
    binds: tuple[tuple[str, str], ...] = ()      # (source file, target path)


def _enter(box: Sandbox) -> None:
    """In a freshly forked child: join the namespaces. Single-threaded here."""
    if box.netns:
        fd = os.open(ns.netns_path(box.netns), os.O_RDONLY)
        ns.setns(fd, ns.CLONE_NEWNET)
        os.close(fd)
    if box.uts:
        fd = os.open(box.uts, os.O_RDONLY)
        ns.setns(fd, ns.CLONE_NEWUTS)
        os.close(fd)
    if box.binds:
        ns.unshare(ns.CLONE_NEWNS)
        # keep host mounts flowing in, but ours must not leak out
        ns.mount("", "/", None, ns.MS_SLAVE | ns.MS_REC)
        for source, target in box.binds:
            if os.path.exists(target):
                ns.mount(source, target, "none", ns.MS_BIND)
    # sysfs shows the netns of whoever mounted it; remount so tools see ours
    if box.netns and box.binds:
        try:
            ns.umount("/sys")
            ns.mount("sysfs", "/sys", "sysfs", 0)
        except OSError:
            pass


def _exec(argv: list[str], env: dict[str, str] | None) -> None:
    try:
        os.chdir("/")
        if env is not None:
            os.execvpe(argv[0], argv, env)
        os.execvp(argv[0], argv)
    except FileNotFoundError:
        os.write(2, f"netkit: exec {argv[0]}: executable file not found in $PATH\n".encode())
        os._exit(127)
    except PermissionError:
        os.write(2, f"netkit: exec {argv[0]}: permission denied\n".encode())
        os._exit(126)
    except BaseException as exc:
        os.write(2, f"netkit: exec {argv[0]}: {exc}\n".encode())
        os._exit(126)


def _child(box: Sandbox, argv: list[str], env: dict[str, str] | None) -> None:
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        _enter(box)
    except BaseException as exc:
        os.write(2, f"netkit: cannot enter the container: {exc}\n".encode())
        os._exit(126)
    _exec(argv, env)


def _status(st: int) -> int:
    return os.waitstatus_to_exitcode(st) if os.WIFEXITED(st) else 128 + os.WTERMSIG(st)


def run_foreground(box: Sandbox, argv: list[str], env: dict[str, str] | None = None,
                   on_start=None, capture: list[bytes] | None = None,
                   capture_stderr: bool = False, timeout: float | None = None) -> int:
    """Run argv in the sandbox, wait, and return its exit code (128+N if killed by N).

    With `capture` (a list), the command's stdout (and stderr if
    `capture_stderr`) is collected into it instead of going to ours. With
    `timeout`, the command is killed with SIGKILL when it runs longer.
    """
    if not argv:
        raise InvalidArgument("no command given")
    sys.stdout.flush()
    sys.stderr.flush()
    r = w = -1
    if capture is not None:
        r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        if capture is not None:
            os.close(r)
            os.dup2(w, 1)
            if capture_stderr:
                os.dup2(w, 2)
            os.close(w)
        _child(box, argv, env)
    if on_start is not None:
        on_start(pid)
    # Ctrl-C goes to the whole foreground process group; wait for the child
    old = signal.signal(signal.SIGINT, signal.SIG_IGN) if _main_thread() else None
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        if capture is not None:
            os.close(w)
            while True:
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0 or not select.select([r], [], [], left)[0]:
                        _kill_quiet(pid)
                        break
                chunk = os.read(r, 65536)
                if not chunk:
                    break
                capture.append(chunk)
            os.close(r)
        elif deadline is not None:
            while True:
                done, st = os.waitpid(pid, os.WNOHANG)
                if done:
                    return _status(st)
                if time.monotonic() > deadline:
                    _kill_quiet(pid)
                    break
                time.sleep(0.01)
        _, st = os.waitpid(pid, 0)
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)
    return _status(st)


def _kill_quiet(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


def spawn_detached(box: Sandbox, argv: list[str], *, log_path: str, exit_path: str,
                   env: dict[str, str] | None = None) -> int:
    """Start argv in the background; return its pid. Its exit code lands in exit_path."""
    if not argv:
        raise InvalidArgument("no command given")
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    shim = os.fork()
    if shim == 0:
        try:
            os.close(r)
            os.setsid()
            fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            child = os.fork()
            if child == 0:
                os.close(w)
                _child(box, argv, env)
            os.write(w, str(child).encode())
            os.close(w)
            _, st = os.waitpid(child, 0)
            tmp = exit_path + ".tmp"
            with open(tmp, "w") as f:
                f.write(str(_status(st)))
            os.replace(tmp, exit_path)
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 32):
        data += chunk
    os.close(r)
    os.waitpid(shim, os.WNOHANG)
    if not data:
        raise KernelError(f"could not start {argv[0]}")
    return int(data)


def pid_alive(pid: int | None, start_time: int | None = None) -> bool:
    """True if pid runs and (when given) started at start_time (guards pid reuse)."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return False
    if fields[0] == "Z":
        return False
    return start_time is None or int(fields[19]) == start_time


def start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def kill(pid: int | None, start: int | None = None, sig: int = signal.SIGKILL) -> None:
    if pid and pid_alive(pid, start):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def netns_pids(netns: str) -> list[int]:
    """Processes whose network namespace is `netns` (by inode), for rm -f."""
    try:
        target = os.stat(ns.netns_path(netns)).st_ino
    except FileNotFoundError:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino == target:
                    pids.append(int(entry))
            except (FileNotFoundError, PermissionError, ProcessLookupError):
                continue
    return pids
