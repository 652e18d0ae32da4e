"""The node's side of swarm services: run the tasks assigned to this node (a NODE_STEPS step).

Every member's agent calls `step` on its cluster sync's worker thread
(netkit/services/tick.py) with its own in-agent engine, whose container
requests run on the agent's loop (`Processes.local`, netkit/agent/server.py
`request_in_loop`): a task container is the agent's child like any
`run -d` container, supervised, reaped, its exit recorded.

For each task object assigned to this node (`model.tasks(c, node=...)`):

- desired running, no container yet: the task is claimed (PREPARING), its
  container made (`Task.container_name`, Docker's swarm labels, the spec's
  networks with the aliases `tasks.<service>` and, in dnsrr mode,
  `<service>`, host-mode ports as `-p`, the ingress network for ingress
  ports, secrets and configs, restart "no": the managers decide
  replacements) -> STARTING, started -> RUNNING with its addresses. A
  container that cannot be made: REJECTED; one that cannot start: FAILED.
- its container ended by itself: COMPLETE (0) or FAILED ("task: non-zero
  exit (N)"), the exit code recorded; the container stays (exited) as
  Docker keeps a task's history, and is never started again.
- desired shutdown / remove: every node's load balancing drops the task
  first; once every member that is up acknowledged that its VIP and mesh
  rules no longer send it new connections (netkit/services/drain.py: their
  acks reach the task's `retired_version`), or `drain.DRAIN_MAX` s after
  this node first saw the retirement, the stop signal, and SIGKILL after
  the spec's grace period if it still runs (never blocking the sync); once
  it ended: SHUTDOWN; `remove`: the container is removed and the task
  object deleted.
- a task whose service is gone: its container is removed at once and the
  task object deleted; a container labelled with a task id that is not a
  task of this node any more (deleted, or after the agent restarted) is
  removed.

The step only reads (one cluster read, one node store read; none when the
node had neither tasks nor task containers at its last look; the acks only
while a retired task of the node still runs) unless
something is to be done, and it is idempotent: what it does follows from
the task objects and the node's containers (found by their task label), so
an agent killed half-way and started again goes on without duplicates.
"""

from __future__ import annotations

import math
import os
import shutil
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from netkit.errors import NetkitError
from netkit.ids import now
from netkit.model import State
from netkit.planning import TASK_LABEL
from netkit.services import drain, model

if TYPE_CHECKING:
    from netkit.containers import Containers
    from netkit.engine import Engine
    from netkit.model import Container
    from netkit.specs import ContainerSpec
    from netkit.store.cluster import ClusterStore

STARTABLE = (model.ASSIGNED, model.ACCEPTED, model.PREPARING, model.READY, model.STARTING)
LIVE = (State.RUNNING, State.RESTARTING)
GONE = "task: container removed"          # a running task's container vanished


@dataclass
class _NodeState:
    """What the runner remembers between two steps of one agent (lost with it: harmless)."""

    draining: dict[str, float] = field(default_factory=dict)    # task id -> first seen retired
    signalled: dict[str, float] = field(default_factory=dict)   # task id -> stop signal sent
    idle: bool = False        # no task, no task container at the last look


_states: "weakref.WeakKeyDictionary[Engine, _NodeState]" = weakref.WeakKeyDictionary()


def task_id_of(ctr: "Container") -> str | None:
    return (ctr.options.get("labels") or {}).get(TASK_LABEL)


