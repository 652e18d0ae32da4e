"""Secrets and configs inside a container (a read-only /run/secrets, files bound read-only at
absolute targets), and its domainname.

`mount(mnt_path, source_dir)` puts a read-only bind of `source_dir` (the
container's copies of its secret files, already given their modes) on
/run/secrets in the container's mount namespace bound at `mnt_path`.
When the namespace has no /run/secrets, a tmpfs of its own goes on /run
first (the host's /run is never written: the namespace is private, made
from the node's template, so nothing propagates back). Read-only as
Docker binds secrets: even root in the container cannot change them.

`mount_files(mnt_path, files)` binds single files (swarm configs) read-only
at absolute targets. A target needs a mount point: an existing file is
covered as it is; a missing one is made where the container can write (its
own layer over /etc, /var, /root, its /tmp and /run). netkit has no images,
so the container's root directory is the host's, read-only: for a target
there (a config's default /NAME) the container's root becomes a read-only
overlay of the host's root and a small tmpfs holding only the empty mount
points, with every mount of the old root moved onto it (`_root_overlay`);
nothing is ever written to the host's own files.
"""

from __future__ import annotations

import os

from netkit.errors import KernelError
from netkit.kernel import mntns
from netkit.kernel import netns as ns

TARGET = "/run/secrets"


def mount(mnt_path: str, source_dir: str) -> None:
    """Bind `source_dir` read-only on /run/secrets in the namespace at `mnt_path`."""
    def run() -> None:
        clone = mntns.open_tree(source_dir)              # from the caller's namespace
        try:
            ns.unshare(mntns.CLONE_FS)
            ns.join(mnt_path, ns.CLONE_NEWNS)
            if not os.path.isdir(TARGET):
                ns.mount("tmpfs", os.path.dirname(TARGET), "tmpfs", mntns.MS_NOSUID | mntns.MS_NODEV,
                         "mode=755")
                os.mkdir(TARGET, 0o755)
            mntns.move_mount(clone, TARGET)
            ns.mount("", TARGET, None, mntns.MS_REMOUNT | ns.MS_BIND | mntns.MS_RDONLY
                     | mntns.MS_NOSUID | mntns.MS_NODEV | mntns.MS_NOEXEC)
        finally:
            os.close(clone)

    try:
        mntns._on_thread(run)
    except OSError as exc:
        raise KernelError(f"mount secrets in {mnt_path}: {exc.strerror or exc}") from exc


def write(directory: str, secrets: tuple[tuple[str, str, int], ...]) -> None:
    """Copy each (host file, name, mode) into `directory` (made 0755), with its mode and its
    source's owner (a bind of the file shows that owner too, as Compose binds it)."""
    import shutil
    os.makedirs(directory, mode=0o755, exist_ok=True)
    for source, name, mode in secrets:
        dest = os.path.join(directory, name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        try:
            shutil.copyfile(source, dest)
            st = os.stat(source)
            os.chown(dest, st.st_uid, st.st_gid)
        except OSError as exc:
            raise KernelError(f"secret {name}: {source}: {exc.strerror}") from None
        os.chmod(dest, mode)


def write_files(directory: str, files: tuple[tuple[str, str, int], ...]) -> list[tuple[str, str]]:
    """Copy each (host file, absolute target, mode) into `directory` (0700) as its own file
    with that mode and owner; the (copy, target) pairs for `mount_files`."""
    write(directory, tuple((src, f"file-{i}", mode) for i, (src, _, mode) in enumerate(files)))
    os.chmod(directory, 0o700)
    return [(os.path.join(directory, f"file-{i}"), target) for i, (_, target, _) in enumerate(files)]


def mount_files(mnt_path: str, files: list[tuple[str, str]]) -> None:
    """Bind each (host file, absolute target) read-only in the namespace at `mnt_path`."""
    def run() -> None:
        clones: list[tuple[int, str]] = []
        try:
            for source, target in files:
                clones.append((mntns.open_tree(source), target))
            ns.unshare(mntns.CLONE_FS)
            ns.join(mnt_path, ns.CLONE_NEWNS)
            missing = [t for _, t in clones if not _mount_point(t)]
            if missing:
                _root_overlay(missing)
            for fd, target in clones:
                mntns.move_mount(fd, target)
                ns.mount("", target, None, mntns.MS_REMOUNT | ns.MS_BIND | mntns.MS_RDONLY
                         | mntns.MS_NOSUID | mntns.MS_NODEV | mntns.MS_NOEXEC)
        finally:
            for fd, _ in clones:
                os.close(fd)

    try:
        mntns._on_thread(run)
    except OSError as exc:
        raise KernelError(f"mount configs in {mnt_path}: {exc.strerror or exc}") from exc


def _mount_point(target: str) -> bool:
    """Make sure `target` can be bound on (in the container's namespace): True when it exists
    or was made; False when its directory is the read-only root (see _root_overlay)."""
    import errno
    if os.path.isdir(target):
        raise OSError(errno.EISDIR, f"{target} is a directory")
    if os.path.lexists(target):
        return True
    try:
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444))
        return True
    except OSError as exc:
        if exc.errno != errno.EROFS or os.stat(_existing(target)).st_dev != os.stat("/").st_dev:
            raise OSError(exc.errno, f"{target}: {exc.strerror}") from None
        return False


