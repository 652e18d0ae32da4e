"""What a list of captured packets says: DNS messages, flows, tcpdump-like lines.

Pure functions over scapy packets (no sockets, no namespaces), so they work
as well on a pcap read back with ``scapy.utils.rdpcap``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterable

from scapy.layers.dns import DNS, dnstypes
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP
from scapy.packet import Packet

RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
PROTOS = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6", 132: "sctp"}
OUTGOING = 2              # Packet.direction, as pcapng's epb_flags: 1 inbound, 2 outbound


def norm_name(name: str | bytes) -> str:
    """DNS names compared as users write them: lower case, no trailing dot."""
    if isinstance(name, bytes):
        name = name.decode(errors="replace")
    return name.rstrip(".").lower()


@dataclass(frozen=True, slots=True)
class DnsMessage:
    """One DNS query or answer seen on the wire (the first question only)."""

    time: float
    src: str
    dst: str
    sport: int
    dport: int
    id: int
    response: bool
    name: str                          # lower case, no trailing dot
    type: str                          # "A", "AAAA", "PTR"...
    rcode: str = "NOERROR"             # answers: "NOERROR", "NXDOMAIN", "SERVFAIL"...
    addresses: tuple[str, ...] = ()    # A / AAAA data of the answer section, in order
    answers: tuple[tuple[str, str, str], ...] = ()   # every answer record: (name, type, data)
    packet: Packet | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        if not self.response:
            return f"query {self.type}? {self.name} id {self.id} from {self.src}"
        data = ", ".join(self.addresses) or "-"
        return f"answer {self.type} {self.name} id {self.id} from {self.src}: {self.rcode} {data}"


def _l3(pkt: Packet) -> Any:
    if IP in pkt:
        return pkt[IP]
    if IPv6 in pkt:
        return pkt[IPv6]
    return None


def dns_messages(packets: Iterable[Packet]) -> list[DnsMessage]:
    """Every DNS message in `packets`, in capture order."""
    out = []
    for pkt in packets:
        if DNS not in pkt:
            continue
        dns, ip = pkt[DNS], _l3(pkt)
        l4 = pkt[UDP] if UDP in pkt else pkt[TCP] if TCP in pkt else None
        if ip is None or l4 is None or not dns.qd:
            continue
        q = dns.qd[0]
        answers = tuple((norm_name(rr.rrname), dnstypes.get(rr.type, str(rr.type)), _rdata(rr))
                        for rr in (dns.an or ()))
        out.append(DnsMessage(
            time=float(pkt.time), src=ip.src, dst=ip.dst, sport=l4.sport, dport=l4.dport,
            id=dns.id, response=bool(dns.qr), name=norm_name(q.qname),
            type=dnstypes.get(q.qtype, str(q.qtype)), rcode=RCODES.get(dns.rcode, str(dns.rcode)),
            addresses=tuple(data for _, kind, data in answers if kind in ("A", "AAAA")),
            answers=answers, packet=pkt))
    return out


def _rdata(rr: Any) -> str:
    data = getattr(rr, "rdata", "")
    if isinstance(data, bytes):
        return norm_name(data)
    if isinstance(data, list):
        return " ".join(x.decode(errors="replace") if isinstance(x, bytes) else str(x) for x in data)
    return str(data)


@dataclass(slots=True)
class Flow:
    """A one-way 5-tuple and what crossed it (bytes: IP packet lengths)."""

    proto: str                  # "tcp", "udp", "icmp", "icmp6" or the IP protocol number
    src: str
    sport: int | None           # None for protocols without ports
    dst: str
    dport: int | None
    packets: int = 0
    bytes: int = 0
    first: float = 0.0
    last: float = 0.0

    @property
    def key(self) -> tuple:
        return (self.proto, self.src, self.sport, self.dst, self.dport)

    def __str__(self) -> str:
        a = f"{self.src}:{self.sport}" if self.sport is not None else self.src
        b = f"{self.dst}:{self.dport}" if self.dport is not None else self.dst
        return f"{self.proto} {a} > {b}: {self.packets} packets, {self.bytes} bytes"


def flows(packets: Iterable[Packet]) -> list[Flow]:
    """One :class:`Flow` per direction of every 5-tuple, in order of first packet."""
    table: OrderedDict[tuple, Flow] = OrderedDict()
    for pkt in packets:
        ip = _l3(pkt)
        if ip is None:
            continue
        num = ip.proto if isinstance(ip, IP) else ip.nh
        l4 = pkt[TCP] if TCP in pkt else pkt[UDP] if UDP in pkt else None
        sport, dport = (l4.sport, l4.dport) if l4 is not None else (None, None)
        key = (PROTOS.get(num, str(num)), ip.src, sport, ip.dst, dport)
        flow = table.get(key)
        if flow is None:
            flow = table[key] = Flow(*key, first=float(pkt.time))
        flow.packets += 1
        flow.bytes += len(ip)
        flow.last = float(pkt.time)
    return list(table.values())


# -- tcpdump-like text ----------------------------------------------------------------

def stamp(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 1e6):06d}"


def line(pkt: Packet, *, iface: bool = True) -> str:
    """One line per packet, as tcpdump prints it (``-i any`` style with `iface`)."""
    head = stamp(float(pkt.time))
    if iface and getattr(pkt, "sniffed_on", None):
        head += f" {pkt.sniffed_on} {'Out' if pkt.direction == OUTGOING else 'In '}"
    return f"{head} {describe(pkt)}"


def describe(pkt: Packet) -> str:
    if ARP in pkt:
        arp = pkt[ARP]
        if arp.op == 1:
            return f"ARP, Request who-has {arp.pdst} tell {arp.psrc}, length {len(arp)}"
        if arp.op == 2:
            return f"ARP, Reply {arp.psrc} is-at {arp.hwsrc}, length {len(arp)}"
        return f"ARP, op {arp.op}"
    ip = _l3(pkt)
    if ip is None:
        return pkt.summary()
    fam = "IP" if isinstance(ip, IP) else "IP6"
    if TCP in pkt:
        tcp = pkt[TCP]
        text = (f"{fam} {ip.src}.{tcp.sport} > {ip.dst}.{tcp.dport}: Flags [{_tcp_flags(tcp)}], "
                f"seq {tcp.seq}")
        if tcp.flags.A:
            text += f", ack {tcp.ack}"
        text += f", length {len(tcp.payload)}"
        return text + (f": {_dns_text(pkt[DNS])}" if DNS in pkt else "")
    if UDP in pkt:
        udp = pkt[UDP]
        ends = f"{fam} {ip.src}.{udp.sport} > {ip.dst}.{udp.dport}"
        if DNS in pkt:
            return f"{ends}: {_dns_text(pkt[DNS])} ({len(udp.payload)})"
        return f"{ends}: UDP, length {len(udp.payload)}"
    if ICMP in pkt:
        icmp = pkt[ICMP]
        if icmp.type in (0, 8):
            kind = "echo reply" if icmp.type == 0 else "echo request"
            return (f"{fam} {ip.src} > {ip.dst}: ICMP {kind}, id {icmp.id}, seq {icmp.seq}, "
                    f"length {len(icmp)}")
        return f"{fam} {ip.src} > {ip.dst}: ICMP {icmp.sprintf('%ICMP.type% %ICMP.code%')}"
    last = ip.payload
    name = last.name if last is not None and last.name != "NoPayload" else "proto"
    return f"{fam} {ip.src} > {ip.dst}: {name}, length {len(ip)}"


def _tcp_flags(tcp: Any) -> str:
    flags = tcp.flags
    out = "".join(ch for bit, ch in (("S", "S"), ("F", "F"), ("P", "P"), ("R", "R"), ("U", "U"),
                                     ("E", "E"), ("C", "W")) if bit in str(flags))
    return out + ("." if flags.A else "") or "none"


def _dns_text(dns: Any) -> str:
    q = dns.qd[0] if dns.qd else None
    qtype = dnstypes.get(q.qtype, str(q.qtype)) if q is not None else "?"
    qname = (q.qname.decode(errors="replace") if q is not None else "")
    if not dns.qr:
        return f"{dns.id}{'+' if dns.rd else ''} {qtype}? {qname}"
    rcode = RCODES.get(dns.rcode, str(dns.rcode))
    head = f"{dns.id}{'*' if dns.aa else ''}" + ("" if rcode == "NOERROR" else f" {rcode}")
    counts = f"{dns.ancount}/{dns.nscount}/{dns.arcount}"
    rrs = ", ".join(f"{dnstypes.get(rr.type, rr.type)} {_rdata(rr)}" for rr in (dns.an or ()))
    return f"{head} {counts}" + (f" {rrs}" if rrs else "")


def summary(packets: list[Packet], *, limit: int = 40, iface: bool = True) -> str:
    """The packets as tcpdump lines (the first and last ones past `limit`)."""
    if not packets:
        return "    (no packets)"
    lines = [line(p, iface=iface) for p in packets]
    if len(lines) > limit:
        half = limit // 2
        lines = lines[:half] + [f"... {len(lines) - 2 * half} more ..."] + lines[-half:]
    return "\n".join("    " + text for text in lines)
