"""Process plumbing under spawn.py: exec with Docker's errors, pidfds, reaping, subreapers.

The functions whose names start with an underscore run in freshly forked
children (single-threaded, no imports, end in exec or os._exit). A child
reports to its parent over a close-on-exec pipe, one record a line:
``P<pid> <start>`` (started), ``X<code> <message>`` (exec failed, Docker's
code and words), ``K<message>`` (could not enter the container),
``N<message>`` (the container is not running). EOF means the command was
exec'd: the pipe closed with it.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import select
import signal
import stat

from netkit.kernel import netns as ns

PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RESET_SIGNALS = tuple(s for s in signal.Signals
                      if s not in (signal.SIGKILL, signal.SIGSTOP) and s < signal.SIGRTMIN)


# -- in the parent ---------------------------------------------------------------------

def proc_stat(pid: int, proc: str | int = "/proc") -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) of pid, None if gone."""
    try:
        if isinstance(proc, int):       # a dirfd of some /proc
            fd = os.open(f"{pid}/stat", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)
        else:
            fd = os.open(f"{proc}/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.read(fd, 4096).decode()
        finally:
            os.close(fd)
        fields = data.rsplit(")", 1)[1].split()
        return fields[0], int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def pidfd_open(pid: int, start: int | None = None) -> int:
    """A pidfd for pid (any process, not only a child), close-on-exec.

    With `start` (its start time), the pidfd is checked to be that very
    process, not a later one with the same pid. Raises ProcessLookupError
    if the process is gone, a zombie or another one.
    """
    fd = os.pidfd_open(pid)
    st = proc_stat(pid)
    if st is None or st[0] in "ZX" or (start is not None and st[1] != start):
        os.close(fd)
        raise ProcessLookupError(errno.ESRCH, f"process {pid} is not running")
    return fd


def exit_code(status: int) -> int:
    """Docker's exit code from a wait status: the code, or 128+N when killed by signal N."""
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def reap(pid: int, *, block: bool = True) -> int | None:
    """Wait for the child (or adopted orphan) pid; its Docker exit code, None if still running.

    Raises ChildProcessError if pid is not ours to wait for.
    """
    done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
    return exit_code(status) if done else None


def reap_all() -> list[tuple[int, int]]:
    """Reap every child that has ended (a subreaper's SIGCHLD loop): [(pid, exit code)]."""
    out: list[tuple[int, int]] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return out
        if pid == 0:
            return out
        out.append((pid, exit_code(status)))


def wait_quietly(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:   # not ours (no subreaper): init reaps it
        pass


def become_subreaper(on: bool = True) -> None:
    """prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants are re-parented to this process."""
    if ns._libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(err)}")


def is_subreaper() -> bool:
    flag = ctypes.c_int(0)
    ns._libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0)
    return bool(flag.value)


def pipe() -> tuple[int, int]:
    """A close-on-exec pipe whose ends are above 2 (stdio may be closed in a daemon)."""
    r, w = os.pipe()
    return _lift(r), _lift(w)


def _lift(fd: int) -> int:
    if fd > 2:
        return fd
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.close(fd)
    return high


def read_records(r: int) -> list[tuple[str, str]]:
    """Read a child's report to EOF: [(kind, text)]. Closes r."""
    data = b""
    try:
        while chunk := os.read(r, 4096):
            data += chunk
    finally:
        os.close(r)
    return [(line[:1], line[1:]) for line in data.decode(errors="replace").splitlines() if line]


# -- in a forked child -----------------------------------------------------------------

def _record(w: int, kind: str, text: str) -> None:
    try:
        os.write(w, f"{kind}{' '.join(text.split())}\n".encode())
    except OSError:
        pass


def _reset_signals() -> None:
    """Default dispositions and an empty mask: ignored signals and masks survive exec."""
    for sig in RESET_SIGNALS:
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _close_fds(keep: set[int]) -> None:
    """Close every fd above 2 except `keep` (inherited sockets must not outlive the caller)."""
    low = 3
    for fd in sorted(k for k in keep if k > 2):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)


def _stdio(fds: tuple[int | None, int | None, int | None]) -> None:
    """Make fds 0, 1, 2 from the given fds (None: /dev/null), whatever numbers they have."""
    null = -1
    high = []
    for fd in fds:
        if fd is None:
            if null < 0:
                null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            fd = null
        high.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3))
    for i, fd in enumerate(high):
        os.dup2(fd, i)


def _lookup(name: str, env: dict[str, str]) -> str:
    """Go's exec.LookPath in the container, as runc does it: the path or an _Failed."""
    if "/" in name:
        try:
            st = os.stat(name)
        except OSError as exc:
            raise _Failed(127, f'exec: "{name}": stat {name}: {_reason(exc)}') from None
        if stat.S_ISDIR(st.st_mode) or not os.access(name, os.X_OK):
            raise _Failed(126, f'exec: "{name}": permission denied')
        return name
    for d in env.get("PATH", DEFAULT_PATH).split(":"):
        path = os.path.join(d or ".", name)
        try:
            if stat.S_ISREG(os.stat(path).st_mode) and os.access(path, os.X_OK):
                return path
        except OSError:
            continue
    raise _Failed(127, f'exec: "{name}": executable file not found in $PATH')


def _reason(exc: OSError) -> str:
    text = os.strerror(exc.errno) if exc.errno else str(exc)
    return text[:1].lower() + text[1:]


class _Failed(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _execute(w: int, argv: list[str], env: dict[str, str] | None) -> None:
    """Exec argv or report why not on w (Docker's code and words) and exit with the code."""
    env = dict(os.environ) if env is None else env
    try:
        os.execve(_lookup(argv[0], env), argv, env)
    except _Failed as exc:
        code, message = exc.code, str(exc)
    except OSError as exc:      # found, but the kernel refused (ENOEXEC, missing interpreter, ...)
        code = 127 if exc.errno == errno.ENOENT else 126
        message = f'exec: "{argv[0]}": {_reason(exc)}'
    except BaseException as exc:
        code, message = 126, f'exec: "{argv[0]}": {exc}'
    _record(w, "X", f"{code} {message}")
    os._exit(code)


def _wait_child(pid: int, timeout: float | None) -> int:
    """Wait for our child pid (SIGKILL after timeout); its Docker exit code."""
    if timeout is not None:
        pfd = os.pidfd_open(pid)
        try:
            if not select.select([pfd], [], [], max(timeout, 0))[0]:
                os.kill(pid, signal.SIGKILL)    # not reaped yet: the pid is still this child
        finally:
            os.close(pfd)
    _, status = os.waitpid(pid, 0)
    return exit_code(status)


def _collect(r: int, child: int, out: list[bytes]) -> None:
    """Read r to EOF, or until child exits (then what is buffered): a background process the
    command left behind may hold the pipe open."""
    pfd = os.pidfd_open(child)
    try:
        while True:
            ready = select.select([r, pfd], [], [])[0]
            if r in ready:
                chunk = os.read(r, 65536)
                if not chunk:
                    return
                out.append(chunk)
            elif pfd in ready:
                os.set_blocking(r, False)
                try:
                    while chunk := os.read(r, 65536):
                        out.append(chunk)
                except BlockingIOError:
                    pass
                return
    finally:
        os.close(pfd)
