"""A container's own mount namespace: made once, private, persisted like its netns.

A new mount namespace is a copy of its parent's mount table. The host's
table holds one bind mount per netns (/run/netns/*) and per persisted UTS
or mount namespace file, so a namespace copied from the host costs more
with every container (and, as a slave of `/`, it then received every later
netns mount: kernel mount objects grew with the square of the containers).

So each node has a **template** mount namespace, made once and bound on a
file (`ensure_template`): propagation private, /run/netns, the directories
named in `detach` and any other namespace file (nsfs) detached. A
container's namespace (`create`) is unshared from the template, so its copy
is small and the same size whatever the number of containers; its own
/etc/hosts, /etc/resolv.conf and /etc/hostname are bind-mounted over the
host's and /sys is remounted to show its netns. Processes join it with
setns (spawn.Sandbox.mntns); the init of each start mounts its own /proc.
What a container sees of the host's files (kernel/rootfs.py): the template
makes them read-only and gives Docker's /dev; each container gets a
writable layer over /etc, /var and /root and tmpfs scratch of its own.

Kernel rules this follows:
- a mount namespace file can be bound only from a namespace older than the
  one bound (mnt_ns_loop): every bind here is made from the caller's (host)
  namespace, after the namespace was built on a short-lived thread;
- binding a mount namespace file fails (EINVAL) when its parent mount
  propagates to other namespaces: the `detach` directories are made private
  mount points on the host, and the files must live below one of them;
- the template hides the host's run tree, so the files bound into a
  container are cloned in the host first (open_tree) and attached inside
  (move_mount): kernel 5.2 or later.
- setns into a mount namespace needs an unshared fs_struct: the thread
  unshares CLONE_FS first and dies afterwards, so no other thread moves.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, TypeVar

from netkit.errors import AlreadyExists, KernelError, NotFound
from netkit.kernel import netns as ns
from netkit.kernel import rootfs
from netkit.kernel.rootfs import Mount, hide_dirs, mounts, move_mount, open_tree  # noqa: F401
from netkit.kernel.journal import UndoJournal

T = TypeVar("T")

CLONE_FS = 0x00000200
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
NS_GET_NSTYPE = 0xB703
HOSTNAME_FILES = ("/etc/hosts", "/etc/resolv.conf", "/etc/hostname")
MS_RDONLY, MS_REMOUNT = 1, 32
# Docker's default masked and read-only paths (moby oci.DefaultSpec), off with --privileged
PROC_MASKED = ("/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
               "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi")
PROC_READONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
SYS_MASKED = ("/sys/firmware", "/sys/devices/virtual/powercap")


def is_mntns(path: str) -> bool:
    """True if `path` is a bound mount namespace file (not a leftover empty file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return _is_mntns_fd(fd)
    finally:
        os.close(fd)


def _is_mntns_fd(fd: int) -> bool:
    try:
        return fcntl.ioctl(fd, NS_GET_NSTYPE) == ns.CLONE_NEWNS
    except OSError:
        return False


def private_mount_point(path: str) -> None:
    """Make directory `path` a private mount point on the host (idempotent).

    Namespace files bound below it then never propagate into other mount
    namespaces, and one lazy umount in a copied namespace detaches them all.
    Mounts already below `path` are carried over (recursive bind) and the
    originals, now hidden under the bind, are detached through O_PATH fds.
    """
    os.makedirs(path, exist_ok=True)
    path = os.path.realpath(path)
    if _is_mount_point(path):                   # the common case, without reading the table
        return
    with _locked(path):                         # two processes may get here at once
        table = mounts()
        if any(m.mountpoint == path for m in table):
            return
        _bind_private(path, [m.mountpoint for m in table if m.mountpoint.startswith(path + "/")])


def _is_mount_point(path: str) -> bool:
    """Is directory `path` the root of a mount (its mount id not its parent's)?"""
    return _mount_id(path) != _mount_id(os.path.dirname(path))


def _mount_id(path: str) -> int:
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            for line in f:
                if line.startswith("mnt_id:"):
                    return int(line.split()[1])
    finally:
        os.close(fd)
    raise KernelError(f"no mount id for {path}")


@contextmanager
def _locked(directory: str) -> Iterator[None]:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _bind_private(path: str, submounts: list[str]) -> None:
    below = [os.open(p, os.O_PATH | os.O_CLOEXEC | os.O_NOFOLLOW) for p in submounts]
    try:
        ns.mount(path, path, None, ns.MS_BIND | ns.MS_REC)
        ns.mount("", path, None, ns.MS_PRIVATE | ns.MS_REC)    # before detaching: no propagation
        for fd in below:
            try:
                ns.umount(f"/proc/self/fd/{fd}")
            except OSError:
                pass
    except OSError as exc:
        raise KernelError(f"make {path} a private mount point: {exc.strerror or exc}") from exc
    finally:
        for fd in below:
            os.close(fd)


def release_mount_point(path: str) -> None:
    """Undo private_mount_point: lazily unmount `path` (and whatever is still bound below it)."""
    path = os.path.realpath(path)
    if any(m.mountpoint == path for m in mounts()):
        try:
            ns.umount(path)
        except OSError:
            pass


def _on_thread(fn: Callable[[], T]) -> T:
    """Run fn on a new thread, which may then change its mount namespace and die with it."""
    box: list = []

    def run() -> None:
        try:
            box.append((True, fn()))
        except BaseException as exc:           # handed to the caller
            box.append((False, exc))

    t = threading.Thread(target=run, name="netkit-mntns")
    t.start()
    t.join()
    ok, value = box[0]
    if not ok:
        raise value
    return value


def _bind_ns(fd: int, path: str) -> None:
    """Bind the namespace behind fd on path, from the calling thread's (older) namespace."""
    try:
        ns.mount(f"/proc/self/fd/{fd}", path, None, ns.MS_BIND)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            raise OSError(exc.errno, f"bind {path}: its mount propagates to other namespaces "
                                     "(the directory must be below a private mount point)") from exc
        raise


def _detach(match: Callable[[Mount], bool]) -> None:
    """Lazily unmount every mount of the calling thread's table that `match`es."""
    for _ in range(8):                          # stacked mounts come off one per pass
        left = [m.mountpoint for m in mounts("thread-self") if match(m)]
        if not left:
            return
        for mp in left:
            try:
                ns.umount(mp)
            except OSError:
                pass


def _in_template(m: Mount) -> bool:
    """False for what a template leaves out: namespace files, and the host's mounts below the
    directories every container covers with its own tmpfs (/tmp, /run: other runs' private
    mount points among them, which would vanish from every copy when the host removes them)."""
    return m.fstype != "nsfs" and not any(m.mountpoint.startswith(d + "/") for d, _ in rootfs.SCRATCH)


def _make(path: str, what: str, build: Callable[[], None]) -> None:
    """Bind on `path` (an empty file) the mount namespace build() leaves a new thread in.

    The bind is made from the caller's namespace, after the thread went back
    to it (mnt_ns_loop); on failure the file is removed and the namespace,
    held by nothing, is freed with the thread.
    """
    def run() -> None:
        host = os.open("/proc/thread-self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        mine = -1
        try:
            build()
            mine = os.open("/proc/thread-self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
            ns.setns(host, ns.CLONE_NEWNS)
            _bind_ns(mine, path)
        finally:
            os.close(host)
            if mine >= 0:
                os.close(mine)

    try:
        _on_thread(run)
    except BaseException as exc:
        ns.remove_bind(path)
        if isinstance(exc, OSError):
            raise KernelError(f"{what} {path}: {exc.strerror or exc}") from exc
        raise


def ensure_template(path: str, *, detach: Iterable[str] | None = None,
                    hide: Iterable[str] = ()) -> None:
    """Make the node's template mount namespace, bound at `path`, unless it exists.

    `detach`: directories holding namespace files (default: the directory
    of `path`). Each is made a private mount point on the host when the
    template is made (one added since is the caller's to make, with
    private_mount_point); in the template they are detached whole, with /run/netns and any other nsfs
    mount. Container namespace files must live below one of them, and not
    below the mount holding the files bound into containers (their hosts
    files, their layers): each clone of those (open_tree, overlayfs) scans
    every mount below it.
    `hide`: directories covered by an empty read-only tmpfs in the template
    (netkit's state and run roots: every container's copy inherits it).
    """
    hidden = [os.path.realpath(d) for d in hide]
    if is_mntns(path):
        return
    dirs = [os.path.realpath(d) for d in (detach if detach is not None else [os.path.dirname(path)])]
    for d in dirs:
        private_mount_point(d)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with _locked(os.path.dirname(path)):
        if is_mntns(path):
            return
        ns.remove_bind(path)                    # a leftover of a crash half-way
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0))

        def build() -> None:
            ns.unshare(ns.CLONE_NEWNS)          # implies CLONE_FS: this thread only
            ns.mount("", "/", None, ns.MS_REC | ns.MS_PRIVATE)
            for d in (ns.NETNS_DIR, *dirs):
                try:
                    ns.umount(d)                # EINVAL when not a mount point: nothing to do
                except OSError:
                    pass
            _detach(lambda m: not _in_template(m))
            hide_dirs([ns.NETNS_DIR, *hidden])      # `ip netns` inside lists nothing, as in Docker
            rootfs.private_dev()
            rootfs.read_only("/")

        _make(path, "create mount namespace template", build)


def _mask(paths: Iterable[str]) -> None:
    """Docker's masked paths: a directory under an empty read-only tmpfs, a file under /dev/null."""
    for p in paths:
        if os.path.isdir(p):
            ns.mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "size=0")
        elif os.path.exists(p):
            ns.mount("/dev/null", p, None, ns.MS_BIND)


