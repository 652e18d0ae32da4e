"""A lab file, normalized: the `Project` that planning and the runner use.

`load_project(files, ...)` reads, interpolates, validates and normalizes;
everything here is pure (files and the environment in, dataclasses out).
Compose's rules applied here:

- project name: ``-p`` > ``COMPOSE_PROJECT_NAME`` > ``name:`` > the first
  file's directory (lower-cased, other characters than ``[a-z0-9_-]`` dropped);
- networks are ``<project>_<key>`` unless ``name:`` is set (external ones
  keep their name); services naming no network and no ``network_mode``
  join ``default`` (``<project>_default``);
- ``links`` and ``network_mode: service:x`` imply ``depends_on``;
- several ``-f`` files merge: mappings key by key, lists replaced, except
  ``ports``, ``expose``, ``dns``, ``links``, ``extra_hosts``, ``env_file``,
  ``secrets`` and checks, which are appended (netkit/labs/compose.py reads
  each file: ``include``, ``extends``, ``env_file``, ``profiles`` ...);
- services whose ``profiles`` are all inactive are left out.
"""

from __future__ import annotations

import os
import re
import shlex
from typing import AbstractSet, Any, Iterable, Mapping, Sequence

from netkit.errors import InvalidArgument
from netkit.labs import compose, schema
from netkit.labs.model import (Dependency, Healthcheck, IpamConfig, LanDef, NetworkDef, NodeDef,
                               Project, Service, ServiceNetwork)
from netkit.labs.source import LabFileError, Where, load_env

__all__ = ["load_project", "find_files", "order", "Project", "Service", "NetworkDef", "Healthcheck",
           "ServiceNetwork", "Dependency", "IpamConfig", "LanDef", "NodeDef", "DEFAULT_FILES"]

DEFAULT_FILES = ("lab.yml", "lab.yaml", "compose.yaml", "compose.yml",
                 "docker-compose.yaml", "docker-compose.yml")
_PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


# -- loading ---------------------------------------------------------------------------

def find_files(workdir: str | None = None) -> list[str]:
    """The default lab file of a directory (``lab.yml``, then Compose's names)."""
    workdir = workdir or os.getcwd()
    for name in DEFAULT_FILES:
        path = os.path.join(workdir, name)
        if os.path.isfile(path):
            return [path if workdir != os.getcwd() else name]
    raise InvalidArgument(f"no lab file found in {workdir} (looked for {', '.join(DEFAULT_FILES)}); "
                          "use -f FILE")


def load_project(files: str | Sequence[str] | None = None, *, project: str | None = None,
                 env_files: Iterable[str] = (), environ: Mapping[str, str] | None = None,
                 scale: Mapping[str, int] | None = None,
                 profiles: Sequence[str] | None = None, enable: Iterable[str] = ()) -> Project:
    """Read, interpolate, validate and normalize lab files into a Project. `profiles`: the
    active Compose profiles (default: $COMPOSE_PROFILES); other profiled services are left out,
    except those in `enable` (named on the command line, as Compose starts them)."""
    if isinstance(files, str):
        files = [files]
    files = list(files or find_files())
    workdir = os.path.dirname(os.path.abspath(files[0]))
    env = load_env(workdir, env_files, environ)
    warnings: list[str] = []
    merged: dict[str, Any] = {}
    where = Where(default_file=files[0])
    ctx = schema.Ctx(where, warnings)
    for path in files:
        checked, spots = compose.load_file(path, env, warnings, ctx)
        merged = compose.merge(merged, checked, ())
        where.update(spots)
    for key, paths in ctx.ignored.items():
        warnings.append(f"{', '.join(paths)}: ignored ({ctx.why.get(key, schema.IMAGES)})")
    return _normalize(merged, files, workdir, env, project, where, warnings, scale or {},
                      compose.active_profiles(profiles, env), set(enable))


# -- normalization -----------------------------------------------------------------------

def project_name_from_dir(workdir: str) -> str:
    """Compose's NormalizeProjectName of a directory name."""
    name = re.sub(r"[^a-z0-9_-]", "", os.path.basename(workdir.rstrip("/")).lower())
    name = name.lstrip("_-")
    return name or "default"


def _project_name(given: str | None, data: dict, env: Mapping[str, str], workdir: str,
                  where: Where) -> str:
    for value, what in ((given, "-p"), (env.get("COMPOSE_PROJECT_NAME") or None, "COMPOSE_PROJECT_NAME")):
        if value is not None:
            if not _PROJECT_RE.match(value):
                raise InvalidArgument(f'invalid project name "{value}" ({what}): it must contain only '
                                      "characters from [a-z0-9_-] and start with [a-z0-9]")
            return value
    if data.get("name"):
        return data["name"]
    return project_name_from_dir(workdir)


