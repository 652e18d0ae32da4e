"""Resolver name tables: containers' names and PTRs per network, and the answer tables
built from them (pure: no sockets, no netns).

:class:`Records` holds what the endpoints registered (``EndpointEntry``
records of :mod:`netkit.dns.entries`) and does the lookup;
:class:`Table` is one group of sandboxes' precomputed answers, built and
kept up to date by :meth:`Records.build_table`, :meth:`Records.set_qname`
and :meth:`Records.set_ptr`. Which sandboxes are served, and which tables
a change touches, is :mod:`netkit.dns.catalog`'s business.

Lookup follows libnetwork's ``Sandbox.ResolveName``: candidates ``(name,
any network)`` then ``(prefix, network=suffix)`` splitting at each dot from
the right; for each candidate the sandbox's link aliases first, then plain
names; the first of the sandbox's networks (in its order) holding the name
wins and addresses are never merged across networks. Since every name that
can resolve is a registered name or alias, optionally followed by
``.<network name>``, the tables enumerate them all up front and store the
reply bytes for A, AAAA, MX and PTR.

Incremental updates: a name's addresses on a network are kept sorted by
the endpoints' ``rank`` (then arrival), so adding or removing one
container touches only its own names (and PTRs) on its own networks
(:meth:`Records.set_container` says which).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Iterable, Mapping, NamedTuple

from netkit.dns import wire
from netkit.dns.entries import ORDER_RR, ORDER_SHUFFLE, EndpointEntry, NetworkEntry, Snapshot

_TAIL_A, _TAIL_AAAA, _TAIL_MX, _TAIL_PTR = (
    t.to_bytes(2, "big") + b"\x00\x01"
    for t in (wire.QTYPE_A, wire.QTYPE_AAAA, wire.QTYPE_MX, wire.QTYPE_PTR))
_EMPTY: tuple[bytes, ...] = ()


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
    (one per rotation) for round robin. Both are updated in place.
    """

    answers: dict[bytes, Answer] = field(default_factory=dict)
    fast: dict[bytes, bytes | tuple[bytes, ...]] = field(default_factory=dict)


class Hit(NamedTuple):
    """A resolved name: the network it was found on and its addresses there."""

    network_id: str
    ipv4: tuple[str, ...]
    ipv6: tuple[str, ...]


class _Addr(NamedTuple):
    """One endpoint's addresses under one name; a name's list is kept sorted (rank, seq)."""

    rank: str
    seq: int                                        # arrival: ties of rank
    container_id: str
    ipv4: str | None
    ipv6: str | None


class _Ptr(NamedTuple):
    """One endpoint holding an address on a network; the first one (rank, seq) wins."""

    rank: str
    seq: int
    target: str                                     # container.network


class _Name:
    """One name on one network: its endpoints (sorted) and derived addresses."""

    __slots__ = ("entries", "four", "six", "_rrs")

    def __init__(self) -> None:
        self.entries: list[_Addr] = []
        self.four: tuple[str, ...] = ()
        self.six: tuple[str, ...] = ()
        self._rrs: tuple[tuple[bytes, ...], tuple[bytes, ...]] | None = None

    def refresh(self) -> None:
        self.four = tuple(dict.fromkeys(e.ipv4 for e in self.entries if e.ipv4))
        self.six = tuple(dict.fromkeys(e.ipv6 for e in self.entries if e.ipv6))
        self._rrs = None

    def rrs(self) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        """(A records, AAAA records); raises FormError on a bad address."""
        if self._rrs is None:
            self._rrs = (tuple(wire.rr_a(ip) for ip in self.four),
                         tuple(wire.rr_aaaa(ip) for ip in self.six))
        return self._rrs


class _Ep(NamedTuple):
    """An endpoint as registered (what removing it must undo)."""

    network_id: str
    rank: str
    seq: int
    ipv4: str | None
    ipv6: str | None
    names: tuple[str, ...]
    target: str                                     # PTR target: container.network

    def signature(self) -> tuple:
        return (self.network_id, self.rank, self.ipv4, self.ipv6, self.names, self.target)

    def addr(self, cid: str) -> _Addr:
        return _Addr(self.rank, self.seq, cid, self.ipv4, self.ipv6)

    def ptr(self) -> _Ptr:
        return _Ptr(self.rank, self.seq, self.target)


_Touched = tuple[set[tuple[str, str]], set[tuple[str, str]]]    # ((nid, name)...), ((nid, ip)...)