def _existing(path: str) -> str:
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


STAGE = "/tmp/.netkit-root"          # where the new root is put together (the container's /tmp)


def _root_overlay(targets: list[str]) -> None:
    """In the container's namespace (this thread joined it): a new root, a read-only overlay
    of a tmpfs holding empty files at `targets` above the old root's directory tree, every
    mount of the old root cloned onto it, moved on top of "/" (switch_root's way); this
    thread then lives in it (chroot), as every process that joins the namespace later does
    (setns goes to the topmost mount on "/")."""
    from netkit.kernel import rootfs
    top = next(m for m in reversed(rootfs.mounts("thread-self")) if m.mountpoint == "/")
    below = {m.mountpoint for m in rootfs.mounts("thread-self") if m.parent == top.id}
    # a mount below another one's mount point is covered by it (e.g. the host's /run/netns
    # under the container's /run): invisible, it stays behind
    children = sorted(mp for mp in below
                      if not any(mp.startswith(other.rstrip("/") + "/") for other in below))
    fds: list[int] = []
    try:
        subtrees = []
        for mp in children:
            fds.append(rootfs._syscall(rootfs.SYS_OPEN_TREE, rootfs.AT_FDCWD, os.fsencode(mp),
                                       rootfs.OPEN_TREE_CLONE | os.O_CLOEXEC | rootfs.AT_RECURSIVE))
            subtrees.append((fds[-1], mp))
        stubs = _stub_tmpfs(targets)
        fds.append(stubs)
        overlay = _read_only_overlay(f"/proc/self/fd/{stubs}:/")
        fds.append(overlay)
        os.makedirs(STAGE, mode=0o700, exist_ok=True)
        rootfs.move_mount(overlay, STAGE)
        for fd, mp in subtrees:
            rootfs.move_mount(fd, STAGE + mp)
        os.chdir(STAGE)
        ns.mount(".", "/", None, MS_MOVE)
        os.chroot(".")
        os.chdir("/")
        os.rmdir(STAGE)               # the stage's directory, left in the container's /tmp
    finally:
        for fd in fds:
            os.close(fd)


MS_MOVE = 8192


def _stub_tmpfs(targets: list[str]) -> int:
    """A detached tmpfs holding an empty file (and its directories) at each of `targets`."""
    from netkit.kernel import rootfs
    fs = rootfs._syscall(rootfs.SYS_FSOPEN, b"tmpfs", rootfs.FSOPEN_CLOEXEC)
    try:
        rootfs._syscall(rootfs.SYS_FSCONFIG, fs, rootfs.FSCONFIG_SET_STRING, b"mode", b"755", 0)
        rootfs._syscall(rootfs.SYS_FSCONFIG, fs, rootfs.FSCONFIG_CMD_CREATE, None, None, 0)
        mnt = rootfs._syscall(rootfs.SYS_FSMOUNT, fs, rootfs.FSMOUNT_CLOEXEC,
                              rootfs.MOUNT_ATTR_NOSUID | rootfs.MOUNT_ATTR_NODEV)
    finally:
        os.close(fs)
    base = f"/proc/self/fd/{mnt}"
    for target in targets:
        os.makedirs(base + os.path.dirname(target), mode=0o755, exist_ok=True)
        os.close(os.open(base + target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o444))
    return mnt


def _read_only_overlay(lowerdir: str) -> int:
    """A detached overlay of the `lowerdir` layers only (read-only by nature)."""
    from netkit.kernel import rootfs
    fs = rootfs._syscall(rootfs.SYS_FSOPEN, b"overlay", rootfs.FSOPEN_CLOEXEC)
    try:
        rootfs._syscall(rootfs.SYS_FSCONFIG, fs, rootfs.FSCONFIG_SET_STRING, b"lowerdir",
                        os.fsencode(lowerdir), 0)
        rootfs._syscall(rootfs.SYS_FSCONFIG, fs, rootfs.FSCONFIG_CMD_CREATE, None, None, 0)
        return rootfs._syscall(rootfs.SYS_FSMOUNT, fs, rootfs.FSMOUNT_CLOEXEC,
                               rootfs.MOUNT_ATTR_NOSUID | rootfs.MOUNT_ATTR_NODEV
                               | rootfs.MOUNT_ATTR_RDONLY)
    finally:
        os.close(fs)


def set_domainname(uts_path: str, domainname: str) -> None:
    """`--domainname`: the NIS domain name in the container's UTS namespace at `uts_path`."""
    import ctypes

    name = domainname.encode()

    def run() -> None:
        ns.unshare(mntns.CLONE_FS)
        ns.join(uts_path, ns.CLONE_NEWUTS)
        if ns._libc.setdomainname(ctypes.c_char_p(name), ctypes.c_size_t(len(name))) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    try:
        mntns._on_thread(run)                 # a thread of its own: it dies in that namespace
    except OSError as exc:
        raise KernelError(f"set domainname {domainname}: {exc.strerror or exc}") from exc