def _normalize(data: dict, files: list[str], workdir: str, env: Mapping[str, str],
               given: str | None, where: Where, warnings: list[str],
               scale: Mapping[str, int], profiles: AbstractSet[str] = frozenset(),
               enable: AbstractSet[str] = frozenset()) -> Project:
    name = _project_name(given, data, env, workdir, where)
    xn = data.get("x-netkit") or {}
    lans = {k: LanDef(k, v.get("name") or k, v["subnet"], v.get("gateway"), bool(v.get("external")))
            for k, v in (xn.get("lans") or {}).items()}
    nodes = {}
    for k, v in (xn.get("nodes") or {}).items():
        lan = v.get("lan")
        if lan is not None and lan in lans:
            lan = lans[lan].name
        if (v.get("ip") or v.get("gateway")) and not lan:
            raise where.error(("x-netkit", "nodes", k), "ip and gateway need lan")
        if lan and not v.get("ip") and not v.get("external"):
            raise where.error(("x-netkit", "nodes", k, "lan"), "a node on a LAN needs ip")
        dns = v.get("dns") or ()
        nodes[k] = NodeDef(k, v.get("name") or k, lan, v.get("ip"), v.get("gateway"),
                           tuple([dns] if isinstance(dns, str) else dns), bool(v.get("external")))

    raw_services = {k: v for k, v in (data.get("services") or {}).items()
                    if k in enable or compose.enabled(v, profiles)}
    raw_networks = dict(data.get("networks") or {})
    uses_default = any((not s.get("networks") and not s.get("network_mode"))
                       or "default" in (s.get("networks") or {}) for s in raw_services.values())
    if uses_default and "default" not in raw_networks:
        raw_networks["default"] = {}
    errors: list[Exception] = []                     # every network's and service's at once
    networks = {}
    for k, v in raw_networks.items():
        try:
            networks[k] = _network(name, k, v or {}, where, nodes)
        except LabFileError as exc:
            errors.append(exc)
    compose.combine(errors)

    services: dict[str, Service] = {}
    for sname, raw in raw_services.items():
        try:
            services[sname] = _service(sname, raw, networks, nodes, env, where, scale,
                                       data.get("secrets") or {})
        except LabFileError as exc:                   # every service's errors at once
            errors.append(exc)
    compose.combine(errors)
    for sname in scale:
        if sname not in services:
            raise InvalidArgument(f"no such service: {sname}")
    _check_references(services, where)

    checks = list(xn.get("checks") or [])
    swarm = _swarm(xn.get("swarm"), nodes, where)
    stacks = _stacks(xn.get("stacks"), swarm, workdir, where)
    from netkit.labs import swarm as swarm_services
    specs, secrets = swarm_services.load(xn, swarm, networks, services, name, workdir, where)
    for k, net in networks.items():
        if net.spans_swarm and not net.external:
            if net.per_node:
                raise where.error(("networks", k, "x-netkit", "nodes"), "an overlay network spans the "
                                  "swarm: it has no per-node settings")
    project = Project(name=name, files=tuple(files), workdir=workdir, services=services,
                      networks=networks, lans=lans, nodes=nodes, swarm=swarm, stacks=stacks,
                      swarm_services=specs, swarm_secrets=secrets,
                      checks=checks, warnings=warnings, where=where)
    for check in checks:
        check.validate(project)
    return project


def _node_ref(ref: str, nodes: dict[str, NodeDef], path: tuple, where: Where) -> str:
    """A node reference (a key of x-netkit.nodes, or a node's name) -> the node name."""
    name = nodes[ref].name if ref in nodes else ref
    if not re.match(schema.NODE_NAME, name):
        raise where.error(path, f'invalid node name "{name}": {schema.NODE_HINT}')
    return name


def _swarm(raw: dict | None, nodes: dict[str, NodeDef], where: Where) -> dict[str, Any]:
    """x-netkit.swarm {manager, workers} with node names (keys resolved); {} without one."""
    if not raw:
        return {}
    base = ("x-netkit", "swarm")
    manager = _node_ref(raw["manager"], nodes, base + ("manager",), where)
    workers = raw.get("workers") or []
    if isinstance(workers, str):
        workers = [workers]
    names = []
    for i, w in enumerate(workers):
        name = _node_ref(w, nodes, base + ("workers", i), where)
        if name == manager or name in names:
            raise where.error(base + ("workers", i), f"node {name} is listed twice in the swarm")
        names.append(name)
    return {"manager": manager, "workers": names}


