"""Incremental resolver updates: one container's delta, and the same tables as a full build.

No sockets: netkit.dns.catalog.Catalog directly, server._State for the hot path's
round-robin counters, and a synthetic store (a temporary SQLite file) for
the daemon's reads.
"""

from __future__ import annotations

import itertools
import random

import pytest
from dnslib import RCODE, DNSRecord

from netkit.dns import records, wire
from netkit.dns.catalog import Catalog, Delta
from netkit.dns.entries import (ContainerEntries, EndpointEntry, NetworkEntry, SandboxEntry,
                                Snapshot)
from netkit.dns.server import Server, _State

CID = "s" * 64
NETS = {"n1": NetworkEntry("net1"), "n2": NetworkEntry("net2"),
        "n3": NetworkEntry("net3", records.ORDER_SHUFFLE)}
GONE = ContainerEntries()


def ep(name, net, ipv4=None, ipv6=None, aliases=(), cid=None, rank=""):
    cid = cid or name.ljust(64, "0")
    return EndpointEntry(cid, name, net, ipv4, ipv6,
                         tuple(dict.fromkeys([name, *aliases, cid[:12]])), rank)


def sandbox(cid=CID, networks=("n1",), links=None, upstreams=()):
    return SandboxEntry(cid, f"ns-{cid[:6]}", tuple(networks), tuple((links or {}).items()),
                        tuple(upstreams), (), False)


def only(*endpoints):
    """The entries of a container without a sandbox."""
    return ContainerEntries(None, endpoints)


def catalog(endpoints, sandboxes=None):
    return Catalog.from_snapshot(Snapshot(1, tuple(sandboxes or [sandbox()]), NETS,
                                                  tuple(endpoints)))


def fast(st, name, qtype="A"):
    """One query through the hot path's table lookup, as server._on_udp does it."""
    data = bytes(DNSRecord.question(name, qtype).pack())
    entry = st.fast[data[12:]]
    if entry.__class__ is not bytes:
        n = st.counters.get(data[12:], 0)
        st.counters[data[12:]] = n + 1
        entry = entry[n % len(entry)]
    return DNSRecord.parse(data[:2] + wire.FAST_HEADERS[data[2:12]] + entry)


def ask(st, name, qtype="A"):
    out = Server(timeout=1, max_inflight=8).handle(st, bytes(DNSRecord.question(name, qtype)
                                                             .pack()), tcp=False)
    return DNSRecord.parse(out)


def ips(reply):
    return [str(rr.rdata) for rr in reply.rr]


def key(name, qtype=wire.QTYPE_A):
    return wire.encode_name(name) + qtype.to_bytes(2, "big") + b"\x00\x01"


SVC = [ep(f"w{i}", "n1", f"10.0.0.{i}", aliases=["svc"]) for i in (1, 2, 3)]
DB = [ep(f"d{i}", "n1", f"10.0.1.{i}", aliases=["db"]) for i in (1, 2)]


def test_adding_a_container_keeps_other_names_rotation_and_entries():
    cat = catalog(SVC + DB)
    st = _State(cat.sandboxes[CID])
    svc = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert [ips(fast(st, "svc")) for _ in range(2)] == [svc, svc[1:] + svc[:1]]
    assert ips(fast(st, "db")) == ["10.0.1.1", "10.0.1.2"]
    table, svc_entry = st.sandbox.table, st.fast[key("svc")]
    delta = cat.update({"x" * 64: ContainerEntries(sandbox("x" * 64),
                                                   (ep("x", "n1", "10.0.2.1", cid="x" * 64),))})
    assert [sb.container_id for sb in delta.opened] == ["x" * 64] and not delta.changed
    assert cat.sandboxes["x" * 64].table is table               # joined the shared table
    assert st.fast is table.fast and st.fast[key("svc")] is svc_entry   # untouched, not rebuilt
    assert ips(fast(st, "svc")) == svc[2:] + svc[:2]            # the rotation goes on
    assert ips(fast(st, "db")) == ["10.0.1.2", "10.0.1.1"]
    assert ips(fast(st, "x")) == ["10.0.2.1"] and ips(fast(st, "x.net1")) == ["10.0.2.1"]
    assert [str(r.rdata) for r in fast(st, wire.reverse_name("10.0.2.1"), "PTR").rr] == \
        ["x.net1."]


