"""Pure parts of netkit.capture: DNS and flow extraction, tcpdump lines, BPF, targets (no root)."""

from __future__ import annotations

import shutil

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether

from netkit.capture import analysis, bpf
from netkit.capture.targets import split
from netkit.errors import InvalidArgument


def wire(pkt, t=1000.0):
    """As a capture gives them: dissected from bytes, with a time."""
    out = Ether(bytes(Ether() / pkt))
    out.time = t
    return out


def dns(src, dst, sport, dport, **kw):
    return wire(IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / DNS(**kw))


QUERY = dns("10.0.0.5", "127.0.0.11", 40000, 53, id=7, rd=1, qd=DNSQR(qname="Web.", qtype="A"))
ANSWER = dns("127.0.0.11", "10.0.0.5", 53, 40000, id=7, qr=1, aa=1, qd=DNSQR(qname="web.", qtype="A"),
             an=[DNSRR(rrname="web.", type="CNAME", rdata="web1."),
                 DNSRR(rrname="web1.", type="A", rdata="10.0.0.2")])
NXDOMAIN = dns("127.0.0.11", "10.0.0.5", 53, 40001, id=8, qr=1, rcode=3,
               qd=DNSQR(qname="nosuch.", qtype="AAAA"))


def test_dns_messages():
    q, a, nx = analysis.dns_messages([QUERY, ANSWER, NXDOMAIN, wire(IP() / ICMP())])
    assert (q.response, q.name, q.type, q.id, q.src, q.sport) == (False, "web", "A", 7, "10.0.0.5", 40000)
    assert (a.response, a.rcode, a.addresses) == (True, "NOERROR", ("10.0.0.2",))
    assert a.answers == (("web", "CNAME", "web1"), ("web1", "A", "10.0.0.2"))
    assert (nx.rcode, nx.type, nx.addresses) == ("NXDOMAIN", "AAAA", ())
    assert str(a) == "answer A web id 7 from 127.0.0.11: NOERROR 10.0.0.2"


def test_flows_are_one_way_five_tuples_in_order():
    pkts = [wire(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5, dport=6) / (b"x" * 10)),
            wire(IP(src="10.0.0.2", dst="10.0.0.1") / UDP(sport=6, dport=5)),
            wire(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5, dport=6) / (b"x" * 10), t=1001.0),
            wire(IP(src="10.0.0.1", dst="10.0.0.2") / ICMP())]
    flows = analysis.flows(pkts)
    assert [f.key for f in flows] == [("udp", "10.0.0.1", 5, "10.0.0.2", 6),
                                      ("udp", "10.0.0.2", 6, "10.0.0.1", 5),
                                      ("icmp", "10.0.0.1", None, "10.0.0.2", None)]
    assert (flows[0].packets, flows[0].bytes, flows[0].first, flows[0].last) == (2, 2 * 38, 1000.0, 1001.0)
    assert str(flows[2]) == "icmp 10.0.0.1 > 10.0.0.2: 1 packets, 28 bytes"


@pytest.mark.parametrize("pkt, text", [
    (QUERY, "IP 10.0.0.5.40000 > 127.0.0.11.53: 7+ A? Web. (21)"),
    (ANSWER, "IP 127.0.0.11.53 > 10.0.0.5.40000: 7* 2/0/0 CNAME web1, A 10.0.0.2 (62)"),
    (NXDOMAIN, "IP 127.0.0.11.53 > 10.0.0.5.40001: 8 NXDOMAIN 0/0/0 (24)"),
    (wire(IP(src="1.1.1.1", dst="2.2.2.2") / TCP(sport=1, dport=2, flags="SA", seq=5, ack=9)),
     "IP 1.1.1.1.1 > 2.2.2.2.2: Flags [S.], seq 5, ack 9, length 0"),
    (wire(IP(src="1.1.1.1", dst="2.2.2.2") / TCP(sport=1, dport=2, flags="PA", seq=5, ack=9) / b"hi"),
     "IP 1.1.1.1.1 > 2.2.2.2.2: Flags [P.], seq 5, ack 9, length 2"),
    (wire(IP(src="1.1.1.1", dst="2.2.2.2") / UDP(sport=1, dport=2) / b"abc"),
     "IP 1.1.1.1.1 > 2.2.2.2.2: UDP, length 3"),
    (wire(IP(src="1.1.1.1", dst="2.2.2.2") / ICMP(type=3, code=3)),
     "IP 1.1.1.1 > 2.2.2.2: ICMP dest-unreach port-unreachable"),
    (wire(ARP(op=1, psrc="10.0.0.1", pdst="10.0.0.2")),
     "ARP, Request who-has 10.0.0.2 tell 10.0.0.1, length 28"),
])
def test_describe_like_tcpdump(pkt, text):
    assert analysis.describe(pkt) == text


def test_line_has_time_interface_and_direction():
    pkt = wire(IP(src="1.1.1.1", dst="2.2.2.2") / UDP(sport=1, dport=2), t=1_700_000_000.123456)
    pkt.sniffed_on, pkt.direction = "eth0", analysis.OUTGOING
    text = analysis.line(pkt)
    assert text.endswith(".123456 eth0 Out IP 1.1.1.1.1 > 2.2.2.2.2: UDP, length 0")
    assert " eth0 " not in analysis.line(pkt, iface=False)
    assert analysis.summary([]) == "    (no packets)"
    many = analysis.summary([pkt] * 50, limit=10)
    assert len(many.splitlines()) == 11 and "... 40 more ..." in many


def test_bpf_compiles_without_any_interface():
    prog = bpf.compile("udp port 53")
    assert len(prog) % 8 == 0 and len(prog) > 8
    assert bpf.compile(None) == bpf.compile("  ") == bpf.ACCEPT_ALL
    with pytest.raises(InvalidArgument, match="invalid capture filter: udp port"):
        bpf.compile("udp port")


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump")
def test_bpf_libpcap_and_tcpdump_agree():
    expr = "icmp or (udp and port 53) or host 10.1.2.3"
    def accepts_as_bool(prog):               # the two differ only in the snaplen returned
        return [(c, jt, jf, bool(k) if c == bpf.BPF_RET_K else k) for c, jt, jf, k in prog]
    assert accepts_as_bool(bpf._with_libpcap(expr)) == accepts_as_bool(bpf._with_tcpdump(expr))
    with pytest.raises(InvalidArgument, match="syntax error"):
        bpf._with_tcpdump("udp port")


@pytest.mark.parametrize("ref, parsed", [
    ("web", ("container", "web")), ("network:n1", ("network", "n1")), ("node:h1", ("node", "h1")),
    ("lan:l1", ("lan", "l1")), ("container:c1", ("container", "c1")),
])
def test_target_refs(ref, parsed):
    assert split(ref) == parsed


def test_target_ref_without_name():
    with pytest.raises(InvalidArgument, match="lan: needs a name"):
        split("lan:")