def step(engine: "Engine", cluster: "ClusterStore", down: Any) -> float | None:
    """Bring this node's task containers in line with its task objects; seconds until the
    next look wanted (None: on the next change or container exit)."""
    st = _states.setdefault(engine, _NodeState())
    c = cluster.read()
    mine = {t.id: t for t in model.tasks(c, node=engine.node_name)}
    if not mine and st.idle:
        return None
    services = {sid for sid, _ in c.objects(model.SERVICE)}
    ctrs = {tid: ctr for ctr in engine.store.read().containers()
            if (tid := task_id_of(ctr)) is not None}
    st.idle = not mine and not ctrs
    waits: list[float] = []
    starts: list[tuple[model.Task, "Container | None"]] = []
    reports: dict[str, Callable[[model.Task], model.Task | None]] = {}
    deletes: list[str] = []
    more_down = _agents_down(engine, cluster, c)

    def held(t: model.Task, waited: float) -> float:
        return drain.hold(c, t, waited, down, more_down)
    for t in mine.values():
        ctr = ctrs.get(t.id)
        gone = t.service_id not in services
        if gone or t.desired != model.RUNNING:
            wait = _retire(engine, st, t, ctr, gone, reports, deletes, held)
            if wait is not None:
                waits.append(wait)
        elif t.state in model.TERMINAL:
            continue
        elif ctr is None:
            if t.state in STARTABLE:
                starts.append((t, None))
            elif t.state == model.RUNNING:
                reports[t.id] = _ended(None, GONE)
        elif ctr.state in LIVE:
            if t.state != model.RUNNING or t.container_id != ctr.id:
                reports[t.id] = _running(ctr)                 # adopted: started, not recorded
        elif ctr.state is State.CREATED and t.state in STARTABLE:
            starts.append((t, ctr))                           # made, never started
        else:
            reports[t.id] = _ended(ctr.exit_code)
    for tid, ctr in ctrs.items():                             # no task of this node any more
        if tid not in mine:
            _remove(engine, ctr)
            st.draining.pop(tid, None)
            st.signalled.pop(tid, None)
    _write(cluster, reports, deletes)
    if starts:
        _start(engine, cluster, c, starts)
    return min(waits) if waits else None


# -- reports (applied to the task as re-read inside the write) -----------------------------
def _running(ctr: "Container") -> Callable[[model.Task], model.Task | None]:
    asked = {cfg.network_id for cfg in ctr.netconfig}       # not netkit_gwbridge (egress)
    addresses = {ep.network_id: ep.ipv4 for ep in ctr.endpoints
                 if ep.ipv4 and ep.network_id in asked}

    def apply(t: model.Task) -> model.Task | None:
        if t.state in model.TERMINAL:
            return None
        return t.with_state(model.RUNNING, now(), message="started", container_id=ctr.id,
                            addresses=addresses, error="")
    return apply


def _ended(code: int | None, error: str = "") -> Callable[[model.Task], model.Task | None]:
    def apply(t: model.Task) -> model.Task | None:
        if t.state in model.TERMINAL:
            return None
        if code == 0 and not error:
            return t.with_state(model.COMPLETE, now(), message="finished", exit_code=0)
        return t.with_state(model.FAILED, now(), message="started", exit_code=code,
                            error=error or f"task: non-zero exit ({code})")
    return apply


def _shut(code: int | None) -> Callable[[model.Task], model.Task | None]:
    def apply(t: model.Task) -> model.Task | None:
        if t.state in model.TERMINAL:
            return None
        return t.with_state(model.SHUTDOWN, now(), message="shutdown", exit_code=code)
    return apply


def _write(cluster: "ClusterStore", reports: dict[str, Callable[[model.Task], model.Task | None]],
           deletes: Sequence[str] = ()) -> None:
    """One short cluster transaction: each report applied to the task as it is now (skipped
    when it is gone or the report does not apply any more); `deletes` removed."""
    if not reports and not deletes:
        return
    try:
        with cluster.transaction() as w:
            wrote = False
            for tid, apply in reports.items():
                d = w.get_object(model.TASK, tid)
                new = apply(model.Task.from_dict(d)) if d is not None else None
                if new is not None:
                    model.put_task(w, new)
                    wrote = True
            for tid in deletes:
                if w.get_object(model.TASK, tid) is not None:
                    w.delete_object(model.TASK, tid)
                    wrote = True
            if not wrote:
                raise _Unchanged                  # roll back: the version does not move
    except _Unchanged:
        pass


class _Unchanged(Exception):
    """Nothing to write after all (another writer got there first)."""


