"""Swarm services in a lab (`x-netkit.services`, `x-netkit.secrets`) and the check kinds
that act on the swarm: ``tasks`` (an assertion) and the steps ``node_update`` and
``service_update``.

`up` creates the secrets, then the services, on the swarm's manager (`secret create`,
`service create`; a service already made by this lab is updated in place, as `stack
deploy` does); `down` removes the services, waits until their tasks are gone (so the
lab's networks can go), then the secrets. Both are listed in the lab's record.

A task is a lab reference too: ``task:SERVICE`` (with ``index`` = the slot) in `in`,
`from` of the other checks, and in `resolve`'s `expect` a swarm service's name stands
for its VIP and ``tasks.NAME`` for its running tasks' addresses.
"""

from __future__ import annotations

import os
import shlex
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from netkit.errors import InvalidArgument, NotFound
from netkit.labs import schema as S
from netkit.labs.checks import Check, _clip

if TYPE_CHECKING:
    from netkit.engine import Engine
    from netkit.labs.model import NetworkDef
    from netkit.labs.runner import Lab
    from netkit.labs.source import Where
    from netkit.services.model import ServiceSpec, Task

DRAIN_MARGIN = 5.0            # s beyond the grace period for removed services' tasks to go

UPDATE = S.Obj({"parallelism": S.Int(minimum=0), "delay": S.Duration(), "monitor": S.Duration(),
                "order": S.Enum("stop-first", "start-first"),
                "failure_action": S.Enum("pause", "continue", "rollback")}, extensions=False)
SECRET_REF = S.Either(S.Str(), S.Obj({"source": S.Str(), "target": S.Str(), "mode": S.Int(minimum=0)},
                                     required=("source",), extensions=False))
SERVICE = S.Obj({
    "command": S.Either(S.Str(), S.List(S.Scalar())),
    "mode": S.Enum("replicated", "global"), "replicas": S.Int(minimum=0),
    "networks": S.List(S.Str(), unique=True),
    "publish": S.List(S.Either(S.Str(), S.Int(1, 65535))),
    "endpoint_mode": S.Enum("vip", "dnsrr"),
    "constraints": S.List(S.Str()),
    "environment": S.Map(S.Scalar()),
    "hostname": S.Str(),
    "secrets": S.List(SECRET_REF),
    "update_config": UPDATE,
    "stop_signal": S.Str(), "stop_grace_period": S.Duration(),
}, required=("command",), extensions=False)
SECRET = S.Obj({"content": S.Str(), "file": S.Str()}, extensions=False)


# -- the file -> specs ----------------------------------------------------------------------

def load(xn: dict, swarm: dict, networks: dict[str, "NetworkDef"], compose_services: Any,
         project: str, workdir: str, where: "Where") -> tuple[dict[str, "ServiceSpec"], dict[str, bytes]]:
    """x-netkit.services and x-netkit.secrets -> ({name: ServiceSpec}, {name: value})."""
    raw_services, raw_secrets = xn.get("services") or {}, xn.get("secrets") or {}
    for key, raw in (("services", raw_services), ("secrets", raw_secrets)):
        if raw and not swarm:
            raise where.error(("x-netkit", key), f"swarm {key} live on a swarm: x-netkit.swarm is missing")
    secrets: dict[str, bytes] = {}
    for name, raw in raw_secrets.items():
        path = ("x-netkit", "secrets", name)
        if ("content" in raw) == ("file" in raw):
            raise where.error(path, "give either content or file")
        if "file" in raw:
            try:
                with open(os.path.join(workdir, raw["file"]), "rb") as f:
                    secrets[name] = f.read()
            except OSError as exc:
                raise where.error(path + ("file",), f"cannot read {raw['file']}: {exc.strerror}") from None
        else:
            secrets[name] = raw["content"].encode()
    return {name: _spec(name, raw, networks, compose_services, secrets, project, where)
            for name, raw in raw_services.items()}, secrets


