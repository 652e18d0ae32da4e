"""User input: what the CLI parses and the Engine checks.

Each spec checks the *types* of its fields when it is made (a string where a
sequence of strings is expected is refused, not split into characters; lists
are accepted and kept as tuples); the Engine checks the values (names, CIDRs,
ports) when the action runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from netkit.errors import InvalidArgument

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def _seq(owner: str, name: str, value: object, item: type | tuple[type, ...], what: str) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes)):
        raise InvalidArgument(f"{owner}: {name} must be a sequence of {what}, not a string")
    if not isinstance(value, (list, tuple)):
        raise InvalidArgument(f"{owner}: {name} must be a sequence of {what}, "
                              f"not {type(value).__name__}")
    for v in value:
        if not isinstance(v, item):
            raise InvalidArgument(f"{owner}: {name} must be a sequence of {what}, "
                                  f"not one holding {type(v).__name__} {v!r}")
    return tuple(value)


# tuple-of-records fields: their item types and how a message names one
_RECORDS: dict[str, tuple[tuple[type, ...], str]] = {
    "tuple[tuple[str, str], ...]": ((str, str), "(name, address) pairs"),
    "tuple[tuple[str, str, int], ...]": ((str, str, int), "(file, target, mode) triples"),
}


def _records(owner: str, name: str, value: object, kinds: tuple[type, ...],
             what: str) -> tuple[Any, ...]:
    items = _seq(owner, name, value, (list, tuple), what)
    for v in items:
        if len(v) != len(kinds) or not all(isinstance(x, k) and not (k is int and isinstance(x, bool))
                                           for x, k in zip(v, kinds)):
            raise InvalidArgument(f"{owner}: {name} must be a sequence of {what}, not one "
                                  f"holding {v!r}")
    return tuple(tuple(v) for v in items)


def _validate(spec: "DataclassInstance") -> None:
    """Check every field of `spec` against its annotation; lists become tuples, mappings dicts."""
    owner = type(spec).__name__
    for f in fields(spec):
        name, kind, value = f.name, str(f.type), getattr(spec, f.name)
        if kind.endswith(" | None") and value is None:
            continue
        base = kind.removesuffix(" | None")
        if base == "str":
            ok = isinstance(value, str)
        elif base == "bool":
            ok = isinstance(value, bool)
        elif base == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif base == "tuple[str, ...]":
            object.__setattr__(spec, name, _seq(owner, name, value, str, "strings"))
            continue
        elif base in _RECORDS:
            object.__setattr__(spec, name, _records(owner, name, value, *_RECORDS[base]))
            continue
        elif base == "tuple[EndpointSpec, ...]":
            object.__setattr__(spec, name, _seq(owner, name, value, EndpointSpec, "EndpointSpec"))
            continue
        elif base == "dict[str, str]":
            if not isinstance(value, Mapping):
                raise InvalidArgument(f"{owner}: {name} must be a mapping of strings to strings, "
                                      f"not {type(value).__name__}")
            for k, v in value.items():
                if not isinstance(k, str) or not isinstance(v, str):
                    raise InvalidArgument(f"{owner}: {name} must map strings to strings, "
                                          f"not {k!r} to {v!r}")
            object.__setattr__(spec, name, dict(value))
            continue
        else:                                     # a new field: teach _validate its type
            raise AssertionError(f"{owner}.{name}: unchecked type {kind}")
        if not ok:
            what = {"str": "a string", "bool": "True or False", "int": "an integer"}[base]
            none = " or None" if kind.endswith(" | None") else ""
            raise InvalidArgument(f"{owner}: {name} must be {what}{none}, "
                                  f"not {type(value).__name__} {value!r}")


@dataclass(slots=True)
class NetworkSpec:
    """`docker network create` arguments."""

    name: str
    driver: str = "bridge"
    subnets: tuple[str, ...] = ()
    ip_ranges: tuple[str, ...] = ()
    gateways: tuple[str, ...] = ()
    aux_addresses: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    internal: bool = False
    ipv6: bool = False
    ipv4: bool = True
    attachable: bool = False
    ipam_driver: str = "default"                 # --ipam-driver
    ipam_options: dict[str, str] = field(default_factory=dict)   # --ipam-opt

    def __post_init__(self) -> None:
        _validate(self)


@dataclass(slots=True)
class EndpointSpec:
    """One network a container joins, with its per-network settings."""

    network: str                       # name, id or id prefix
    aliases: tuple[str, ...] = ()
    ipv4: str | None = None            # --ip
    ipv6: str | None = None            # --ip6
    mac: str | None = None             # --mac-address
    links: tuple[str, ...] = ()        # "target[:alias]"

    def __post_init__(self) -> None:
        _validate(self)


@dataclass(slots=True)
class ContainerSpec:
    """`docker run` arguments that netkit understands."""

    name: str | None = None
    command: tuple[str, ...] = ()
    network: str = "bridge"            # bridge | host | none | container:<ref> | a network
    aliases: tuple[str, ...] = ()      # --network-alias (first network)
    ipv4: str | None = None
    ipv6: str | None = None
    mac: str | None = None
    hostname: str | None = None
    detach: bool = False
    auto_remove: bool = False
    dns: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    extra_networks: tuple[EndpointSpec, ...] = ()   # repeated --network
    publish: tuple[str, ...] = ()      # -p [ip:][hostPort[-end]:]ctrPort[-end][/proto]
    publish_all: bool = False          # -P: every --expose'd port to a random host port
    expose: tuple[str, ...] = ()       # --expose port[-end][/proto]
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    restart: str = "no"                # --restart no|on-failure[:N]|always|unless-stopped
    stop_signal: str | None = None     # --stop-signal (default SIGTERM)
    stop_timeout: int | None = None    # --stop-timeout seconds (default 10)
    log_opts: dict[str, str] = field(default_factory=dict)   # --log-opt max-size=10m,max-file=2
    cap_add: tuple[str, ...] = ()      # --cap-add NET_ADMIN | CAP_NET_ADMIN | ALL
    cap_drop: tuple[str, ...] = ()     # --cap-drop
    privileged: bool = False           # --privileged
    user: str | None = None            # --user UID|NAME[:GID|GROUP]
    sysctls: dict[str, str] = field(default_factory=dict)     # --sysctl net.KEY=VALUE
    extra_hosts: tuple[tuple[str, str], ...] = ()    # --add-host: (name, address) lines of /etc/hosts
    domainname: str | None = None      # --domainname: the hosts line names HOSTNAME.DOMAINNAME
    secrets: tuple[tuple[str, str, int], ...] = ()   # Compose: (host file, name in /run/secrets, mode)
    configs: tuple[tuple[str, str, int], ...] = ()   # swarm configs: (host file, absolute target, mode)

    def __post_init__(self) -> None:
        _validate(self)

    def privileges(self) -> dict[str, object]:
        """The privilege settings as stored with the container (only those given)."""
        out: dict[str, object] = {"cap_add": list(self.cap_add), "cap_drop": list(self.cap_drop),
                                  "privileged": self.privileged, "user": self.user,
                                  "sysctls": dict(self.sysctls)}
        return {k: v for k, v in out.items() if v}


def check_privileges(spec: ContainerSpec) -> None:
    """--cap-add/--cap-drop/--user/--sysctl as Docker checks them (its wording); pure."""
    from netkit.kernel import caps
    caps.capability_mask(spec.cap_add, spec.cap_drop, spec.privileged)
    caps.resolve_user(spec.user)
    caps.check_sysctls(spec.sysctls, spec.network)