# -- shutdown and removal ------------------------------------------------------------------
def _agents_down(engine: "Engine", cluster: "ClusterStore", c: Any) -> Callable[[], set[str]]:
    """The members whose agent is not running (SQLite, one machine; etcd: none beyond the
    expired leases), looked up once, when first asked."""
    found: list[set[str]] = []

    def get() -> set[str]:
        if not found:
            from netkit.services.reconcile import agents_down
            found.append(agents_down(engine, cluster, c))
        return found[0]
    return get


def _retire(engine: "Engine", st: _NodeState, t: model.Task, ctr: "Container | None", gone: bool,
            reports: dict, deletes: list[str], held: Callable[[model.Task, float], float]
            ) -> float | None:
    """A task that must not run (desired shutdown/remove, or its service is gone); `held`
    says how long it must still wait for the other nodes to take it out of their rotation."""
    remove = gone or t.desired == model.REMOVE
    if ctr is not None and ctr.state in LIVE and not gone:
        clock = time.monotonic()
        first = st.draining.setdefault(t.id, clock)
        if t.id not in st.signalled:
            wait = held(t, clock - first)
            if wait > 0:
                return wait                       # or sooner: an ack is a cluster change
        grace = t.spec.stop_grace_period if t.spec is not None else 10.0
        sent = st.signalled.get(t.id)
        try:
            if sent is None:
                sig = (t.spec.stop_signal if t.spec is not None else None) or "SIGTERM"
                engine.kill(ctr.id, sig)
                st.signalled[t.id] = clock
                return grace
            if clock < sent + grace:
                return sent + grace - clock
            engine.kill(ctr.id, "KILL")
        except NetkitError:
            pass                                  # it ended meanwhile: the next step sees it
        return None                               # its exit pokes the agent
    if ctr is not None and ctr.state in LIVE:     # the service is gone: no draining
        _remove(engine, ctr)
        ctr = None
    if t.state not in model.TERMINAL:
        reports[t.id] = _shut(ctr.exit_code if ctr is not None else None)
    if remove:
        if ctr is not None:
            _remove(engine, ctr)
        deletes.append(t.id)
    st.draining.pop(t.id, None)
    st.signalled.pop(t.id, None)
    return None


def _remove(engine: "Engine", ctr: "Container") -> None:
    try:
        engine.remove_container(ctr.id, force=True)
    except NetkitError as exc:
        if engine.store.read().container(ctr.id) is not None:
            raise
        del exc                                   # gone meanwhile


def remove_task_containers(containers: "Containers") -> list[str]:
    """Remove every swarm task container of a node (`swarm leave`, `node rm`); their names."""
    out = []
    for ctr in containers.ps(all=True):
        if task_id_of(ctr) is not None:
            containers.remove(ctr.id, force=True)
            out.append(ctr.name)
    return out


# -- start ----------------------------------------------------------------------------------
def _start(engine: "Engine", cluster: "ClusterStore", c: Any,
           starts: list[tuple[model.Task, "Container | None"]]) -> None:
    """Claim, make and start the containers of `starts`, in three short cluster writes."""
    claimed: list[str] = []

    def claim(t: model.Task) -> model.Task | None:
        if t.node != engine.node_name or t.desired != model.RUNNING or t.state not in STARTABLE:
            return None
        claimed.append(t.id)
        if t.state == model.PREPARING:
            return None
        return t.with_state(model.PREPARING, now(), message="preparing")
    _write(cluster, {t.id: claim for t, _ in starts})
    made: dict[str, "Container"] = {}
    reports: dict[str, Callable[[model.Task], model.Task | None]] = {}
    for t, ctr in starts:
        if t.id not in claimed:
            continue
        if ctr is None:
            try:
                ctr = _create(engine, cluster, c, t)
            except NetkitError as exc:
                reports[t.id] = _failed(model.REJECTED, str(exc))
                continue
        made[t.id] = ctr
        reports[t.id] = _starting(ctr.id)
    _write(cluster, reports)
    reports = {}
    started = []
    for tid, ctr in made.items():
        try:
            engine.start(ctr.id)
        except NetkitError as exc:
            reports[tid] = _failed(model.FAILED, str(exc))
            continue
        started.append((tid, ctr.id))
    if started:
        node = engine.store.read()                  # once, after every start
        for tid, cid in started:
            current = node.container(cid)
            if current is not None:
                reports[tid] = _running(current) if current.state in LIVE \
                    else _ended(current.exit_code)
    _write(cluster, reports)


