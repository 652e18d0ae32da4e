"""`stack deploy / ls / services / ps / rm` on a manager's Engine (docker/cli's stack commands).

A stack is nothing but a label: the services, networks, secrets and configs
labelled ``com.docker.stack.namespace=STACK``. `deploy` reads the files
(netkit/services/stack.py), checks what needs the cluster (external networks
and secrets exist, names and ingress ports are free) before it makes
anything, then creates networks, secrets, configs and services in Docker's
order, printing Docker's lines; a service that exists already is updated in
place (`service_update` with the new spec; its replica count is kept when
the file does not set one, its `--force` counter always). Services no
longer in the files stay, unless `prune`.

Short names: each service has the alias of its short name on each of its
stack networks (`ServiceSpec.aliases`, network id -> aliases). In vip mode
an alias is published like the service's own name, on the VIP endpoint
(see SERVICES.md, "Stacks"): `_publish_aliases` makes sure of it after each
create or update, so `web` answers with mystack_web's VIP on the stack's
networks; in dnsrr mode the runner gives them to the task containers.
"""

from __future__ import annotations

import base64
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, Sequence

from netkit.errors import Conflict, InvalidArgument, NetkitError, NotFound
from netkit.services import stack as stackfile
from netkit.services.model import INGRESS_MODE, REPLICATED, VIP, Service, ServiceSpec, Task
from netkit.services.stack import NAMESPACE, StackPlan

if TYPE_CHECKING:
    from netkit.model import Network

Out = Callable[[str], None]
# a manager's netkit.Engine: its service, secret and config methods are SERVICES.md's
Engine = Any
DRAIN_MARGIN = 10.0         # s beyond the longest stop grace period that `rm` waits for tasks to go


def _of(labels: dict[str, str], name: str) -> bool:
    return labels.get(NAMESPACE) == name


def _scope(net: "Network") -> str:
    return getattr(net.scope, "value", net.scope)


# -- deploy ---------------------------------------------------------------------------------

def deploy(engine: Engine, name: str, files: Sequence[str], *, prune: bool = False,
           out: Out | None = None, warn: Out | None = None) -> list[str]:
    """Deploy (or update) stack `name` from compose `files`; returns Docker's stdout lines
    (also given to `out` as they happen). Warnings (``Ignoring unsupported options: links``)
    go to `warn`, or first into the lines when no `warn` is given."""
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        if out is not None:
            out(line)

    plan = stackfile.load(files, name)
    for w in plan.warnings:
        (warn or say)(w)
    current = engine.services()                   # off swarm / on a worker: Docker's refusal
    mine = {s.name: s for s in current if _of(s.spec.labels, name)}
    wanted = {spec.name for spec in plan.services.values()}
    gone = [s for n, s in sorted(mine.items()) if n not in wanted]
    staying = [s for s in current if not (prune and s in gone)]
    net_ids, new_nets = _check_networks(engine, plan)
    new_secrets = _check_objects(engine, "secret", plan.secrets.values())
    new_configs = _check_objects(engine, "config", plan.configs.values())
    _check_services(plan, staying, mine)

    if prune:
        for s in gone:
            say(f"Removing service {s.name}")
            engine.service_remove(s.id)
    for sn, spec in new_nets:
        say(f"Creating network {sn.name}")
        net_ids[sn.name] = engine.create_network(spec).id
    for obj in new_secrets:
        say(f"Creating secret {obj.name}")
        engine.secret_create(obj.name, obj.data, labels=obj.labels)
    for obj in new_configs:
        say(f"Creating config {obj.name}")
        engine.config_create(obj.name, obj.data, labels=obj.labels)
    for short in sorted(plan.services):
        spec = _with_ids(plan.services[short], net_ids)
        old = mine.get(spec.name)
        if old is None:
            say(f"Creating service {spec.name}")
            svc = engine.service_create(spec)
        else:
            say(f"Updating service {spec.name} (id: {old.id})")
            if short not in plan.replicas_set and old.spec.mode == REPLICATED == spec.mode:
                spec = replace(spec, replicas=old.spec.replicas)
            svc = engine.service_update(old.id, replace(spec, force_update=old.spec.force_update))
        _publish_aliases(engine, svc)
    return lines


def _check_networks(engine: Engine, plan: StackPlan) -> tuple[dict[str, str], list]:
    """Network name -> id of those that exist (external ones must, swarm-scoped), and the
    (StackNetwork, NetworkSpec) pairs to create; a name taken outside the stack is refused."""
    from netkit.specs import NetworkSpec
    existing = {n.name: n for n in engine.networks()}
    ids: dict[str, str] = {}
    create = []
    for sn in plan.networks.values():
        found = existing.get(sn.name)
        if sn.external:
            if found is None:
                raise NotFound(f'network "{sn.name}" is declared as external, but could not be '
                               "found. You need to create a swarm-scoped network before the stack "
                               "is deployed")
            if _scope(found) != "swarm":
                raise Conflict(f'network "{sn.name}" is declared as external, but it is not in the '
                               f'right scope: "{_scope(found)}" instead of "swarm"')
            ids[sn.name] = found.id
        elif found is not None:
            if not _of(found.labels, plan.name):
                raise Conflict(f"failed to create network {sn.name}: network with name {sn.name} "
                               "already exists")
            ids[sn.name] = found.id
        else:
            spec = NetworkSpec(name=sn.name, driver=sn.driver, subnets=sn.subnets,
                               options=dict(sn.options), labels=dict(sn.labels),
                               internal=sn.internal, attachable=sn.attachable)
            create.append((sn, spec))
    return ids, create


