"""Network (and UTS) namespaces, made and entered without forking.

pyroute2's ``netns.create()`` and ``IPRoute(netns=...)`` fork a helper per
call (~15 ms). We do it in-process instead: one long-lived worker thread
does ``unshare``/``setns``, creates what must live in the namespace (a
bind mount, a socket) and switches back. A socket keeps the namespace it was
created in, so the caller's thread never changes namespace (the CNI pkg/ns
lesson: setns on a shared thread is how namespace leaks happen).

Names are those of ``ip netns``: bind mounts under /run/netns, shared with
iproute2 (the directory is made a shared mount exactly as iproute2 does).
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import queue
import threading
from typing import Callable, TypeVar

from netkit.errors import AlreadyExists, KernelError, NotFound

NETNS_DIR = "/run/netns"
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MNT_DETACH = 2

T = TypeVar("T")
_libc = ctypes.CDLL(None, use_errno=True)
_worker: "_Worker | None" = None
_worker_lock = threading.Lock()
_root_fd: int | None = None


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def join(path: str, nstype: int) -> None:
    """setns the calling thread into the namespace file at `path` (a mount namespace
    needs the thread's own fs_struct: unshare(CLONE_FS) first)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(fd, nstype)
    finally:
        os.close(fd)


def setns(fd: int, nstype: int = CLONE_NEWNET) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def mount(src: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(src.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                       data.encode() if data else None), f"mount {target}")


def umount(target: str) -> None:
    _check(_libc.umount2(target.encode(), MNT_DETACH), f"umount {target}")


def _home_fd() -> int:
    """fd of the netns the process started in (where the worker returns to)."""
    global _root_fd
    if _root_fd is None:
        _root_fd = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    return _root_fd


class _Worker:
    """One long-lived thread that runs calls in order, each caller waiting for its own
    (a one-thread executor without concurrent.futures, which costs a command ~3 ms to
    import with the logging it pulls in)."""

    def __init__(self) -> None:
        self._calls: "queue.SimpleQueue[tuple[Callable[[], object], threading.Lock, list]]" = \
            queue.SimpleQueue()
        threading.Thread(target=self._serve, name="netkit-netns", daemon=True).start()

    def _serve(self) -> None:
        while True:
            fn, done, out = self._calls.get()
            try:
                out.append((True, fn()))
            except BaseException as exc:       # handed to the caller
                out.append((False, exc))
            done.release()

    def call(self, fn: Callable[[], T]) -> T:
        done = threading.Lock()
        done.acquire()
        out: list[tuple[bool, object]] = []
        self._calls.put((fn, done, out))
        done.acquire()
        ok, value = out[0]
        if not ok:
            raise value                         # type: ignore[misc]
        return value                            # type: ignore[return-value]


def _after_fork_in_child() -> None:
    """The worker thread did not survive fork(): the child starts its own on first use
    (a call queued to the parent's would wait forever)."""
    global _worker, _worker_lock
    _worker = None
    _worker_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def in_worker(fn: Callable[[], T]) -> T:
    """Run fn on the namespace worker thread and return its result."""
    global _worker
    if _worker is None:
        with _worker_lock:
            if _worker is None:
                _home_fd()
                _worker = _Worker()
    return _worker.call(fn)


def netns_path(name: str) -> str:
    return f"{NETNS_DIR}/{name}"


def exists(name: str) -> bool:
    return os.path.exists(netns_path(name))


def list_netns() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


_shared = False


def _share_netns_dir() -> None:
    # As iproute2: make /run/netns a shared bind mount of itself, so mounts
    # made below it show in every mount namespace (ip netns, our spawns).
    global _shared
    if _shared:
        return
    _shared = True
    os.makedirs(NETNS_DIR, exist_ok=True)
    if _libc.mount(b"", NETNS_DIR.encode(), b"none", MS_SHARED | MS_REC, None) == 0:
        return
    mount(NETNS_DIR, NETNS_DIR, "none", MS_BIND | MS_REC)
    mount("", NETNS_DIR, "none", MS_SHARED | MS_REC)


SYS_FSOPEN, SYS_FSCONFIG, SYS_FSMOUNT = 430, 431, 432   # the same number on every architecture
FSOPEN_CLOEXEC, FSCONFIG_CMD_CREATE, FSMOUNT_CLOEXEC = 1, 6, 1
_fresh_proc_ok = True


def _fresh_proc() -> int | None:
    """A new, detached procfs instance (fsopen + fsmount: no mount table entry), as a
    close-on-exec fd; None where the kernel refuses it.

    Sysctl paths are looked up through it rather than through the host's /proc: the
    kernel hashes every netns's /proc/sys/net/... dentries of one procfs instance under
    the same parents, so a lookup there walks a chain as long as the number of network
    namespaces that ever touched that path (13 us with 1 netns, 240 us with 1000 on
    this machine); a fresh instance holds only the netns it is used in, and is freed
    with its fd.
    """
    global _fresh_proc_ok
    if not _fresh_proc_ok:
        return None
    sc = _libc.syscall
    fs = sc(ctypes.c_long(SYS_FSOPEN), ctypes.c_char_p(b"proc"), ctypes.c_uint(FSOPEN_CLOEXEC))
    if fs < 0:
        _fresh_proc_ok = False
        return None
    try:
        if sc(ctypes.c_long(SYS_FSCONFIG), ctypes.c_int(fs), ctypes.c_uint(FSCONFIG_CMD_CREATE),
              None, None, ctypes.c_int(0)) < 0:
            _fresh_proc_ok = False
            return None
        mfd = sc(ctypes.c_long(SYS_FSMOUNT), ctypes.c_int(fs), ctypes.c_uint(FSMOUNT_CLOEXEC),
                 ctypes.c_uint(0))
        if mfd < 0:
            _fresh_proc_ok = False
            return None
        return mfd
    finally:
        os.close(fs)


def _sysctl_io(key: str, value: str | None = None) -> str:
    """Write `value` to (or read) net sysctl `key` of the calling thread's netns."""
    proc = _fresh_proc()
    path = f"sys/net/{key}" if proc is not None else f"/proc/sys/net/{key}"
    try:
        fd = os.open(path, os.O_RDONLY if value is None else os.O_WRONLY, dir_fd=proc)
    finally:
        if proc is not None:
            os.close(proc)
    try:
        if value is None:
            return os.read(fd, 4096).decode().strip()
        os.write(fd, value.encode())
        return value
    finally:
        os.close(fd)


def _new_name(name: str) -> str:
    """The empty mount point of a new netns name under /run/netns (shared as iproute2's)."""
    path = netns_path(name)
    _share_netns_dir()
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    except FileExistsError:
        raise AlreadyExists(f"netns {name} already exists") from None
    return path


def create_netns(name: str, sysctls: dict[str, str] | None = None, *, lo_up: bool = False,
                 netlink: bool = False, uts: tuple[str, str] | None = None) -> socket.socket | None:
    """Make netns `name` (visible to `ip netns`) in one trip to the worker thread.

    `sysctls` (paths below /proc/sys/net) are written inside the new netns
    before anything else exists in it, e.g. ipv6/conf/default/disable_ipv6.
    `lo_up` brings loopback up; `netlink` returns a NETLINK_ROUTE socket
    bound to the new netns; `uts=(path, hostname)` also makes a UTS
    namespace bound at path (a container's, made in the same trip).
    """
    path = _new_name(name)

    if uts is not None:
        os.close(os.open(uts[0], os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))

    def make() -> socket.socket | None:
        uts_home = None
        try:
            unshare(CLONE_NEWNET)
            # /proc/self would be the main thread's namespace: use thread-self.
            mount("/proc/thread-self/ns/net", path, "none", MS_BIND)
            for key, value in (sysctls or {}).items():
                _sysctl_io(key, value)
            if lo_up:
                _ifup("lo")
            if uts is not None:
                uts_home = os.open("/proc/thread-self/ns/uts", os.O_RDONLY | os.O_CLOEXEC)
                unshare(CLONE_NEWUTS)
                socket.sethostname(uts[1])
                mount("/proc/thread-self/ns/uts", uts[0], "none", MS_BIND)
            return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 0) if netlink else None
        finally:
            setns(_home_fd())
            if uts_home is not None:
                setns(uts_home, CLONE_NEWUTS)
                os.close(uts_home)

    try:
        return in_worker(make)
    except OSError as exc:
        _remove_mountpoint(path)
        if uts is not None:
            _remove_mountpoint(uts[0])
        raise KernelError(f"create netns {name}: {exc.strerror or exc}") from exc