def _starting(cid: str) -> Callable[[model.Task], model.Task | None]:
    def apply(t: model.Task) -> model.Task | None:
        if t.state in model.TERMINAL:
            return None
        return t.with_state(model.STARTING, now(), message="starting", container_id=cid)
    return apply


def _failed(state: str, error: str) -> Callable[[model.Task], model.Task | None]:
    def apply(t: model.Task) -> model.Task | None:
        if t.state in model.TERMINAL:
            return None
        return t.with_state(state, now(), error=error)
    return apply


def _create(engine: "Engine", cluster: "ClusterStore", c: Any, t: model.Task) -> "Container":
    """The task's container, made (not started)."""
    if t.spec is None:
        from netkit.errors import InvalidArgument
        raise InvalidArgument(f"task {t.id} has no spec")
    spec = t.spec
    files = None
    if spec.secrets or spec.configs:
        files = os.path.join(engine.paths.run, "tasks", t.id)
    try:
        return engine.create_container(container_spec(engine, c, cluster.cluster_id, t, files))
    finally:
        if files is not None:                       # the container holds copies of its own
            shutil.rmtree(files, ignore_errors=True)


def container_spec(engine: "Engine", c: Any, cluster_id: str, t: model.Task,
                   files: str | None = None) -> "ContainerSpec":
    """The ContainerSpec of task `t`'s container on this node (`c`: a read of the cluster
    `cluster_id`; `files`: a private directory for its secrets and configs)."""
    from netkit.specs import ContainerSpec, EndpointSpec
    spec = t.spec
    assert spec is not None
    names = [f"tasks.{spec.name}"] + ([spec.name] if spec.endpoint_mode == model.DNSRR else [])
    eps = [EndpointSpec(net, tuple(dict.fromkeys(names + list(spec.aliases.get(net, ())))))
           for net in spec.networks]
    if any(p.mode == model.INGRESS_MODE for p in spec.ports):
        ingress = _part("mesh").ingress_network_id(c)
        if ingress is not None and ingress not in spec.networks:
            eps.append(EndpointSpec(ingress))
    if not eps:
        eps = [EndpointSpec("bridge")]             # as Docker: a task with no network
    labels = {**spec.container_labels,
              "com.docker.swarm.node.id": t.node_id or model.node_id(cluster_id, t.node),
              "com.docker.swarm.service.id": t.service_id,
              "com.docker.swarm.service.name": t.service_name,
              "com.docker.swarm.task": "",
              TASK_LABEL: t.id,
              "com.docker.swarm.task.name": t.container_name}
    if "com.docker.stack.namespace" in spec.labels:
        labels["com.docker.stack.namespace"] = spec.labels["com.docker.stack.namespace"]
    extra: dict[str, Any] = {}
    if files is not None:
        secrets, configs = _part("secrets").task_files(engine, c, spec, files)
        extra["secrets"] = tuple(secrets)
        if configs:
            extra["configs"] = tuple(configs)
    first, *others = eps
    return ContainerSpec(
        name=t.container_name, command=tuple(spec.command), network=first.network,
        aliases=first.aliases, extra_networks=tuple(others), hostname=spec.hostname,
        detach=True, env=dict(spec.env), labels=labels, restart="no",
        stop_signal=spec.stop_signal, stop_timeout=int(math.ceil(spec.stop_grace_period)),
        publish=tuple(f"{p.published}:{p.target}/{p.protocol}" for p in spec.ports
                      if p.mode == model.HOST_MODE),
        **extra)


def _part(name: str) -> Any:
    """netkit.services.`name` (the routing mesh, secrets): imported only by the tasks that
    need it, by name (those parts are built beside this one)."""
    import importlib
    return importlib.import_module(f"netkit.services.{name}")
