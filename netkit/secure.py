"""netkit's own directories and files, safe from other users of the machine.

The state and run directories are made 0700 (each missing component of
them, so nothing below is reachable for others) and refused, with one
line, when one of them is a symbolic link, is not owned by the user netkit
runs as (root), or is writable by group or others: another user could
otherwise plant links there that netkit, as root, would follow. Their
parents are not checked (a world-writable /tmp with the sticky bit is fine).
The store's files are created 0600 (`private_file`).
"""

from __future__ import annotations

import os
import stat

from netkit.errors import Forbidden


def private_dir(path: str, what: str = "state directory") -> str:
    """Create `path` (missing components 0700) or check the existing one (and make it 0700);
    its path."""
    path = os.path.abspath(path)
    missing = []
    probe = path
    while not os.path.lexists(probe):
        missing.append(probe)
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            pass
    check_dir(path, what)
    if stat.S_IMODE(os.lstat(path).st_mode) & 0o077:      # one made by an older netkit: 0755
        os.chmod(path, 0o700)
    return path


def check_dir(path: str, what: str = "state directory") -> None:
    """Refuse a directory that is a symlink, not ours, or writable by group or others."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise Forbidden(f"refusing {what} {path}: it is a symbolic link")
    if not stat.S_ISDIR(st.st_mode):
        raise Forbidden(f"refusing {what} {path}: not a directory")
    if st.st_uid != os.geteuid():
        raise Forbidden(f"refusing {what} {path}: it is not owned by uid {os.geteuid()} "
                        f"(owner: {st.st_uid})")
    if st.st_mode & 0o022:
        raise Forbidden(f"refusing {what} {path}: it is writable by others "
                        f"(mode {stat.S_IMODE(st.st_mode):04o}; chmod go-w it)")


def private_file(path: str) -> None:
    """Create `path` empty with mode 0600 unless it exists (never through a symlink); an
    existing one (not a symlink) is made 0600. An existing file is never opened: closing
    any fd of a file drops the POSIX locks this process holds on it (SQLite's)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600))
        return
    except FileExistsError:
        pass
    except OSError as exc:
        raise Forbidden(f"refusing {path}: {exc.strerror}") from None
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise Forbidden(f"refusing {path}: it is a symbolic link")
    if stat.S_IMODE(st.st_mode) & 0o077 and st.st_uid == os.geteuid():
        os.chmod(path, 0o600)


def private_db(path: str) -> None:
    """The store's database and its WAL and shared-memory files: 0600 (SQLite creates the
    latter with the database's mode)."""
    for p in (path, path + "-wal", path + "-shm"):
        if p == path or os.path.lexists(p):
            private_file(p)
