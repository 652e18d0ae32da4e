"""A minimal rtnetlink client for the hot path (links, addresses, routes).

pyroute2 costs ~100 ms to import and ~0.2 ms of Python per request; a
container's attach needs about seven requests and the CLI pays the import
on every run. This module speaks the few messages the engine sends on every
run/rm directly: RTM_{NEW,DEL,GET,SET}LINK, RTM_{NEW,DEL,GET}ADDR and
RTM_{NEW,DEL,GET}ROUTE, over a NETLINK_ROUTE socket that the caller created
inside the target netns. Everything else (macvlan, vxlan, FDB, neighbours)
goes through pyroute2 in netkit/kernel/session.py, imported only when used.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from typing import Any, Iterator

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP, NLM_F_EXCL, NLM_F_CREATE, NLM_F_REPLACE = 0x300, 0x200, 0x400, 0x100
NLMSG_ERROR, NLMSG_DONE = 2, 3
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER = 1, 3, 4, 5, 10
IFLA_PROTINFO, IFLA_OPERSTATE, IFLA_LINKINFO, IFLA_IFALIAS, IFLA_NET_NS_FD = 12, 16, 18, 20, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFLA_BRPORT_MODE, IFLA_BRPORT_LEARNING = 4, 8
IFLA_BR_NF_CALL_IPTABLES, IFLA_BR_NF_CALL_IP6TABLES = 36, 37
IFA_ADDRESS, IFA_LOCAL, IFA_LABEL, IFA_FLAGS = 1, 2, 3, 8
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
IFF_UP = 0x1
NLA_F_NESTED = 0x8000
OPERSTATES = {0: "unknown", 1: "notpresent", 2: "down", 3: "lowerlayerdown", 4: "testing",
              5: "dormant", 6: "up"}

_HDR = struct.Struct("=LHHLL")
_IFI = struct.Struct("=BxHiII")
_IFA = struct.Struct("=BBBBI")
_RTM = struct.Struct("=BBBBBBBBI")
_RTA = struct.Struct("=HH")


class RtnlError(OSError):
    """A netlink request the kernel refused; `code` is the errno (pyroute2's name)."""

    @property
    def code(self) -> int:
        return self.errno or 0


def attr(kind: int, value: bytes | str | int | list) -> bytes:
    """One rtattr; str -> NUL-terminated, int -> u32, list of attrs -> nested."""
    if isinstance(value, str):
        data = value.encode() + b"\0"
    elif isinstance(value, int):
        data = struct.pack("=I", value)
    elif isinstance(value, list):
        data = b"".join(value)
        kind |= NLA_F_NESTED
    else:
        data = value
    length = _RTA.size + len(data)
    return _RTA.pack(length, kind) + data + b"\0" * (-length % 4)


def attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while offset + 4 <= len(data):
        length, kind = _RTA.unpack_from(data, offset)
        if length < 4:
            break
        out[kind & ~NLA_F_NESTED] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return out


def _str(b: bytes | None) -> str | None:
    return b.split(b"\0", 1)[0].decode() if b is not None else None


def _u32(b: bytes | None) -> int | None:
    return struct.unpack("=I", b[:4])[0] if b else None


def mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def _mac(b: bytes | None) -> str | None:
    return ":".join(f"{x:02x}" for x in b) if b else None


def ip_bytes(ip: str) -> tuple[int, bytes]:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    return family, socket.inet_pton(family, ip)


class Rtnl:
    """Synchronous requests over one NETLINK_ROUTE socket (bound to its netns)."""

    def __init__(self, sock: socket.socket | None = None) -> None:
        self.sock = sock or socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 0)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def fileno(self) -> int:
        return self.sock.fileno()

    def request(self, msg_type: int, flags: int, body: bytes) -> list[tuple[int, bytes]]:
        """Send one request; the (type, payload) replies. Raises RtnlError on an error ACK."""
        self.seq += 1
        seq = self.seq
        dump = flags & NLM_F_DUMP == NLM_F_DUMP
        flags |= NLM_F_REQUEST | (0 if dump else NLM_F_ACK)
        self.sock.send(_HDR.pack(_HDR.size + len(body), msg_type, flags, seq, 0) + body)
        out: list[tuple[int, bytes]] = []
        while True:
            data = self.sock.recv(1 << 16)
            offset = 0
            while offset + _HDR.size <= len(data):
                length, kind, mflags, mseq, _ = _HDR.unpack_from(data, offset)
                payload = data[offset + _HDR.size:offset + length]
                offset += (length + 3) & ~3
                if mseq != seq:
                    continue                        # a late reply to an earlier request
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise RtnlError(code, os.strerror(code))
                    return out
                if kind == NLMSG_DONE:
                    return out
                out.append((kind, payload))
                if not dump and not mflags & NLM_F_MULTI:
                    return out

    # -- links ------------------------------------------------------------------
    def link_get(self, ifname: str) -> dict[str, Any]:
        body = _IFI.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + attr(IFLA_IFNAME, ifname)
        replies = self.request(RTM_GETLINK, 0, body)
        return parse_link(replies[0][1])

    def link_dump(self) -> list[dict[str, Any]]:
        body = _IFI.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        return [parse_link(p) for k, p in self.request(RTM_GETLINK, NLM_F_DUMP, body) if k == RTM_NEWLINK]

    def link_add(self, ifname: str, kind: str, *, up: bool = False, mtu: int | None = None,
                 address: str | None = None, master: int | None = None,
                 data: list[bytes] | None = None) -> None:
        a = [attr(IFLA_IFNAME, ifname)]
        if mtu:
            a.append(attr(IFLA_MTU, mtu))
        if address:
            a.append(attr(IFLA_ADDRESS, mac_bytes(address)))
        if master is not None:
            a.append(attr(IFLA_MASTER, master))
        info = [attr(IFLA_INFO_KIND, kind.encode())]
        if data:
            info.append(attr(IFLA_INFO_DATA, data))
        a.append(attr(IFLA_LINKINFO, info))
        flags = IFF_UP if up else 0
        body = _IFI.pack(socket.AF_UNSPEC, 0, 0, flags, flags) + b"".join(a)
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)

    def veth_add(self, ifname: str, peer: str, peer_netns_fd: int, *, up: bool = False,
                 master: int | None = None, mtu: int | None = None,
                 peer_address: str | None = None) -> None:
        pa = [attr(IFLA_IFNAME, peer), attr(IFLA_NET_NS_FD, peer_netns_fd)]
        if mtu:
            pa.append(attr(IFLA_MTU, mtu))
        if peer_address:
            pa.append(attr(IFLA_ADDRESS, mac_bytes(peer_address)))
        peer_msg = _IFI.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + b"".join(pa)
        self.link_add(ifname, "veth", up=up, mtu=mtu, master=master,
                      data=[attr(VETH_INFO_PEER, peer_msg)])

    def link_set(self, *, index: int = 0, ifname: str | None = None, up: bool | None = None,
                 master: int | None = None, ifalias: str | None = None, mtu: int | None = None,
                 address: str | None = None) -> None:
        a = []
        if ifname and not index:
            a.append(attr(IFLA_IFNAME, ifname))
        if master is not None:
            a.append(attr(IFLA_MASTER, master))
        if ifalias is not None:
            a.append(attr(IFLA_IFALIAS, ifalias))
        if mtu:
            a.append(attr(IFLA_MTU, mtu))
        if address:
            a.append(attr(IFLA_ADDRESS, mac_bytes(address)))
        flags = change = 0
        if up is not None:
            change = IFF_UP
            flags = IFF_UP if up else 0
        body = _IFI.pack(socket.AF_UNSPEC, 0, index, flags, change) + b"".join(a)
        self.request(RTM_NEWLINK, 0, body)

    def link_del(self, *, index: int = 0, ifname: str | None = None) -> None:
        a = attr(IFLA_IFNAME, ifname) if ifname and not index else b""
        self.request(RTM_DELLINK, 0, _IFI.pack(socket.AF_UNSPEC, 0, index, 0, 0) + a)

    def brport(self, index: int, *, hairpin: bool | None = None,
               learning: bool | None = None) -> None:
        """Bridge port flags of link `index` (those given; the others are left as they are)."""
        flags = [attr(kind, struct.pack("=B", int(on)))
                 for kind, on in ((IFLA_BRPORT_MODE, hairpin), (IFLA_BRPORT_LEARNING, learning))
                 if on is not None]
        body = _IFI.pack(socket.AF_BRIDGE, 0, index, 0, 0) + attr(IFLA_PROTINFO, flags)
        self.request(RTM_SETLINK, 0, body)

    # -- addresses ----------------------------------------------------------------
    def addr(self, add: bool, index: int, address: str, prefixlen: int, flags: int = 0) -> None:
        family, raw = ip_bytes(address)
        a = attr(IFA_LOCAL, raw) + attr(IFA_ADDRESS, raw)
        if flags:
            a += attr(IFA_FLAGS, flags)
        body = _IFA.pack(family, prefixlen, flags & 0xFF, 0, index) + a
        self.request(RTM_NEWADDR if add else RTM_DELADDR,
                     (NLM_F_CREATE | NLM_F_EXCL) if add else 0, body)

    def addr_dump(self, family: int) -> list[tuple[str, str, int]]:
        out = []
        for kind, p in self.request(RTM_GETADDR, NLM_F_DUMP, _IFA.pack(family, 0, 0, 0, 0)):
            if kind != RTM_NEWADDR:
                continue
            fam, plen, _, _, index = _IFA.unpack_from(p)
            at = attrs(p, _IFA.size)
            raw = at.get(IFA_LOCAL) or at.get(IFA_ADDRESS)
            if raw:
                out.append((_str(at.get(IFA_LABEL)) or "", socket.inet_ntop(fam, raw), plen))
        return out

    # -- routes ---------------------------------------------------------------------
    def route(self, add: bool, *, family: int, dst: str | None, dst_len: int, gateway: str | None,
              oif: int | None = None) -> None:
        a = b""
        if dst:
            a += attr(RTA_DST, ip_bytes(dst)[1])
        if gateway:
            a += attr(RTA_GATEWAY, ip_bytes(gateway)[1])
        if oif:
            a += attr(RTA_OIF, oif)
        # table main, proto static (as `ip route add`), scope universe, type unicast
        body = _RTM.pack(family, dst_len, 0, 0, 254, 4, 0, 1, 0) + a
        self.request(RTM_NEWROUTE if add else RTM_DELROUTE,
                     (NLM_F_CREATE | NLM_F_EXCL) if add else 0, body)

    def route_dump(self, family: int) -> list[dict[str, Any]]:
        out = []
        for kind, p in self.request(RTM_GETROUTE, NLM_F_DUMP, _RTM.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)):
            if kind != RTM_NEWROUTE:
                continue
            fam, dst_len, _, _, table, proto, scope, rtype, _ = _RTM.unpack_from(p)
            at = attrs(p, _RTM.size)
            table = _u32(at.get(RTA_TABLE)) or table
            if table != 254:
                continue
            dst = at.get(RTA_DST)
            gw = at.get(RTA_GATEWAY)
            out.append({"dst": socket.inet_ntop(fam, dst) if dst else None, "dst_len": dst_len,
                        "gateway": socket.inet_ntop(fam, gw) if gw else None,
                        "oif": _u32(at.get(RTA_OIF)), "scope": scope, "proto": proto})
        return out


def parse_link(p: bytes) -> dict[str, Any]:
    _, _, index, flags, _ = _IFI.unpack_from(p)
    at = attrs(p, _IFI.size)
    info = attrs(at[IFLA_LINKINFO]) if IFLA_LINKINFO in at else {}
    oper = at.get(IFLA_OPERSTATE)
    return {"index": index, "ifname": _str(at.get(IFLA_IFNAME)), "alias": _str(at.get(IFLA_IFALIAS)),
            "master": _u32(at.get(IFLA_MASTER)), "kind": _str(info.get(IFLA_INFO_KIND)),
            "state": "up" if flags & IFF_UP else "down", "mtu": _u32(at.get(IFLA_MTU)),
            "address": _mac(at.get(IFLA_ADDRESS)), "link": _u32(at.get(IFLA_LINK)),
            "operstate": OPERSTATES.get(oper[0]) if oper else None}


def is_missing(exc: BaseException) -> bool:
    return getattr(exc, "code", None) in (errno.ENODEV, errno.ENOENT, errno.ESRCH)
