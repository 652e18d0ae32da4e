"""Resolver tables: scoping, name.network, links, order, NODATA, PTR, MX (no sockets)."""

from __future__ import annotations

import itertools

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from netkit.dns import catalog, records, wire
from netkit.dns.entries import EndpointEntry, NetworkEntry, SandboxEntry, Snapshot
from netkit.dns.server import Server, _State

CID = "c" * 64


def ep(name, net, ipv4=None, ipv6=None, aliases=(), cid=None):
    names = [name, *aliases, (cid or name.ljust(12, "0"))[:12]]
    return EndpointEntry(cid or name * 8, name, net, ipv4, ipv6, tuple(dict.fromkeys(names)))


def snap(endpoints, sandboxes=None, networks=None):
    networks = networks or {"n1": NetworkEntry("net1"), "n2": NetworkEntry("net2")}
    return Snapshot(1, tuple(sandboxes or [sandbox()]), networks, tuple(endpoints))


def sandbox(cid=CID, networks=("n1",), links=None, upstreams=(), host_upstreams=(),
            external=True):
    return SandboxEntry(cid, f"ns-{cid[:4]}", tuple(networks), tuple((links or {}).items()),
                        tuple(upstreams), tuple(host_upstreams), external)


def state(snapshot, cid=CID) -> _State:
    return _State(catalog.build(snapshot)[cid])


def ask(st, name, qtype="A", tcp=False, **kw):
    """Send one query through Server.handle (the non-hot path) and parse the reply."""
    q = DNSRecord.question(name, qtype)
    for k, v in kw.items():
        setattr(q.header, k, v)
    out = Server(timeout=1, max_inflight=8).handle(st, bytes(q.pack()), tcp=tcp)
    return out if not isinstance(out, bytes) else DNSRecord.parse(out)


def fast(st, name, qtype="A"):
    """One query through the hot path's table lookup, as server._on_udp does it."""
    data = bytes(DNSRecord.question(name, qtype).pack())
    flags = wire.FAST_HEADERS[data[2:12]]
    entry = st.fast[data[12:]]
    if entry.__class__ is not bytes:
        n = st.counters.get(data[12:], 0)
        st.counters[data[12:]] = n + 1
        entry = entry[n % len(entry)]
    return DNSRecord.parse(data[:2] + flags + entry)


def ips(reply):
    return [str(rr.rdata) for rr in reply.rr]


ENDPOINTS = [
    ep("web1", "n1", "172.18.0.2", aliases=["alias1"]),
    ep("web2", "n2", "172.19.0.2", aliases=["alias2"]),
    ep("both", "n1", "172.18.0.9"),
    ep("both", "n2", "172.19.0.9"),
]


def test_names_are_scoped_to_the_sandbox_networks():
    only1 = state(snap(ENDPOINTS))
    assert ips(ask(only1, "web1")) == ["172.18.0.2"]
    assert ips(ask(only1, "alias1")) == ["172.18.0.2"]
    assert isinstance(ask(only1, "web2"), DNSRecord)        # no upstreams: SERVFAIL
    assert ask(only1, "web2").header.rcode == RCODE.SERVFAIL
    assert isinstance(ask(state(snap(ENDPOINTS, [sandbox(upstreams=["10.9.9.9"])])), "web2"),
                      wire.Query)                           # not ours: forwarded
    both = state(snap(ENDPOINTS, [sandbox(networks=("n1", "n2"))]))
    assert ips(ask(both, "web2")) == ["172.19.0.2"]
    assert ips(ask(both, "alias2")) == ["172.19.0.2"]


def test_name_dot_network_picks_that_network():
    both = state(snap(ENDPOINTS, [sandbox(networks=("n1", "n2"))]))
    assert ips(ask(both, "both.net2")) == ["172.19.0.9"]
    assert ips(ask(both, "both.net1.")) == ["172.18.0.9"]
    assert ask(both, "web1.net2").header.rcode == RCODE.SERVFAIL
    assert ask(state(snap(ENDPOINTS)), "web2.net2").header.rcode == RCODE.SERVFAIL