def _spec(name: str, raw: dict, networks: dict[str, "NetworkDef"], compose_services: Any,
          secrets: dict[str, bytes], project: str, where: "Where") -> "ServiceSpec":
    from netkit.labs.plan import PROJECT
    from netkit.services import model as M
    from netkit.services.display import parse_publish
    path = ("x-netkit", "services", name)
    if name in compose_services:
        raise where.error(path, f'"{name}" is also a service of the lab: give the swarm service another name')
    cmd = raw["command"]
    command = tuple(shlex.split(cmd) if isinstance(cmd, str) else cmd)
    mode = raw.get("mode", M.REPLICATED)
    if mode == M.GLOBAL and "replicas" in raw:
        raise where.error(path + ("replicas",), "replicas can only be used with replicated mode")
    nets = []
    for i, key in enumerate(raw.get("networks") or ()):
        net = networks.get(key)
        if net is None:
            raise where.error(path + ("networks", i), f'undefined network "{key}"')
        if not net.spans_swarm:
            raise where.error(path + ("networks", i), f"The network {net.name} cannot be used with "
                              "services. Only networks scoped to the swarm can be used, such as "
                              "those created with the overlay driver.")
        nets.append(net.name)
    ports = []
    for i, item in enumerate(raw.get("publish") or ()):
        try:
            ports.append(parse_publish(str(item)))
        except InvalidArgument as exc:
            raise where.error(path + ("publish", i), str(exc)) from None
    refs = []
    for i, item in enumerate(raw.get("secrets") or ()):
        item = {"source": item} if isinstance(item, str) else item
        if item["source"] not in secrets:
            raise where.error(path + ("secrets", i), f"secret not found: {item['source']} "
                              "(define it under x-netkit.secrets)")
        refs.append(M.FileRef(item["source"], item.get("target", item["source"]), item.get("mode", 0o444)))
    upd = raw.get("update_config") or {}
    default = M.UpdateConfig()
    return M.ServiceSpec(
        name=name, command=command, mode=mode, replicas=raw.get("replicas", 1) if mode == M.REPLICATED else 1,
        networks=tuple(nets), ports=tuple(ports), endpoint_mode=raw.get("endpoint_mode", M.VIP),
        constraints=tuple(raw.get("constraints") or ()),
        env=dict(raw.get("environment") or {}),
        hostname=raw.get("hostname"), labels={PROJECT: project}, secrets=tuple(refs),
        update=M.UpdateConfig(**{**{k: getattr(default, k) for k in ("parallelism", "delay", "monitor",
                                                                      "order", "failure_action")}, **upd}),
        stop_signal=raw.get("stop_signal"), stop_grace_period=raw.get("stop_grace_period", 10.0))


# -- up / down ------------------------------------------------------------------------------

def up(lab: "Lab", rec: dict[str, Any]) -> None:
    """Secrets, then services, on the swarm's manager."""
    p = lab._require_project()
    if not (p.swarm_services or p.swarm_secrets):
        return
    from netkit.errors import Conflict
    from netkit.labs.plan import PROJECT, lab_path
    manager = p.swarm["manager"]
    eng = lab.engine(manager)
    have_secrets = {s.name for s in eng.secrets()}
    for name, data in p.swarm_secrets.items():
        if name in have_secrets:
            if name not in rec["swarm_secrets"]:
                raise Conflict(f"secret {name} already exists and was not created by lab {p.name}")
            lab._emit("Secret", name, "Exists")
            continue
        lab._emit("Secret", name, "Creating", manager, done=False)
        eng.secret_create(name, data, labels={PROJECT: p.name})
        rec["swarm_secrets"].append(name)
        lab._save_record(rec)
        lab._emit("Secret", name, "Created", manager)
    have = {s.name for s in eng.services()}
    for name, spec in p.swarm_services.items():
        spec = replace(spec, env={"PATH": lab_path(), **spec.env})      # as the lab's containers
        if name in have:
            if name not in rec["swarm_services"]:
                raise Conflict(f"service {name} already exists and was not created by lab {p.name}")
            lab._emit("Service", name, "Updating", manager, done=False)
            eng.service_update(name, spec)
            lab._emit("Service", name, "Updated", manager)
            continue
        lab._emit("Service", name, "Creating", manager, done=False)
        svc = eng.service_create(spec)
        rec["swarm_services"].append(name)
        lab._save_record(rec)
        vips = " ".join(svc.vips.values())
        lab._emit("Service", name, "Created", " ".join(x for x in (svc.id[:12], vips) if x))