def _stacks(raw: dict | None, swarm: dict[str, Any], workdir: str,
            where: Where) -> dict[str, tuple[str, ...]]:
    """x-netkit.stacks {name: file or [files]}: paths against the lab's directory; a swarm
    is needed (the stacks are deployed on its manager)."""
    if raw and not swarm:
        raise where.error(("x-netkit", "stacks"), "stacks are deployed on a swarm: "
                          "x-netkit.swarm is missing")
    from netkit.services import stack
    out = {name: tuple(os.path.join(workdir, f) for f in ([v] if isinstance(v, str) else v))
           for name, v in (raw or {}).items()}
    for name, files in out.items():
        stack.load(files, name)                 # an invalid stack file: refused before `up`
    return out


def _ipam(configs: Any) -> tuple[IpamConfig, ...]:
    return tuple(IpamConfig(c.get("subnet"), c.get("ip_range"), c.get("gateway"),
                            dict(c.get("aux_addresses") or {})) for c in configs or ())


def _network(project: str, key: str, raw: dict, where: Where,
             nodes: dict[str, NodeDef] | None = None) -> NetworkDef:
    path = ("networks", key)
    ext = raw.get("external")
    ext_name = None
    if isinstance(ext, dict):                         # legacy external: {name: x}
        ext_name, ext = ext.get("name"), True
    if ext:
        for other in raw:
            if other not in ("external", "name") and not other.startswith("x-"):
                raise where.error(path + (other,), f'conflicting parameters "external" and "{other}" '
                                                   f'specified for network "{key}"')
        return NetworkDef(key, raw.get("name") or ext_name or key, external=True)
    ipam = raw.get("ipam") or {}
    cfgs = tuple(IpamConfig(c.get("subnet"), c.get("ip_range"), c.get("gateway"),
                            dict(c.get("aux_addresses") or {})) for c in ipam.get("config") or ())
    for i, c in enumerate(cfgs):
        if (c.ip_range or c.gateway or c.aux_addresses) and not c.subnet:
            raise where.error(path + ("ipam", "config", i), "ip_range, gateway and aux_addresses need subnet")
    labels = {k: v or "" for k, v in (raw.get("labels") or {}).items()}
    per_node: dict[str, dict[str, Any]] = {}
    for ref, over in ((raw.get("x-netkit") or {}).get("nodes") or {}).items():
        npath = path + ("x-netkit", "nodes", ref)
        name = _node_ref(ref, nodes or {}, npath, where)
        over = over or {}
        entry: dict[str, Any] = {}
        if "ipam" in over:
            extra = list((over["ipam"] or {}).get("config") or ())
            merged = [dict(c.__dict__) for c in cfgs]
            for i, c in enumerate(extra):
                if i < len(merged):
                    merged[i].update({k: v for k, v in c.items() if v is not None})
                else:
                    merged.append(c)
            entry["ipam"] = _ipam(merged)
            for i, c in enumerate(entry["ipam"]):
                if (c.ip_range or c.gateway or c.aux_addresses) and not c.subnet:
                    raise where.error(npath + ("ipam", "config", i),
                                      "ip_range, gateway and aux_addresses need subnet")
        if over.get("driver_opts"):
            entry["driver_opts"] = {k: str(v) for k, v in over["driver_opts"].items()}
        per_node[name] = entry
    return NetworkDef(key, raw.get("name") or f"{project}_{key}", raw.get("driver") or "bridge",
                      dict(raw.get("driver_opts") or {}), cfgs, bool(raw.get("internal")),
                      bool(raw.get("attachable")), bool(raw.get("enable_ipv6")),
                      raw.get("enable_ipv4", True), labels, per_node=per_node)


def _command(value: Any, path: tuple, where: Where) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(value)
    try:
        return tuple(shlex.split(value))
    except ValueError as exc:
        raise where.error(path, f"invalid command line: {exc}") from None


def _healthcheck(raw: dict | None, path: tuple, where: Where) -> Healthcheck | None:
    if not raw:
        return None
    if raw.get("disable"):
        return None
    test = raw.get("test")
    if test is None:
        raise where.error(path, 'missing key "test"')
    if isinstance(test, str):
        argv: tuple[str, ...] = ("CMD-SHELL", test)
    else:
        if not test or test[0] not in ("CMD", "CMD-SHELL", "NONE"):
            raise where.error(path + ("test",), 'the first element must be "CMD", "CMD-SHELL" or "NONE"')
        if test[0] == "NONE":
            return None
        if len(test) < 2:
            raise where.error(path + ("test",), f"{test[0]} needs a command")
        argv = ("CMD-SHELL", " ".join(test[1:])) if test[0] == "CMD-SHELL" else tuple(test)
    retries = raw.get("retries") or 3                 # Docker: 0 means the default
    return Healthcheck(argv, raw.get("interval", 30.0) or 30.0, raw.get("timeout", 30.0) or 30.0,
                       retries, raw.get("start_period", 0.0), raw.get("start_interval", 5.0) or 5.0)


