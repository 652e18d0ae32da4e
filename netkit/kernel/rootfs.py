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

from netkit.kernel import netns as ns

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
SYS_MOUNT_SETATTR = 442                        # the same number on every architecture
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
DEV_SOURCE = "netkit-dev"                      # the private /dev's source in mountinfo
DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
# runc's default symlinks
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
             ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"), ("core", "/proc/kcore"))
# (mount point, tmpfs options): writable scratch private to each container
# the host's directories where programs write config and state (/etc/frr, /var/lib/x, ~):
# an overlay each, writes landing in the container's own layer; the rest stays read-only
LAYERED = ("/etc", "/var", "/root")
HIDDEN_SOURCE = "netkit-hidden"                # mntns.hide_dirs's covers in mountinfo
SYS_FSOPEN, SYS_FSCONFIG, SYS_FSMOUNT = 430, 431, 432
FSOPEN_CLOEXEC = FSMOUNT_CLOEXEC = 1
FSCONFIG_SET_STRING, FSCONFIG_CMD_CREATE = 1, 6
MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV = 0x2, 0x4
SCRATCH = (("/tmp", "mode=1777"), ("/var/tmp", "mode=1777"), ("/run", "mode=755"))
DEVPTS_OPTIONS = "newinstance,ptmxmode=0666,mode=0620,gid=5"
SHM_OPTIONS = "mode=1777,size=65536k"
# statvfs flags kept by a per-mount read-only remount (MS_* of the same values)
_KEPT = MS_NOSUID | MS_NODEV | MS_NOEXEC | 0x400 | 0x800 | 0x1000    # + noatime, nodiratime, relatime


def private_dev() -> None:
    """In a new mount namespace: Docker's /dev over the host's (see the module docstring)."""
    from netkit.kernel import mntns
    clones = []
    try:
        for name in DEV_NODES:
            if os.path.exists(f"/dev/{name}"):
                clones.append((mntns.open_tree(f"/dev/{name}"), f"/dev/{name}"))
        ns.mount(DEV_SOURCE, "/dev", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=64k")
        for fd, target in clones:
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))
            mntns.move_mount(fd, target)
        for name, target in DEV_LINKS:
            os.symlink(target, f"/dev/{name}")
        for d in ("pts", "shm"):
            os.mkdir(f"/dev/{d}", 0o755)
    finally:
        for fd, _ in clones:
            os.close(fd)


def read_only(path: str = "/") -> None:
    """Make the mount at `path` and every mount below it read-only."""
    attr = ctypes.create_string_buffer(32)          # struct mount_attr: attr_set = RDONLY
    ctypes.c_uint64.from_buffer(attr).value = MOUNT_ATTR_RDONLY
    rc = ns._libc.syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(AT_FDCWD),
                          ctypes.c_char_p(os.fsencode(path)), ctypes.c_uint(AT_RECURSIVE),
                          attr, ctypes.c_size_t(32))
    if rc == 0:
        return
    err = ctypes.get_errno()
    if err not in (errno.ENOSYS, errno.EINVAL):
        raise OSError(err, f"make {path} read-only: {os.strerror(err)}")
    _remount_each(path)                              # kernel before 5.12


def _remount_each(path: str) -> None:
    from netkit.kernel import mntns
    top = path.rstrip("/")
    for m in mntns.mounts("thread-self"):
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
    from netkit.kernel.mntns import _syscall as _call
    fs = _call(SYS_FSOPEN, b"overlay", FSOPEN_CLOEXEC)
    try:
        for key, value in (("lowerdir", lower), ("upperdir", upper), ("workdir", work)):
            _call(SYS_FSCONFIG, fs, FSCONFIG_SET_STRING, key.encode(), os.fsencode(value), 0)
        _call(SYS_FSCONFIG, fs, FSCONFIG_CMD_CREATE, None, None, 0)
        return _call(SYS_FSMOUNT, fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)
    except OSError as exc:
        raise OSError(exc.errno, f"overlay on {lower}: {exc.strerror}") from None
    finally:
        os.close(fs)


def attach(layered: list[tuple[int, str]]) -> None:
    """In the container's new namespace: the overlays of `layers` on their directories, and
    netkit's hidden directories below them covered again (the overlay shows the host's
    directory itself, not the mounts on it)."""
    from netkit.kernel import mntns
    if not layered:
        return
    hidden = [m.mountpoint for m in mntns.mounts("thread-self") if m.source == HIDDEN_SOURCE]
    for fd, target in layered:
        mntns.move_mount(fd, target)
    mntns.hide_dirs(h for h in hidden if any(h.startswith(t + "/") for _, t in layered))


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
    from netkit.kernel import mntns
    dev = [m for m in mntns.mounts("self") if m.mountpoint == "/dev"]
    if not dev or dev[-1].source != DEV_SOURCE:
        return
    ns.umount("/dev")                                # with what is below: the host's shows
    _dev_mounts()