def _ifup(ifname: str) -> None:
    """Set IFF_UP with an ioctl (cheaper than a netlink round-trip; used for lo)."""
    import fcntl
    import struct
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sh", ifname.encode(), 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh", ifname.encode(), flags | IFF_UP))


def _remove_mountpoint(path: str) -> None:
    try:
        umount(path)
    except OSError:
        pass
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def delete_netns(name: str, missing_ok: bool = True) -> None:
    """Unmount and remove netns `name`; the kernel frees it (and its links) once unused."""
    path = netns_path(name)
    if not os.path.exists(path):
        if missing_ok:
            return
        raise NotFound(f"netns {name} not found")
    _remove_mountpoint(path)


def open_fd(name: str) -> int:
    try:
        return os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"netns {name} not found") from None


def run_in(name: str | None, fn: Callable[[], T]) -> T:
    """Run fn on the worker thread inside netns `name` (None: the home netns)."""
    if name is None:
        return in_worker(fn)
    fd = open_fd(name)

    def call() -> T:
        try:
            setns(fd, CLONE_NEWNET)
            return fn()
        finally:
            setns(_home_fd())

    try:
        return in_worker(call)
    finally:
        os.close(fd)


def socket_in(name: str | None, family: int, type: int, proto: int = 0) -> socket.socket:
    """A socket created inside netns `name`; it stays bound to that netns."""
    return run_in(name, lambda: socket.socket(family, type, proto))