def test_joining_a_round_robin_name_rebuilds_only_that_name():
    cat = catalog(SVC + DB)
    st = _State(cat.sandboxes[CID])
    fast(st, "svc")
    fast(st, "db")
    db_entry = st.fast[key("db")]
    late = ep("w9", "n1", "10.0.0.9", aliases=["svc"], rank="~late")
    delta = cat.update({late.container_id: only(late)})
    assert delta.names == 3 and not delta.opened        # w9, svc, its short id
    svc = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.9"]
    assert len(st.fast[key("svc")]) == 4                # rotations rebuilt for 4 addresses
    assert ips(fast(st, "svc")) == svc[1:] + svc[:1]    # counter kept: second rotation
    assert st.fast[key("db")] is db_entry
    assert ips(fast(st, "db")) == ["10.0.1.2", "10.0.1.1"]
    cat.update({late.container_id: GONE})
    assert ips(fast(st, "svc")) == ["10.0.0.3", "10.0.0.1", "10.0.0.2"]


def test_removed_container_loses_its_names_and_ptrs():
    cat = catalog(SVC + DB + [ep("gone", "n1", "10.0.3.3", "fd00::33", aliases=["svc"])])
    st = _State(cat.sandboxes[CID])
    table = st.sandbox.table
    assert ips(fast(st, "gone")) == ["10.0.3.3"]
    assert len(ips(fast(st, "svc"))) == 4
    cid = "gone".ljust(64, "0")
    delta = cat.update({cid: GONE})
    assert delta.names == 3 and delta.ptrs == 2 and not delta.closed
    for name in ("gone", "gone.net1", cid[:12]):
        for qtype in (wire.QTYPE_A, wire.QTYPE_AAAA, wire.QTYPE_MX):
            assert key(name, qtype) not in table.answers and key(name, qtype) not in table.fast
    assert ask(st, "gone").header.rcode == RCODE.SERVFAIL
    assert ask(st, wire.reverse_name("fd00::33"), "PTR").header.rcode == RCODE.SERVFAIL
    assert sorted(ips(fast(st, "svc"))) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert cid not in cat.records.endpoints and cid not in cat.entries


def test_update_for_an_unknown_container_changes_nothing():
    cat = catalog(SVC)
    table = cat.sandboxes[CID].table
    before = (dict(table.answers), dict(table.fast))
    delta = cat.update({"nobody".ljust(64, "0"): GONE})
    assert delta == Delta()
    assert (table.answers, table.fast) == before


def test_removing_a_sandbox_closes_it_and_drops_its_table():
    other = "o" * 64
    cat = catalog(SVC, [sandbox(), sandbox(other, networks=("n2", "n1"))])
    assert len(cat.groups) == 2
    delta = cat.update({other: GONE})
    assert delta.closed == [other] and other not in cat.sandboxes
    assert len(cat.groups) == 1 and set(cat.net_groups) == {"n1"}


def test_connect_moves_the_sandbox_to_another_table_and_back():
    cat = catalog(SVC + [ep("b", "n2", "10.2.0.5")])
    st = _State(cat.sandboxes[CID])
    assert ask(st, "b").header.rcode == RCODE.SERVFAIL
    delta = cat.update({CID: ContainerEntries(sandbox(networks=("n1", "n2")))})
    assert [sb.container_id for sb in delta.changed] == [CID]
    st.sandbox, st.fast = delta.changed[0], delta.changed[0].table.fast     # as Server does
    assert ips(fast(st, "b")) == ["10.2.0.5"]
    delta = cat.update({CID: ContainerEntries(sandbox())})
    st.sandbox, st.fast = delta.changed[0], delta.changed[0].table.fast
    assert ask(st, "b").header.rcode == RCODE.SERVFAIL
    assert len(cat.groups) == 1


def test_link_alias_follows_its_target():
    cat = catalog(SVC, [sandbox(links={"db": "postgres"})])
    st = _State(cat.sandboxes[CID])
    assert ask(st, "db").header.rcode == RCODE.SERVFAIL
    pg = ep("postgres", "n1", "10.0.5.5")
    cat.update({pg.container_id: only(pg)})
    assert ips(fast(st, "db")) == ["10.0.5.5"] and ips(fast(st, "db.net1")) == ["10.0.5.5"]
    plain = ep("db", "n1", "10.0.5.9")                  # a plain "db": the alias still wins
    cat.update({plain.container_id: only(plain)})
    assert ips(fast(st, "db")) == ["10.0.5.5"]
    cat.update({pg.container_id: GONE})
    assert ips(fast(st, "db")) == ["10.0.5.9"]


