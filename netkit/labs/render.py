"""A Project back to a Compose-shaped mapping (`lab config`), with defaults made explicit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from netkit.labs.schema import format_duration

if TYPE_CHECKING:
    from netkit.labs.model import NetworkDef, Project, Service


def _drop_empty(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v not in (None, (), [], {}, "")}


def service_dict(s: "Service") -> dict[str, Any]:
    nets = {}
    for n in s.networks:
        cfg = _drop_empty({"aliases": list(n.aliases), "ipv4_address": n.ipv4_address,
                           "ipv6_address": n.ipv6_address, "mac_address": n.mac_address})
        nets[n.network] = cfg or None
    hc = None
    if s.healthcheck is not None:
        h = s.healthcheck
        hc = {"test": list(h.test), "interval": format_duration(h.interval),
              "timeout": format_duration(h.timeout), "retries": h.retries,
              "start_period": format_duration(h.start_period),
              "start_interval": format_duration(h.start_interval)}
    out = _drop_empty({
        "command": list(s.command), "container_name": s.container_name, "hostname": s.hostname,
        "network_mode": s.network_mode, "networks": nets,
        "ports": list(s.ports), "expose": list(s.expose),
        "links": [t if a == t else f"{t}:{a}" for t, a in s.links], "dns": list(s.dns),
        "depends_on": {d.service: {"condition": d.condition, "required": d.required,
                                   **({"restart": True} if d.restart else {})} for d in s.depends_on},
        "healthcheck": hc, "environment": dict(s.environment), "labels": dict(s.labels),
        "restart": s.restart if s.restart != "no" else None, "stop_signal": s.stop_signal,
        "stop_grace_period": None if s.stop_grace_period is None else format_duration(s.stop_grace_period),
        "cap_add": list(s.cap_add), "cap_drop": list(s.cap_drop), "privileged": s.privileged or None,
        "user": s.user, "sysctls": dict(s.sysctls), "extra_hosts": list(s.extra_hosts),
        "domainname": s.domainname, "profiles": list(s.profiles),
        "secrets": [{"source": f, "target": t, "mode": oct(m)} for f, t, m in s.secrets],
    })
    out["scale"] = s.replicas
    if s.node:
        out["x-netkit"] = {"node": s.node}
    return out


def network_dict(n: "NetworkDef") -> dict[str, Any]:
    if n.external:
        return {"name": n.name, "external": True}
    ipam = [_drop_empty({"subnet": c.subnet, "ip_range": c.ip_range, "gateway": c.gateway,
                         "aux_addresses": dict(c.aux_addresses)}) for c in n.ipam]
    out = {"name": n.name, "driver": n.driver}
    out.update(_drop_empty({"driver_opts": dict(n.driver_opts), "ipam": {"config": ipam} if ipam else None,
                            "labels": dict(n.labels)}))
    for flag in ("internal", "attachable", "enable_ipv6"):
        if getattr(n, flag):
            out[flag] = True
    if not n.enable_ipv4:
        out["enable_ipv4"] = False
    if n.per_node:
        nodes = {}
        for node, o in n.per_node.items():
            entry: dict[str, Any] = {}
            if o.get("ipam"):
                entry["ipam"] = {"config": [_drop_empty({"subnet": c.subnet, "ip_range": c.ip_range,
                                                         "gateway": c.gateway,
                                                         "aux_addresses": dict(c.aux_addresses)})
                                            for c in o["ipam"]]}
            if o.get("driver_opts"):
                entry["driver_opts"] = dict(o["driver_opts"])
            nodes[node] = entry
        out["x-netkit"] = {"nodes": nodes}
    return out


def swarm_service_dict(spec: Any, project: "Project") -> dict[str, Any]:
    """A service as `lab config` prints it (the x-netkit.services form, loadable again)."""
    keys = {net.name: key for key, net in project.networks.items()}
    u = spec.update
    out: dict[str, Any] = {"command": list(spec.command), "mode": spec.mode}
    if spec.mode == "replicated":
        out["replicas"] = spec.replicas
    out.update({"networks": [keys.get(n, n) for n in spec.networks],
                "publish": [f"mode={p.mode},published={p.published},target={p.target},protocol={p.protocol}"
                            for p in spec.ports],
                "endpoint_mode": spec.endpoint_mode, "constraints": list(spec.constraints),
                "environment": dict(spec.env),
                "hostname": spec.hostname,
                "secrets": [{"source": r.source, "target": r.target, "mode": r.mode} for r in spec.secrets],
                "update_config": {"parallelism": u.parallelism, "delay": format_duration(u.delay),
                                  "monitor": format_duration(u.monitor), "order": u.order,
                                  "failure_action": u.failure_action},
                "stop_signal": spec.stop_signal,
                "stop_grace_period": format_duration(spec.stop_grace_period)})
    return {k: v for k, v in out.items() if v not in (None, [], {})}


def project_dict(p: "Project") -> dict[str, Any]:
    out: dict[str, Any] = {"name": p.name,
                           "services": {name: service_dict(s) for name, s in p.services.items()},
                           "networks": {k: network_dict(n) for k, n in p.networks.items()}}
    xn: dict[str, Any] = {}
    if p.lans:
        xn["lans"] = {k: _drop_empty({"name": l.name, "subnet": l.subnet, "gateway": l.gateway,
                                      "external": l.external or None}) for k, l in p.lans.items()}
    if p.nodes:
        xn["nodes"] = {k: _drop_empty({"name": n.name, "lan": n.lan, "ip": n.ip, "gateway": n.gateway,
                                       "dns": list(n.dns), "external": n.external or None})
                       for k, n in p.nodes.items()}
    if p.swarm:
        xn["swarm"] = p.swarm
    if p.stacks:
        xn["stacks"] = {k: list(files) for k, files in p.stacks.items()}
    if p.swarm_secrets:
        xn["secrets"] = {k: {"content": "********"} for k in p.swarm_secrets}   # never the value
    if p.swarm_services:
        xn["services"] = {k: swarm_service_dict(spec, p) for k, spec in p.swarm_services.items()}
    if p.checks:
        xn["checks"] = [c.to_dict() for c in p.checks]
    if xn:
        out["x-netkit"] = xn
    return out
