"""Start a detached Python daemon of netkit's (the node agent, the resolver) in a netns."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator


def spawn_daemon(argv: list[str], *, netns: str | None, logfile: str) -> None:
    """Double-fork a detached Python daemon (new session, stdio to `logfile`), in `netns`.

    The daemon runs this interpreter with this package importable, without a
    test's fault plan (NETKIT_TEST_FAULT targets the action, not the daemon).
    """
    env = dict(os.environ)
    env.pop("NETKIT_TEST_FAULT", None)
    pkg_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH")) if p)
    ns_fd = None
    if netns is not None:
        from netkit.kernel.netns import open_fd
        ns_fd = open_fd(netns)
    try:
        child = os.fork()
        if child == 0:              # first child: new session, fork again, exit
            try:
                os.setsid()
                if os.fork() != 0:
                    os._exit(0)
                if ns_fd is not None:
                    from netkit.kernel.netns import setns
                    setns(ns_fd)
                os.chdir("/")
                null = os.open(os.devnull, os.O_RDONLY)
                out = os.open(logfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
                os.dup2(null, 0)
                os.dup2(out, 1)
                os.dup2(out, 2)
                os.execve(sys.executable, [sys.executable, *argv], env)
            finally:
                os._exit(127)
        try:
            os.waitpid(child, 0)
        except ChildProcessError:   # a thread of the node agent (a subreaper) reaped it: it ended
            pass
    finally:
        if ns_fd is not None:
            os.close(ns_fd)


@contextmanager
def spawn_lock(path: str) -> Iterator[None]:
    """Held while a client checks for / starts a daemon: one starts it, the others wait."""
    import fcntl
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
