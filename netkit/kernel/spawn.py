"""Start processes inside a container's namespaces.

The runtime (`start_init`, `exec_in`, `signal_init`): each start of a
container gets a PID namespace. A short-lived thread of the caller joins
the container's netns, UTS and persisted mount namespace (mntns.py),
unshares CLONE_NEWPID and forks the container's init, pid 1 inside, which
mounts its own /proc there and execs; the caller (the node agent, a child
subreaper) reaps it: no resident process per container. `exec_in` joins the same
namespaces and the init's current PID namespace, so the container's end
(SIGKILL of its init tears the PID namespace down) ends it too, and a
process that merely entered the netns from outside is never touched.
A container's process (init or exec) drops to its privileges last, right
before exec (`Sandbox.creds`, kernel/caps.py: Docker's capabilities, user,
sysctls; the init also gets Docker's masked and read-only /proc paths).

The older path (`run_foreground`, `spawn_detached`) stays for what still
uses it (node exec, host mode): the child joins the netns and UTS
namespace and, with file binds, gets a slave mount namespace of its own,
or joins the sandbox's persisted one (`Sandbox.mntns`). Detached processes
get a small shim (a forked copy of this process) that writes the exit
status.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
import time
from dataclasses import dataclass

from netkit.errors import InvalidArgument, KernelError
from netkit.kernel import caps, mntns, rootfs
from netkit.kernel import netns as ns
from netkit.kernel.errors import ExecFailed, NotRunning
from netkit.kernel.proc import (_close_fds, _collect, _execute, _record, _reset_signals,  # noqa: F401
                                _stdio, _wait_child, become_subreaper, exit_code, is_subreaper,
                                pidfd_open, pipe, proc_stat, read_records, reap, reap_all,
                                wait_quietly)

CLONE_NEWPID = 0x20000000
CLONE_FS = 0x00000200
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class Sandbox:
    """Where a process runs: netns name (None: stay), UTS bind path, file binds, mount namespace.

    With `mntns` (a file bound by mntns.create) processes join that
    namespace and `binds` are not used: the namespace holds them. Once an
    init was started in it, its /proc is the init's PID namespace's: run
    processes there with exec_in, not run_foreground.

    `creds` (a container's: capabilities, user, sysctls; caps.py) are set
    right before exec, after the namespaces were joined and /proc mounted;
    None: root with every capability (node exec). `hide`: directories a
    process without a persisted mount namespace gets an empty read-only
    mount over (the persisted ones have them from their template).
    """

    netns: str | None
    uts: str | None = None
    binds: tuple[tuple[str, str], ...] = ()      # (source file, target path)
    mntns: str | None = None
    creds: caps.Creds | None = None
    hide: tuple[str, ...] = ()


def _enter(box: Sandbox, *, own_mnt: bool = False) -> None:
    """In a freshly forked child: join the namespaces. Single-threaded here.

    `own_mnt`: a mount namespace of its own even without binds (for /proc).
    """
    if box.netns:
        ns.join(ns.netns_path(box.netns), ns.CLONE_NEWNET)
    if box.uts:
        ns.join(box.uts, ns.CLONE_NEWUTS)
    if box.mntns:
        ns.join(box.mntns, ns.CLONE_NEWNS)
        return
    if box.binds or own_mnt or box.creds is not None:
        ns.unshare(ns.CLONE_NEWNS)
        # keep host mounts flowing in, but ours must not leak out
        ns.mount("", "/", None, ns.MS_SLAVE | ns.MS_REC)
        for source, target in box.binds:
            if os.path.exists(target):
                ns.mount(source, target, "none", ns.MS_BIND)
        # sysfs shows the netns of whoever mounted it; remount so tools see ours
        if box.netns:
            try:
                ns.umount("/sys")
                ns.mount("sysfs", "/sys", "sysfs", 0)
            except OSError:
                pass
        if box.creds is not None:
            mntns.hide_dirs(box.hide)
            if not box.creds.privileged:
                ns.mount("", "/sys", None, ns.MS_BIND | mntns.MS_REMOUNT | mntns.MS_RDONLY)
                rootfs.private_dev()
            rootfs.read_only("/")           # as in the template (kernel/rootfs.py)
            rootfs.scratch()


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
        if box.creds is not None:
            _own_pid_namespace(box.creds)
    except BaseException as exc:
        os.write(2, f"netkit: cannot enter the container: {exc}\n".encode())
        os._exit(126)
    _exec(argv, env)


def _own_pid_namespace(creds: caps.Creds) -> None:
    """A container process without an init to join (a bare sandbox's exec): a PID namespace
    and a /proc of its own (in a private copy of the mount namespace), so it never sees the
    host's processes; this process waits for the command and exits with its code."""
    ns.unshare(ns.CLONE_NEWNS)          # a copy: the persisted namespace keeps its /proc
    ns.unshare(CLONE_NEWPID)
    pid = os.fork()
    if pid:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        os._exit(_wait_child(pid, None))
    caps._libc()[0].prctl(PR_SET_PDEATHSIG, signal.SIGKILL)     # killed (timeout): its namespace ends
    mntns.mount_proc()
    mntns.protect_proc(privileged=creds.privileged)
    caps.apply(caps.Creds(creds.caps, creds.user, (), creds.privileged))


_status = exit_code


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
    if box.creds is not None:
        caps.prepare()
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
            fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
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
    st = proc_stat(pid) if pid else None
    return st is not None and st[0] != "Z" and (start_time is None or st[1] == start_time)


def start_time(pid: int) -> int | None:
    st = proc_stat(pid)
    return st[1] if st else None


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


# -- the runtime: a PID namespace per start ---------------------------------------------

def start_init(box: Sandbox, argv: list[str], env: dict[str, str] | None = None, *,
               stdin: int | None = None, stdout: int | None = None,
               stderr: int | None = None) -> tuple[int, int]:
    """Start the container's init (pid 1 of a new PID namespace); (host pid, start time).

    Returns once argv was exec'd. The init is the caller's child: the
    caller should reap it (reap, reap_all; as a child subreaper, as the
    node agent is, it also reaps what the init leaves behind).
    `stdin`/`stdout`/`stderr`: fds (None: /dev/null); no other fd is
    passed on. The init runs in a session of its own.

    A short-lived thread joins the container's namespaces (its own
    fs_struct, so the caller's other threads stay where they are),
    unshares CLONE_NEWPID and forks the init: one fork of the caller,
    where a forked helper would cost a second one (~1.5 ms for a
    process the size of the node agent). The thread dies afterwards.

    Raises ExecFailed (Docker's message, `exit_code` 127 or 126; the init
    is reaped) or KernelError when the namespaces cannot be entered.
    """
    if not argv:
        raise InvalidArgument("no command given")
    if box.creds is not None:
        caps.prepare()
    r, w = pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    forked: list[int | BaseException] = []
    try:
        thread = threading.Thread(target=_fork_init, name="netkit-init",
                                  args=(box, argv, env, (stdin, stdout, stderr), w, forked))
        thread.start()
        thread.join()
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
    result = forked[0] if forked else KernelError(f"could not start {argv[0]}")
    if isinstance(result, BaseException):
        os.close(r)
        raise KernelError(f"cannot enter the container: {result}") from None
    return started(result, r)


def started(pid: int, r: int) -> tuple[int, int]:
    """After the init's fork: read its report pipe `r` to EOF (closed here); (pid, start
    time) once it exec'd, else its error (ExecFailed, KernelError; the init reaped)."""
    records = read_records(r)           # EOF: exec'd (or failed and reported)
    for kind, text in records:
        if kind in "XK":
            wait_quietly(pid)           # it has exited: failed before or at exec
        if kind == "X":
            code, _, message = text.partition(" ")
            raise ExecFailed(message, int(code))
        if kind == "K":
            raise KernelError(text)
    st = proc_stat(pid)
    return pid, st[1] if st else 0


def _fork_init(box: Sandbox, argv: list[str], env: dict[str, str] | None,
               stdio: tuple[int | None, int | None, int | None], w: int,
               forked: list[int | BaseException]) -> None:
    """On a thread of its own: enter, unshare the PID namespace, fork the init."""
    try:
        ns.unshare(CLONE_FS)            # setns into a mount namespace needs our own fs_struct
        _enter(box, own_mnt=True)
        ns.unshare(CLONE_NEWPID)
        pid = os.fork()
        if pid == 0:
            _init(argv, env, stdio, w, box.creds)
        forked.append(pid)
    except BaseException as exc:        # handed to the caller
        forked.append(exc)


def _init(argv: list[str], env: dict[str, str] | None,
          stdio: tuple[int | None, int | None, int | None], w: int,
          creds: caps.Creds | None = None, *, gate: int = -1, signals: bool = True) -> None:
    """pid 1: own session, stdio, a /proc of its PID namespace, sysctls, creds, exec.

    `gate` (an fd): wait there before the exec, ready, until the parent writes
    b"g" (EOF without it: the start was called off, exit quietly). `signals`:
    reset signal dispositions and mask (False: the parent has only defaults).
    """
    try:
        os.setsid()
        if signals:
            _reset_signals()
        _stdio(stdio)
        _close_fds({w, gate})
        mntns.mount_proc()
        if creds is not None:
            caps.write_sysctls(creds.sysctls)      # before /proc/sys turns read-only
            mntns.protect_proc(privileged=creds.privileged)
            caps.apply(creds)
        os.chdir("/")
    except BaseException as exc:
        _record(w, "K", f"cannot start the container: {exc}")
        os._exit(126)
    if gate >= 0 and os.read(gate, 1) != b"g":
        os._exit(126)
    _execute(w, argv, env)


def _ns_fds(box: Sandbox, pid: int, start: int) -> list[tuple[int, int]]:
    """fds of the namespaces exec_in joins: the sandbox's, else the init's; the init's PID ns."""
    paths = [(ns.netns_path(box.netns) if box.netns else f"/proc/{pid}/ns/net", ns.CLONE_NEWNET),
             (box.uts or f"/proc/{pid}/ns/uts", ns.CLONE_NEWUTS),
             (f"/proc/{pid}/ns/pid", CLONE_NEWPID),
             (box.mntns or f"/proc/{pid}/ns/mnt", ns.CLONE_NEWNS)]     # last: it moves / and cwd
    fds: list[tuple[int, int]] = []
    try:
        for path, nstype in paths:
            fds.append((os.open(path, os.O_RDONLY | os.O_CLOEXEC), nstype))
        st = proc_stat(pid)             # after opening: the fds are that process's
        if st is None or st[0] in "ZX" or st[1] != start:
            raise FileNotFoundError
    except OSError:
        for fd, _ in fds:
            os.close(fd)
        raise NotRunning(f"process {pid} is not running") from None
    return fds


def exec_in(box: Sandbox, init_pid: int, init_start: int, argv: list[str],
            env: dict[str, str] | None = None, *, capture: list[bytes] | None = None,
            capture_stderr: bool = False, timeout: float | None = None) -> int:
    """`docker exec`: run argv in the container of init_pid, in the foreground; its exit code.

    The process joins the container's namespaces and the init's PID
    namespace (checked to be the init started at init_start), so it dies
    with the container. stdin/stdout/stderr are ours; with `capture` (a
    list) stdout (and stderr with `capture_stderr`) is collected there.
    With `timeout` it is killed (SIGKILL, 137) when it runs longer.
    Raises NotRunning, or ExecFailed with Docker's message and code.
    """
    if not argv:
        raise InvalidArgument("no command given")
    if box.creds is not None:
        caps.prepare()
    fds = _ns_fds(box, init_pid, init_start)
    r, w = pipe()
    cr, cw = pipe() if capture is not None else (-1, -1)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        helper = os.fork()
        if helper == 0:
            _exec_helper(fds, argv, env, w, cw, capture_stderr, timeout, box.creds)
    except BaseException:
        for fd in (r, cr):
            if fd >= 0:
                os.close(fd)
        raise
    finally:
        for fd in (w, cw, *(fd for fd, _ in fds)):
            if fd >= 0:
                os.close(fd)
    # Ctrl-C goes to the whole foreground process group; wait for the command
    old = signal.signal(signal.SIGINT, signal.SIG_IGN) if _main_thread() else None
    try:
        records = read_records(r)
        for kind, text in records:
            if kind in "XKN":
                wait_quietly(helper)
                if kind == "X":
                    code, _, message = text.partition(" ")
                    raise ExecFailed(message, int(code))
                raise (NotRunning if kind == "N" else KernelError)(text)
        if capture is not None:
            _collect(cr, helper, capture)
        _, status = os.waitpid(helper, 0)
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)
        if cr >= 0:
            os.close(cr)
    return exit_code(status)


def _exec_helper(fds: list[tuple[int, int]], argv: list[str], env: dict[str, str] | None,
                 w: int, cw: int, capture_stderr: bool, timeout: float | None,
                 creds: caps.Creds | None = None) -> None:
    """The forked helper of exec_in: join, fork the command into the PID namespace, wait for it,
    exit with its code (so the caller's wait gives it)."""
    code = 255
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _close_fds({w, cw, *(fd for fd, _ in fds)})
        for fd, nstype in fds:
            ns.setns(fd, nstype)
        try:
            child = os.fork()
        except OSError:                 # the PID namespace is dead: its init has exited
            _record(w, "N", "the container is not running")
            os._exit(code)
        if child == 0:
            _exec_child(argv, env, w, cw, capture_stderr, creds)
        os.close(w)                     # EOF for the caller once the command has exec'd
        if cw >= 0:
            os.close(cw)
        code = _wait_child(child, timeout)
    except BaseException as exc:
        _record(w, "K", f"cannot enter the container: {exc}")
    finally:
        os._exit(code)


def _exec_child(argv: list[str], env: dict[str, str] | None, w: int, cw: int,
                capture_stderr: bool, creds: caps.Creds | None = None) -> None:
    try:
        _reset_signals()
        if cw >= 0:
            os.dup2(cw, 1)
            if capture_stderr:
                os.dup2(cw, 2)
        _close_fds({w})
        if creds is not None:           # the container's, as Docker gives exec processes
            caps.apply(caps.Creds(creds.caps, creds.user, (), creds.privileged))
        os.chdir("/")
    except BaseException as exc:
        _record(w, "K", f"cannot start the command: {exc}")
        os._exit(126)
    _execute(w, argv, env)


def signal_init(pid: int, start: int | None, sig: int = signal.SIGKILL) -> bool:
    """Send sig to the container's init if it is still the process started at `start`.

    SIGKILL ends the PID namespace: every process of the container, and
    only those. Other signals reach pid 1 only if it handles them (the
    kernel drops the rest, as for Docker's `stop` of a plain `sleep`).
    False if the init is no longer running.
    """
    try:
        fd = pidfd_open(pid, start)
    except ProcessLookupError:
        return False
    try:
        signal.pidfd_send_signal(fd, sig)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(fd)
