"""netkit's error hierarchy: a few categories, not one class per failure.

    NetkitError                 base; exit code 1; str() is one line for the user
    ├── InvalidArgument         bad flag, option, CIDR, name (Docker's "invalid ...")
    ├── NotFound                no such network, container, node, link, plugin
    ├── AlreadyExists           name taken, endpoint already there
    ├── Conflict                in use: active endpoints, address in use, port taken
    ├── Forbidden               operation not permitted on a predefined network
    ├── Exhausted               no free subnet in the pools / no free address
    ├── Unsupported             the kernel or machine lacks a feature
    ├── KernelError             a netlink / syscall request failed (op, target, netns)
    ├── ClusterUnavailable      the swarm's cluster store has no reachable majority
    └── InternalError           a bug: state netkit cannot explain

Messages are one lowercase line, in Docker's wording where Docker has one
(``network with name X already exists``). Foreign exceptions are translated
once, at the ``kernel/`` and ``store/`` boundaries, with ``raise ... from``.
"""

from __future__ import annotations


class NetkitError(Exception):
    """netkit failed."""

    exit_code = 1

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__)


class InvalidArgument(NetkitError):
    """Invalid argument."""


class NotFound(NetkitError):
    """Not found."""


class AlreadyExists(NetkitError):
    """Already exists."""


class Conflict(NetkitError):
    """In use."""


class Forbidden(NetkitError):
    """Operation not permitted."""


class Exhausted(NetkitError):
    """No free resources left."""


class Unsupported(NetkitError):
    """Not supported on this machine."""


class KernelError(NetkitError):
    """A kernel request failed."""


class InternalError(NetkitError):
    """Internal error."""


class ClusterUnavailable(NetkitError):
    """The swarm's cluster store cannot be reached."""