def down(lab: "Lab", rec: dict[str, Any]) -> None:
    """`service rm` of the lab's services (waiting until their tasks are gone), then `secret rm`."""
    if not (rec["swarm_services"] or rec["swarm_secrets"]):
        return
    from netkit.labs.hosts import acting_manager
    manager = acting_manager(lab, rec)
    if manager is not None:
        eng = lab.engine(manager)
        gone, grace = set(), 0.0
        for name in reversed(rec["swarm_services"]):
            lab._emit("Service", name, "Removing", manager, done=False)
            try:
                svc = eng.service_remove(name)
                gone.add(svc.id)
                grace = max(grace, svc.spec.stop_grace_period)
            except NotFound:
                pass
            lab._emit("Service", name, "Removed", manager)
        deadline = time.monotonic() + grace + DRAIN_MARGIN
        while gone and any(t.service_id in gone for t in eng.service_tasks()) and time.monotonic() < deadline:
            time.sleep(0.1)
        for name in reversed(rec["swarm_secrets"]):
            lab._emit("Secret", name, "Removing", manager, done=False)
            try:
                eng.secret_remove(name)
            except NotFound:
                pass
            lab._emit("Secret", name, "Removed", manager)
    rec["swarm_services"], rec["swarm_secrets"] = [], []
    lab._save_record(rec)


def manager_engine(lab: "Lab") -> "Engine":
    p = lab._require_project()
    if not p.swarm:
        raise InvalidArgument(f"lab {p.name} has no swarm (x-netkit.swarm)")
    return lab.engine(p.swarm["manager"])


def running(tasks: list["Task"]) -> list["Task"]:
    return [t for t in tasks if t.desired == "running" and t.state == "running"]


def locate_task(lab: "Lab", service: str, slot: int | None) -> tuple[int, str, Any]:
    """`task:SERVICE` (slot `slot`, default the lowest running one): (slot, node, Container)."""
    eng = manager_engine(lab)
    tasks = sorted(running(eng.service_tasks(service)), key=lambda t: (t.slot or 0, t.node))
    if slot is not None:
        tasks = [t for t in tasks if t.slot == slot]
    if not tasks:
        which = f" {slot}" if slot is not None else ""
        raise NotFound(f"service {service} has no running task{which}")
    t = tasks[0]
    return t.slot or 0, t.node, lab.engine(t.node).container(t.container_id)


def addresses(lab: "Lab", name: str, network_ids: set[str]) -> dict[str, set[str]] | None:
    """A swarm service's VIP (`NAME`) or its running tasks' addresses (`tasks.NAME`) on
    each of `network_ids`; None when `name` is no service of the lab's swarm."""
    p = lab.project
    if p is None or not p.swarm:
        return None
    service = name[len("tasks."):] if name.startswith("tasks.") else name
    eng = manager_engine(lab)
    try:
        svc = eng.service(service)
    except NotFound:
        return None
    out: dict[str, set[str]] = {}
    if name.startswith("tasks."):
        for t in running(eng.service_tasks(svc.id)):
            for net, addr in t.addresses.items():
                if net in network_ids:
                    out.setdefault(net, set()).add(addr.split("/")[0])
    else:
        for net, addr in svc.vips.items():
            if net in network_ids:
                out[net] = {addr.split("/")[0]}
    return out


# -- check kinds ----------------------------------------------------------------------------

class Tasks(Check):
    """The running tasks of a swarm service: how many, on how many nodes, on which nodes,
    all on the service's current spec (a finished rolling update)."""

    kind = "tasks"
    fields = {"service": S.Str(), "running": S.Int(minimum=0), "nodes": S.Int(minimum=0),
              "on": S.List(S.Str()), "not_on": S.List(S.Str()), "updated": S.Bool(),
              "within": S.Duration()}
    required = ("service",)

    def validate(self, project):
        _need_swarm(self, project)

    def describe(self) -> str:
        b = self.body
        parts = [f"{b['running']} running" if "running" in b else "",
                 f"on {b['nodes']} nodes" if "nodes" in b else "",
                 f"on {', '.join(b['on'])}" if b.get("on") else "",
                 f"none on {', '.join(b['not_on'])}" if b.get("not_on") else "",
                 "all updated" if b.get("updated") else ""]
        return f"tasks of {b['service']}: " + ", ".join(x for x in parts if x)

    def run(self, ctx):
        b = self.body
        eng = ctx.swarm_manager()
        svc = eng.service(b["service"])
        tasks = eng.service_tasks(svc.id)
        up = running(tasks)
        wanted = [t for t in tasks if t.desired == "running"]
        nodes = sorted({t.node for t in up})
        shown = " ".join(f"{t.name}@{t.node}(v{t.spec_version})" for t in sorted(up, key=lambda t: t.name))
        head = f"{svc.name} v{svc.version}: {len(up)} running ({shown or 'none'}) on {len(nodes)} nodes"
        problems = []
        if "running" in b and (len(up) != b["running"] or len(wanted) != b["running"]):
            problems.append(f"expected {b['running']} running" +
                            (f" ({len(wanted) - len(up)} not running yet)" if len(wanted) > len(up) else ""))
        if "nodes" in b and len(nodes) != b["nodes"]:
            problems.append(f"expected them on {b['nodes']} nodes")
        for ref in b.get("on") or ():
            if ctx.node_name(ref) not in nodes:
                problems.append(f"none on {ctx.node_name(ref)}")
        for ref in b.get("not_on") or ():
            if any(t.node == ctx.node_name(ref) for t in wanted):
                problems.append(f"expected none on {ctx.node_name(ref)}")
        if b.get("updated"):
            state = svc.update_status.get("state", "")
            from netkit.services.reconcile import spec_key     # the tasks' part, as the reconciler sees it
            key = spec_key(svc.spec)
            old = [t.name for t in wanted if spec_key(t.spec) != key]
            if old or state not in ("", "completed"):
                problems.append(f"update {state or 'not started'}" + (f", old tasks {' '.join(old)}" if old else ""))
        return not problems, head + ("; " + "; ".join(problems) if problems else "")


