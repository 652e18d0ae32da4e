"""Keep the node's resolver in step with the store (ARCHITECTURE.md §5).

The resolver daemon reads the node's store itself (read-only). After every
committed change to containers the engine's ResolverClient calls ``after_change(ids)``,
which sends ``update <ids>`` over the daemon's control socket and waits for
``ok``: the daemon re-reads exactly those containers and updates only
their names, so a name resolves (or is gone) as soon as ``run``, ``rm``,
``connect`` or ``disconnect`` returns, at a cost that does not grow with
the number of containers. No daemon runs while no container needs DNS:
the first one that does starts it (it builds everything from the store
once), and the daemon exits by itself when an update leaves it nothing to
serve.

What a container contributes is :func:`container_entries`, used by the
daemon (through :class:`StoreSource`) and by :func:`build_snapshot` (the
full snapshot of the in-process ``Resolver`` and the tests): typed records
of :mod:`netkit.dns.entries`, made from the store's rows here.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Iterable

from netkit.model import Container, Network, State
from netkit.sandbox import dns_names, parse_resolv

if TYPE_CHECKING:
    # imported where used: the engine imports this module, the entries cost ~3 ms to define
    from netkit.dns.entries import ContainerEntries, NetworkEntry, Snapshot
    from netkit.store import Tx

# has_dns of the built-in drivers, so that the resolver daemon need not import
# them (and pyroute2 with them); checked against the drivers by a unit test
BUILTIN_HAS_DNS = {"bridge": True, "macvlan": True, "overlay": True, "host": False,
                   "null": False, "none": False}


def _has_dns(net: Network) -> bool:
    if not net.user_defined:
        return False
    known = BUILTIN_HAS_DNS.get(net.driver)
    if known is None:
        from netkit import drivers
        known = drivers.get(net.driver).has_dns
    return known


def _order(nets: list[Network]) -> list[Network]:
    """Docker's sandbox order for name lookups: non-internal, dual-stack, then name."""
    return sorted(nets, key=lambda n: (n.internal, not (n.ipv4 and n.ipv6), n.name))


def network_entry(net: Network) -> NetworkEntry:
    """What the resolver knows of a network: its name and answer order."""
    from netkit.dns.entries import ORDER_RR, NetworkEntry
    return NetworkEntry(net.name, net.options.get("netkit.dns.order", ORDER_RR))


class Networks(dict):
    """Network id -> Network, read from the store on first use (networks never change)."""

    def __init__(self, tx: "Tx | None" = None) -> None:
        super().__init__()
        self.tx = tx

    def __missing__(self, network_id: str) -> Network:
        net = self.tx.network(network_id) if self.tx is not None else None
        if net is None:
            raise KeyError(network_id)
        self[network_id] = net
        return net


def container_entries(tx: "Tx", c: Container | None, nets: dict[str, Network],
                      host_servers: list[str], names: dict[str, str] | None = None
                      ) -> ContainerEntries:
    """What container `c` gives the resolver: its sandbox (or None) and its endpoints.

    `c` None (not in the store) or stopped gives ``ContainerEntries()``. `nets` maps
    network ids to networks (a :class:`Networks` reads missing ones);
    `names` maps container ids to names for ``--link`` targets given by id
    (None: looked up in `tx`). Endpoints carry a ``rank`` (creation time,
    id, position): a name's addresses are served in that order.
    """
    from netkit.dns.entries import ContainerEntries, EndpointEntry, SandboxEntry
    if c is None or c.state is State.EXITED:
        return ContainerEntries()                        # stopped containers do not resolve
    dns_eps = [ep for ep in c.endpoints if _has_dns(nets[ep.network_id])]
    endpoints = tuple(EndpointEntry(c.id, c.name, ep.network_id, ep.ipv4_address,
                                    ep.ipv6_address,
                                    tuple(dns_names(c.name, ep.aliases, c.short_id, c.hostname)),
                                    f"{c.created} {c.id} {i:03d}")
                      for i, ep in enumerate(dns_eps))
    if not dns_eps or not c.netns or c.shares_netns_of:
        return ContainerEntries(None, endpoints)
    ordered = _order([nets[ep.network_id] for ep in dns_eps])
    links: dict[str, str] = {}
    rank = {n.id: i for i, n in enumerate(ordered)}
    for ep in sorted(dns_eps, key=lambda e: rank[e.network_id]):
        for link in ep.links:
            target, _, alias = link.partition(":")
            target = _link_target(tx, target, names).lstrip("/")
            # "target/network": the alias resolves on its endpoint's network only (libnetwork's
            # per-endpoint aliases); the first network in the sandbox's order wins
            links.setdefault((alias or target).lower(), f"{target.lower()}/{ep.network_id}")
    external = any(not nets[ep.network_id].internal and (nets[ep.network_id].gateway_v4 or
                                                        nets[ep.network_id].gateway_v6)
                   for ep in c.endpoints)
    sandbox = SandboxEntry(c.id, c.netns, tuple(n.id for n in ordered),
                           tuple(sorted(links.items())), tuple(c.dns)[:3],
                           tuple(host_servers[:3]), external)
    return ContainerEntries(sandbox, endpoints)


