"""Resolver tables: the engine's snapshot in, per-sandbox answer tables out.

Pure: no sockets, no netns. The snapshot format (written by the engine to
``<run_dir>/dns/snapshot.json``) is::

    {"version": 17,
     "sandboxes": [{"container_id", "netns", "networks": [ids in resolution order],
                    "links": {alias: target container name}, "upstreams": [...],
                    "host_upstreams": [...], "external": bool}],
     "networks": {id: {"name": "mynet", "order": "rr" | "shuffle"}},
     "endpoints": [{"container_id", "container_name", "network_id", "ipv4", "ipv6",
                    "names": [lower-case, first = PTR name]}]}

Lookup follows libnetwork's ``Sandbox.ResolveName``: candidates ``(name,
any network)`` then ``(prefix, network=suffix)`` splitting at each dot from
the right; for each candidate the sandbox's link aliases first, then plain
names; the first of the sandbox's networks (in its order) holding the name
wins and addresses are never merged across networks. Since every name that
can resolve is a registered name or alias, optionally followed by
``.<network name>``, the tables enumerate them all up front and store the
reply bytes for A, AAAA, MX and PTR. Sandboxes with the same networks and
links share one table; round-robin counters live with the sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from netkit.dns import wire

ORDER_RR = "rr"
ORDER_SHUFFLE = "shuffle"


class Answer(NamedTuple):
    """What a known question gets: answer records and how to order them."""

    records: tuple[bytes, ...]
    order: str = ORDER_RR          # rr: rotate one per query; shuffle: random


@dataclass(slots=True)
class Table:
    """Everything one group of sandboxes can resolve locally.

    ``answers`` maps a question key (lower-cased qname wire + qtype + qclass)
    to its :class:`Answer`. ``fast`` maps the same key, for replies that fit
    512 bytes and need no random order, to reply bytes 4.. (see
    :func:`wire.fast_entry`): ``bytes`` for a fixed reply, a tuple of them
    (one per rotation) for round robin.
    """

    answers: dict[bytes, Answer] = field(default_factory=dict)
    fast: dict[bytes, bytes | tuple[bytes, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, eq=False)
class Sandbox:
    """One container netns served by the resolver, with its table."""

    container_id: str
    netns: str
    networks: tuple[str, ...]
    links: tuple[tuple[str, str], ...]
    upstreams: tuple[str, ...]
    host_upstreams: tuple[str, ...]
    external: bool
    table: Table

    def forward_servers(self) -> tuple[tuple[str, ...], bool]:
        """(servers, dial from the container netns?) at most 3, as Docker."""
        if self.upstreams:
            return self.upstreams[:3], True
        if self.external:
            return self.host_upstreams[:3], False
        return (), False


class Hit(NamedTuple):
    """A resolved name: the network it was found on and its addresses there."""

    network_id: str
    ipv4: tuple[str, ...]
    ipv6: tuple[str, ...]


class Records:
    """Names per network, from a snapshot; the pure lookup lives here."""

    def __init__(self, snapshot: dict) -> None:
        self.networks: dict[str, dict] = dict(snapshot.get("networks") or {})
        self.net_by_name = {n.get("name", nid): nid for nid, n in self.networks.items()}
        # network id -> name -> ([ipv4...], [ipv6...]), in endpoint order
        self.names: dict[str, dict[str, tuple[list[str], list[str]]]] = {}
        # network id -> [(ip, ptr target)] in endpoint order
        self.ptrs: dict[str, list[tuple[str, str]]] = {}
        for ep in snapshot.get("endpoints") or ():
            nid = ep["network_id"]
            v4, v6 = ep.get("ipv4"), ep.get("ipv6")
            if not v4 and not v6:
                continue                # Docker: no address, not "found"
            per_net = self.names.setdefault(nid, {})
            for name in ep.get("names") or ():
                name = name.lower().rstrip(".")
                four, six = per_net.setdefault(name, ([], []))
                if v4 and v4 not in four:
                    four.append(v4)
                if v6 and v6 not in six:
                    six.append(v6)
            netname = self.networks.get(nid, {}).get("name", nid)
            target = f"{ep['container_name'].lower()}.{netname}"
            for ip in (v4, v6):
                if ip:
                    self.ptrs.setdefault(nid, []).append((ip, target))

    def network_name(self, network_id: str) -> str:
        return self.networks.get(network_id, {}).get("name", network_id)

    def order(self, network_id: str) -> str:
        return self.networks.get(network_id, {}).get("order", ORDER_RR)

    def _find(self, name: str, netname: str | None, networks: tuple[str, ...]) -> Hit | None:
        for nid in networks:
            if netname is not None and self.network_name(nid) != netname:
                continue
            found = self.names.get(nid, {}).get(name)
            if found is not None:
                return Hit(nid, tuple(found[0]), tuple(found[1]))
        return None

    def resolve(self, qname: str, networks: tuple[str, ...] | list[str],
                links: dict[str, str] | None = None) -> Hit | None:
        """libnetwork's ``Sandbox.ResolveName`` for one sandbox, both families at once."""
        networks = tuple(networks)
        links = links or {}
        name = qname.lower().rstrip(".")
        candidates: list[tuple[str, str | None]] = [(name, None)]
        rest = name
        while "." in rest:
            i = rest.rindex(".")
            candidates.append((name[:i], name[i + 1:]))
            rest = rest[:i]
        for req, netname in candidates:
            target = links.get(req)
            if target is not None:
                hit = self._find(target.lower(), netname, networks)
                if hit is not None:
                    return hit
            hit = self._find(req, netname, networks)
            if hit is not None:
                return hit
        return None

    def resolvable(self, networks: tuple[str, ...], links: dict[str, str]) -> set[str]:
        """Every query name that may resolve in a sandbox on `networks`."""
        out: set[str] = set()
        for nid in networks:
            netname = self.network_name(nid)
            for name in self.names.get(nid, ()):
                out.add(name)
                out.add(f"{name}.{netname}")
            for alias in links:
                out.add(alias)
                out.add(f"{alias}.{netname}")
        return out

    def build_table(self, networks: tuple[str, ...], links: dict[str, str]) -> Table:
        table = Table()
        tail_a, tail_aaaa, tail_mx, tail_ptr = (
            t.to_bytes(2, "big") + b"\x00\x01"
            for t in (wire.QTYPE_A, wire.QTYPE_AAAA, wire.QTYPE_MX, wire.QTYPE_PTR))
        rrs: dict[tuple[str, ...], tuple[bytes, ...]] = {}      # shared by equal address sets
        empty: tuple[bytes, ...] = ()
        for qname in self.resolvable(networks, links):
            hit = self.resolve(qname, networks, links)
            if hit is None:
                continue
            try:
                name_wire = wire.encode_name(qname)
                four = rrs.get(hit.ipv4)
                if four is None:
                    four = rrs[hit.ipv4] = tuple(wire.rr_a(ip) for ip in hit.ipv4)
                six = rrs.get(hit.ipv6)
                if six is None:
                    six = rrs[hit.ipv6] = tuple(wire.rr_aaaa(ip) for ip in hit.ipv6)
            except wire.FormError:
                continue                # not expressible as a DNS name / bad address
            order = self.order(hit.network_id)
            _add(table, name_wire + tail_a, four, order)
            _add(table, name_wire + tail_aaaa, six, order)
            _add(table, name_wire + tail_mx, empty, order)
        seen: set[str] = set()
        for nid in networks:
            for ip, target in self.ptrs.get(nid, ()):
                if ip in seen:
                    continue            # the first network in sandbox order wins
                seen.add(ip)
                try:
                    key = wire.encode_name(wire.reverse_name(ip)) + tail_ptr
                    _add(table, key, (wire.rr_ptr(target),), ORDER_RR)
                except (wire.FormError, ValueError):
                    continue
        return table


