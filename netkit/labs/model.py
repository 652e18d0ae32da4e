"""A normalized lab: the dataclasses `load_project` returns (pure data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from netkit.errors import InvalidArgument
from netkit.labs.source import Where


@dataclass(frozen=True)
class Healthcheck:
    """Docker's healthcheck; `test` is ("CMD", argv...) or ("CMD-SHELL", text)."""

    test: tuple[str, ...]
    interval: float = 30.0
    timeout: float = 30.0
    retries: int = 3
    start_period: float = 0.0
    start_interval: float = 5.0

    def argv(self) -> list[str]:
        if self.test[0] == "CMD-SHELL":
            return ["sh", "-c", self.test[1]]
        return list(self.test[1:])


@dataclass(frozen=True)
class ServiceNetwork:
    network: str                        # key in Project.networks
    aliases: tuple[str, ...] = ()
    ipv4_address: str | None = None
    ipv6_address: str | None = None
    mac_address: str | None = None


@dataclass(frozen=True)
class Dependency:
    service: str
    condition: str = "service_started"
    required: bool = True
    restart: bool = False               # `restart` of the dependency restarts this service too


@dataclass(frozen=True)
class Service:
    name: str
    command: tuple[str, ...] = ()
    container_name: str | None = None
    hostname: str | None = None
    networks: tuple[ServiceNetwork, ...] = ()   # Compose's order: by key (equal priority)
    network_mode: str | None = None             # host | none | bridge | service:x | container:x
    ports: tuple[str, ...] = ()                 # -p syntax
    expose: tuple[str, ...] = ()
    links: tuple[tuple[str, str], ...] = ()     # (service, alias)
    dns: tuple[str, ...] = ()
    depends_on: tuple[Dependency, ...] = ()
    healthcheck: Healthcheck | None = None
    replicas: int = 1
    environment: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    node: str | None = None                     # node name (resolved from x-netkit.nodes keys)
    restart: str = "no"                         # Docker's policy text: no, always, on-failure[:N] ...
    stop_signal: str | None = None              # as written (SIGTERM when None)
    stop_grace_period: float | None = None      # seconds (10 when None)
    cap_add: tuple[str, ...] = ()                # Docker's privileges (`docker run` flags)
    cap_drop: tuple[str, ...] = ()
    privileged: bool = False
    user: str | None = None
    sysctls: dict[str, str] = field(default_factory=dict)
    extra_hosts: tuple[str, ...] = ()            # "host=ip" lines of /etc/hosts (Compose's form)
    domainname: str | None = None
    profiles: tuple[str, ...] = ()
    secrets: tuple[tuple[str, str, int], ...] = ()   # (host file, target in the container, mode)

    @property
    def stop_timeout(self) -> int | None:
        """The grace period as Docker's stop timeout: whole seconds, rounded up."""
        import math
        return None if self.stop_grace_period is None else math.ceil(round(self.stop_grace_period, 6))


@dataclass(frozen=True)
class IpamConfig:
    subnet: str | None = None
    ip_range: str | None = None
    gateway: str | None = None
    aux_addresses: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NetworkDef:
    key: str
    name: str
    driver: str = "bridge"
    driver_opts: dict[str, str] = field(default_factory=dict)
    ipam: tuple[IpamConfig, ...] = ()
    internal: bool = False
    attachable: bool = False
    enable_ipv6: bool = False
    enable_ipv4: bool = True
    labels: dict[str, str] = field(default_factory=dict)
    external: bool = False
    # x-netkit.nodes: node name -> {"ipam": (IpamConfig, ...), "driver_opts": {...}}; the
    # network is made on each of these nodes with its overrides (a per-node network)
    per_node: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def spans_swarm(self) -> bool:
        """Its driver's networks are swarm-scoped: made once, on a manager, seen by every member."""
        from netkit import drivers
        from netkit.model import Scope
        driver = drivers.find(self.driver)
        return driver is not None and driver.scope is Scope.SWARM

    def on(self, node: str | None) -> "NetworkDef":
        """This network as made on `node` (its per-node overrides applied)."""
        from dataclasses import replace
        o = self.per_node.get(node or "")
        if not o:
            return self
        return replace(self, ipam=o.get("ipam") or self.ipam,
                       driver_opts={**self.driver_opts, **(o.get("driver_opts") or {})}, per_node={})


@dataclass(frozen=True)
class LanDef:
    key: str
    name: str
    subnet: str
    gateway: str | None = None
    external: bool = False


@dataclass(frozen=True)
class NodeDef:
    key: str
    name: str
    lan: str | None = None              # LAN name (resolved from x-netkit.lans keys)
    ip: str | None = None
    gateway: str | None = None
    dns: tuple[str, ...] = ()
    external: bool = False


@dataclass
class Project:
    name: str
    files: tuple[str, ...]
    workdir: str
    services: dict[str, Service]
    networks: dict[str, NetworkDef]
    lans: dict[str, LanDef] = field(default_factory=dict)
    nodes: dict[str, NodeDef] = field(default_factory=dict)
    swarm: dict[str, Any] = field(default_factory=dict)
    stacks: dict[str, tuple[str, ...]] = field(default_factory=dict)   # name -> compose files
    swarm_services: dict[str, Any] = field(default_factory=dict)   # x-netkit.services: ServiceSpecs
    swarm_secrets: dict[str, bytes] = field(default_factory=dict)  # x-netkit.secrets: values
    checks: list = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    where: Where = field(default_factory=Where)

    def service(self, name: str) -> Service:
        try:
            return self.services[name]
        except KeyError:
            raise InvalidArgument(f"no such service: {name}") from None

    def to_dict(self) -> dict[str, Any]:
        """The normalized file, as `lab config` prints it."""
        from netkit.labs.render import project_dict
        return project_dict(self)
