"""Hand-written wire parsing, ID patching, truncation, and robustness to junk."""

from __future__ import annotations

import random

import pytest
from dnslib import EDNS0, QTYPE, RCODE, DNSRecord

from netkit.dns import catalog, wire
from netkit.dns.entries import EndpointEntry, NetworkEntry, SandboxEntry, Snapshot
from netkit.dns.server import Server, _State


def query(name="web1", qtype="A", **header) -> bytes:
    q = DNSRecord.question(name, qtype)
    for k, v in header.items():
        setattr(q.header, k, v)
    return bytes(q.pack())


def test_query_parses_header_and_question():
    data = query("WeB1.Net1", "AAAA", id=0x1234)
    q = wire.Query(data)
    assert q.id == b"\x12\x34" and q.qdcount == 1 and q.opcode == 0
    assert (q.qtype, q.qclass, q.qname) == (28, 1, "web1.net1")
    assert q.question == data[12:]
    assert q.key == wire.encode_name("web1.net1") + b"\x00\x1c\x00\x01"
    assert not q.edns and q.udp_size == 512


def test_query_reads_edns0_size_and_version():
    m = DNSRecord.question("web1")
    m.add_ar(EDNS0(udp_len=4096))
    q = wire.Query(bytes(m.pack()))
    assert q.edns and q.udp_size == 4096 and q.edns_version == 0
    m = DNSRecord.question("web1")
    m.add_ar(EDNS0(udp_len=100, version=1))
    q = wire.Query(bytes(m.pack()))
    assert q.udp_size == 512 and q.edns_version == 1       # never below 512


def test_zero_questions_and_other_opcodes_are_flagged_not_parsed():
    assert wire.Query(b"\x00\x01\x01\x00" + bytes(8)).qdcount == 0
    notify = wire.Query(bytes([0, 1, 0x20, 0]) + bytes(8))
    assert notify.opcode == 4


@pytest.mark.parametrize("data", [
    b"", b"\x00" * 11, b"\x00\x01\x81\x80" + bytes(8),           # short, response
    query()[:-1], query() + b"x",                                  # cut, trailing junk
    query()[:12] + b"\xc0\x0c\x00\x01\x00\x01",                    # pointer in question
    query()[:12] + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01",  # 64-byte label
    b"\x00\x01\x01\x00\x00\x02" + bytes(6) + query()[12:] * 2,     # two questions
])
def test_malformed_raise_formerror(data):
    with pytest.raises(wire.FormError):
        wire.Query(data)


def test_parser_only_ever_raises_formerror_on_random_input():
    rng = random.Random(7)
    good = [query("a.b.example", "A"), query("x", "PTR")]
    m = DNSRecord.question("web1")
    m.add_ar(EDNS0(udp_len=1232))
    good.append(bytes(m.pack()))
    for i in range(20000):
        if i % 2:
            data = rng.randbytes(rng.randrange(0, 80))
        else:
            data = bytearray(rng.choice(good))
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data[:rng.randrange(len(data) + 1)])
        try:
            wire.Query(data)
        except wire.FormError:
            pass


def test_server_handle_survives_random_input():
    snap = Snapshot(1, (SandboxEntry("c", "x", ("n",)),), {"n": NetworkEntry("net")},
                    (EndpointEntry("a", "web1", "n", "10.0.0.2", None, ("web1",)),))
    st = _State(catalog.build(snap)["c"])
    server = Server(timeout=1, max_inflight=1)
    rng = random.Random(11)
    for _ in range(5000):
        data = rng.randbytes(rng.randrange(0, 60))
        out = server.handle(st, data, tcp=bool(rng.getrandbits(1)))
        assert out is None or isinstance(out, (bytes, wire.Query))
        if isinstance(out, bytes):
            DNSRecord.parse(out)        # anything we send is well formed
            assert out[:2] == data[:2]


def test_fast_headers_patch_id_and_copy_rd_cd():
    body = wire.fast_entry(query()[12:], (wire.rr_a("10.0.0.2"),))
    for rd, cd, ad in [(1, 0, 0), (0, 0, 0), (1, 1, 1)]:
        data = query(id=0xBEEF, rd=rd, cd=cd, ad=ad)
        reply = DNSRecord.parse(data[:2] + wire.FAST_HEADERS[data[2:12]] + body)
        h = reply.header
        assert (h.id, h.qr, h.rd, h.cd, h.ra, h.aa, h.tc, h.ad) == (0xBEEF, 1, rd, cd, 1, 0, 0, 0)
        assert [str(r.rdata) for r in reply.rr] == ["10.0.0.2"]


def test_fast_headers_accept_only_plain_queries():
    data = query()
    assert data[2:12] in wire.FAST_HEADERS
    m = DNSRecord.question("web1")
    m.add_ar(EDNS0())
    assert bytes(m.pack())[2:12] not in wire.FAST_HEADERS           # EDNS: slow path
    assert (b"\x81\x00" + data[4:12]) not in wire.FAST_HEADERS   # a response
    assert (b"\x10\x00" + data[4:12]) not in wire.FAST_HEADERS   # opcode 2
    assert len(wire.FAST_HEADERS) == 8 * 256