def test_network_names_may_contain_dots():
    nets = {"n1": NetworkEntry("br.net1")}
    st = state(snap([ep("c1.net1", "n1", "10.0.0.5")], networks=nets))
    assert ips(ask(st, "c1.net1.br.net1")) == ["10.0.0.5"]
    assert ips(ask(st, "c1.net1")) == ["10.0.0.5"]
    assert ask(st, "c1.net1.br.net1.google.com").header.rcode == RCODE.SERVFAIL


def test_first_network_in_sandbox_order_wins_without_merging():
    assert ips(ask(state(snap(ENDPOINTS, [sandbox(networks=("n1", "n2"))])), "both")) == \
        ["172.18.0.9"]
    assert ips(ask(state(snap(ENDPOINTS, [sandbox(networks=("n2", "n1"))])), "both")) == \
        ["172.19.0.9"]


def test_found_on_first_network_without_that_family_is_nodata():
    eps = [ep("x", "n1", "10.0.0.1"), ep("x", "n2", None, "fd00::1")]
    st = state(snap(eps, [sandbox(networks=("n1", "n2"))]))
    reply = ask(st, "x", "AAAA")
    assert reply.header.rcode == RCODE.NOERROR and reply.rr == []   # not merged from n2
    assert fast(st, "x", "AAAA").rr == []
    assert [str(r.rdata) for r in ask(st, "x.net2", "AAAA").rr] == ["fd00::1"]


def test_link_alias_is_private_and_maps_to_target():
    eps = [ep("db", "n1", "10.0.0.2"), ep("postgres", "n1", "10.0.0.3")]
    linker = sandbox(links={"db": "postgres", "cache": "missing"})
    other = sandbox(cid="d" * 64)
    tables = catalog.build(snap(eps, [linker, other]))
    st, st2 = _State(tables[CID]), _State(tables["d" * 64])
    assert ips(ask(st, "db")) == ["10.0.0.3"]               # alias beats the plain name
    assert ips(ask(st, "db.net1")) == ["10.0.0.3"]
    assert ips(ask(st2, "db")) == ["10.0.0.2"]              # only the linker sees it
    assert ask(st, "cache").header.rcode == RCODE.SERVFAIL  # target absent: not found


def test_link_alias_resolves_only_on_its_network():
    """A link made on n1 ("target/n1") never finds the target on n2 (libnetwork's
    per-endpoint aliases): once the target leaves n1 the alias is gone."""
    on_both = [ep("web", "n1", "10.0.0.2"), ep("web", "n2", "10.1.0.2")]
    linker = sandbox(networks=("n2", "n1"), links={"al": "web/n1"})
    assert ips(ask(state(snap(on_both, [linker])), "al")) == ["10.0.0.2"]
    left_n1 = state(snap(on_both[1:], [linker]))
    assert ips(ask(left_n1, "web")) == ["10.1.0.2"]
    assert ask(left_n1, "al").header.rcode == RCODE.SERVFAIL


def test_endpoint_without_addresses_is_not_found():
    st = state(snap([ep("ghost", "n1")]))
    assert ask(st, "ghost").header.rcode == RCODE.SERVFAIL


def test_round_robin_rotates_by_one_per_query():
    eps = [ep(f"w{i}", "n1", f"10.0.0.{i}", aliases=["svc"]) for i in (1, 2, 3)]
    st = state(snap(eps))
    addrs = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    got = [ips(fast(st, "svc")) for _ in range(6)]         # 2N queries, hot path
    assert got == [addrs[k:] + addrs[:k] for k in (0, 1, 2, 0, 1, 2)]
    # the slow path (upper case, EDNS, TCP) shares the same counter
    assert ips(ask(st, "SVC")) == addrs
    assert ips(ask(st, "svc", tcp=True)) == addrs[1:] + addrs[:1]