class _SwarmStep(Check):
    """A step on the swarm's manager: not retried, needs x-netkit.swarm."""

    step = True

    def validate(self, project):
        _need_swarm(self, project)

    def within(self) -> float:
        return 0.0


class NodeUpdate(_SwarmStep):
    """A step: `node update --availability active|pause|drain [--label-add k=v]... NODE`."""

    kind = "node_update"
    fields = {"node": S.Str(), "availability": S.Enum("active", "pause", "drain"),
              "label_add": S.Map(S.Scalar()), "label_rm": S.List(S.Str())}
    required = ("node",)

    def describe(self) -> str:
        b = self.body
        what = [f"--availability {b['availability']}"] if "availability" in b else []
        what += [f"--label-add {k}={v}" for k, v in (b.get("label_add") or {}).items()]
        what += [f"--label-rm {k}" for k in b.get("label_rm") or ()]
        return f"node update {' '.join(what)} {b['node']}"

    def run(self, ctx):
        b = self.body
        node = ctx.node_name(b["node"])
        node_id = ctx.swarm_manager().node_update(node, availability=b.get("availability"),
                                                  label_add=b.get("label_add"), label_rm=b.get("label_rm") or ())
        return True, f"node {node} ({node_id[:12]}) updated"


class ServiceUpdate(_SwarmStep):
    """A step: `service update [--replicas N] [--args CMD] [--env-add K=V]... [--force] SVC`;
    a rolling update when the tasks' part changes (check its end with `tasks: {updated: true}`)."""

    kind = "service_update"
    fields = {"service": S.Str(), "replicas": S.Int(minimum=0), "command": S.Either(S.Str(), S.List(S.Scalar())),
              "env_add": S.Map(S.Scalar()), "force": S.Bool()}
    required = ("service",)

    def describe(self) -> str:
        b = self.body
        what = [f"--replicas {b['replicas']}"] if "replicas" in b else []
        what += [f"--env-add {k}={v}" for k, v in (b.get("env_add") or {}).items()]
        what += ["--args ..."] if "command" in b else []
        what += ["--force"] if b.get("force") else []
        return f"service update {' '.join(what)} {b['service']}"

    def run(self, ctx):
        b = self.body
        eng = ctx.swarm_manager()
        spec = eng.service(b["service"]).spec
        changes: dict[str, Any] = {}
        if "replicas" in b:
            changes["replicas"] = b["replicas"]
        if "command" in b:
            cmd = b["command"]
            changes["command"] = tuple(shlex.split(cmd) if isinstance(cmd, str) else cmd)
        if b.get("env_add"):
            changes["env"] = {**spec.env, **b["env_add"]}
        svc = eng.service_update(b["service"], replace(spec, **changes), force=bool(b.get("force")))
        u = svc.spec.update
        state = svc.update_status.get("state") or "no rolling update"
        return True, _clip(f"{svc.name} now v{svc.version}: {state} (parallelism {u.parallelism}, "
                           f"delay {S.format_duration(u.delay)}, {u.order})")


def _need_swarm(check: Check, project) -> None:
    if not project.swarm:
        raise project.where.error(check.path + (check.kind,), f"{check.kind} acts on a swarm: "
                                  "x-netkit.swarm is missing")
