"""What the resolver is told: typed records between the store and the record table.

The store-reading side (``netkit.dnssync``: one container at a time, or a
whole node; the node agent's cluster sync: other nodes' overlay endpoints,
sent over the daemon's control socket) produces these; :mod:`netkit.dns.records` consumes them. This
module imports nothing but the standard library, so the resolver depends on
nothing from the engine, the agent, swarm or the drivers.

    NetworkEntry     a network as the resolver knows it: name, answer order
    EndpointEntry    one container's names and addresses on one network
    SandboxEntry     one container netns the resolver listens in, and how it resolves
    ContainerEntries what one container contributes: its sandbox (or None) and endpoints
    Snapshot         everything at once (snapshot files, the in-process Resolver)

Every record is immutable and compares by value, so "did this container's
entries change?" is ``old != new``. ``to_json`` / ``from_json`` convert to
and from the JSON form of snapshot files (``netkit.dns.client.write_snapshot``)
and of the daemon's ``remote`` command; ``from_json`` takes missing keys as
their defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple

ORDER_RR = "rr"             # several addresses: rotate by one per query
ORDER_SHUFFLE = "shuffle"   # several addresses: a random order per query


def _strs(value: Any) -> tuple[str, ...]:
    return tuple(value or ())


@dataclass(frozen=True, slots=True)
class NetworkEntry:
    """A network as the resolver knows it (a network never changes once made)."""

    name: str
    order: str = ORDER_RR           # ORDER_RR or ORDER_SHUFFLE

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "order": self.order}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], network_id: str) -> "NetworkEntry":
        """`data` as written by :meth:`to_json`; no name: named `network_id`."""
        return cls(str(data.get("name", network_id)), str(data.get("order", ORDER_RR)))


@dataclass(frozen=True, slots=True)
class EndpointEntry:
    """One container's names and addresses on one network.

    ``names``: the first one is the PTR name (the container's name).
    ``rank`` orders the addresses of a name shared by several endpoints
    (creation time, id, position; then arrival). An endpoint without an
    address is not found at all, as in Docker.
    """

    container_id: str
    container_name: str
    network_id: str
    ipv4: str | None = None
    ipv6: str | None = None
    names: tuple[str, ...] = ()
    rank: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"container_id": self.container_id, "container_name": self.container_name,
                "network_id": self.network_id, "ipv4": self.ipv4, "ipv6": self.ipv6,
                "names": list(self.names), "rank": self.rank}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "EndpointEntry":
        return cls(data["container_id"], data["container_name"], data["network_id"],
                   data.get("ipv4") or None, data.get("ipv6") or None,
                   _strs(data.get("names")), str(data.get("rank") or ""))


@dataclass(frozen=True, slots=True)
class SandboxEntry:
    """One container netns served by the resolver, and how it resolves.

    ``networks``: its DNS networks in resolution order; ``links``: its
    ``--link`` aliases as (alias, target container name) pairs; ``upstreams``
    its ``--dns`` servers, ``host_upstreams`` the node's, used when
    ``external`` (it has a way out).
    """

    container_id: str
    netns: str
    networks: tuple[str, ...] = ()
    links: tuple[tuple[str, str], ...] = ()
    upstreams: tuple[str, ...] = ()
    host_upstreams: tuple[str, ...] = ()
    external: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"container_id": self.container_id, "netns": self.netns,
                "networks": list(self.networks), "links": dict(self.links),
                "upstreams": list(self.upstreams), "host_upstreams": list(self.host_upstreams),
                "external": self.external}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "SandboxEntry":
        links = data.get("links") or {}
        return cls(data["container_id"], data["netns"], _strs(data.get("networks")),
                   tuple((str(k), str(v)) for k, v in links.items()),
                   _strs(data.get("upstreams")), _strs(data.get("host_upstreams")),
                   bool(data.get("external", True)))


class ContainerEntries(NamedTuple):
    """What one container gives the resolver: its sandbox (None: it asks nothing, e.g.
    it shares another's netns) and its endpoints on DNS networks.

    ``ContainerEntries()`` is a container that gives nothing: gone, stopped,
    or on no DNS network; in an update it removes what the container gave.
    A named pair, so ``sandbox, endpoints = entries`` also reads it.
    """

    sandbox: SandboxEntry | None = None
    endpoints: tuple[EndpointEntry, ...] = ()

    @property
    def empty(self) -> bool:
        return self.sandbox is None and not self.endpoints

    def to_json(self) -> dict[str, Any]:
        return {"sandbox": self.sandbox.to_json() if self.sandbox is not None else None,
                "endpoints": [ep.to_json() for ep in self.endpoints]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "ContainerEntries":
        sandbox = data.get("sandbox")
        return cls(SandboxEntry.from_json(sandbox) if sandbox else None,
                   tuple(EndpointEntry.from_json(ep) for ep in data.get("endpoints") or ()))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the resolver serves at once (a full build).

    The endpoints' order is the order of a name's addresses (after ``rank``).
    """

    version: int = 0
    sandboxes: tuple[SandboxEntry, ...] = ()
    networks: Mapping[str, NetworkEntry] = field(default_factory=dict)
    endpoints: tuple[EndpointEntry, ...] = ()

    def containers(self) -> dict[str, ContainerEntries]:
        """The same entries per container (endpoints in list order)."""
        eps: dict[str, list[EndpointEntry]] = {}
        for ep in self.endpoints:
            eps.setdefault(ep.container_id, []).append(ep)
        out = {cid: ContainerEntries(None, tuple(lst)) for cid, lst in eps.items()}
        for sb in self.sandboxes:
            out[sb.container_id] = ContainerEntries(sb, tuple(eps.get(sb.container_id, ())))
        return out

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version,
                "sandboxes": [sb.to_json() for sb in self.sandboxes],
                "networks": {nid: net.to_json() for nid, net in self.networks.items()},
                "endpoints": [ep.to_json() for ep in self.endpoints]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Snapshot":
        return cls(int(data.get("version") or 0),
                   tuple(SandboxEntry.from_json(sb) for sb in data.get("sandboxes") or ()),
                   {nid: NetworkEntry.from_json(net, nid)
                    for nid, net in (data.get("networks") or {}).items()},
                   tuple(EndpointEntry.from_json(ep) for ep in data.get("endpoints") or ()))



def entries_to_json(containers: Mapping[str, ContainerEntries],
                    networks: Mapping[str, NetworkEntry]) -> dict[str, Any]:
    """Some containers' entries and their networks as JSON (the daemon's ``remote`` command)."""
    return {"containers": {cid: e.to_json() for cid, e in containers.items()},
            "networks": {nid: net.to_json() for nid, net in networks.items()}}


def entries_from_json(data: Mapping[str, Any]
                      ) -> tuple[dict[str, ContainerEntries], dict[str, NetworkEntry]]:
    """What :func:`entries_to_json` wrote: ({container id: entries}, {network id: entry})."""
    return ({cid: ContainerEntries.from_json(e) for cid, e in (data.get("containers") or {}).items()},
            {nid: NetworkEntry.from_json(net, nid) for nid, net in (data.get("networks") or {}).items()})