def test_dotted_names_fall_back_when_the_longer_name_goes():
    # "a.net1" is a registered name and also "a" on network net1
    longer = ep("a.net1", "n1", "10.0.6.1")
    short = ep("a", "n1", "10.0.6.2")
    cat = catalog([longer, short])
    st = _State(cat.sandboxes[CID])
    assert ips(fast(st, "a.net1")) == ["10.0.6.1"]
    cat.update({longer.container_id: GONE})
    assert ips(fast(st, "a.net1")) == ["10.0.6.2"]
    cat.update({short.container_id: GONE})
    assert key("a.net1") not in st.fast


def test_ptr_winner_is_recomputed():
    first = ep("first", "n1", "10.0.7.7", rank="1")
    second = ep("second", "n1", "10.0.7.7", rank="2")
    cat = catalog([first, second])
    st = _State(cat.sandboxes[CID])
    ptr = wire.reverse_name("10.0.7.7")
    assert [str(r.rdata) for r in fast(st, ptr, "PTR").rr] == ["first.net1."]
    cat.update({first.container_id: GONE})
    assert [str(r.rdata) for r in fast(st, ptr, "PTR").rr] == ["second.net1."]


def _tables(cat: Catalog) -> dict:
    return {cid: (dict(sb.table.answers), dict(sb.table.fast), sb.spec)
            for cid, sb in cat.sandboxes.items()}


@pytest.mark.parametrize("seed", range(6))
def test_incremental_updates_give_the_tables_of_a_full_build(seed):
    rng = random.Random(seed)
    nets = list(NETS)
    pool = ["svc", "db", "x.net2", "api", "web"]
    cat = Catalog()
    state: dict[str, ContainerEntries] = {}
    born = itertools.count()
    ids = [f"{i:02d}".ljust(64, "c") for i in range(14)]
    for _ in range(120):
        cid = rng.choice(ids)
        if cid in state and rng.random() < 0.35:
            entry = GONE
        else:
            rank = f"{next(born):05d}"
            on = rng.sample(nets, rng.randint(0, 3))
            name = f"c{ids.index(cid)}" if rng.random() < 0.8 else "dup"
            eps = []
            for nid in on:
                v4 = f"10.{nets.index(nid)}.0.{rng.randint(1, 9)}" if rng.random() < 0.9 else None
                v6 = f"fd0{nets.index(nid)}::{rng.randint(1, 9)}" if rng.random() < 0.3 else None
                e = ep(name, nid, v4, v6, aliases=rng.sample(pool, rng.randint(0, 2)), cid=cid,
                       rank=rank)
                eps.append(e)
            sb = None
            if on and rng.random() < 0.7:
                links = {rng.choice(pool): rng.choice(["c1", "c2", "dup", "svc"])} \
                    if rng.random() < 0.3 else {}
                sb = sandbox(cid, networks=rng.sample(on, len(on)), links=links,
                             upstreams=["9.9.9.9"] if rng.random() < 0.2 else ())
            entry = ContainerEntries(sb, tuple(eps))
        changes = {cid: entry}
        if rng.random() < 0.2:                          # sometimes several at once
            other = rng.choice(ids)
            changes[other] = state.get(other, GONE)
        cat.update(changes, NETS)
        for c, e in changes.items():
            if e.empty:
                state.pop(c, None)
            else:
                state[c] = e
        full = Catalog.build(dict(state), NETS)
        assert _tables(cat) == _tables(full)
        # equal (networks, links) share one table, and no table outlives its sandboxes
        shared = {(sb.networks, sb.links) for sb in cat.sandboxes.values()}
        assert set(cat.groups) == shared
        assert cat.diff(state) == {}


def test_diff_finds_what_differs_from_a_fresh_read():
    cat = catalog(SVC)
    fresh = {e.container_id: only(e) for e in SVC[:2]}
    moved = ep("w2", "n1", "10.0.0.22", aliases=["svc"])
    fresh[moved.container_id] = only(moved)
    fresh[CID] = ContainerEntries(sandbox())
    assert cat.diff(fresh) == {SVC[2].container_id: GONE, moved.container_id: only(moved)}


# -- the engine's side: store rows -> entries ----------------------------------------------

def test_builtin_has_dns_matches_the_drivers():
    from netkit import drivers
    from netkit.dnssync import BUILTIN_HAS_DNS
    for name in drivers.builtin_names() + ["null"]:
        assert BUILTIN_HAS_DNS.get(name) is drivers.get(name).has_dns, name


