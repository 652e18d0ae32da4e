"""`docker network inspect` / `docker inspect` JSON shapes, from the model (pure)."""

from __future__ import annotations

from typing import Any

from netkit.model import Container, Endpoint, Network, State
from netkit.sandbox import dns_names


def network_json(net: Network, members: list[tuple[Endpoint, str]]) -> dict[str, Any]:
    """members: (endpoint, container name) for every attached container."""
    config = []
    for cfg in net.ipam:
        entry: dict[str, Any] = {"Subnet": cfg.subnet}
        if cfg.ip_range:
            entry["IPRange"] = cfg.ip_range
        if cfg.gateway:
            entry["Gateway"] = cfg.gateway
        if cfg.aux:
            entry["AuxiliaryAddresses"] = dict(cfg.aux)
        config.append(entry)
    containers = {
        ep.container_id: {"Name": name, "EndpointID": ep.id, "MacAddress": ep.mac,
                          "IPv4Address": ep.ipv4 or "", "IPv6Address": ep.ipv6 or ""}
        for ep, name in members}
    return {
        "Name": net.name, "Id": net.id, "Created": net.created, "Scope": net.scope.value,
        "Driver": net.driver, "EnableIPv4": net.ipv4, "EnableIPv6": net.ipv6,
        "IPAM": {"Driver": "default", "Options": {}, "Config": config},
        "Internal": net.internal, "Attachable": net.attachable, "Ingress": False,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
        "Containers": containers, "Options": dict(net.options), "Labels": dict(net.labels),
    }


def endpoint_json(ctr: Container, ep: Endpoint, net: Network) -> dict[str, Any]:
    ip4, plen4 = (ep.ipv4.split("/") if ep.ipv4 else ("", "0"))
    ip6, plen6 = (ep.ipv6.split("/") if ep.ipv6 else ("", "0"))
    user = net.user_defined
    return {
        "IPAMConfig": ({"IPv4Address": ip4 if ep.static_ipv4 else "",
                        "IPv6Address": ip6 if ep.static_ipv6 else ""}
                       if (ep.static_ipv4 or ep.static_ipv6) else None),
        "Links": list(ep.links) or None,
        "Aliases": list(ep.aliases) or None,
        "MacAddress": ep.mac,
        "NetworkID": net.id,
        "EndpointID": ep.id,
        "Gateway": (net.gateway_v4 or "") if ep.ipv4 else "",
        "IPAddress": ip4,
        "IPPrefixLen": int(plen4),
        "IPv6Gateway": (net.gateway_v6 or "") if ep.ipv6 else "",
        "GlobalIPv6Address": ip6,
        "GlobalIPv6PrefixLen": int(plen6),
        "DNSNames": (dns_names(ctr.name, ep.aliases, ctr.short_id, ctr.hostname) if user else None),
    }


def container_json(ctr: Container, networks: dict[str, Network]) -> dict[str, Any]:
    """networks: network id -> Network for the container's endpoints."""
    nets = {}
    for ep in ctr.endpoints:
        net = networks[ep.network_id]
        nets[net.name] = endpoint_json(ctr, ep, net)
    if ctr.network_mode in ("host", "none") and not nets:
        nets[ctr.network_mode] = {"NetworkID": next((n.id for n in networks.values()
                                                      if n.name == ctr.network_mode), ""),
                                  "EndpointID": "", "Gateway": "", "IPAddress": "",
                                  "IPPrefixLen": 0, "MacAddress": "", "Aliases": None,
                                  "DNSNames": None}
    ports: dict[str, list[dict[str, str]]] = {}
    for pm in ctr.ports:
        ports.setdefault(f"{pm.container_port}/{pm.proto}", []).append(
            {"HostIp": pm.host_ip, "HostPort": str(pm.host_port)})
    return {
        "Id": ctr.id,
        "Created": ctr.created,
        "Path": ctr.command[0] if ctr.command else "",
        "Args": list(ctr.command[1:]),
        "State": {"Status": ctr.state.value, "Running": ctr.state is State.RUNNING,
                  "Pid": ctr.pid or 0, "ExitCode": ctr.exit_code or 0},
        "Name": "/" + ctr.name,
        "Config": {"Hostname": ctr.hostname, "Cmd": list(ctr.command)},
        "HostConfig": {"NetworkMode": ctr.network_mode, "Dns": list(ctr.dns),
                       "AutoRemove": ctr.auto_remove, "PortBindings": ports},
        "NetworkSettings": {
            "SandboxKey": f"/run/netns/{ctr.netns}" if ctr.netns else "",
            "Ports": ports,
            "Networks": nets,
        },
    }
