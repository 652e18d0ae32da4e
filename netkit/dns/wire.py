"""DNS wire format by hand: what the hot path and the tables need, nothing more.

The resolver answers known names from precomputed bytes, so per query it
only has to split the 12-byte header from the question and patch the
query's ID (and RD/CD bits) into a stored reply. Everything here works on
``bytes`` and never raises anything but :class:`FormError` on bad input.

Layout of a reply we build: header, the question exactly as the client sent
it (so 0x20 case randomisation survives), then answer records whose owner
name is a compression pointer to that question name (``c0 0c``).
"""

from __future__ import annotations

import ipaddress
import socket
import struct

QTYPE_A = 1
QTYPE_PTR = 12
QTYPE_MX = 15
QTYPE_AAAA = 28
QTYPE_OPT = 41
CLASS_IN = 1

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5

TTL = 600
UDP_MIN = 512           # RFC 1035 limit for UDP without EDNS0
TCP_MAX = 65535
EDNS_SIZE = 1232        # the UDP size we advertise in our own OPT record

_PTR_TO_QNAME = b"\xc0\x0c"
_OPT_RR = b"\x00" + struct.pack("!HHIH", QTYPE_OPT, EDNS_SIZE, 0, 0)
_COUNTS = struct.Struct("!HHHH")


class FormError(ValueError):
    """Malformed DNS message."""


# -- names -------------------------------------------------------------------

def encode_name(name: str) -> bytes:
    """``web.mynet`` -> wire labels; raises FormError on empty or long labels."""
    name = name.rstrip(".")
    if not name:
        return b"\x00"
    out = bytearray()
    for label in name.split("."):
        raw = label.encode()
        if not 0 < len(raw) < 64:
            raise FormError(f"bad label in {name!r}")
        out.append(len(raw))
        out += raw
    out.append(0)
    if len(out) > 255:
        raise FormError(f"name too long: {name!r}")
    return bytes(out)


def decode_name(wire: bytes) -> str:
    """Wire labels (no compression) -> dotted name without the trailing dot."""
    labels, i = [], 0
    while wire[i]:
        n = wire[i]
        labels.append(wire[i + 1:i + 1 + n].decode("latin-1"))
        i += 1 + n
    return ".".join(labels)


def reverse_name(ip: str) -> str:
    """``172.18.0.2`` -> ``2.0.18.172.in-addr.arpa`` (nibbles for IPv6)."""
    if ":" not in ip:
        parts = ip.split(".")
        if len(parts) == 4 and all(p.isdigit() and str(int(p)) == p and int(p) < 256
                                   for p in parts):
            return ".".join(reversed(parts)) + ".in-addr.arpa"
    return ipaddress.ip_address(ip).reverse_pointer


# -- parsing -----------------------------------------------------------------

def question_end(data: bytes, offset: int = 12) -> int:
    """Offset just past the question at `offset` (name, type, class).

    Compression pointers are not allowed in the question of a query we
    parse by hand; they raise FormError like any other malformation.
    """
    n = len(data)
    i = offset
    total = 0
    while True:
        if i >= n:
            raise FormError("question runs past the end")
        length = data[i]
        if length == 0:
            break
        if length > 63:
            raise FormError("compressed or invalid label in question")
        i += 1 + length
        total += 1 + length
        if total > 254:
            raise FormError("question name too long")
    i += 5
    if i > n:
        raise FormError("question runs past the end")
    return i


class Query:
    """A query parsed by hand: header fields, the raw question, EDNS0 size.

    ``key`` is the question with the name lower-cased: the table key.
    """

    __slots__ = ("data", "id", "flags", "opcode", "qdcount", "question", "key",
                 "qname", "qtype", "qclass", "edns", "edns_version", "udp_size")

    def __init__(self, data: bytes) -> None:
        if data.__class__ is not bytes:
            data = bytes(data)
        if len(data) < 12:
            raise FormError("short header")
        self.data = data
        self.id = data[:2]
        self.flags = (data[2] << 8) | data[3]
        self.opcode = (data[2] >> 3) & 0x0F
        qd, an, ns, ar = _COUNTS.unpack_from(data, 4)
        self.qdcount = qd
        self.question = self.key = b""
        self.qname = ""
        self.qtype = self.qclass = 0
        self.edns = False
        self.edns_version = 0
        self.udp_size = UDP_MIN
        if data[2] & 0x80:
            raise FormError("not a query")
        if qd == 0 or self.opcode != 0:
            return
        if qd != 1 or an or ns:
            raise FormError("unusual sections in query")
        end = question_end(data)
        self.question = data[12:end]
        name = self.question[:-4]
        self.key = name.lower() + self.question[-4:]
        self.qtype, self.qclass = struct.unpack_from("!HH", data, end - 4)
        self.qname = decode_name(name).lower()
        if ar:
            self._parse_additional(end, ar)
        elif end != len(data):
            raise FormError("trailing bytes after question")

    def _parse_additional(self, i: int, count: int) -> None:
        data = self.data
        for _ in range(count):
            # owner name: only the root (OPT) or a pointer/labels we skip over
            while True:
                if i >= len(data):
                    raise FormError("additional record runs past the end")
                length = data[i]
                if length == 0:
                    i += 1
                    break
                if length & 0xC0 == 0xC0:
                    i += 2
                    break
                if length > 63:
                    raise FormError("bad label in additional record")
                i += 1 + length
            if i + 10 > len(data):
                raise FormError("additional record runs past the end")
            rtype, rclass, ttl, rdlen = struct.unpack_from("!HHIH", data, i)
            i += 10 + rdlen
            if i > len(data):
                raise FormError("additional record runs past the end")
            if rtype == QTYPE_OPT:
                if self.edns:
                    raise FormError("two OPT records")
                self.edns = True
                self.edns_version = (ttl >> 16) & 0xFF
                self.udp_size = max(UDP_MIN, rclass)
        if i != len(data):
            raise FormError("trailing bytes after additional section")


