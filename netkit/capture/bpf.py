"""BPF filters compiled without a capture device, attached with SO_ATTACH_FILTER.

A filter expression compiled for a link type (Ethernet) does not depend on
any interface or namespace, so it is compiled here, in netkit's own netns,
and attached to a packet socket that lives in another one. scapy's
``compile_filter(expr, linktype=...)`` calls libpcap's
``pcap_compile_nopcap``; without libpcap we ask ``tcpdump -ddd -y EN10MB``,
naming no interface (``-i`` would open a device of the wrong netns).
"""

from __future__ import annotations

import ctypes
import socket
import struct
import subprocess

from netkit.errors import InvalidArgument

DLT_EN10MB = 1               # every link netkit makes (veth, bridge, lo, vxlan) is Ethernet
SNAPLEN = 262144             # veth GSO packets exceed 64 KiB framing; as tcpdump's default
SO_ATTACH_FILTER = 26
BPF_RET_K = 0x06
_INSN = struct.Struct("=HBBI")   # struct sock_filter: code, jt, jf, k

ACCEPT_ALL = _INSN.pack(BPF_RET_K, 0, 0, SNAPLEN)


def compile(expr: str | None) -> bytes:
    """`expr` (tcpdump syntax) as an array of ``struct sock_filter``; None/"" accepts all."""
    if not expr or not expr.strip():
        return ACCEPT_ALL
    try:
        insns = _with_libpcap(expr)
    except ImportError:
        insns = _with_tcpdump(expr)
    # libpcap returns the snaplen it was given (scapy passes 65535): keep whole packets
    return b"".join(_INSN.pack(code, jt, jf, SNAPLEN if code == BPF_RET_K and k else k)
                    for code, jt, jf, k in insns)


def _with_libpcap(expr: str) -> list[tuple[int, int, int, int]]:
    from scapy.arch.common import compile_filter, free_filter   # ImportError without libpcap
    from scapy.error import Scapy_Exception
    try:
        prog = compile_filter(expr, linktype=DLT_EN10MB)
    except Scapy_Exception:
        raise InvalidArgument(f"invalid capture filter: {expr}") from None
    try:
        raw = ctypes.string_at(prog.bf_insns, prog.bf_len * _INSN.size)
        return [_INSN.unpack_from(raw, i * _INSN.size) for i in range(prog.bf_len)]
    finally:
        free_filter(prog)


def _with_tcpdump(expr: str) -> list[tuple[int, int, int, int]]:
    try:
        proc = subprocess.run(["tcpdump", "-ddd", "-y", "EN10MB", "-s", str(SNAPLEN), expr],
                              capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise InvalidArgument("capture filters need libpcap or tcpdump installed") from None
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or [""])[-1].removeprefix("tcpdump: ")
        raise InvalidArgument(f"invalid capture filter: {expr}: {why}")
    lines = proc.stdout.split("\n")
    count = int(lines[0])
    return [tuple(int(x) for x in line.split()) for line in lines[1:1 + count]]  # type: ignore[misc]


def attach(sock: socket.socket, program: bytes) -> None:
    """SO_ATTACH_FILTER: the kernel copies the program, so the buffer may go afterwards."""
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HL", len(program) // _INSN.size, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