@pytest.fixture
def store(tmp_path):
    from netkit.model import Container, Endpoint, IPAMConfig, Network, State
    from netkit.store import Store
    s = Store(str(tmp_path / "netkit.db"))
    nets = [Network(id="a" * 64, name="front", driver="bridge", created="t",
                    ipam=(IPAMConfig("10.8.0.0/24", gateway="10.8.0.1"),)),
            Network(id="b" * 64, name="back", driver="bridge", created="t", internal=True,
                    ipam=(IPAMConfig("10.9.0.0/24", gateway="10.9.0.1"),),
                    options={"netkit.dns.order": "shuffle"}),
            Network(id="d" * 64, name="bridge", driver="bridge", created="t",
                    ipam=(IPAMConfig("172.17.0.0/16", gateway="172.17.0.1"),))]
    with s.transaction() as tx:
        for n in nets:
            tx.insert_network(n)

    def add(name, eps, state=State.RUNNING, created=None, dns=(), links=()):
        cid = name.ljust(64, "f")
        c = Container(id=cid, name=name, hostname=cid[:12], created=created or name,
                      netns=f"nkc-{name}", state=state, dns=tuple(dns))
        with s.transaction() as tx:
            tx.insert_container(c)
            for i, (nid, ip, aliases) in enumerate(eps):
                tx.insert_endpoint(Endpoint(id=f"{name}{i}".ljust(64, "e"), network_id=nid * 64,
                                            container_id=cid, ifname=f"eth{i}", mac="02:00:00:00:00:01",
                                            ipv4=ip, aliases=tuple(aliases),
                                            links=tuple(links) if i == 0 else ()))
        return cid

    s.add = add
    yield s
    s.close()


def test_store_source_reads_what_build_snapshot_builds(store):
    from netkit.dnssync import StoreSource, build_snapshot
    from netkit.model import State
    c1 = store.add("web1", [("a", "10.8.0.2/24", ["www"]), ("b", "10.9.0.2/24", [])])
    store.add("web2", [("a", "10.8.0.3/24", ["www"])], links=("web1:upstream",))
    store.add("db", [("b", "10.9.0.9/24", [])], dns=("1.1.1.1",))
    store.add("old", [("a", "10.8.0.4/24", ["www"])], state=State.EXITED)
    store.add("legacy", [("d", "172.17.0.5/16", [])])
    source = StoreSource(store.path)
    try:
        full, networks = source.read_all(["192.0.2.53"])
        tx = store.read()
        snap = build_snapshot(tx, tx.containers(), ["192.0.2.53"])
        assert networks == snap.networks == {"a" * 64: NetworkEntry("front", "rr"),
                                             "b" * 64: NetworkEntry("back", "shuffle")}
        assert set(full) == {"web1".ljust(64, "f"), "web2".ljust(64, "f"), "db".ljust(64, "f")}
        web1 = full[c1].sandbox
        assert web1.networks == ("a" * 64, "b" * 64) and web1.external
        assert web1.host_upstreams == ("192.0.2.53",)
        assert full["web2".ljust(64, "f")].sandbox.links == (("upstream", "web1/" + "a" * 64),)
        assert not full["db".ljust(64, "f")].sandbox.external
        assert full["db".ljust(64, "f")].sandbox.upstreams == ("1.1.1.1",)
        assert _tables(Catalog.build(full, networks)) == \
            _tables(Catalog.from_snapshot(snap))
        # one container at a time; gone or stopped ones read as nothing
        one, nets = source.read([c1, "x" * 64, "old".ljust(64, "f")], [])
        assert one["x" * 64] == GONE and one["old".ljust(64, "f")] == GONE
        assert [e.names for e in one[c1].endpoints] == [("web1", "www", c1[:12]),
                                                        ("web1", c1[:12])]
        assert [e.rank.split()[1:] for e in one[c1].endpoints] == [[c1, "000"], [c1, "001"]]
        assert set(nets) == {"a" * 64, "b" * 64}
        version = source.data_version()
        store.add("late", [("a", "10.8.0.7/24", [])])
        assert source.data_version() != version
    finally:
        source.close()


def test_addresses_of_a_name_follow_creation_order(store):
    from netkit.dnssync import StoreSource
    store.add("b-second", [("a", "10.8.0.3/24", ["svc"])], created="2026-01-02T00:00:00.000000Z")
    store.add("a-first", [("a", "10.8.0.2/24", ["svc"])], created="2026-01-01T00:00:00.000000Z")
    source = StoreSource(store.path)
    try:
        full, networks = source.read_all([])
        full["s" * 64] = ContainerEntries(sandbox("s" * 64, networks=("a" * 64,)))
        st = _State(Catalog.build(full, networks).sandboxes["s" * 64])
        assert ips(fast(st, "svc")) == ["10.8.0.2", "10.8.0.3"]
    finally:
        source.close()