def _check_objects(engine: Engine, kind: str, objs) -> list:
    """The secrets (configs) to create: external ones must exist; one of the stack that
    exists is kept (a config's content cannot change, as in swarmkit)."""
    get = getattr(engine, kind)
    create = []
    for obj in objs:
        try:
            found = get(obj.name)
        except NotFound:
            found = None
        if found is None:
            if obj.external:
                raise NotFound(f"{kind} not found: {obj.name}")
            create.append(obj)
        elif not obj.external and kind == "config" and \
                found.data != base64.b64encode(obj.data).decode():
            raise InvalidArgument(f"failed to update config {obj.name}: only updates to Labels "
                                  "are allowed")
    return create


def _check_services(plan: StackPlan, staying: list[Service], mine: dict[str, Service]) -> None:
    """Service names not held outside the stack; ingress ports not held by another service."""
    held: dict[tuple[int, str], Service] = {}
    for s in staying:
        if s.name in mine and s.name in {spec.name for spec in plan.services.values()}:
            continue                                   # updated: its ports are the file's now
        if s.name not in mine and any(spec.name == s.name for spec in plan.services.values()):
            raise Conflict(f"failed to create service {s.name}: name conflicts with an existing "
                           f"object: service {s.name} already exists")
        for p in s.spec.ports:
            if p.published and p.mode == INGRESS_MODE:
                held[(p.published, p.protocol)] = s
    for spec in plan.services.values():
        for p in spec.ports:
            other = held.get((p.published, p.protocol)) if p.mode == INGRESS_MODE else None
            if other is not None:
                raise Conflict(f"port '{p.published}' is already in use by service "
                               f"'{other.name}' ({other.id}) as an ingress port")


def _with_ids(spec: ServiceSpec, ids: dict[str, str]) -> ServiceSpec:
    return replace(spec, networks=tuple(ids[n] for n in spec.networks),
                   aliases={ids[n]: list(a) for n, a in spec.aliases.items()})


def _publish_aliases(engine: Engine, svc: Service) -> None:
    """In vip mode: the service's aliases among the names of its VIP endpoint on each network
    (the endpoint the manager publishes: manager.vip_endpoint_id)."""
    from netkit.services.manager import vip_endpoint_id
    store = engine.cluster.store()
    if svc.spec.endpoint_mode != VIP or store is None or not svc.vips:
        return
    with store.transaction() as c:
        for nid in svc.vips:
            aliases = tuple(svc.spec.aliases.get(nid) or ())
            for ep in c.endpoints(network_id=nid):
                if ep.id == vip_endpoint_id(nid, svc.id) and not set(aliases) <= set(ep.names):
                    c.withdraw_endpoint(ep.id)
                    c.publish_endpoint(replace(ep, names=tuple(dict.fromkeys(ep.names + aliases))))


# -- ls / services / ps ---------------------------------------------------------------------

def stacks(engine: Engine) -> list[tuple[str, int]]:
    """`stack ls`: (NAME, SERVICES) of each stack that has services, by name."""
    counts: dict[str, int] = {}
    for s in engine.services():
        ns = s.spec.labels.get(NAMESPACE)
        if ns:
            counts[ns] = counts.get(ns, 0) + 1
    return sorted(counts.items())


def services(engine: Engine, name: str) -> list[Service]:
    """`stack services NAME`: the stack's services, by name."""
    return sorted((s for s in engine.services() if _of(s.spec.labels, name)), key=lambda s: s.name)


def tasks(engine: Engine, name: str) -> list[Task]:
    """`stack ps NAME`: the tasks of the stack's services."""
    ids = {s.id for s in services(engine, name)}
    return [t for t in engine.service_tasks() if t.service_id in ids]


# -- rm -------------------------------------------------------------------------------------

def remove(engine: Engine, name: str, *, out: Out | None = None) -> list[str]:
    """`stack rm NAME`: its services, secrets, configs, then networks (each once the removed
    services' tasks have left it). Returns Docker's lines; [] when nothing is labelled with
    the stack. Raises Conflict("Failed to remove some resources from stack: NAME") after
    trying everything when something could not be removed (the lines say what)."""
    stackfile.check_name(name)
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        if out is not None:
            out(line)

    svcs = services(engine, name)
    secrets = sorted((s for s in engine.secrets() if _of(s.labels, name)), key=lambda s: s.name)
    configs = sorted((s for s in engine.configs() if _of(s.labels, name)), key=lambda s: s.name)
    nets = sorted((n for n in engine.networks() if _of(n.labels, name)), key=lambda n: n.name)
    failed = False
    for verb, items, rm in (("service", svcs, engine.service_remove),
                            ("secret", secrets, engine.secret_remove),
                            ("config", configs, engine.config_remove)):
        for item in items:
            say(f"Removing {verb} {item.name}")
            try:
                rm(item.id)
            except NetkitError as exc:
                say(f"Failed to remove {verb} {item.name}: {exc}")
                failed = True
    deadline = time.monotonic() + DRAIN_MARGIN + max(
        [s.spec.stop_grace_period for s in svcs], default=0.0)
    for net in nets:
        say(f"Removing network {net.name}")
        try:
            _wait_unused(engine, net.id, deadline)
            engine.remove_network(net.id)
        except NetkitError as exc:
            say(f"Failed to remove network {net.name}: {exc}")
            failed = True
    if failed:
        err = Conflict(f"Failed to remove some resources from stack: {name}")
        err.lines = lines                                  # type: ignore[attr-defined]
        raise err
    return lines


def _wait_unused(engine: Engine, network_id: str, deadline: float) -> None:
    """Until no endpoint is left on the swarm network (removed tasks' containers, VIPs), or
    the deadline (then the removal says which endpoints are active)."""
    store = engine.cluster.store()
    while store is not None and store.read().endpoints(network_id=network_id) and \
            time.monotonic() < deadline:
        time.sleep(0.1)
