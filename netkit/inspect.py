"""`docker network inspect` / `docker inspect` JSON shapes, from the model (pure)."""

from __future__ import annotations

import hashlib
import os
from typing import Any

from netkit.model import Container, Endpoint, EndpointConfig, Network, State

ZERO_TIME = "0001-01-01T00:00:00Z"
from netkit.sandbox import dns_names


def _ingress(net: Network) -> bool:
    """Docker's "Ingress": the swarm's routing-mesh network (netkit/services/mesh.py)."""
    from netkit.services.mesh import is_ingress
    return is_ingress(net)


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
        "IPAM": {"Driver": net.ipam_driver, "Options": dict(net.ipam_options), "Config": config},
        "Internal": net.internal, "Attachable": net.attachable, "Ingress": _ingress(net),
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


def container_json(ctr: Container, networks: dict[str, Network], run_dir: str = "") -> dict[str, Any]:
    """networks: network id -> Network for the container's endpoints; run_dir: the
    container's directory (its hosts, resolv.conf and hostname files)."""
    nets = {}
    for ep in ctr.endpoints:
        net = networks[ep.network_id]
        nets[net.name] = endpoint_json(ctr, ep, net)
    for cfg in ctr.netconfig:                       # configured, not joined (created or stopped)
        known = networks.get(cfg.network_id)
        if known is not None and known.name not in nets:
            nets[known.name] = configured_endpoint_json(cfg, known)
    if ctr.network_mode in ("host", "none") and not nets:
        nets[ctr.network_mode] = {"NetworkID": next((n.id for n in networks.values()
                                                      if n.name == ctr.network_mode), ""),
                                  "EndpointID": "", "Gateway": "", "IPAddress": "",
                                  "IPPrefixLen": 0, "MacAddress": "", "Aliases": None,
                                  "DNSNames": None}
    from netkit.ports import host_bindings
    ports: dict[str, list[dict[str, str]] | None] = {}
    for pm in host_bindings(ctr):                   # with Docker's [::] binding (dual stack)
        bound = ports.setdefault(f"{pm.container_port}/{pm.proto}", [])
        bound.append({"HostIp": pm.host_ip, "HostPort": str(pm.host_port)})  # type: ignore[union-attr]
    out = {
        "Id": ctr.id,
        "Created": ctr.created,
        "Path": ctr.command[0] if ctr.command else "",
        "Args": list(ctr.command[1:]),
        "State": state_json(ctr),
        "Name": "/" + ctr.name,
        "RestartCount": ctr.restart_count,
        "LogPath": str(ctr.options.get("log_path") or ""),
        "Config": config_json(ctr),
        "HostConfig": {"NetworkMode": ctr.network_mode, "Dns": list(ctr.dns),
                       "AutoRemove": ctr.auto_remove, "PortBindings": ports,
                       "RestartPolicy": _restart_policy(ctr),
                       "LogConfig": {"Type": "json-file",
                                     "Config": dict(ctr.options.get("log_opts") or {})},
                       **_privileges_json(ctr)},
        "NetworkSettings": {
            "SandboxKey": f"/run/netns/{ctr.netns}" if ctr.netns else "",
            "Ports": ports,
            "Networks": nets,
        },
    }
    _docker_fields(out, ctr, networks, run_dir)
    return out