def test_round_robin_counters_are_per_sandbox():
    eps = [ep(f"w{i}", "n1", f"10.0.0.{i}", aliases=["svc"]) for i in (1, 2)]
    tables = catalog.build(snap(eps, [sandbox(), sandbox(cid="d" * 64)]))
    assert tables[CID].table is tables["d" * 64].table      # shared table
    a, b = _State(tables[CID]), _State(tables["d" * 64])
    assert ips(fast(a, "svc")) == ["10.0.0.1", "10.0.0.2"]
    assert ips(fast(b, "svc")) == ["10.0.0.1", "10.0.0.2"]
    assert ips(fast(a, "svc")) == ["10.0.0.2", "10.0.0.1"]


def test_shuffle_gives_every_order():
    nets = {"n1": NetworkEntry("net1", records.ORDER_SHUFFLE)}
    eps = [ep(f"w{i}", "n1", f"10.0.0.{i}", aliases=["svc"]) for i in (1, 2, 3)]
    st = state(snap(eps, networks=nets))
    key = wire.encode_name("svc") + b"\x00\x01\x00\x01"
    assert key not in st.fast                               # never a fixed order
    seen = {tuple(ips(ask(st, "svc"))) for _ in range(300)}
    assert seen == set(itertools.permutations(["10.0.0.1", "10.0.0.2", "10.0.0.3"]))


def test_ptr_answers_container_name_dot_network():
    eps = [ep("web1", "n1", "172.18.0.2", "fd00::2"), ep("web1x", "n2", "172.18.0.2")]
    st = state(snap(eps, [sandbox(networks=("n1", "n2"))]))
    r = ask(st, "2.0.18.172.in-addr.arpa", "PTR")
    assert [str(rr.rdata) for rr in r.rr] == ["web1.net1."] and r.rr[0].ttl == 600
    r6 = fast(st, wire.reverse_name("fd00::2"), "PTR")
    assert [str(rr.rdata) for rr in r6.rr] == ["web1.net1."]
    assert ask(state(snap(eps)), "9.9.9.9.in-addr.arpa", "PTR").header.rcode == RCODE.SERVFAIL


def test_lookup_is_case_insensitive_and_echoes_the_question():
    st = state(snap(ENDPOINTS))
    r = ask(st, "WeB1.NeT1")
    assert ips(r) == ["172.18.0.2"] and str(r.q.qname) == "WeB1.NeT1."


def test_mx_for_a_known_name_is_empty_noerror_and_unknown_is_forwarded():
    st = state(snap(ENDPOINTS, [sandbox(host_upstreams=["10.9.9.9"])]))
    r = fast(st, "web1", "MX")
    assert r.header.rcode == RCODE.NOERROR and r.rr == []
    assert isinstance(ask(st, "nothere", "MX"), wire.Query)
    assert isinstance(ask(st, "web1", "TXT"), wire.Query)   # other types: forwarded


def test_reply_header_bits():
    st = state(snap(ENDPOINTS))
    r = fast(st, "web1")
    assert (r.header.qr, r.header.aa, r.header.ra, r.header.rd) == (1, 0, 1, 1)
    assert r.rr[0].ttl == 600 and r.rr[0].rtype == QTYPE.A


def test_forward_servers_choice():
    sb = catalog.build(snap(ENDPOINTS, [sandbox(upstreams=["1.1.1.1"] * 5,
                                                host_upstreams=["2.2.2.2"])]))[CID]
    assert sb.forward_servers() == (("1.1.1.1",) * 3, True)
    internal = catalog.build(snap(ENDPOINTS, [sandbox(host_upstreams=["2.2.2.2"],
                                                      external=False)]))[CID]
    assert internal.forward_servers() == ((), False)
    ext = catalog.build(snap(ENDPOINTS, [sandbox(host_upstreams=["2.2.2.2"])]))[CID]
    assert ext.forward_servers() == (("2.2.2.2",), False)


@pytest.mark.parametrize("n", [100, 2000])
def test_table_size_scales(n):
    eps = [ep(f"c{i}", "n1", f"10.1.{i // 250}.{i % 250 + 1}") for i in range(n)]
    st = state(snap(eps))
    assert ips(fast(st, f"c{n - 1}")) == [f"10.1.{(n - 1) // 250}.{(n - 1) % 250 + 1}"]
    assert ips(fast(st, f"c{n - 1}.net1")) == ips(fast(st, f"c{n - 1}"))
