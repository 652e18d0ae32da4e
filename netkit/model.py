"""The nouns every layer shares, as frozen dataclasses (ARCHITECTURE.md §1).

Engine methods return these; the store reads and writes them; drivers get
them as arguments. Addresses are strings (``"172.18.0.2/16"`` for an
interface address, ``"172.18.0.1"`` for a gateway) so that the model does
not import netaddr and stays cheap for the CLI.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

PREDEFINED = ("bridge", "host", "none")


class Scope(str, enum.Enum):
    LOCAL = "local"
    SWARM = "swarm"


@dataclass(frozen=True, slots=True)
class IPAMConfig:
    """One ``IPAM.Config`` entry of a network: a subnet and what is reserved in it."""

    subnet: str                       # "172.18.0.0/16" or "fd00::/64"
    ip_range: str | None = None       # dynamic allocation only from here
    gateway: str | None = None        # "172.18.0.1"; None for macvlan without --gateway
    aux: dict[str, str] = field(default_factory=dict)   # name -> ip, never handed out

    @property
    def family(self) -> int:
        return 6 if ":" in self.subnet else 4


@dataclass(frozen=True, slots=True)
class Network:
    id: str                           # 64 hex
    name: str
    driver: str
    scope: Scope = Scope.LOCAL
    created: str = ""                 # RFC 3339
    ipam: tuple[IPAMConfig, ...] = ()
    internal: bool = False
    attachable: bool = False
    ipv4: bool = True
    ipv6: bool = False
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    ipam_driver: str = "default"      # --ipam-driver: the IPAM plugin (netkit/ipam/plugin.py)
    ipam_options: dict[str, str] = field(default_factory=dict)     # --ipam-opt

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def predefined(self) -> bool:
        return self.name in PREDEFINED

    @property
    def user_defined(self) -> bool:
        """Docker's "user-defined network": embedded DNS, aliases, static IPs."""
        return not self.predefined

    def config(self, family: int) -> IPAMConfig | None:
        return next((c for c in self.ipam if c.family == family), None)

    @property
    def gateway_v4(self) -> str | None:
        c = self.config(4)
        return c.gateway if c else None

    @property
    def gateway_v6(self) -> str | None:
        c = self.config(6)
        return c.gateway if c else None


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One container's attachment to one network."""

    id: str
    network_id: str
    container_id: str
    ifname: str                       # name inside the container: eth0, eth1, ...
    mac: str
    ipv4: str | None = None           # "172.18.0.2/16"
    ipv6: str | None = None           # "fd00::2/64"
    aliases: tuple[str, ...] = ()     # --network-alias / connect --alias
    links: tuple[str, ...] = ()       # "target:alias" (user networks: private aliases)
    static_ipv4: bool = False         # --ip given: kept across restarts
    static_ipv6: bool = False
    host_ifname: str | None = None    # the host end of the veth (bridge driver)
    network_name: str = ""            # filled when read with the network

    @property
    def ipv4_address(self) -> str | None:
        return self.ipv4.split("/")[0] if self.ipv4 else None

    @property
    def ipv6_address(self) -> str | None:
        return self.ipv6.split("/")[0] if self.ipv6 else None


@dataclass(frozen=True, slots=True)
class PortMapping:
    """A published port: host ip:port/proto -> container port (`-p`)."""

    proto: str
    host_ip: str
    host_port: int
    container_port: int
    container_ip: str = ""
    network_id: str = ""


class State(str, enum.Enum):
    """``State.Status`` as Docker spells it."""

    CREATED = "created"
    RUNNING = "running"
    RESTARTING = "restarting"
    EXITED = "exited"


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """A network a container joins whenever it starts, with its per-network settings
    (Docker's ``EndpointSettings`` as configured: kept while the container is stopped)."""

    network_id: str
    aliases: tuple[str, ...] = ()
    ipv4: str | None = None           # --ip (requested; held only while running)
    ipv6: str | None = None
    mac: str | None = None
    links: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"network_id": self.network_id, "aliases": list(self.aliases), "ipv4": self.ipv4,
                "ipv6": self.ipv6, "mac": self.mac, "links": list(self.links)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "EndpointConfig":
        return cls(d["network_id"], tuple(d.get("aliases") or ()), d.get("ipv4"), d.get("ipv6"),
                   d.get("mac"), tuple(d.get("links") or ()))


@dataclass(frozen=True, slots=True)
class Container:
    """A network sandbox: its own net + UTS namespaces and, optionally, one process."""

    id: str
    name: str
    hostname: str
    created: str = ""
    network_mode: str = "bridge"      # "bridge", "host", "none", "container:<id>" or a network name
    netns: str | None = None          # netns name under /run/netns; None in host mode
    command: tuple[str, ...] = ()
    pid: int | None = None
    state: State = State.CREATED
    exit_code: int | None = None
    auto_remove: bool = False
    dns: tuple[str, ...] = ()         # --dns upstreams
    options: dict[str, Any] = field(default_factory=dict)
    endpoints: tuple[Endpoint, ...] = ()
    ports: tuple[PortMapping, ...] = ()
    started_at: str | None = None     # RFC 3339, last start
    finished_at: str | None = None    # RFC 3339, last exit
    restart_count: int = 0            # restarts by the restart policy
    error: str = ""                   # State.Error: why the last start or run failed
    netconfig: tuple[EndpointConfig, ...] = ()   # networks joined at each start, in order

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def running(self) -> bool:
        """netkit's lifecycle: its networks are joined (a bare sandbox too); see `status`."""
        return self.state is State.RUNNING

    @property
    def status(self) -> State:
        """``State.Status`` as Docker reports it (`ps`, `inspect`, events): a container without
        a command (a bare sandbox, or a namespace attached by its owner) has no process, so
        while its networks are joined (`state` running) it is ``created``, as a Docker
        container whose process never started; otherwise `state`."""
        if self.state is State.RUNNING and not self.command:
            return State.CREATED
        return self.state

    @property
    def shares_netns_of(self) -> str | None:
        """The container id whose namespaces this one joined (``container:<id>``)."""
        if self.network_mode.startswith("container:"):
            return self.network_mode.split(":", 1)[1]
        return None


@dataclass(frozen=True, slots=True)
class Lan:
    """A simulated LAN: a bridge in its own netns (+ the router address)."""

    name: str
    subnet: str
    gateway: str | None = None
    netns: str = ""


@dataclass(frozen=True, slots=True)
class Node:
    """A host context. name "" is the real machine (root netns)."""

    name: str
    netns: str | None = None          # None: the root netns of the real machine
    lan: str | None = None
    ip: str | None = None             # "192.168.0.10/24" on its eth0
    gateway: str | None = None
    dns: tuple[str, ...] = ()
    created: str = ""

    @property
    def simulated(self) -> bool:
        return self.netns is not None
