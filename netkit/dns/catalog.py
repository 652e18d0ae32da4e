"""The resolver's catalog: which sandboxes it serves, and their tables kept up to date
one container at a time (pure: no sockets, no netns).

The input is the typed records of :mod:`netkit.dns.entries`: a full
:class:`~netkit.dns.entries.Snapshot` (written by tests and the in-process
:class:`~netkit.dns.daemon.Resolver`; built from the store by
``netkit.dnssync.build_snapshot``), or, per container, the
:class:`~netkit.dns.entries.ContainerEntries` (its ``SandboxEntry`` or
None, its ``EndpointEntry`` list) that :meth:`Catalog.update` takes for an
incremental change (the daemon reads them from the store with
``netkit.dnssync.container_entries``) together with the ``NetworkEntry``
of their networks.

Sandboxes with the same networks and links share one
:class:`~netkit.dns.records.Table`; round-robin counters live with the
sandbox. On a change, of each table whose networks include one of the
changed names' networks, exactly the question names that can resolve
through them (``name``, ``name.<net>``, and the link aliases pointing at
``name``) are looked up again (:mod:`netkit.dns.records`), and only
entries whose answer changed are rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

from netkit.dns.entries import ContainerEntries, NetworkEntry, Snapshot
from netkit.dns.records import Records, Table


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

    @property
    def spec(self) -> tuple:
        """Everything but the table: equal specs serve the same."""
        return (self.netns, self.networks, self.links, self.upstreams, self.host_upstreams,
                self.external)


# -- sandboxes and their shared tables ---------------------------------------------------

# (networks, sorted link pairs): sandboxes with equal keys share one table
_GroupKey = tuple[tuple[str, ...], tuple[tuple[str, str], ...]]


def _links(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {k.lower(): v.lower() for k, v in pairs}


class _Group:
    """Sandboxes with equal (networks, links): one table, kept up to date in place."""

    __slots__ = ("networks", "links", "by_target", "table", "members")

    def __init__(self, networks: tuple[str, ...], links: dict[str, str], table: Table) -> None:
        self.networks = networks
        self.links = links
        self.by_target: dict[str, list[str]] = {}
        for alias, target in links.items():
            self.by_target.setdefault(target.partition("/")[0], []).append(alias)
        self.table = table
        self.members: set[str] = set()


@dataclass(slots=True)
class Delta:
    """What a :meth:`Catalog.update` changed in the set of served sandboxes."""

    opened: list[Sandbox] = field(default_factory=list)     # new container ids
    changed: list[Sandbox] = field(default_factory=list)    # same id, new Sandbox
    closed: list[str] = field(default_factory=list)         # ids no longer served
    names: int = 0                                          # (network, name) pairs changed
    ptrs: int = 0


class Catalog:
    """Records + the sandboxes served from them, updatable one container at a time.

    ``entries`` keeps, per container, the :class:`ContainerEntries` it was
    last given, so a caller can tell which containers differ from a fresh
    read.
    """

    def __init__(self) -> None:
        self.records = Records()
        self.sandboxes: dict[str, Sandbox] = {}
        self.entries: dict[str, ContainerEntries] = {}
        self.groups: dict[_GroupKey, _Group] = {}
        self.net_groups: dict[str, set[_GroupKey]] = {}

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot) -> "Catalog":
        """A catalog serving a full snapshot (endpoints in list order)."""
        cat = cls()
        # records in the snapshot's endpoint order, then the sandboxes
        cat.records.load(snapshot.networks, snapshot.endpoints)
        cat._update(snapshot.containers(), records_done=True)
        return cat

    @classmethod
    def build(cls, changes: Mapping[str, ContainerEntries],
              networks: Mapping[str, NetworkEntry]) -> "Catalog":
        """A catalog serving these containers' entries (a full build)."""
        cat = cls()
        cat.records.load(networks, (ep for e in changes.values() for ep in e.endpoints))
        cat._update(changes, records_done=True)
        return cat

    def diff(self, full: Mapping[str, ContainerEntries]) -> dict[str, ContainerEntries]:
        """The changes that make this catalog serve `full` (every container's entries)."""
        out = {cid: e for cid, e in full.items() if self.entries.get(cid) != e}
        for cid in self.entries:
            if cid not in full:
                out[cid] = ContainerEntries()
        return out

    def update(self, changes: Mapping[str, ContainerEntries],
               networks: Mapping[str, NetworkEntry] | None = None) -> Delta:
        """Apply new entries for these containers (`networks`: the networks they are on).

        A container absent from the store gives ``ContainerEntries()``. Only
        the names of these containers (on their old and new networks) are
        recomputed, in the tables of groups on those networks.
        """
        return self._update(changes, networks)

    def _update(self, changes: Mapping[str, ContainerEntries],
                networks: Mapping[str, NetworkEntry] | None = None,
                records_done: bool = False) -> Delta:
        rec = self.records
        if networks:
            rec.add_networks(networks)
        delta = Delta()
        names: set[tuple[str, str]] = set()
        ptrs: set[tuple[str, str]] = set()
        for cid, e in changes.items():
            if not records_done:
                n, p = rec.set_container(cid, e.endpoints)
                names |= n
                ptrs |= p
            if e.empty:
                self.entries.pop(cid, None)
            else:
                self.entries[cid] = e
        delta.names, delta.ptrs = len(names), len(ptrs)
        fresh: set[_GroupKey] = set()
        emptied: list[_GroupKey] = []
        for cid, e in changes.items():
            old = self.sandboxes.get(cid)
            sbe = e.sandbox
            if sbe is None:
                if old is not None:
                    emptied.append(self._leave(cid, old))
                    del self.sandboxes[cid]
                    delta.closed.append(cid)
                continue
            networks_ = tuple(sbe.networks)
            links = _links(sbe.links)
            gkey: _GroupKey = (networks_, tuple(sorted(links.items())))
            spec = (sbe.netns, networks_, gkey[1], tuple(sbe.upstreams),
                    tuple(sbe.host_upstreams), bool(sbe.external))
            if old is not None and old.spec == spec:
                continue
            if old is not None:
                emptied.append(self._leave(cid, old))
            group = self.groups.get(gkey)
            if group is None:
                group = self.groups[gkey] = _Group(networks_, links,
                                                   rec.build_table(networks_, links))
                fresh.add(gkey)
                for nid in networks_:
                    self.net_groups.setdefault(nid, set()).add(gkey)
            group.members.add(cid)
            sb = Sandbox(container_id=cid, netns=spec[0], networks=networks_, links=gkey[1],
                         upstreams=spec[3], host_upstreams=spec[4], external=spec[5],
                         table=group.table)
            self.sandboxes[cid] = sb
            (delta.opened if old is None else delta.changed).append(sb)
        for gkey in emptied:
            group = self.groups.get(gkey)
            if group is not None and not group.members:
                del self.groups[gkey]
                for nid in group.networks:
                    keys = self.net_groups.get(nid)
                    if keys is not None:
                        keys.discard(gkey)
                        if not keys:
                            del self.net_groups[nid]
        for nid, name in names:
            netname = rec.network_name(nid)
            for gkey in self.net_groups.get(nid, ()):
                if gkey in fresh:
                    continue                # built after the records changed
                g = self.groups[gkey]
                qnames = {name, f"{name}.{netname}"}
                for alias in g.by_target.get(name, ()):
                    qnames.add(alias)
                    qnames.add(f"{alias}.{netname}")
                for qname in qnames:
                    rec.set_qname(g.table, qname, g.networks, g.links)
        for nid, ip in ptrs:
            for gkey in self.net_groups.get(nid, ()):
                if gkey not in fresh:
                    g = self.groups[gkey]
                    rec.set_ptr(g.table, ip, g.networks)
        return delta

    def _leave(self, cid: str, sb: Sandbox) -> _GroupKey:
        gkey = (sb.networks, sb.links)
        group = self.groups.get(gkey)
        if group is not None:
            group.members.discard(cid)
        return gkey


def build(snapshot: Snapshot) -> dict[str, Sandbox]:
    """Snapshot -> {container_id: Sandbox}; equal (networks, links) share a table."""
    return Catalog.from_snapshot(snapshot).sandboxes
