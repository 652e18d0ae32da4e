"""Compose's file secrets inside a container (a read-only /run/secrets), and its domainname.

`mount(mnt_path, source_dir)` puts a read-only bind of `source_dir` (the
container's copies of its secret files, already given their modes) on
/run/secrets in the container's mount namespace bound at `mnt_path`.
When the namespace has no /run/secrets, a tmpfs of its own goes on /run
first (the host's /run is never written: the namespace is private, made
from the node's template, so nothing propagates back). Read-only as
Docker binds secrets: even root in the container cannot change them.
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
    """Copy each (host file, name, mode) into `directory` (made 0755), with its mode."""
    import shutil
    os.makedirs(directory, mode=0o755, exist_ok=True)
    for source, name, mode in secrets:
        dest = os.path.join(directory, name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        try:
            shutil.copyfile(source, dest)
        except OSError as exc:
            raise KernelError(f"secret {name}: {source}: {exc.strerror}") from None
        os.chmod(dest, mode)


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