def _link_target(tx: "Tx", target: str, names: dict[str, str] | None) -> str:
    """A --link target as a container name (targets may be stored as ids)."""
    if names is not None:
        return names.get(target, target)
    if len(target) == 64 and all(ch in "0123456789abcdef" for ch in target):
        other = tx.container(target)
        if other is not None:
            return other.name
    return target


def build_snapshot(tx: "Tx", containers: list[Container], host_servers: list[str]) -> Snapshot:
    """The resolver's full input, from store rows."""
    from netkit.dns.entries import EndpointEntry, NetworkEntry, SandboxEntry, Snapshot
    nets = Networks(tx)
    nets.update((n.id, n) for n in tx.networks())
    names = {c.id: c.name for c in containers}
    snap_nets: dict[str, NetworkEntry] = {}
    sandboxes: list[SandboxEntry] = []
    endpoints: list[EndpointEntry] = []
    for c in containers:
        sandbox, eps = container_entries(tx, c, nets, host_servers, names)
        for ep in eps:
            if ep.network_id not in snap_nets:
                snap_nets[ep.network_id] = network_entry(nets[ep.network_id])
        endpoints.extend(eps)
        if sandbox is not None:
            sandboxes.append(sandbox)
    return Snapshot(time.time_ns(), tuple(sandboxes), snap_nets, tuple(endpoints))


def host_servers_of(text: str) -> list[str]:
    """Upstream servers of a node's resolv.conf text (never our own 127.0.0.11)."""
    servers, _, _ = parse_resolv(text)
    return [s for s in servers if s != "127.0.0.11"]


class StoreSource:
    """The resolver daemon's read-only view of a node's store.

    Every read is one read transaction (a consistent snapshot; in WAL mode
    it never blocks or is blocked by the engine's writes). Networks are
    cached: they never change once created.
    """

    def __init__(self, path: str) -> None:
        from netkit.store import Store
        self.store = Store(path)
        self.nets = Networks()

    def close(self) -> None:
        self.store.close()

    def data_version(self) -> int:
        """Changes whenever another connection commits (PRAGMA data_version)."""
        return self.store.db.execute("PRAGMA data_version").fetchone()[0]

    def _read(self, fn):
        tx = self.store.read()
        tx.db.execute("BEGIN")
        try:
            self.nets.tx = tx
            return fn(tx)
        finally:
            self.nets.tx = None
            tx.db.execute("COMMIT")

    def read(self, ids: Iterable[str], host_servers: list[str]
             ) -> tuple[dict[str, ContainerEntries], dict[str, NetworkEntry]]:
        """({container id: entries} for `ids` (absent: ``ContainerEntries()``), their networks)."""
        def read(tx: "Tx"):
            changes = {cid: container_entries(tx, tx.container(cid), self.nets, host_servers)
                       for cid in ids}
            return changes, self._networks(changes)
        return self._read(read)

    def read_all(self, host_servers: list[str]
                 ) -> tuple[dict[str, ContainerEntries], dict[str, NetworkEntry]]:
        """Entries of every container in the store (those contributing nothing left out)."""
        def read(tx: "Tx"):
            containers = tx.containers()
            names = {c.id: c.name for c in containers}
            changes = {}
            for c in containers:
                entries = container_entries(tx, c, self.nets, host_servers, names)
                if not entries.empty:
                    changes[c.id] = entries
            return changes, self._networks(changes)
        return self._read(read)

    def _networks(self, changes: dict[str, ContainerEntries]) -> dict[str, NetworkEntry]:
        out: dict[str, NetworkEntry] = {}
        for _, eps in changes.values():
            for ep in eps:
                if ep.network_id not in out:
                    out[ep.network_id] = network_entry(self.nets[ep.network_id])
        return out


def host_resolv_path(simulated_run_dir: str | None) -> str:
    """The resolv.conf whose nameservers the node's resolver forwards to.

    A simulated node: ``<run_dir>/resolv.conf``. The real host:
    /etc/resolv.conf, or systemd-resolved's upstream file when only its stub
    is listed (as :func:`netkit.sandbox.host_resolv_text`).
    """
    if simulated_run_dir is not None:
        return os.path.join(simulated_run_dir, "resolv.conf")
    try:
        with open("/etc/resolv.conf") as f:
            servers, _, _ = parse_resolv(f.read())
    except OSError:
        servers = []
    upstream = "/run/systemd/resolve/resolv.conf"
    if servers == ["127.0.0.53"] and os.path.exists(upstream):
        return upstream
    return "/etc/resolv.conf"