def mount_proc() -> None:
    """In the init, in the container's mount namespace: a /proc of its (new) PID namespace,
    the previous one (and what was mounted below it) detached."""
    try:
        ns.umount("/proc")                  # the previous start's (or the host's) procfs
    except OSError:
        pass
    ns.mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def protect_proc(*, privileged: bool = False) -> None:
    """After mount_proc: Docker's masked and read-only paths of /proc; with `privileged`
    none, /sys writable and the host's /dev (Docker's --privileged)."""
    if privileged:
        # Docker's --privileged: /sys writable, nothing masked, the host's /dev
        rootfs.host_dev()
        ns.mount("", "/sys", None, MS_REMOUNT | ns.MS_BIND | MS_NOSUID | MS_NODEV | MS_NOEXEC)
        for p in SYS_MASKED:
            try:
                ns.umount(p)
            except OSError:
                pass
        return
    _mask(PROC_MASKED)
    for p in PROC_READONLY:
        if os.path.exists(p):
            ns.mount(p, p, None, ns.MS_BIND | ns.MS_REC)
            ns.mount("", p, None, MS_REMOUNT | ns.MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)


def create(path: str, *, template: str, netns: str | None = None,
           binds: Iterable[tuple[str, str]] = (), layer: str | None = None,
           journal: UndoJournal | None = None) -> None:
    """A container's mount namespace, bound at `path` (a new file), copied from `template`.

    `binds`: (host file, target) pairs, e.g. the container's hosts file on
    /etc/hosts; targets missing in the namespace are skipped. With `netns`
    (a name under /run/netns or a path) /sys is remounted to show that
    netns. `layer`: the directory of its writable layers (default: `layer`
    beside `path`). Nothing is left behind on failure; with `journal`,
    remove(path) is pushed as the undo.
    """
    layer = layer if layer is not None else os.path.join(os.path.dirname(path), "layer")
    fds: list[int] = []
    try:
        tpl = _open(template, fds, "mount namespace template")
        if not _is_mntns_fd(tpl):
            raise NotFound(f"mount namespace template {template} not found")
        net = _open(netns if "/" in netns else ns.netns_path(netns), fds, "netns") if netns else -1
        clones: list[tuple[int, str]] = []
        for source, target in binds:
            try:
                clones.append((open_tree(source), target))
            except OSError as exc:
                raise KernelError(f"create mount namespace {path}: {exc.strerror}") from exc
            fds.append(clones[-1][0])
        try:
            os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0))
        except FileExistsError:
            raise AlreadyExists(f"mount namespace {path} already exists") from None
        try:
            layered = rootfs.layers(layer)
        except OSError as exc:
            ns.remove_bind(path)
            raise KernelError(f"create mount namespace {path}: {exc.strerror}") from exc
        fds.extend(fd for fd, _ in layered)

        def build() -> None:
            ns.unshare(CLONE_FS)
            ns.setns(tpl, ns.CLONE_NEWNS)
            ns.unshare(ns.CLONE_NEWNS)
            rootfs.attach(layered)              # before the binds: /etc/hosts goes on top
            for fd, target in clones:
                if os.path.exists(target):
                    move_mount(fd, target)
            rootfs.scratch()
            if net >= 0:
                # sysfs shows the netns of whoever mounts it
                ns.setns(net, ns.CLONE_NEWNET)
                try:
                    ns.umount("/sys")
                except OSError:
                    pass
                # read-only, as Docker mounts it (the init of a --privileged one remounts it)
                ns.mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC)
                ns.mount("", "/sys", None, MS_REMOUNT | ns.MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
                _mask(SYS_MASKED)

        _make(path, "create mount namespace", build)
    finally:
        for fd in fds:
            os.close(fd)
    if journal is not None:
        journal.push(f"remove mount namespace {path}", lambda: remove(path))


def _open(path: str, fds: list[int], what: str) -> int:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"{what} {path} not found") from None
    fds.append(fd)
    return fd


def remove(path: str) -> None:
    """Unbind and delete a mount namespace file (missing is fine). The kernel frees the
    namespace once no process uses it."""
    ns.remove_bind(path)