class Records:
    """Names and PTRs per network; the pure lookup lives here."""

    def __init__(self, snapshot: Snapshot | None = None) -> None:
        self.networks: dict[str, NetworkEntry] = {}
        self.net_by_name: dict[str, str] = {}
        # network id -> name -> _Name
        self.names: dict[str, dict[str, _Name]] = {}
        # network id -> ip -> its holders, sorted
        self.ptrs: dict[str, dict[str, list[_Ptr]]] = {}
        # container id -> what it registered
        self.endpoints: dict[str, tuple[_Ep, ...]] = {}
        self._seq = 0
        if snapshot is not None:
            self.load(snapshot.networks, snapshot.endpoints)

    def load(self, networks: Mapping[str, NetworkEntry],
             endpoints: Iterable[EndpointEntry]) -> None:
        """Bulk-add endpoints of containers not registered yet (a full build).

        A name's addresses keep the list's order (after ``rank``).
        """
        self.add_networks(networks)
        touched: dict[int, _Name] = {}
        for ep in endpoints:
            e = self._register(ep)
            if e is None:
                continue
            cid = ep.container_id
            self.endpoints[cid] = self.endpoints.get(cid, ()) + (e,)
            entry = e.addr(cid)
            per_net = self.names.setdefault(e.network_id, {})
            for name in e.names:
                n = per_net.get(name)
                if n is None:
                    n = per_net[name] = _Name()
                if n.entries and entry < n.entries[-1]:
                    bisect.insort(n.entries, entry)
                else:
                    n.entries.append(entry)
                touched[id(n)] = n
            per_ip = self.ptrs.setdefault(e.network_id, {})
            for ip in (e.ipv4, e.ipv6):
                if ip:
                    lst = per_ip.setdefault(ip, [])
                    item = e.ptr()
                    if lst and item < lst[-1]:
                        bisect.insort(lst, item)
                    else:
                        lst.append(item)
        for n in touched.values():
            n.refresh()

    def add_networks(self, networks: Mapping[str, NetworkEntry]) -> None:
        """Learn networks (id -> entry); a network never changes once made."""
        for nid, net in networks.items():
            self.networks[nid] = net
            self.net_by_name[net.name] = nid

    def _register(self, ep: EndpointEntry) -> _Ep | None:
        v4, v6 = ep.ipv4 or None, ep.ipv6 or None
        if not v4 and not v6:
            return None                     # Docker: no address, not "found"
        nid = ep.network_id
        self._seq += 1
        seq = self._seq
        names = tuple(dict.fromkeys(n.lower().rstrip(".") for n in ep.names))
        target = f"{ep.container_name.lower()}.{self.network_name(nid)}"
        return _Ep(nid, ep.rank or "", seq, v4, v6, names, target)

    def set_container(self, cid: str, endpoints: Iterable[EndpointEntry]) -> _Touched:
        """Replace what container `cid` registers ([] = remove it).

        Addresses of a name are ordered by the endpoints' ``rank``, then by
        arrival. Returns the (network, name) pairs whose addresses changed
        and the (network, ip) pairs whose PTR entry changed.
        """
        old = self.endpoints.get(cid, ())
        new = tuple(e for e in map(self._register, endpoints) if e is not None)
        if [e.signature() for e in old] == [e.signature() for e in new]:
            return set(), set()
        if new:
            self.endpoints[cid] = new
        else:
            self.endpoints.pop(cid, None)
        touched: dict[tuple[str, str], tuple] = {}      # (nid, name) -> addresses before
        ptrs: dict[tuple[str, str], str | None] = {}    # (nid, ip) -> PTR winner before
        for ep in old:
            per_net = self.names.get(ep.network_id, {})
            entry = ep.addr(cid)
            for name in ep.names:
                n = per_net.get(name)
                if n is None:
                    continue
                touched.setdefault((ep.network_id, name), (n.four, n.six))
                try:
                    n.entries.remove(entry)
                except ValueError:
                    pass
            per_ip = self.ptrs.get(ep.network_id, {})
            for ip in (ep.ipv4, ep.ipv6):
                lst = per_ip.get(ip) if ip else None
                if lst is None or ip is None:
                    continue
                ptrs.setdefault((ep.network_id, ip), lst[0].target if lst else None)
                try:
                    lst.remove(ep.ptr())
                except ValueError:
                    pass
        for ep in new:
            per_net = self.names.setdefault(ep.network_id, {})
            entry = ep.addr(cid)
            for name in ep.names:
                n = per_net.get(name)
                if n is None:
                    n = per_net[name] = _Name()
                touched.setdefault((ep.network_id, name), (n.four, n.six))
                bisect.insort(n.entries, entry)
            per_ip = self.ptrs.setdefault(ep.network_id, {})
            for ip in (ep.ipv4, ep.ipv6):
                if not ip:
                    continue
                lst = per_ip.setdefault(ip, [])
                ptrs.setdefault((ep.network_id, ip), lst[0].target if lst else None)
                bisect.insort(lst, ep.ptr())
        changed_names: set[tuple[str, str]] = set()
        for (nid, name), before in touched.items():
            per_net = self.names[nid]
            n = per_net[name]
            n.refresh()
            if not n.entries:
                del per_net[name]
                if not per_net:
                    del self.names[nid]
            if (n.four, n.six) != before:
                changed_names.add((nid, name))
        changed_ptrs: set[tuple[str, str]] = set()
        for (nid, ip), was in ptrs.items():
            per_ip = self.ptrs[nid]
            lst = per_ip[ip]
            now = lst[0].target if lst else None
            if not lst:
                del per_ip[ip]
                if not per_ip:
                    del self.ptrs[nid]
            if now != was:
                changed_ptrs.add((nid, ip))
        return changed_names, changed_ptrs

    # -- lookup --------------------------------------------------------------------

    def network_name(self, network_id: str) -> str:
        net = self.networks.get(network_id)
        return net.name if net is not None else network_id

    def order(self, network_id: str) -> str:
        net = self.networks.get(network_id)
        return net.order if net is not None else ORDER_RR

    def _find(self, name: str, netname: str | None,
              networks: tuple[str, ...]) -> tuple[str, _Name] | None:
        for nid in networks:
            if netname is not None and self.network_name(nid) != netname:
                continue
            found = self.names.get(nid, {}).get(name)
            if found is not None:
                return nid, found
        return None

    def _resolve(self, qname: str, networks: tuple[str, ...],
                 links: dict[str, str]) -> tuple[str, _Name] | None:
        name = qname.lower().rstrip(".")
        candidates: list[tuple[str, str | None]] = [(name, None)]
        rest = name
        while "." in rest:
            i = rest.rindex(".")
            candidates.append((name[:i], name[i + 1:]))
            rest = rest[:i]
        for req, netname in candidates:
            target = links.get(req)
            if target is not None:       # "name" or "name/<network id>": only on that network
                target, _, only = target.partition("/")
                hit = self._find(target.lower(), netname,
                                 tuple(n for n in networks if n == only) if only else networks)
                if hit is not None:
                    return hit
            hit = self._find(req, netname, networks)
            if hit is not None:
                return hit
        return None

    def resolve(self, qname: str, networks: tuple[str, ...] | list[str],
                links: dict[str, str] | None = None) -> Hit | None:
        """libnetwork's ``Sandbox.ResolveName`` for one sandbox, both families at once."""
        found = self._resolve(qname, tuple(networks), links or {})
        return Hit(found[0], found[1].four, found[1].six) if found else None

    def ptr(self, ip: str, networks: tuple[str, ...]) -> str | None:
        """The PTR target of `ip`: the first network in sandbox order, first endpoint there."""
        for nid in networks:
            lst = self.ptrs.get(nid, {}).get(ip)
            if lst:
                return lst[0].target
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

    # -- tables ----------------------------------------------------------------------

    def build_table(self, networks: tuple[str, ...], links: dict[str, str]) -> Table:
        table = Table()
        for qname in self.resolvable(networks, links):
            self.set_qname(table, qname, networks, links, fresh=True)
        for ip in {ip for nid in networks for ip in self.ptrs.get(nid, ())}:
            self.set_ptr(table, ip, networks, fresh=True)
        return table

    def set_qname(self, table: Table, qname: str, networks: tuple[str, ...],
                  links: dict[str, str], fresh: bool = False) -> None:
        """(Re)compute A, AAAA and MX of `qname` in `table`; drop them if it no longer resolves."""
        try:
            name_wire = wire.encode_name(qname)
        except wire.FormError:
            return                      # not expressible as a DNS name: never stored
        keys = (name_wire + _TAIL_A, name_wire + _TAIL_AAAA, name_wire + _TAIL_MX)
        found = self._resolve(qname, networks, links)
        rrs = None
        if found is not None:
            try:
                rrs = found[1].rrs()
            except wire.FormError:
                pass                    # bad address: not answered
        if rrs is None or found is None:
            if not fresh:
                for key in keys:
                    table.answers.pop(key, None)
                    table.fast.pop(key, None)
            return
        order = self.order(found[0])
        _put(table, keys[0], rrs[0], order, fresh)
        _put(table, keys[1], rrs[1], order, fresh)
        _put(table, keys[2], _EMPTY, order, fresh)

    def set_ptr(self, table: Table, ip: str, networks: tuple[str, ...],
                fresh: bool = False) -> None:
        """(Re)compute the PTR entry of `ip` in `table`."""
        try:
            key = wire.encode_name(wire.reverse_name(ip)) + _TAIL_PTR
        except (wire.FormError, ValueError):
            return
        target = self.ptr(ip, networks)
        rr = None
        if target is not None:
            try:
                rr = (wire.rr_ptr(target),)
            except wire.FormError:
                pass
        if rr is None:
            if not fresh:
                table.answers.pop(key, None)
                table.fast.pop(key, None)
            return
        _put(table, key, rr, ORDER_RR, fresh)


def _put(table: Table, key: bytes, records: tuple[bytes, ...], order: str,
         fresh: bool = False) -> None:
    """Set one answer and its fast entry, unless it is already exactly that."""
    answer = Answer(records, order)
    if not fresh:
        if table.answers.get(key) == answer:
            return                      # unchanged: keep the precomputed rotations
        table.fast.pop(key, None)
    table.answers[key] = answer
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
