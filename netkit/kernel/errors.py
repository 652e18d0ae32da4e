"""Translate pyroute2's bare errno into netkit errors that say what and where."""

from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from typing import Iterator

from netkit.errors import AlreadyExists, Conflict, KernelError, NetkitError, NotFound, Unsupported

_BY_ERRNO: dict[int, type[NetkitError]] = {
    errno.EEXIST: AlreadyExists,
    errno.ENODEV: NotFound,
    errno.ENOENT: NotFound,
    errno.EOPNOTSUPP: Unsupported,
}


@contextmanager
def netlink_errors(op: str, target: str, netns: str | None) -> Iterator[None]:
    """Re-raise NetlinkError/OSError as a netkit error naming op, target and netns."""
    try:
        yield
    except NetkitError:
        raise
    except Exception as exc:
        # netkit's rtnl raises OSError subclasses; pyroute2's NetlinkError carries .code
        code = exc.errno if isinstance(exc, OSError) else getattr(exc, "code", None)
        if not isinstance(code, int):
            raise
        cls = _BY_ERRNO.get(code, KernelError)
        raise cls(f"{op} {target} in netns {netns or 'host'}: {os.strerror(code).lower()}") from exc


def is_missing(exc: BaseException) -> bool:
    code = getattr(exc, "code", None)
    if not isinstance(code, int):
        code = getattr(exc, "errno", None)
    return code in (errno.ENODEV, errno.ENOENT, errno.ESRCH)


class ExecFailed(KernelError):
    """The container's command could not be started.

    The message is Docker's (``exec: "x": executable file not found in
    $PATH``) and `exit_code` Docker's: 127 not found, 126 cannot be invoked.
    """

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class NotRunning(Conflict):
    """The container's init process is not running."""
