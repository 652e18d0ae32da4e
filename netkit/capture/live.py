"""A packet socket that lives in the namespace it captures, ready before it returns.

The socket is made by netkit's namespace worker thread inside the target
netns (``kernel.netns.socket_in``); the caller's thread never changes
namespace, and nothing that caches interfaces (scapy's ``conf.ifaces``,
scapy#3467) ever looks at the target. Interface names are resolved with
ioctls on this socket, so in its netns.

Order of setup, so that no packet is lost and none slips past the filter:
the socket is created with protocol 0 (it receives nothing), gets its BPF
program, buffer, timestamps and promiscuous membership, and only then is
bound to ETH_P_ALL. From the bind on, every matching frame is queued in
the kernel, whether or not anyone reads yet.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import socket
import struct
import time
from dataclasses import dataclass

from netkit.capture import bpf
from netkit.errors import KernelError, NotFound
from netkit.kernel import netns as kns

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_STATISTICS = 6
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35
SO_RCVBUFFORCE = 33
SIOCGIFINDEX = 0x8933
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
RCVBUF = 8 << 20
_ANC = socket.CMSG_SPACE(16)
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured link-layer frame (always with an Ethernet header)."""

    time: float              # kernel receive timestamp, seconds since the epoch
    data: bytes
    ifname: str
    outgoing: bool           # sent by this netns (tcpdump's "Out"), else received ("In")
    truncated: bool = False


class PacketSocket:
    """AF_PACKET socket in netns `netns` on `iface` (None: every interface there).

    `program` is a BPF program from :func:`netkit.capture.bpf.compile`.
    With an interface, the interface is put in promiscuous mode for the
    socket's lifetime (what tcpdump does): on a bridge that is what makes
    frames forwarded between its ports visible.
    """

    def __init__(self, netns: str | None, iface: str | None, program: bytes, *,
                 promisc: bool = True) -> None:
        self.netns, self.iface = netns, iface
        self._received = self._dropped = 0
        try:
            sock = kns.socket_in(netns, socket.AF_PACKET, socket.SOCK_RAW, 0)
        except OSError as exc:
            raise KernelError(f"open packet socket in netns {self._where}: {exc.strerror}") from exc
        self.sock = sock
        try:
            ifindex = self._ifindex(iface) if iface else 0
            bpf.attach(sock, program)
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
            except PermissionError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            if iface and promisc:
                mreq = struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")
                sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
            self._bind(ifindex)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise

    @property
    def _where(self) -> str:
        return self.netns or "(host)"

    def _ifindex(self, iface: str) -> int:
        req = struct.pack("16si20x", iface.encode()[:15], 0)
        try:
            return struct.unpack("16si20x", fcntl.ioctl(self.sock.fileno(), SIOCGIFINDEX, req))[1]
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                raise NotFound(f"interface {iface} not found in netns {self._where}") from None
            raise KernelError(f"look up interface {iface} in netns {self._where}: {exc.strerror}") from exc

    def _bind(self, ifindex: int) -> None:
        # Python's bind((ifname, proto)) cannot say "every interface" (ifindex 0)
        sll = struct.pack("=H", socket.AF_PACKET) + struct.pack("!H", ETH_P_ALL) + \
            struct.pack("=iHBB8s", ifindex, 0, 0, 0, b"")
        if _libc.bind(self.sock.fileno(), sll, len(sll)) != 0:
            err = ctypes.get_errno()
            raise KernelError(f"bind packet socket in netns {self._where}: {errno.errorcode.get(err, err)}")

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> Frame | None | bool:
        """The next queued frame; None for a frame to skip; False when the queue is empty."""
        try:
            data, anc, flags, addr = self.sock.recvmsg(bpf.SNAPLEN, _ANC)
        except (BlockingIOError, InterruptedError):
            return False
        ifname, _proto, pkttype, hatype = addr[:4]
        if hatype == ARPHRD_LOOPBACK and pkttype == PACKET_OUTGOING:
            return None        # seen again as incoming on lo (libpcap skips these too)
        if hatype not in (ARPHRD_ETHER, ARPHRD_LOOPBACK):
            return None        # no Ethernet header (tun, ipip...): cannot go in an EN10MB pcap
        ts = time.time()
        for level, kind, value in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                sec, nsec = struct.unpack("qq", value[:16])
                ts = sec + nsec / 1e9
        return Frame(ts, data, ifname, pkttype == PACKET_OUTGOING, bool(flags & socket.MSG_TRUNC))

    def stats(self) -> tuple[int, int]:
        """(frames the kernel queued for us, frames it dropped for lack of buffer), cumulative."""
        if self.sock.fileno() != -1:
            got, dropped = struct.unpack("II", self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
            self._received += got
            self._dropped += dropped
        return self._received, self._dropped

    def close(self) -> None:
        if self.sock.fileno() != -1:
            self.stats()
            self.sock.close()