def test_truncation_keeps_whole_records_and_sets_tc():
    recs = tuple(wire.rr_a(f"10.0.{i // 250}.{i % 250 + 1}") for i in range(60))
    q = wire.Query(query("svc"))
    assert wire.fast_entry(q.key, recs) is None             # too big for the fast table
    udp = wire.build_reply(q, recs, q.udp_size)
    assert len(udp) <= 512
    r = DNSRecord.parse(udp)
    assert r.header.tc == 1 and len(r.rr) == (512 - 12 - len(q.question)) // 16
    full = DNSRecord.parse(wire.build_reply(q, recs, wire.TCP_MAX))
    assert full.header.tc == 0 and len(full.rr) == 60
    m = DNSRecord.question("svc")
    m.add_ar(EDNS0(udp_len=4096))
    big = wire.Query(bytes(m.pack()))
    r = DNSRecord.parse(wire.build_reply(big, recs, big.udp_size))
    assert r.header.tc == 0 and len(r.rr) == 60 and r.ar[0].rtype == QTYPE.OPT


def test_badvers_for_edns_version_1():
    m = DNSRecord.question("svc")
    m.add_ar(EDNS0(version=1))
    q = wire.Query(bytes(m.pack()))
    r = DNSRecord.parse(wire.build_reply(q, (wire.rr_a("10.0.0.1"),), 512))
    assert r.rr == [] and (r.ar[0].ttl >> 24) == 1       # extended rcode 16 = BADVERS


def test_error_reply_echoes_question_and_opcode():
    data = query("x", id=7)
    r = DNSRecord.parse(wire.error_reply(data, wire.SERVFAIL, data[12:]))
    assert (r.header.id, r.header.rcode, str(r.q.qname)) == (7, RCODE.SERVFAIL, "x.")
    notify = bytes([0, 9, 0x20, 0]) + bytes(8)
    out = wire.error_reply(notify, wire.NOTIMP)
    assert out[2] == 0xA0 and out[3] & 0x0F == wire.NOTIMP


def test_names_and_reverse_names():
    assert wire.encode_name("web.mynet.") == b"\x03web\x05mynet\x00"
    assert wire.decode_name(b"\x03web\x05mynet\x00") == "web.mynet"
    assert wire.reverse_name("172.18.0.2") == "2.0.18.172.in-addr.arpa"
    assert wire.reverse_name("fd00::2").endswith(".d.f.ip6.arpa")
    for bad in ("a..b", "x" * 64, ".".join(["abcdefghi"] * 30)):
        with pytest.raises(wire.FormError):
            wire.encode_name(bad)


def test_records_match_dnslib():
    q = wire.Query(query("h", "PTR"))
    r = DNSRecord.parse(wire.build_reply(q, (wire.rr_ptr("web1.net1"), ), 512))
    assert str(r.rr[0].rdata) == "web1.net1." and r.rr[0].ttl == 600
    q = wire.Query(query("h", "AAAA"))
    r = DNSRecord.parse(wire.build_reply(q, (wire.rr_aaaa("fd00::2"),), 512))
    assert str(r.rr[0].rdata) == "fd00::2"


def test_unusual_shapes_go_through_dnslib():
    from dnslib import RR, A
    from netkit.dns.server import _via_dnslib
    m = DNSRecord.question("Web1")
    m.add_answer(RR("web1", rdata=A("1.2.3.4")))          # a query carrying an answer
    m.add_ar(EDNS0(udp_len=2048))
    data = bytes(m.pack())
    with pytest.raises(wire.FormError):
        wire.Query(data)
    q = _via_dnslib(data)
    assert q is not None and q.key == wire.encode_name("web1") + b"\x00\x01\x00\x01"
    assert q.udp_size == 2048 and q.id == data[:2]
    assert _via_dnslib(b"\x00\x01\x81\x80" + bytes(8)) is None


def test_handle_zero_questions_no_reply_and_other_opcodes_notimp():
    snap = Snapshot(1, (SandboxEntry("c", "x"),))
    st = _State(catalog.build(snap)["c"])
    server = Server(timeout=1, max_inflight=1)
    assert server.handle(st, b"\x00\x07\x01\x00" + bytes(8), tcp=False) is None
    q = DNSRecord.question("web1")
    q.header.opcode = 5                         # UPDATE
    r = DNSRecord.parse(server.handle(st, bytes(q.pack()), tcp=False))
    assert r.header.rcode == RCODE.NOTIMP and r.header.opcode == 5 and r.header.qr == 1
    assert server.handle(st, b"\x00\x07\x81\x80" + bytes(8), tcp=False) is None   # a response