def write_sysctl(name: str | None, key: str, value: str) -> None:
    """Write /proc/sys/net/<key> as seen from netns `name`."""
    run_in(name, lambda: _sysctl_io(key, value))


def read_sysctl(name: str | None, key: str) -> str:
    return run_in(name, lambda: _sysctl_io(key))


def create_uts(path: str, hostname: str) -> None:
    """A persistent UTS namespace bound at `path` with `hostname` set in it."""
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    uts_home = os.open("/proc/self/ns/uts", os.O_RDONLY | os.O_CLOEXEC)

    def make() -> None:
        try:
            unshare(CLONE_NEWUTS)
            socket.sethostname(hostname)
            mount("/proc/thread-self/ns/uts", path, "none", MS_BIND)
        finally:
            setns(uts_home, CLONE_NEWUTS)

    try:
        in_worker(make)
    except OSError as exc:
        _remove_mountpoint(path)
        raise KernelError(f"create uts namespace for {hostname}: {exc}") from exc
    finally:
        os.close(uts_home)


def remove_bind(path: str) -> None:
    """Undo create_uts (or any bind-mounted namespace file)."""
    _remove_mountpoint(path)


def is_missing(exc: OSError) -> bool:
    return exc.errno in (errno.ENOENT, errno.ENODEV, errno.ESRCH)


def bind_netns(name: str, source: str) -> None:
    """Give the existing netns at `source` (a netns file: another bind, /proc/PID/ns/net)
    the name `name` (``ip netns attach``). `delete_netns(name)` drops only this name: the
    namespace lives on while its owner holds it."""
    path = _new_name(name)
    try:
        mount(source, path, "none", MS_BIND)
    except OSError as exc:
        _remove_mountpoint(path)
        raise KernelError(f"attach netns {source}: {exc.strerror or exc}") from exc