# -- building ----------------------------------------------------------------

_RR_A = _PTR_TO_QNAME + struct.pack("!HHIH", QTYPE_A, CLASS_IN, TTL, 4)
_RR_AAAA = _PTR_TO_QNAME + struct.pack("!HHIH", QTYPE_AAAA, CLASS_IN, TTL, 16)


def rr_a(ip: str) -> bytes:
    """An A record owned by the question name."""
    try:
        return _RR_A + socket.inet_pton(socket.AF_INET, ip)
    except OSError:
        raise FormError(f"bad IPv4 address {ip!r}") from None


def rr_aaaa(ip: str) -> bytes:
    try:
        return _RR_AAAA + socket.inet_pton(socket.AF_INET6, ip)
    except OSError:
        raise FormError(f"bad IPv6 address {ip!r}") from None


def rr_ptr(target: str) -> bytes:
    rdata = encode_name(target)
    return _PTR_TO_QNAME + struct.pack("!HHIH", QTYPE_PTR, CLASS_IN, TTL, len(rdata)) + rdata


def response_flags(query_flags: int, rcode: int = NOERROR, tc: bool = False) -> bytes:
    """QR=1, the query's opcode, RD and CD copied, RA=1, AA=0."""
    hi = 0x80 | (query_flags >> 8 & 0x79) | (0x02 if tc else 0)
    lo = 0x80 | (query_flags & 0x10) | (rcode & 0x0F)
    return bytes((hi, lo))


def build_reply(query: Query, records: list[bytes] | tuple[bytes, ...], limit: int,
                rcode: int = NOERROR) -> bytes:
    """A reply to `query` with `records` in answer, truncated to `limit` bytes.

    Whole records only; TC=1 when any was left out. An EDNS0 query gets our
    OPT record (counted in the limit), BADVERS if it speaks a version > 0.
    """
    opt = b""
    if query.edns:
        opt = _OPT_RR
        if query.edns_version:
            records = ()
            opt = b"\x00" + struct.pack("!HHIH", QTYPE_OPT, EDNS_SIZE, 1 << 24, 0)  # BADVERS=16
    size = 12 + len(query.question) + len(opt)
    kept = 0
    for rr in records:
        if size + len(rr) > limit:
            break
        size += len(rr)
        kept += 1
    tc = kept < len(records)
    head = query.id + response_flags(query.flags, rcode, tc) + \
        _COUNTS.pack(1 if query.question else 0, kept, 0, 1 if opt else 0)
    return b"".join((head, query.question, *records[:kept], opt))


def error_reply(data: bytes, rcode: int, question: bytes = b"") -> bytes:
    """An empty reply with `rcode`, echoing `question` when we have one."""
    flags = (data[2] << 8) | data[3]
    return data[:2] + response_flags(flags, rcode) + \
        _COUNTS.pack(1 if question else 0, 0, 0, 0) + question


# -- the fast path -------------------------------------------------------------

def _fast_headers() -> dict[bytes, bytes]:
    """Query bytes 2..12 (flags + counts) a plain query may have -> reply flags.

    Plain means QR=0, opcode QUERY, one question and no other records. Any
    AA/TC/RD/Z/AD/CD/rcode bits are accepted; RD and CD are echoed.
    """
    table = {}
    counts = _COUNTS.pack(1, 0, 0, 0)
    for hi in range(8):             # QR=0, opcode=0: AA, TC, RD bits free
        for lo in range(256):
            table[bytes((hi, lo)) + counts] = response_flags(hi << 8 | lo)
    return table


FAST_HEADERS = _fast_headers()
"""Accepted (flags + counts) of a query -> the 2 flag bytes of our reply."""


def fast_entry(question: bytes, records: list[bytes] | tuple[bytes, ...]) -> bytes | None:
    """Reply bytes 4.. (counts, question, answers) for the fast table, or None.

    None when the full reply would not fit a 512-byte UDP datagram: such
    names go through :func:`build_reply`, which truncates.
    """
    body = _COUNTS.pack(1, len(records), 0, 0) + question + b"".join(records)
    return body if 4 + len(body) <= UDP_MIN else None
