"""Pure checks of user input that Docker refuses (or that netkit must refuse to stay sane),
each raising InvalidArgument with Docker's one-line wording where Docker has one.

Called by the planners (netkit/planning.py) before anything is made, and by
`lab up`'s whole-file validation (netkit/labs/validate.py).
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping

from netkit.errors import InvalidArgument

NAME_MAX = 255              # a container name; Docker's only rule is the pattern
_LABEL = re.compile(r"^[a-zA-Z0-9_-]+$")
HOST_BINDING_IPV4 = "com.docker.network.bridge.host_binding_ipv4"


def container_name_length(name: str) -> None:
    """A name longer than NAME_MAX characters (a DNS name has at most 255)."""
    bare = name.lstrip("/")
    if len(bare) > NAME_MAX:
        raise InvalidArgument(f"Invalid container name ({bare[:20]}...): it is {len(bare)} "
                              f"characters long, at most {NAME_MAX} are allowed")


def dns_name(value: str) -> bool:
    """A name the resolver can hold: dot-separated, non-empty labels of [a-zA-Z0-9_-],
    255 characters in all. (A label over 63 characters is accepted, as Docker accepts it,
    but no DNS query can name it; container names become aliases in labs, and Docker's
    names may end with '-'.)"""
    if not value or len(value) > 255:
        return False
    return all(_LABEL.match(label) for label in value.rstrip(".").split("."))


def aliases(values: Iterable[str]) -> None:
    """--network-alias / --alias / compose `aliases`: each must be a DNS name."""
    for alias in values:
        if not dns_name(alias):
            raise InvalidArgument(f'invalid network alias "{alias}": it must be a valid DNS name '
                                  "(dot-separated labels of [a-zA-Z0-9_-])")


def _ip(value: str) -> bool:
    from netkit.ipam.allocator import ip_to_int
    try:
        ip_to_int(value)
        return True
    except Exception:
        return False


def network_options(options: Mapping[str, str]) -> None:
    """`-o com.docker.network.bridge.host_binding_ipv4=IP` must be an address (Docker's bridge
    driver, parseNetworkOptions; the driver checks the other options itself)."""
    value = options.get(HOST_BINDING_IPV4)
    if value is not None and not _ip(value):
        raise InvalidArgument(f"failed to parse {HOST_BINDING_IPV4} value: {value} (nil ip)")


def link_target(target: str, exists: bool) -> None:
    """--link to a container that does not exist, on the default bridge (Docker's daemon:
    registerLinks). On a user-defined network the target may come later (a DNS alias)."""
    if not exists:
        raise InvalidArgument(f"could not get container for {target}: No such container: {target}")


def link_spec(link: str) -> tuple[str, str]:
    """``name[:alias]`` -> (name, alias); Docker's ParseLink wording for a bad one."""
    parts = link.split(":")
    if not parts[0] or len(parts) > 2 or (len(parts) == 2 and not parts[1]):
        raise InvalidArgument(f"invalid value {link!r} for --link: it must be name or name:alias")
    if len(parts) == 2:
        aliases([parts[1]])        # a DNS alias (user networks), a hosts line (the bridge)
    return parts[0], parts[1] if len(parts) == 2 else parts[0]
