"""From a Project to Engine calls: names, labels, specs and placement (pure).

Names and labels follow Compose, so `lab ps` and `lab down` find a
project's objects by label, not by guessing:

- containers ``<project>-<service>-<n>`` (``--compatibility``:
  ``<project>_<service>_<n>``), or ``container_name``;
- each container's aliases on each of its networks are its container
  name, its service name and the network's ``aliases`` (Compose's
  getAliases), so a scaled service answers round-robin on its name;
- labels ``com.docker.compose.project|service|container-number|config-hash``
  on containers and ``com.docker.compose.project|network`` on networks.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from typing import TYPE_CHECKING

from netkit.labs.render import network_dict, service_dict
from netkit.specs import ContainerSpec, EndpointSpec, NetworkSpec

if TYPE_CHECKING:
    from netkit.labs.model import NetworkDef, Project, Service

PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
NUMBER = "com.docker.compose.container-number"
NETWORK = "com.docker.compose.network"
CONFIG_HASH = "com.docker.compose.config-hash"
ONEOFF = "com.docker.compose.oneoff"


def container_name(project: str, service: "Service", number: int, compatibility: bool = False) -> str:
    if service.container_name:
        return service.container_name
    sep = "_" if compatibility else "-"
    return f"{project}{sep}{service.name}{sep}{number}"


def node_of(service: "Service", target: str | None) -> str | None:
    """The node a service runs on: its `x-netkit.node`, else the lab's target."""
    return service.node or target


def network_nodes(project: "Project", target: str | None) -> dict[str, list[str | None]]:
    """Where each network must be created: every node with a service on it (bridge networks
    are per node) and every node of its `x-netkit.nodes`, or the target when no service uses
    it (it may be connected later). An overlay network is created once, on the swarm's
    manager (every member then sees it)."""
    out: dict[str, list[str | None]] = {k: [] for k in project.networks}
    manager = (project.swarm or {}).get("manager")
    for k, net in project.networks.items():
        if net.spans_swarm and manager:
            out[k].append(manager)
        out[k] += [n for n in net.per_node if n not in out[k]]
    for s in project.services.values():
        for n in s.networks:
            if project.networks[n.network].spans_swarm and manager:
                continue
            where = node_of(s, target)
            if where not in out[n.network]:
                out[n.network].append(where)
    for k, nodes in out.items():
        if not nodes:
            nodes.append(target)
    return out


def network_spec(project: "Project", net: "NetworkDef", node: str | None = None) -> NetworkSpec:
    """The `network create` of `net` on `node` (its per-node overrides applied)."""
    net = net.on(node)
    subnets = tuple(c.subnet for c in net.ipam if c.subnet)
    aux: dict[str, str] = {}
    for c in net.ipam:
        aux.update(c.aux_addresses)
    labels = {**net.labels, PROJECT: project.name, NETWORK: net.key}
    return NetworkSpec(name=net.name, driver=net.driver, subnets=subnets,
                       ip_ranges=tuple(c.ip_range for c in net.ipam if c.ip_range),
                       gateways=tuple(c.gateway for c in net.ipam if c.gateway),
                       aux_addresses=aux, options=dict(net.driver_opts), labels=labels,
                       internal=net.internal, ipv6=net.enable_ipv6, ipv4=net.enable_ipv4,
                       attachable=net.attachable)


def config_hash(project: "Project", service: "Service") -> str:
    """What the containers of a service were made from; `up` recreates them when it changes."""
    body = service_dict(service)
    body.pop("scale", None)
    body["networks_resolved"] = {n.network: network_dict(project.networks[n.network].on(service.node))
                                 for n in service.networks}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def lab_path() -> str:
    """PATH for lab commands: netkit's own Python first, so `python3 -m netkit...` works
    in a service's command whatever the host's python3 is."""
    here = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return path if path.split(":")[0] == here else f"{here}:{path}"


def container_spec(project: "Project", service: "Service", number: int, *,
                   compatibility: bool = False) -> ContainerSpec:
    """The `docker run` of replica `number` of `service`."""
    name = container_name(project.name, service, number, compatibility)
    labels = {**service.labels, PROJECT: project.name, SERVICE: service.name, NUMBER: str(number),
              CONFIG_HASH: config_hash(project, service), ONEOFF: "False"}
    env = {"PATH": lab_path(), **service.environment}
    links = tuple(f"{container_name(project.name, project.services[t], 1, compatibility)}:{alias}"
                  for t, alias in service.links if t in project.services)
    mode = service.network_mode
    common = dict(name=name, command=service.command, hostname=service.hostname, detach=True,
                  dns=service.dns, publish=service.ports, expose=service.expose, env=env, labels=labels,
                  restart=service.restart, stop_signal=service.stop_signal,
                  stop_timeout=service.stop_timeout, cap_add=service.cap_add,
                  cap_drop=service.cap_drop, privileged=service.privileged, user=service.user,
                  sysctls=dict(service.sysctls), domainname=service.domainname,
                  secrets=tuple((f, t[len("/run/secrets/"):], m) for f, t, m in service.secrets),
                  extra_hosts=tuple(tuple(h.split("=", 1)) for h in service.extra_hosts
                                    if not h.endswith("=host-gateway")))
    if mode is not None:
        if mode.startswith("service:"):
            other = project.services[mode.split(":", 1)[1]]
            mode = "container:" + container_name(project.name, other, 1, compatibility)
        return ContainerSpec(network=mode, links=links, **common)      # type: ignore[arg-type]
    eps = []
    for n in service.networks:
        net = project.networks[n.network]
        aliases = tuple(dict.fromkeys((name, service.name, *n.aliases))) if net.name not in (
            "bridge", "host", "none") else ()
        eps.append(EndpointSpec(net.name, aliases, n.ipv4_address, n.ipv6_address, n.mac_address))
    first, rest = eps[0], tuple(eps[1:])
    return ContainerSpec(network=first.network, aliases=first.aliases, ipv4=first.ipv4,
                         ipv6=first.ipv6, mac=first.mac, links=links, extra_networks=rest,
                         **common)                                        # type: ignore[arg-type]
