"""Translate pyroute2's bare errno into netkit errors that say what and where."""

from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from typing import Iterator

from pyroute2.netlink.exceptions import NetlinkError

from netkit.errors import AlreadyExists, KernelError, NetkitError, NotFound, Unsupported

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
    except NetlinkError as exc:
        cls = _BY_ERRNO.get(exc.code, KernelError)
        raise cls(f"{op} {target} in netns {netns or 'host'}: {os.strerror(exc.code).lower()}") from exc
    except OSError as exc:
        cls = _BY_ERRNO.get(exc.errno or 0, KernelError)
        raise cls(f"{op} {target} in netns {netns or 'host'}: {exc.strerror or exc}") from exc


def is_missing(exc: BaseException) -> bool:
    return isinstance(exc, NetlinkError) and exc.code in (errno.ENODEV, errno.ENOENT, errno.ESRCH)