def _port(value: Any, path: tuple, where: Where) -> str:
    from netkit.ports import parse_publish
    if isinstance(value, dict):
        if "target" not in value:
            raise where.error(path, 'missing key "target"')
        text = str(value["target"])
        if value.get("published") not in (None, ""):
            text = f"{value['published']}:{text}"
            if value.get("host_ip"):
                text = f"{value['host_ip']}:{text}"
        elif value.get("host_ip"):
            text = f"{value['host_ip']}::{text}"
        text += f"/{value.get('protocol', 'tcp')}"
    else:
        text = str(value)
    try:
        parse_publish(text)
    except InvalidArgument as exc:
        raise where.error(path, str(exc)) from None
    return text


def _service(name: str, raw: dict, networks: dict[str, NetworkDef], nodes: dict[str, NodeDef],
             env: Mapping[str, str], where: Where, scale: Mapping[str, int],
             secrets: Mapping[str, dict] | None = None) -> Service:
    from netkit.ports import parse_expose
    base = ("services", name)
    replicas = raw.get("scale")
    deploy = (raw.get("deploy") or {}).get("replicas")
    if replicas is not None and deploy is not None and replicas != deploy:
        raise where.error(base, "can't set distinct values on 'scale' and 'deploy.replicas'")
    replicas = scale.get(name, replicas if replicas is not None else (deploy if deploy is not None else 1))
    if raw.get("container_name") and replicas > 1:
        raise where.error(base + ("container_name",), f'container_name "{raw["container_name"]}" is set, '
                          "so the service can't be scaled beyond 1 container")

    mode = raw.get("network_mode")
    if mode is not None:
        if raw.get("networks"):
            raise where.error(base + ("network_mode",), f"service {name} declares mutually exclusive "
                              "`network_mode` and `networks`")
        kind, _, target = mode.partition(":")
        if mode not in ("host", "none", "bridge") and not (kind in ("service", "container") and target):
            raise where.error(base + ("network_mode",), f'invalid network mode "{mode}": use host, none, '
                              "bridge, service:NAME or container:NAME")
        if kind in ("service", "container") and target:
            for key in ("hostname", "dns", "links", "ports", "expose"):
                if raw.get(key):
                    raise where.error(base + (key,), f"conflicting options: {key} and network_mode {mode}")
    nets: list[Any] = []
    mac = raw.get("mac_address")                     # service-level: on its first network
    for key in sorted(raw.get("networks") or ({"default": None} if mode is None else {})):
        if key not in networks:
            raise where.error(base + ("networks", key), f'service "{name}" refers to undefined network {key}')
        cfg = (raw.get("networks") or {}).get(key) or {}
        if mac and not nets:
            cfg = {**cfg, "mac_address": cfg.get("mac_address") or mac}
        if (cfg.get("ipv4_address") or cfg.get("ipv6_address") or cfg.get("mac_address")) and replicas > 1:
            raise where.error(base + ("networks", key), "a static address cannot be shared by "
                              f"{replicas} replicas")
        nets.append(ServiceNetwork(key, tuple(cfg.get("aliases") or ()), cfg.get("ipv4_address"),
                                   cfg.get("ipv6_address"), cfg.get("mac_address")))
    expose = []
    for i, e in enumerate(raw.get("expose") or ()):
        try:
            parse_expose(str(e))
        except InvalidArgument as exc:
            raise where.error(base + ("expose", i), str(exc)) from None
        expose.append(str(e))
    links = []
    for i, link in enumerate(raw.get("links") or ()):
        target, _, alias = link.partition(":")
        links.append((target, alias or target))
    deps = [Dependency(svc, (d or {}).get("condition", "service_started"), (d or {}).get("required", True),
                       bool((d or {}).get("restart")))
            for svc, d in (raw.get("depends_on") or {}).items()]
    have = {d.service for d in deps}
    implied = [t for t, _ in links] + ([mode.split(":", 1)[1]] if mode and mode.startswith("service:") else [])
    deps += [Dependency(t) for t in dict.fromkeys(implied) if t not in have]
    dns = raw.get("dns") or ()
    node = (raw.get("x-netkit") or {}).get("node")
    if node is not None:
        node = nodes[node].name if node in nodes else node
        if not re.match(schema.NODE_NAME, node):
            raise where.error(base + ("x-netkit", "node"), f'invalid node name "{node}": {schema.NODE_HINT}')
    return Service(
        name=name, command=compose.command_line(raw, _command(raw.get("command"), base + ("command",), where),
                                                base + ("entrypoint",), where),
        container_name=raw.get("container_name"), hostname=raw.get("hostname"),
        networks=tuple(nets), network_mode=mode,
        ports=tuple(_port(p, base + ("ports", i), where) for i, p in enumerate(raw.get("ports") or ())),
        expose=tuple(expose), links=tuple(links), dns=tuple([dns] if isinstance(dns, str) else dns),
        depends_on=tuple(deps),
        healthcheck=_healthcheck(raw.get("healthcheck"), base + ("healthcheck",), where),
        replicas=replicas,
        environment=compose.environment(raw, env, base, where),
        labels={k: v or "" for k, v in (raw.get("labels") or {}).items()},
        node=node, restart=_restart(raw.get("restart") or compose.deploy_restart(raw),
                                    base + ("restart",), where),
        stop_signal=_stop_signal(raw.get("stop_signal"), base + ("stop_signal",), where),
        stop_grace_period=raw.get("stop_grace_period"),
        cap_add=tuple(raw.get("cap_add") or ()), cap_drop=tuple(raw.get("cap_drop") or ()),
        privileged=bool(raw.get("privileged")),
        user=None if raw.get("user") is None else str(raw["user"]),
        sysctls={k: "" if v is None else str(v) for k, v in (raw.get("sysctls") or {}).items()},
        extra_hosts=tuple(raw.get("extra_hosts") or ()), domainname=raw.get("domainname"),
        profiles=tuple(raw.get("profiles") or ()),
        secrets=compose.secrets(raw, secrets or {}, base, where))


