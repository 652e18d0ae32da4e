"""Packet capture inside netkit's namespaces (scapy), for tests and for `netkit capture`.

    from netkit.capture import capture
    with capture(engine, "client", filter="udp port 53") as cap:
        engine.exec("client", ["dig", "+short", "web"])
    cap.assert_dns_answer("web", count=1)

Targets: a container, ``network:NAME`` (its bridge), ``node:NAME`` (a
simulated host) or ``lan:NAME`` (a simulated LAN's switch). Modules:

    targets.py    target string -> (netns, interface)          (no scapy)
    bpf.py        filter expression -> BPF, SO_ATTACH_FILTER    (libpcap via scapy, or tcpdump -ddd)
    live.py       the packet socket, made inside the target netns (no scapy)
    session.py    Capture: reader thread, pcap, waits, assertions
    analysis.py   DNS messages, flows, tcpdump-like lines       (pure, scapy)

``Engine.capture()`` calls :func:`capture` with the engine. Importing this
package does not import scapy: that happens when a capture starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["capture", "Capture", "Target", "resolve", "WaitTimeout",
           "DnsMessage", "Flow"]

if TYPE_CHECKING:
    from netkit.capture.analysis import DnsMessage, Flow
    from netkit.capture.session import Capture, WaitTimeout, capture
    from netkit.capture.targets import Target, resolve

_WHERE = {"capture": "session", "Capture": "session", "WaitTimeout": "session",
          "Target": "targets", "resolve": "targets",
          "DnsMessage": "analysis", "Flow": "analysis"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib
        return getattr(importlib.import_module(f"netkit.capture.{_WHERE[name]}"), name)
    raise AttributeError(name)
