"""What a container sees of the host's filesystem: read-only, with Docker's /dev and scratch.

netkit has no images: the host's files stand in for the container's root
filesystem. So that a root container (DAC_OVERRIDE, MKNOD) can change
nothing on the host nor in other containers, the node's template mount
namespace (mntns.ensure_template) gets:
- `private_dev`: /dev as Docker makes it, a tmpfs (mode 755, nosuid, nodev)
  holding only null, zero, full, random, urandom and tty (bound from the
  host's /dev), the fd/stdin/stdout/stderr/ptmx/core symlinks and the
  pts and shm mount points; a device node made with mknod anywhere a
  container can write cannot be opened (nodev);
- `read_only`: every mount copied from the host read-only (one
  mount_setattr(AT_RECURSIVE), else a remount per mount).

Each container's namespace (mntns.create) then gets, all nosuid and nodev:
- `layers`/`attach`: a writable layer of its own over /etc, /var and /root,
  where programs write config and state (/etc/frr, /var/lib/x, /var/log,
  root's HOME): an overlay with the host's directory as its read-only lower
  layer and `<container dir>/layer/<dir>/upper` above (Docker's writable
  layer, for these directories); netkit's covers below them are made again
  on top (the overlay shows the host's directory, not the mounts on it);
  /usr, /bin, /lib, /opt, /home... stay read-only (EROFS; each overlay
  costs ~0.5 ms per container);
- `scratch`: tmpfs on /tmp, /var/tmp and /run, a devpts instance on
  /dev/pts (/dev/ptmx -> pts/ptmx) and a tmpfs /dev/shm.
All of it lives as long as the container (its namespace is persisted):
what a container writes survives a restart, as in Docker, and reaches
neither the host nor another container. The host may still change a lower
directory under a live overlay (the kernel then shows either version of a
file not yet copied up).

`--privileged` gets the host's /dev (`host_dev`, in its init), as in Docker,
still on the read-only mount (device nodes open read-write there).
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import struct
from dataclasses import dataclass
from typing import Iterable

from netkit.kernel import netns as ns

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
SYS_MOUNT_SETATTR = 442                        # the same number on every architecture
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
SYS_OPEN_TREE, SYS_MOVE_MOUNT = 428, 429
OPEN_TREE_CLONE = 1
MOVE_MOUNT_F_EMPTY_PATH = 0x04
MOVE_MOUNT_T_SYMLINKS = 0x10                      # follow a symlinked target, as mount(2) does
DEV_SOURCE = "netkit-dev"                      # the private /dev's source in mountinfo
DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
# runc's default symlinks
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
             ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"), ("core", "/proc/kcore"))
# the host's directories where programs write config and state (/etc/frr, /var/lib/x, ~):
# an overlay each, writes landing in the container's own layer; the rest stays read-only
LAYERED = ("/etc", "/var", "/root")
HIDDEN_SOURCE = "netkit-hidden"                # hide_dirs's covers in mountinfo
SYS_FSOPEN, SYS_FSCONFIG, SYS_FSMOUNT = 430, 431, 432
FSOPEN_CLOEXEC = FSMOUNT_CLOEXEC = 1
FSCONFIG_SET_STRING, FSCONFIG_CMD_CREATE = 1, 6
MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV = 0x2, 0x4
# (mount point, tmpfs options): writable scratch private to each container
SCRATCH = (("/tmp", "mode=1777"), ("/var/tmp", "mode=1777"), ("/run", "mode=755"))
DEVPTS_OPTIONS = "newinstance,ptmxmode=0666,mode=0620,gid=5"
SHM_OPTIONS = "mode=1777,size=65536k"
# statvfs flags kept by a per-mount read-only remount (MS_* of the same values)
_KEPT = MS_NOSUID | MS_NODEV | MS_NOEXEC | 0x400 | 0x800 | 0x1000    # + noatime, nodiratime, relatime


# -- mount primitives (mntns.py uses them too) ------------------------------------------

@dataclass(frozen=True, slots=True)
class Mount:
    """One line of /proc/<pid>/mountinfo (the fields netkit needs)."""

    id: int
    parent: int
    mountpoint: str
    fstype: str
    shared: bool
    source: str = ""


def mounts(pid: str | int = "self") -> list[Mount]:
    """The mount table of a process ("thread-self" for the calling thread's)."""
    out = []
    with open(f"/proc/{pid}/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            after = right.split()
            out.append(Mount(int(fields[0]), int(fields[1]), _unescape(fields[4]), after[0],
                             any(o.startswith("shared:") for o in fields[6:]),
                             _unescape(after[1]) if len(after) > 1 else ""))
    return out


def _unescape(path: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def hide_dirs(dirs: Iterable[str]) -> None:
    """Cover each existing directory with an empty read-only tmpfs (outermost first; one below
    an already hidden one is hidden with it)."""
    done: list[str] = []
    for d in sorted(set(dirs), key=len):
        if any(d == h or d.startswith(h.rstrip("/") + "/") for h in done) or not os.path.isdir(d):
            continue
        ns.mount(HIDDEN_SOURCE, d, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY,
                 "size=4k,mode=755")
        done.append(d)


def _syscall(nr: int, *args: int | bytes | None) -> int:
    conv = [ctypes.c_char_p(a) if isinstance(a, bytes) or a is None else ctypes.c_long(a) for a in args]
    rc = ns._libc.syscall(ctypes.c_long(nr), *conv)
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return rc


def open_tree(path: str) -> int:
    """A detached clone of the mount at `path` (a file works too), close-on-exec."""
    try:
        return _syscall(SYS_OPEN_TREE, AT_FDCWD, os.fsencode(path), OPEN_TREE_CLONE | os.O_CLOEXEC)
    except OSError as exc:
        raise OSError(exc.errno, f"open_tree {path}: {exc.strerror}") from None


def move_mount(fd: int, target: str) -> None:
    """Attach the detached mount `fd` (from open_tree) at `target` in the calling thread's namespace."""
    try:
        _syscall(SYS_MOVE_MOUNT, fd, b"", AT_FDCWD, os.fsencode(target),
                 MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_SYMLINKS)
    except OSError as exc:
        raise OSError(exc.errno, f"mount on {target}: {exc.strerror}") from None


# -- a container's filesystem --------------------------------------------------------------

def private_dev() -> None:
    """In a new mount namespace: Docker's /dev over the host's (see the module docstring)."""
    clones = []
    try:
        for name in DEV_NODES:
            if os.path.exists(f"/dev/{name}"):
                clones.append((open_tree(f"/dev/{name}"), f"/dev/{name}"))
        ns.mount(DEV_SOURCE, "/dev", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=64k")
        for fd, target in clones:
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))
            move_mount(fd, target)
        for name, target in DEV_LINKS:
            os.symlink(target, f"/dev/{name}")
        for d in ("pts", "shm"):
            os.mkdir(f"/dev/{d}", 0o755)
    finally:
        for fd, _ in clones:
            os.close(fd)


def read_only(path: str = "/") -> None:
    """Make the mount at `path` and every mount below it read-only."""
    attr = struct.pack("=QQQQ", MOUNT_ATTR_RDONLY, 0, 0, 0)          # struct mount_attr
    try:
        _syscall(SYS_MOUNT_SETATTR, AT_FDCWD, os.fsencode(path), AT_RECURSIVE, attr, len(attr))
    except OSError as exc:
        if exc.errno not in (errno.ENOSYS, errno.EINVAL):
            raise OSError(exc.errno, f"make {path} read-only: {exc.strerror}") from None
        _remount_each(path)                          # kernel before 5.12


def _remount_each(path: str) -> None:
    top = path.rstrip("/")
    for m in mounts("thread-self"):
        if m.mountpoint == path or m.mountpoint.startswith(top + "/"):
            try:
                kept = os.statvfs(m.mountpoint).f_flag & _KEPT
                ns.mount("", m.mountpoint, None, MS_REMOUNT | ns.MS_BIND | MS_RDONLY | kept)
            except OSError:                          # shadowed or gone: what is on top was done
                pass


def layers(directory: str) -> list[tuple[int, str]]:
    """In the caller's (host) namespace: a detached overlay mount per directory of LAYERED,
    the host's directory read-only below, `directory`/<name> (made here) the container's
    writable layer above; (mount fd, target) pairs for `attach`. A directory holding
    `directory` (the overlay would overlap itself) is left read-only."""
    out: list[tuple[int, str]] = []
    here = os.path.realpath(directory)
    try:
        for lower in LAYERED:
            if not os.path.isdir(lower) or os.path.islink(lower) or here.startswith(lower + "/"):
                continue
            top = os.path.join(directory, lower.strip("/"))
            for d in ("upper", "work"):
                os.makedirs(os.path.join(top, d), mode=0o755, exist_ok=True)
            out.append((_overlay(lower, os.path.join(top, "upper"), os.path.join(top, "work")), lower))
    except BaseException:
        for fd, _ in out:
            os.close(fd)
        raise
    return out


def _overlay(lower: str, upper: str, work: str) -> int:
    fs = _syscall(SYS_FSOPEN, b"overlay", FSOPEN_CLOEXEC)
    try:
        for key, value in (("lowerdir", lower), ("upperdir", upper), ("workdir", work)):
            _syscall(SYS_FSCONFIG, fs, FSCONFIG_SET_STRING, key.encode(), os.fsencode(value), 0)
        _syscall(SYS_FSCONFIG, fs, FSCONFIG_CMD_CREATE, None, None, 0)
        return _syscall(SYS_FSMOUNT, fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)
    except OSError as exc:
        raise OSError(exc.errno, f"overlay on {lower}: {exc.strerror}") from None
    finally:
        os.close(fs)


def attach(layered: list[tuple[int, str]]) -> None:
    """In the container's new namespace: the overlays of `layers` on their directories, and
    netkit's hidden directories below them covered again (the overlay shows the host's
    directory itself, not the mounts on it)."""
    if not layered:
        return
    hidden = [m.mountpoint for m in mounts("thread-self") if m.source == HIDDEN_SOURCE]
    for fd, target in layered:
        move_mount(fd, target)
    hide_dirs(h for h in hidden if any(h.startswith(t + "/") for _, t in layered))


def scratch() -> None:
    """In a container's new mount namespace: its own writable tmpfs scratch, /dev/pts, /dev/shm."""
    for target, options in SCRATCH:
        if os.path.isdir(target):
            ns.mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, options)
    if os.path.isdir("/var/run") and not os.path.islink("/var/run"):
        ns.mount("tmpfs", "/var/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")
    _dev_mounts()


def _dev_mounts() -> None:
    ns.mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, DEVPTS_OPTIONS)
    ns.mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, SHM_OPTIONS)


def host_dev() -> None:
    """`--privileged`, in its init: the host's /dev instead of the private one (once per
    namespace), with a devpts instance and a /dev/shm of its own still."""
    dev = [m for m in mounts("self") if m.mountpoint == "/dev"]
    if not dev or dev[-1].source != DEV_SOURCE:
        return
    ns.umount("/dev")                                # with what is below: the host's shows
    _dev_mounts()