def _add(table: Table, key: bytes, records: tuple[bytes, ...], order: str) -> None:
    table.answers[key] = Answer(records, order)
    if len(records) < 2:
        body = wire.fast_entry(key, records)
        if body is not None:
            table.fast[key] = body
        return
    if order == ORDER_SHUFFLE:
        return                          # random order: built per query
    variants = []
    for k in range(len(records)):
        body = wire.fast_entry(key, records[k:] + records[:k])
        if body is None:
            return                      # too big for 512 bytes: truncation path
        variants.append(body)
    table.fast[key] = tuple(variants)


def build(snapshot: dict) -> dict[str, Sandbox]:
    """Snapshot -> {container_id: Sandbox}; equal (networks, links) share a table."""
    records = Records(snapshot)
    tables: dict[tuple, Table] = {}
    out: dict[str, Sandbox] = {}
    for sb in snapshot.get("sandboxes") or ():
        networks = tuple(sb.get("networks") or ())
        links = {k.lower(): v.lower() for k, v in (sb.get("links") or {}).items()}
        group = (networks, tuple(sorted(links.items())))
        table = tables.get(group)
        if table is None:
            table = tables[group] = records.build_table(networks, links)
        out[sb["container_id"]] = Sandbox(
            container_id=sb["container_id"], netns=sb["netns"], networks=networks,
            links=group[1], upstreams=tuple(sb.get("upstreams") or ()),
            host_upstreams=tuple(sb.get("host_upstreams") or ()),
            external=bool(sb.get("external", True)), table=table)
    return out