_RESTART_ALIASES = {"none": "no", "any": "always"}      # Compose maps deploy's names too


def _restart(value: str | None, path: tuple, where: Where) -> str:
    """`restart:` as Compose hands it to Docker: Docker's policy text, Docker's messages."""
    from netkit.lifecycle import RestartPolicy
    if not value:
        return "no"
    name, sep, count = value.partition(":")
    text = _RESTART_ALIASES.get(name, name) + sep + count
    try:
        return RestartPolicy.parse(text).text
    except InvalidArgument as exc:
        raise where.error(path, str(exc)) from None


def _stop_signal(value: str | None, path: tuple, where: Where) -> str | None:
    from netkit.lifecycle import parse_signal
    if not value:
        return None
    try:
        parse_signal(value)
    except InvalidArgument as exc:
        raise where.error(path, str(exc)) from None
    return value


def _check_references(services: dict[str, Service], where: Where) -> None:
    for s in services.values():
        base = ("services", s.name)
        for d in s.depends_on:
            if d.service == s.name:
                raise where.error(base + ("depends_on", d.service), f'service "{s.name}" depends on itself')
            if d.service not in services:
                if not d.required:
                    continue
                key = "depends_on"
                if any(t == d.service for t, _ in s.links):
                    key = "links"
                elif s.network_mode == f"service:{d.service}":
                    key = "network_mode"
                raise where.error(base + ((key, d.service) if key == "depends_on" else (key,)),
                                  f'service "{s.name}" depends on undefined service "{d.service}"')
            dep = services[d.service]
            if d.condition == "service_healthy" and dep.healthcheck is None:
                raise where.error(base + ("depends_on", d.service),
                                  f'condition service_healthy, but service "{d.service}" has no healthcheck')
        if s.network_mode and s.network_mode.startswith("service:"):
            other = services[s.network_mode.split(":", 1)[1]]
            if (other.node or None) != (s.node or None):
                raise where.error(base + ("network_mode",), f'service "{s.name}" and "{other.name}" run on '
                                  "different nodes: they cannot share a network namespace")
    order(services, where)


def order(services: Mapping[str, Service], where: Where | None = None) -> list[str]:
    """Start order: dependencies first, otherwise the file's order. A cycle is an error."""
    done: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = trail[trail.index(name):] + [name]
            err = f"dependency cycle detected: {' -> '.join(cycle)}"
            raise where.error(("services", name, "depends_on"), err) if where else InvalidArgument(err)
        state[name] = 1
        for d in services[name].depends_on:
            if d.service in services:
                visit(d.service, trail + [name])
        state[name] = 2
        done.append(name)

    for name in services:
        visit(name, [])
    return done
