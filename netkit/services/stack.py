"""`stack deploy`'s compose files as a plan: networks, secrets, configs and ServiceSpecs (pure).

A stack file is compose file format 3 read the way `docker stack deploy`
reads it, not the way a lab (`compose up`) does: the lab loader's pieces
are reused (YAML with positions, `${VAR}` interpolation from the process
environment (no `.env`, as Docker), schema checkers, list forms, merging of
several files, `env_file`, `entrypoint`), the rules are swarm's:

- every name is scoped: service `web` of stack `mystack` is `mystack_web`,
  network `back` is `mystack_back` (unless `name:`), so is secret `pw`;
  everything made is labelled ``com.docker.stack.namespace=STACK``;
- a service that names no network joins `default` (`STACK_default`, an
  overlay, not attachable); networks are overlays of scope swarm;
- on each of its networks a service has the alias of its short name
  (`ServiceSpec.aliases`, keyed here by network *name*: the deploy swaps in
  the ids), so services reach each other as `web`, `db`;
- the command stands in for the image, as everywhere in netkit: `image`
  beside a command is ignored with a warning, `image` alone is an error;
- keys swarm does not support (`links`, `restart`, `privileged`...) are
  dropped with Docker's ``Ignoring unsupported options: links`` warning,
  `container_name` / `expose` with Docker's deprecated-options warning,
  and keys of the v3 format netkit does not run (`healthcheck`, `volumes`...)
  with a warning of netkit's. Unknown keys and bad values are errors.

`load` validates everything and raises one LabFileError (file, line, key,
reason) before anything is made; what needs the cluster (external
networks, secrets, ports held by other services) is checked by the deploy
(netkit/services/stack_ops.py), also before it makes anything.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from netkit import drivers
from netkit.errors import InvalidArgument, NetkitError
from netkit.labs import compose
from netkit.labs.schema import (KV, NAME, Anything, Bool, Ctx, Custom, Duration, Either, Enum,
                                Ignored, Int, List, Map, Obj, Scalar, Str, got)
from netkit.labs.source import LabFileError, Where, interpolate, parse_yaml, read_text
from netkit.lifecycle import parse_signal
from netkit.model import Scope
from netkit.services.model import (DNSRR, GLOBAL, HOST_MODE, INGRESS_MODE, REPLICATED, FileRef,
                                   PortConfig, RestartPolicy, ServiceSpec, UpdateConfig)

NAMESPACE = "com.docker.stack.namespace"
DEFAULT = "default"
# docker/cli's compose types.UnsupportedProperties and DeprecatedProperties
UNSUPPORTED = ("build cap_add cap_drop cgroup_parent cgroupns_mode devices domainname external_links "
               "ipc links mac_address network_mode pid privileged restart security_opt shm_size "
               "sysctls ulimits userns_mode").split()
DEPRECATED = {
    "container_name": "Setting the container name is not supported.",
    "expose": "Exposing ports is unnecessary - services on the same network can access each "
              "other's containers on any port.",
}
NETKIT_IGNORES = "netkit runs host commands in namespaces, without a container runtime"
STACK_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


def _ratio(value: Any, path: tuple, ctx: Ctx) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ctx.fail(path, f"expected a number, got {got(value)}") from None
    if not 0 <= out <= 1:
        raise ctx.fail(path, f"must be between 0 and 1, got {value}")
    return out


def _update(actions: tuple[str, ...]) -> Obj:
    return Obj({"parallelism": Int(minimum=0), "delay": Duration(),
                "failure_action": Enum(*actions), "monitor": Duration(),
                "max_failure_ratio": Custom("a number", _ratio),
                "order": Enum("stop-first", "start-first")})


FILE_REF = Either(Str(), Obj({"source": Str(), "target": Str(), "uid": Scalar(), "gid": Scalar(),
                              "mode": Either(Int(minimum=0), Str())}, required=("source",)))
PORT_LONG = Obj({"target": Int(1, 65535), "published": Int(0, 65535),
                 "protocol": Enum("tcp", "udp"), "mode": Enum(HOST_MODE, INGRESS_MODE)},
                required=("target",))
DEPLOY = Obj({
    "mode": Enum(REPLICATED, GLOBAL), "replicas": Int(minimum=0),
    "endpoint_mode": Enum("vip", DNSRR), "labels": KV,
    "placement": Obj({"constraints": List(Str()), "preferences": Ignored(NETKIT_IGNORES),
                      "max_replicas_per_node": Ignored(NETKIT_IGNORES)}),
    "update_config": _update(("continue", "pause", "rollback")),
    "rollback_config": _update(("continue", "pause")),
    "restart_policy": Obj({"condition": Enum("none", "on-failure", "any"), "delay": Duration(),
                           "max_attempts": Int(minimum=0), "window": Duration()}),
    "resources": Ignored(NETKIT_IGNORES),
}, null_ok=True)
SERVICE = Obj({
    "command": Either(Str(), List(Scalar())),
    "entrypoint": Either(Str(), List(Scalar())),
    "image": Str(),
    "deploy": DEPLOY,
    "environment": KV, "env_file": Either(Str(), List(Str())),
    "hostname": Str(), "labels": KV,
    "ports": List(Either(Str(), Int(1, 65535), PORT_LONG)),
    "networks": Either(List(Str(), unique=True), Map(Obj({"aliases": List(Str())}, null_ok=True))),
    "secrets": List(FILE_REF), "configs": List(FILE_REF),
    "stop_grace_period": Duration(), "stop_signal": Str(),
    **{k: Ignored(NETKIT_IGNORES) for k in (
        "depends_on dns dns_search extra_hosts healthcheck init isolation logging read_only "
        "stdin_open tmpfs tty user volumes working_dir credential_spec").split()},
})
NETWORK = Obj({"driver": Str(), "driver_opts": Map(Scalar()), "internal": Bool(),
               "attachable": Bool(), "labels": KV, "name": Str(),
               "external": Either(Bool(), Obj({"name": Str()})),
               "ipam": Obj({"driver": Enum("default"),
                            "config": List(Obj({"subnet": Str()}, required=("subnet",)))})},
              null_ok=True)
OBJECT = Obj({"file": Str(), "name": Str(), "labels": KV,
              "external": Either(Bool(), Obj({"name": Str()})),
              "template_driver": Ignored(NETKIT_IGNORES)})
TOP = Obj({"version": Anything(), "services": Map(SERVICE, NAME, "only [a-zA-Z0-9][a-zA-Z0-9_.-] "
                                                  "are allowed"),
           "networks": Map(NETWORK, NAME), "secrets": Map(OBJECT, NAME), "configs": Map(OBJECT, NAME),
           "volumes": Ignored(NETKIT_IGNORES)})


@dataclass(frozen=True)
class StackNetwork:
    key: str                             # the file's key ("default", "back")
    name: str                            # the swarm network's name ("mystack_back")
    external: bool = False
    driver: str = "overlay"
    subnets: tuple[str, ...] = ()
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    internal: bool = False
    attachable: bool = False


@dataclass(frozen=True)
class StackObject:
    """A top-level secret or config: made from `file` (its bytes read), or `external`."""

    key: str
    name: str
    external: bool = False
    file: str = ""
    data: bytes = b""
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StackPlan:
    """What a stack file asks for. Service specs name networks by name (the deploy resolves
    them to ids, `aliases` too); `replicas_set`: the services whose file sets deploy.replicas
    (a redeploy keeps the others' current count, as after `service scale`)."""

    name: str
    networks: dict[str, StackNetwork]    # key -> network (only those some service uses)
    secrets: dict[str, StackObject]
    configs: dict[str, StackObject]
    services: dict[str, ServiceSpec]     # short name -> spec (spec.name = STACK_NAME)
    replicas_set: frozenset[str] = frozenset()
    warnings: tuple[str, ...] = ()


def check_name(name: str) -> None:
    """A stack's name: as a network or service name's first part."""
    if not STACK_NAME_RE.match(name or ""):
        raise InvalidArgument(f'invalid stack name "{name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] '
                              "are allowed")


def load(files: Sequence[str], name: str, env: Mapping[str, str] | None = None) -> StackPlan:
    """The stack `name` of compose `files` (merged in order), validated; raises InvalidArgument
    (a LabFileError naming file, line and key) on the first error."""
    check_name(name)
    if not files:
        raise InvalidArgument("Please specify a Compose file (with --compose-file).")
    env = dict(os.environ if env is None else env)
    warnings: list[str] = []
    dropped: dict[str, set[str]] = {"unsupported": set(), "deprecated": set()}
    ignored: dict[str, list[str]] = {}
    merged: dict = {}
    where = Where()
    for path in files:
        data, spots = _load_file(path, env, warnings, dropped, ignored)
        merged = compose.merge(merged, data)
        where.update(spots)
    if dropped["unsupported"]:
        warnings.insert(0, "Ignoring unsupported options: " + ", ".join(sorted(dropped["unsupported"])))
    if dropped["deprecated"]:
        warnings.append("Ignoring deprecated options:\n\n" + "\n".join(
            f"{k}: {DEPRECATED[k]}" for k in sorted(dropped["deprecated"])))
    for key, paths in ignored.items():
        warnings.append(f"{', '.join(paths)}: ignored ({NETKIT_IGNORES})")
    return _plan(name, merged, where, env, warnings)


def _load_file(path: str, env: Mapping[str, str], warnings: list[str],
               dropped: dict[str, set[str]], ignored: dict[str, list[str]]) -> tuple[dict, Where]:
    raw, spots = parse_yaml(read_text(path, "compose file"), path)
    if raw is None or raw == {}:
        raise LabFileError("empty compose file", path)
    if not isinstance(raw, dict):
        raise LabFileError(f"Top-level object must be a mapping, got {got(raw)}", path)
    raw = interpolate(raw, env, spots, warnings)
    for svc in (raw.get("services") or {}).values() if isinstance(raw.get("services"), dict) else ():
        if isinstance(svc, dict):
            for key in [k for k in svc if k in UNSUPPORTED or k in DEPRECATED]:
                dropped["unsupported" if key in UNSUPPORTED else "deprecated"].add(key)
                del svc[key]
    ctx = Ctx(spots, warnings, collect=True)
    checked = TOP.check(raw, (), ctx)
    if ctx.errors:
        raise ctx.errors[0]
    for key, paths in ctx.ignored.items():
        ignored.setdefault(key, []).extend(paths)
    compose.to_map_forms(checked, spots)
    base = os.path.dirname(os.path.abspath(path))
    for section in ("secrets", "configs"):
        for obj in (checked.get(section) or {}).values():
            if obj.get("file"):
                obj["file"] = os.path.normpath(os.path.join(base, os.path.expanduser(obj["file"])))
    for sname, svc in (checked.get("services") or {}).items():
        if isinstance((svc.get("deploy") or {}).get("labels"), list):
            svc["deploy"]["labels"] = compose.kv_list(svc["deploy"]["labels"],
                                                      ("services", sname, "deploy", "labels"), spots)
        ef = svc.get("env_file")
        if ef is not None:
            svc["env_file"] = [{"path": os.path.normpath(os.path.join(base, p)), "required": True}
                               for p in ([ef] if isinstance(ef, str) else ef)]
    return checked, spots


# -- the plan -------------------------------------------------------------------------------

def _plan(stack: str, data: dict, where: Where, env: Mapping[str, str],
          warnings: list[str]) -> StackPlan:
    label = {NAMESPACE: stack}
    raw_services = data.get("services") or {}
    declared = data.get("networks") or {}
    networks: dict[str, StackNetwork] = {}
    services: dict[str, ServiceSpec] = {}
    secrets = {k: _object(stack, "secrets", k, v, where) for k, v in (data.get("secrets") or {}).items()}
    configs = {k: _object(stack, "configs", k, v, where) for k, v in (data.get("configs") or {}).items()}
    images = []
    for short, raw in raw_services.items():
        base = ("services", short)
        nets = raw.get("networks") or {DEFAULT: None}
        for key in nets:
            if key not in declared and key != DEFAULT:
                raise where.error(base + ("networks", key),
                                  f'service "{short}" refers to undefined network {key}')
            if key not in networks:
                networks[key] = _network(stack, key, declared.get(key) or {}, where)
        if raw.get("image") and raw.get("command") is not None:
            images.append(short)
        services[short] = _service(stack, short, raw, networks, nets, secrets, configs, where, env)
    if images:
        warnings.append(f"Ignoring image of services {', '.join(sorted(images))}: netkit runs "
                        "the command in place of the image")
    _check_ports(services, where)
    replicas_set = frozenset(s for s, raw in raw_services.items()
                             if (raw.get("deploy") or {}).get("replicas") is not None)
    used_secrets = {r.source for s in services.values() for r in s.secrets}
    used_configs = {r.source for s in services.values() for r in s.configs}
    return StackPlan(stack, networks,
                     {k: v for k, v in secrets.items() if v.name in used_secrets or not v.external},
                     {k: v for k, v in configs.items() if v.name in used_configs or not v.external},
                     services, replicas_set, tuple(warnings))


def _network(stack: str, key: str, raw: dict, where: Where) -> StackNetwork:
    path = ("networks", key)
    ext = raw.get("external")
    if ext:
        for other in raw:
            if other not in ("external", "name"):
                raise where.error(path + (other,), f'conflicting parameters "external" and '
                                  f'"{other}" specified for network "{key}"')
        name = (ext.get("name") if isinstance(ext, dict) else None) or raw.get("name") or key
        return StackNetwork(key, name, external=True)
    driver = raw.get("driver") or "overlay"
    try:
        scope = drivers.get(driver).scope
    except NetkitError as exc:
        raise where.error(path + ("driver",), str(exc)) from None
    if scope is not Scope.SWARM:
        raise where.error(path + ("driver",), f'network "{key}": driver "{driver}" is not '
                          "swarm-scoped: a stack's networks are swarm networks (overlay)")
    return StackNetwork(key, raw.get("name") or f"{stack}_{key}", driver=driver,
                        subnets=tuple(c["subnet"] for c in (raw.get("ipam") or {}).get("config") or ()),
                        options=dict(raw.get("driver_opts") or {}),
                        labels={**(raw.get("labels") or {}), NAMESPACE: stack},
                        internal=bool(raw.get("internal")), attachable=bool(raw.get("attachable")))


def _object(stack: str, section: str, key: str, raw: dict, where: Where) -> StackObject:
    path = (section, key)
    what = section[:-1]
    ext = raw.get("external")
    if ext:
        if raw.get("file"):
            raise where.error(path, f'conflicting parameters "external" and "file" specified '
                              f'for {what} "{key}"')
        return StackObject(key, (ext.get("name") if isinstance(ext, dict) else None)
                           or raw.get("name") or key, external=True)
    if not raw.get("file"):
        raise where.error(path, f'{what} "{key}" must declare either "file" or "external"')
    try:
        with open(raw["file"], "rb") as f:
            data = f.read()
    except OSError as exc:
        raise where.error(path + ("file",), f"open {raw['file']}: "
                          f"{(exc.strerror or str(exc)).lower()}") from None
    return StackObject(key, raw.get("name") or f"{stack}_{key}", file=raw["file"], data=data,
                       labels={**(raw.get("labels") or {}), NAMESPACE: stack})


def _service(stack: str, short: str, raw: dict, networks: dict[str, StackNetwork],
             nets: dict, secrets: dict[str, StackObject], configs: dict[str, StackObject],
             where: Where, env: Mapping[str, str]) -> ServiceSpec:
    base = ("services", short)
    deploy = raw.get("deploy") or {}
    command = raw.get("command")
    if command is None:
        if raw.get("entrypoint") is None:
            image = f' ("{raw["image"]}")' if raw.get("image") else ""
            raise where.error(base, f'service "{short}" has no command: netkit runs a command in '
                              f"place of the image{image}")
        command = ()
    elif isinstance(command, str):
        try:
            command = tuple(shlex.split(command))
        except ValueError as exc:
            raise where.error(base + ("command",), f"invalid command: {exc}") from None
    command = compose.command_line(raw, tuple(str(a) for a in command), base + ("entrypoint",), where)
    mode = deploy.get("mode", REPLICATED)
    if mode == GLOBAL and deploy.get("replicas") is not None:
        raise where.error(base + ("deploy", "replicas"), "replicas can only be used with replicated mode")
    constraints = tuple(deploy.get("placement", {}).get("constraints") or ())
    for i, c in enumerate(constraints):
        if not re.fullmatch(r"\s*[^=!\s]+\s*(==|!=)\s*\S.*", c):
            raise where.error(base + ("deploy", "placement", "constraints", i),
                              f'invalid constraint "{c}": constraint expected one operator from ==, !=')
    endpoint_mode = deploy.get("endpoint_mode", "vip")
    ports = _ports(raw.get("ports") or (), base + ("ports",), where)
    if endpoint_mode == DNSRR and any(p.mode == INGRESS_MODE for p in ports):
        raise where.error(base + ("ports",), "port published with ingress mode can't be used "
                          "with dnsrr mode")
    signame = raw.get("stop_signal")
    if signame is not None:
        try:
            parse_signal(signame)
        except InvalidArgument:
            raise where.error(base + ("stop_signal",), f"invalid signal: {signame}") from None
    rp = deploy.get("restart_policy") or {}
    names = [networks[k].name for k in nets]
    return ServiceSpec(
        name=f"{stack}_{short}", command=command, mode=mode,
        replicas=deploy.get("replicas", 1) if mode == REPLICATED else 1,
        networks=tuple(names),
        aliases={networks[k].name: list(dict.fromkeys([short, *((v or {}).get("aliases") or ())]))
                 for k, v in nets.items()},
        ports=ports, endpoint_mode=endpoint_mode, constraints=constraints,
        env=compose.environment(raw, env, base, where), hostname=raw.get("hostname"),
        labels={**(deploy.get("labels") or {}), NAMESPACE: stack},
        container_labels={**(raw.get("labels") or {}), NAMESPACE: stack},
        secrets=_refs(raw.get("secrets") or (), secrets, "secret", base, where),
        configs=_refs(raw.get("configs") or (), configs, "config", base, where),
        restart=RestartPolicy(condition=rp.get("condition", "any"),
                              max_attempts=rp.get("max_attempts", 0),
                              delay=rp.get("delay", 5.0), window=rp.get("window", 0.0)),
        update=_update_config(deploy.get("update_config"), UpdateConfig()),
        rollback=_update_config(deploy.get("rollback_config"), UpdateConfig(failure_action="pause")),
        stop_signal=signame, stop_grace_period=raw.get("stop_grace_period", 10.0))


def _update_config(raw: dict | None, default: UpdateConfig) -> UpdateConfig:
    raw = raw or {}
    return UpdateConfig(parallelism=raw.get("parallelism", default.parallelism),
                        delay=raw.get("delay", default.delay), order=raw.get("order", default.order),
                        failure_action=raw.get("failure_action", default.failure_action),
                        monitor=raw.get("monitor", default.monitor),
                        max_failure_ratio=raw.get("max_failure_ratio", default.max_failure_ratio))


_PORT = re.compile(r"^(?:(?P<pub>\d+(?:-\d+)?):)?(?P<target>\d+(?:-\d+)?)(?:/(?P<proto>\w+))?$")


def _range(text: str) -> range:
    first, _, last = text.partition("-")
    return range(int(first), int(last or first) + 1)


def _ports(items: Sequence[Any], path: tuple, where: Where) -> tuple[PortConfig, ...]:
    """`ports`, short (``[PUBLISHED:]TARGET[/PROTO]``, ranges) and long forms; ingress by
    default. A target alone is published on a port the manager picks (published 0)."""
    out: list[PortConfig] = []
    for i, item in enumerate(items):
        if isinstance(item, dict):
            out.append(PortConfig(item.get("published", 0), item["target"],
                                  item.get("protocol", "tcp"), item.get("mode", INGRESS_MODE)))
            continue
        m = _PORT.match(str(item))
        if m is None:
            hint = ": a host IP cannot be given to a swarm port" if str(item).count(":") > 1 else ""
            raise where.error(path + (i,), f'invalid port "{item}"{hint}')
        proto = m["proto"] or "tcp"
        if proto not in ("tcp", "udp"):
            raise where.error(path + (i,), f'invalid proto "{proto}"')
        targets = _range(m["target"])
        pubs = _range(m["pub"]) if m["pub"] else None
        if pubs is not None and len(pubs) != len(targets):
            raise where.error(path + (i,), f'invalid port "{item}": the published and target '
                              "ranges differ in size")
        for j, target in enumerate(targets):
            pub = pubs[j] if pubs is not None else 0
            if not 0 < target < 65536 or not 0 <= pub < 65536:
                raise where.error(path + (i,), f'invalid port "{item}": out of range')
            out.append(PortConfig(pub, target, proto, INGRESS_MODE))
    return tuple(out)


def _check_ports(services: Mapping[str, ServiceSpec], where: Where) -> None:
    """A published port (and protocol) is held by one service of the stack only."""
    held: dict[tuple[int, str], str] = {}
    for short, spec in services.items():
        for p in spec.ports:
            if not p.published or p.mode != INGRESS_MODE:
                continue
            other = held.setdefault((p.published, p.protocol), short)
            if other != short:
                raise where.error(("services", short, "ports"), f"port '{p.published}' is "
                                  f"published by both services {other} and {short}")


def _refs(items: Sequence[Any], defined: Mapping[str, StackObject], what: str, base: tuple,
          where: Where) -> tuple[FileRef, ...]:
    """A service's `secrets` / `configs` (short and long form) as FileRefs on the swarm
    objects' names; a secret's target is a file name under /run/secrets, a config's an
    absolute path (default /SOURCE)."""
    out = []
    for i, item in enumerate(items):
        item = {"source": item} if isinstance(item, str) else item
        path = base + (what + "s", i)
        obj = defined.get(item["source"])
        if obj is None:
            raise where.error(path, f'service "{base[1]}" refers to undefined {what} {item["source"]}')
        mode = item.get("mode", 0o444)
        if isinstance(mode, str):
            try:
                mode = int(mode, 8)
            except ValueError:
                raise where.error(path + ("mode",), f'invalid mode "{mode}"') from None
        target = item.get("target") or item["source"]
        if what == "secret":
            if target.startswith("/run/secrets/"):
                target = target[len("/run/secrets/"):]
            if target.startswith("/") or not target or ".." in target.split("/"):
                raise where.error(path + ("target",), f'invalid secret target "{target}": a '
                                  "file name under /run/secrets")
        elif not target.startswith("/"):
            target = "/" + target
        out.append(FileRef(obj.name, target, mode, str(item.get("uid", "0")),
                           str(item.get("gid", "0"))))
    return tuple(out)

