"""`-p/--publish` and `--expose` parsing (pure): Docker's
``[hostIP:][hostPort[-end]:]containerPort[-end][/tcp|udp]`` syntax."""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netkit.errors import InvalidArgument

if TYPE_CHECKING:
    from netkit.model import Container, PortMapping

PROTOS = ("tcp", "udp")


@dataclass(frozen=True, slots=True)
class PortRequest:
    """One container port to publish; host_port 0 = pick a free ephemeral port; with
    host_port_end, the first free port of host_port..host_port_end (`-p 9090-9092:80`)."""

    proto: str
    host_ip: str            # "0.0.0.0" = every address of the node
    host_port: int
    container_port: int
    host_port_end: int = 0

    @property
    def host_ports(self) -> str:
        """The host side as Docker's PortBindings has it: "", "8080" or "9090-9092"."""
        if not self.host_port:
            return ""
        return f"{self.host_port}-{self.host_port_end}" if self.host_port_end else str(self.host_port)


def _port(text: str, spec: str, host: bool = False) -> tuple[int, int]:
    lo, dash, hi = text.partition("-")
    try:
        a, b = int(lo), int(hi if dash else lo)
    except ValueError:
        if host:                                    # go-connections' ParsePortSpec
            raise InvalidArgument(f"invalid hostPort: {text}") from None
        raise InvalidArgument(f"invalid containerPort: {text}" if text else f"no port specified: {spec}") from None
    if not (1 <= a <= 65535 and 1 <= b <= 65535) or b < a:
        raise InvalidArgument(f"invalid range specified for port: {text}" if hi else f"invalid port: {text}")
    return a, b


def parse_publish(spec: str) -> list[PortRequest]:
    """One -p value -> the port mappings it asks for (a range gives several)."""
    rest, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in PROTOS:
        raise InvalidArgument(f"invalid proto: {proto}")
    host_ip = "0.0.0.0"
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise InvalidArgument(f"invalid IP address: {rest}")
        raise InvalidArgument(f"IPv6 host addresses are not supported for published ports: {spec}")
    parts = rest.split(":")
    if len(parts) == 3:
        host_ip, host, ctr = parts
        try:
            if ipaddress.ip_address(host_ip).version != 4:
                raise ValueError
        except ValueError:
            raise InvalidArgument(f"invalid IP address: {host_ip}") from None
    elif len(parts) == 2:
        host, ctr = parts
    elif len(parts) == 1:
        host, ctr = "", parts[0]
    else:
        raise InvalidArgument(f"invalid port format: {spec}")
    c_lo, c_hi = _port(ctr, spec)
    if host:
        h_lo, h_hi = _port(host, spec, host=True)
        if (h_hi - h_lo) != (c_hi - c_lo):
            if c_hi != c_lo:     # one container port may take any free port of a host range
                raise InvalidArgument(f"invalid ranges specified for container and host Ports: {ctr} and {host}")
            return [PortRequest(proto, host_ip, h_lo, c_lo, h_hi)]
    else:
        h_lo = h_hi = 0
    return [PortRequest(proto, host_ip, (h_lo + i) if host else 0, c_lo + i)
            for i in range(c_hi - c_lo + 1)]


def parse_expose(spec: str) -> list[tuple[int, str]]:
    """One --expose value -> (port, proto) pairs."""
    port, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in PROTOS:
        raise InvalidArgument(f"invalid proto: {proto}")
    lo, hi = _port(port, spec)
    return [(p, proto) for p in range(lo, hi + 1)]


def host_bindings(ctr: "Container") -> list["PortMapping"]:
    """What is really published for `ctr` (`port`, `ps` PORTS, `inspect`'s Ports): each
    binding, and for one on every address (0.0.0.0) whose network gave the container an
    IPv6 address the ``::`` binding beside it, as Docker binds both (docs/ipv6.md: a
    container without IPv6 gets the IPv4 binding only, netkit having no userland proxy)."""
    six = {ep.network_id for ep in ctr.endpoints if ep.ipv6}
    out: list["PortMapping"] = []
    for pm in ctr.ports:
        out.append(pm)
        if pm.host_ip == "0.0.0.0" and pm.network_id in six:
            out.append(dataclasses.replace(pm, host_ip="::"))
    return out
