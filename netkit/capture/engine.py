"""`Engine.capture()`: packet capture as an Engine method (mixin; imports no scapy)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from scapy.packet import Packet

    from netkit.capture.session import Capture
    from netkit.capture.targets import Target


class CaptureMixin:
    def capture(self, target: "str | Target", *, iface: str | None = None,
                filter: str | None = None, count: int | None = None,
                timeout: float | None = None, pcap: str | None = None,
                on_packet: "Callable[[Packet], None] | None" = None) -> "Capture":
        """`tcpdump` on a container, ``network:NAME``, ``node:NAME`` or ``lan:NAME``.

        A context manager: entering returns once the capture is ready (no
        packet of what follows is lost); leaving ends it, and ``cap.packets``
        is a scapy PacketList. `filter` is a tcpdump expression; `count` and
        `timeout` (seconds) end the capture by themselves; `pcap` streams to
        a pcap file; `on_packet` gets each packet as it is decoded.
        """
        from netkit.capture.session import capture
        return capture(self, target, iface=iface, filter=filter, count=count,  # type: ignore[arg-type]
                       timeout=timeout, pcap=pcap, on_packet=on_packet)