def _docker_fields(out: dict[str, Any], ctr: Container, networks: dict[str, Network],
                   run_dir: str) -> None:
    """Docker's other fields: the sandbox's files, SandboxID, Env, Labels, exposed ports,
    PortBindings as requested, legacy links and the default bridge's top-level fields."""
    from netkit.ports import parse_expose, parse_publish
    want: Any = ctr.options.get("ports") or {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in want.get("publish", ()):
        for req in parse_publish(spec):
            bindings.setdefault(f"{req.container_port}/{req.proto}", []).append(
                {"HostIp": "" if req.host_ip == "0.0.0.0" else req.host_ip, "HostPort": req.host_ports})
    exposed: dict[str, dict[str, Any]] = {f"{p}/{proto}": {} for e in want.get("expose", ()) for p, proto in parse_expose(e)}
    exposed.update({key: {} for key in bindings})
    for key, name in (("ResolvConfPath", "resolv.conf"), ("HostnamePath", "hostname"),
                      ("HostsPath", "hosts")):
        out[key] = os.path.join(run_dir, name) if run_dir and ctr.network_mode != "host" else ""
    out["HostConfig"].update({"PortBindings": bindings, "PublishAllPorts": bool(want.get("publish_all")),
                              "Links": legacy_links(ctr, networks)})
    config = out["Config"]
    config.setdefault("Domainname", "")
    config.update({"Env": [f"{k}={v}" for k, v in dict(ctr.options.get("env") or {}).items()],
                   "Labels": dict(ctr.options.get("labels") or {})})
    if exposed:
        config["ExposedPorts"] = dict(sorted(exposed.items()))
    settings = out["NetworkSettings"]
    if ctr.endpoints:                         # running: exposed but unpublished ports show as null
        for key in exposed:
            settings["Ports"].setdefault(key, None)
        settings["Ports"] = dict(sorted(settings["Ports"].items()))
    settings["SandboxID"] = hashlib.sha256(f"sandbox:{ctr.netns}".encode()).hexdigest() if ctr.netns else ""
    bridge = settings["Networks"].get("bridge") or {}
    for key in LEGACY_FIELDS:                 # the default bridge's, at the top level (API < 1.44)
        settings[key] = bridge.get(key, 0 if key.endswith("PrefixLen") else "")


LEGACY_FIELDS = ("EndpointID", "Gateway", "GlobalIPv6Address", "GlobalIPv6PrefixLen", "IPAddress",
                 "IPPrefixLen", "IPv6Gateway", "MacAddress")


def legacy_links(ctr: Container, networks: dict[str, Network]) -> list[str] | None:
    """HostConfig.Links as Docker rebuilds it: ``/target:/container/alias`` for each link on
    the default bridge (links on user networks are DNS aliases, not listed here)."""
    links: tuple[str, ...] = ()
    items: tuple[Endpoint | EndpointConfig, ...] = (*ctr.endpoints, *ctr.netconfig)
    for item in items:
        net = networks.get(item.network_id)
        if net is not None and net.name == "bridge" and not net.user_defined:
            links = links or item.links
    out = []
    for link in links:
        target, _, alias = link.partition(":")
        out.append(f"/{target.lstrip('/')}:/{ctr.name}/{alias or target.lstrip('/')}")
    return out or None


def state_json(ctr: Container) -> dict[str, Any]:
    """``State`` as Docker has it (lower-case Status; zero times for never)."""
    status = ctr.status                       # a bare sandbox: created, Running false, Pid 0
    return {"Status": status.value, "Running": status in (State.RUNNING, State.RESTARTING),
            "Paused": False, "Restarting": status is State.RESTARTING, "OOMKilled": False,
            "Dead": False, "Pid": (ctr.pid or 0) if status is State.RUNNING else 0,
            "ExitCode": ctr.exit_code or 0, "Error": ctr.error,
            "StartedAt": ctr.started_at or ZERO_TIME, "FinishedAt": ctr.finished_at or ZERO_TIME}


def config_json(ctr: Container) -> dict[str, Any]:
    user = (ctr.options.get("privileges") or {}).get("user") or ""
    out: dict[str, Any] = {"Hostname": ctr.hostname, "User": user, "Cmd": list(ctr.command)}
    if ctr.options.get("stop_signal"):
        out["StopSignal"] = ctr.options["stop_signal"]
    if ctr.options.get("stop_timeout") is not None:
        out["StopTimeout"] = ctr.options["stop_timeout"]
    return out


def _privileges_json(ctr: Container) -> dict[str, Any]:
    """HostConfig's CapAdd, CapDrop (normalized as Docker stores them), Privileged, Sysctls."""
    p: dict = ctr.options.get("privileges") or {}

    def norm(caps: list[str]) -> list[str] | None:
        out = [c.upper() if c.upper() == "ALL" else "CAP_" + c.upper().removeprefix("CAP_")
               for c in caps]
        return out or None

    out: dict[str, Any] = {"CapAdd": norm(p.get("cap_add", [])), "CapDrop": norm(p.get("cap_drop", [])),
                           "Privileged": bool(p.get("privileged"))}
    if p.get("sysctls"):
        out["Sysctls"] = dict(p["sysctls"])
    return out


def _restart_policy(ctr: Container) -> dict[str, Any]:
    policy = dict(ctr.options.get("restart") or {})
    return {"Name": policy.get("Name") or "no", "MaximumRetryCount": policy.get("MaximumRetryCount", 0)}


def configured_endpoint_json(cfg: EndpointConfig, net: Network) -> dict[str, Any]:
    """A network the container joins when it starts: its settings, no address yet."""
    return {
        "IPAMConfig": ({"IPv4Address": cfg.ipv4 or "", "IPv6Address": cfg.ipv6 or ""}
                       if (cfg.ipv4 or cfg.ipv6) else None),
        "Links": list(cfg.links) or None, "Aliases": list(cfg.aliases) or None,
        "MacAddress": cfg.mac or "", "NetworkID": net.id, "EndpointID": "", "Gateway": "",
        "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0, "DNSNames": None,
    }
