"""The acting manager's reconciler: tasks follow their services (a MANAGER_STEPS entry).

Each step reads the cluster, works out what the services need, and only
when something must change runs the same pass again inside one short
cluster transaction (so an idle swarm writes nothing and no agent re-syncs
for nothing). Per service (`reconcile_service`, also run by the service API
in its own transaction so the first tasks exist, assigned, at once):

- tasks on members that are gone or down for longer than DOWN_GRACE (5 s;
  etcd: the lease expired, SQLite one machine: the node's agent is not
  running) are ORPHANED, shut down and replaced elsewhere; they are not
  moved back when the node returns (as Docker's);
- tasks on a drained node are shut down (and replaced once stopped); on a
  paused node they stay; nothing new goes to either;
- a task that ended (COMPLETE / FAILED / REJECTED) is replaced per the
  restart policy (condition none | on-failure | any, max attempts, delay:
  Docker's default 5 s); the window is not used;
- replicated: one running task per slot 1..replicas, slots above removed;
  global: one task on every eligible node, nodes that join later included;
- a rolling update (`Service.update_status` state updating or
  rollback_started) replaces out-of-date tasks in batches of parallelism,
  stop-first (the old task stops, then its slot gets a new one) or
  start-first, waits for each batch to run for `monitor` s and `delay` s
  between batches, and on a failed new task pauses, continues or rolls back;
- history: TASK_HISTORY old tasks per slot; older ones removed.

The down-since memory is the acting manager's (in memory): a new acting
manager starts counting again.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Container, Iterable

from netkit.services import model, scheduler
from netkit.services.model import (COMPLETE, FAILED, GLOBAL, ORPHANED, PENDING, REJECTED,
                                   REMOVE, RUNNING, SHUTDOWN, TASK, TASK_HISTORY, TERMINAL,
                                   Service, Task)

if TYPE_CHECKING:
    from netkit.engine import Engine
    from netkit.store.cluster import ClusterStore

DOWN_GRACE = 5.0          # s a member must stay down before its tasks are rescheduled
ENDED = frozenset({COMPLETE, FAILED, REJECTED})       # a task that stopped by itself
UPDATING, PAUSED, COMPLETED = "updating", "paused", "completed"
ROLLBACK_STARTED, ROLLBACK_COMPLETED = "rollback_started", "rollback_completed"
_down_since: dict[tuple[str, str], float] = {}


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="microseconds") \
        .replace("+00:00", "Z")


def epoch(text: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else 0.0
    except ValueError:
        return 0.0


def spec_key(spec: model.ServiceSpec | None) -> dict:
    """What a task runs: the spec less what changes no task (replicas, update and rollback
    configs, the service's own labels)."""
    if spec is None:
        return {}
    d = spec.to_dict()
    for k in ("replicas", "update", "rollback", "labels", "mode"):
        d.pop(k, None)
    return d


def restart_allowed(policy: model.RestartPolicy, t: Task) -> bool:
    if policy.condition == "none" or (policy.condition == "on-failure" and t.state == COMPLETE):
        return False
    return not (policy.max_attempts and t.attempt >= policy.max_attempts)


class Writes:
    """A cluster transaction that notes whether anything was written; in `dry` mode it
    writes nothing (a plain read, to find out whether a transaction is needed)."""

    def __init__(self, c: Any, dry: bool = False) -> None:
        self.c, self.dry, self.changed = c, dry, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.c, name)

    def put_object(self, kind: str, object_id: str, value: dict) -> None:
        self.changed = True
        if not self.dry:
            self.c.put_object(kind, object_id, value)

    def delete_object(self, kind: str, object_id: str) -> None:
        self.changed = True
        if not self.dry:
            self.c.delete_object(kind, object_id)


def active(t: Task) -> bool:
    return t.desired == RUNNING and t.state not in TERMINAL


def drop_task(c: Any, t: Task, members: Container[str]) -> Task | None:
    """`t` desired remove in transaction `c` (the runner removes it), as now stored; None: a
    task no runner will ever see (never assigned, or its node not in `members`), deleted."""
    if not t.node or t.node not in members:
        c.delete_object(TASK, t.id)
        return None
    if t.desired != REMOVE:
        t = model.retire(c, t, REMOVE)
        model.put_task(c, t)
    return t


class ServicePass:
    """One reconciliation of one service in transaction `c` at time `now`."""

    def __init__(self, c: Any, svc: Service, tasks: list[Task], nodes: list[scheduler.NodeInfo],
                 total: dict[str, int], now: float, gone: set[str] | frozenset[str]) -> None:
        self.c, self.svc, self.now, self.gone = c, svc, now, gone
        self.tasks = {t.id: t for t in tasks}
        self.nodes = {n.name: n for n in nodes}
        self.total = total
        self.constraints = scheduler.parse_constraints(svc.spec.constraints)
        self.key = spec_key(svc.spec)
        self.waits: list[float] = []
        self._placement: scheduler.Placement | None = None

    # -- writes ---------------------------------------------------------------------
    def put(self, t: Task) -> Task:
        self.tasks[t.id] = t
        model.put_task(self.c, t)
        return t

    def drop(self, t: Task, state: str | None = None) -> None:
        """Desired remove; a task no runner will ever see (pending, or its node gone) goes now."""
        kept = drop_task(self.c, t, self.nodes)
        if kept is None:
            self.tasks.pop(t.id, None)
        else:
            self.tasks[t.id] = kept

    def shut(self, t: Task) -> None:
        """Desired shutdown; a task never assigned is shut down at once (no runner has it)."""
        if t.node:
            self.put(model.retire(self.c, t, SHUTDOWN))
        else:
            self.put(model.retire(self.c, t, SHUTDOWN, state=SHUTDOWN, since=iso(self.now)))

    def new_task(self, slot: int | None, node: str | None, attempt: int) -> Task:
        stamp = iso(self.now)
        t = Task(id=model.new_object_id(), service_id=self.svc.id, service_name=self.svc.name,
                 slot=slot, spec=self.svc.spec, spec_version=self.svc.version, created=stamp,
                 since=stamp, attempt=attempt, state=PENDING)
        if node is None:
            picked = self.placement().pick()
            node = picked.name if picked else None
        return self.put(self._assign(t, node))

    def _assign(self, t: Task, node: str | None) -> Task:
        if node is None:
            return replace(t, state=PENDING, error=self.placement().error(), node="", node_id="")
        info = self.nodes[node]
        return replace(t, state=model.ASSIGNED, error="", node=node, node_id=info.id,
                       since=iso(self.now))

    def placement(self) -> scheduler.Placement:
        if self._placement is None:
            self._placement = scheduler.Placement(self.nodes.values(), self.constraints,
                                                  totals(self.tasks.values()), self.total)
        return self._placement

    # -- the pass ---------------------------------------------------------------------
    def slot_of(self, t: Task) -> Any:
        return t.node if self.svc.spec.mode == GLOBAL else t.slot

    def run(self) -> list[float]:
        self.retire_lost()
        self.assign_pending()
        self.fill_slots()
        if self.svc.update_status.get("state") in (UPDATING, ROLLBACK_STARTED):
            self.rolling_update()
        self.prune()
        return self.waits

    def retire_lost(self) -> None:
        """Tasks that can no longer run where they are: node gone or down, drained, ended."""
        for t in list(self.tasks.values()):
            if t.desired != RUNNING or not t.node:
                continue
            node = self.nodes.get(t.node)
            if node is None or node.name in self.gone:
                self.put(model.retire(self.c, t, SHUTDOWN, state=ORPHANED if t.state not in TERMINAL
                                 else t.state, since=iso(self.now) if t.state not in TERMINAL
                                 else t.since))
            elif t.state in TERMINAL or node.availability == model.DRAIN or (
                    self.svc.spec.mode == GLOBAL and not scheduler.matches(self.constraints, node)):
                self.shut(t)

    def assign_pending(self) -> None:
        for t in sorted(self.tasks.values(), key=lambda t: t.created):
            if t.desired == RUNNING and not t.node and t.state in (model.NEW, PENDING):
                if self.svc.spec.mode == GLOBAL:
                    continue                    # global tasks are made on their node
                picked = self.placement().pick()
                found = self._assign(t, picked.name if picked else None)
                if found != t:
                    self.put(found)

    def keys(self) -> list[Any]:
        spec = self.svc.spec
        if spec.mode != GLOBAL:
            return list(range(1, spec.replicas + 1))
        keep = {t.node for t in self.tasks.values() if t.desired == RUNNING and t.node}
        return sorted({n.name for n in scheduler.eligible(self.nodes.values(), self.constraints)}
                      | keep)

    def by_slot(self) -> dict[Any, list[Task]]:
        out: dict[Any, list[Task]] = {}
        for t in self.tasks.values():
            out.setdefault(self.slot_of(t), []).append(t)
        for ts in out.values():
            ts.sort(key=lambda t: (t.created, t.id))
        return out

    def fill_slots(self) -> None:
        slots = self.by_slot()
        wanted = self.keys()
        for key in wanted:
            ts = slots.get(key, [])
            live = [t for t in ts if t.desired == RUNNING]
            if len(live) > 1 and live[-1].state == RUNNING:        # start-first: new one runs
                for old in live[:-1]:
                    self.shut(old)
            if live:
                continue
            newest = ts[-1] if ts else None
            attempt = 0
            if newest is not None:
                if newest.state not in TERMINAL:
                    continue                    # still stopping: its replacement comes after
                if newest.state in ENDED:
                    if not restart_allowed(self.svc.spec.restart, newest):
                        continue
                    due = epoch(newest.since) + self.svc.spec.restart.delay
                    if self.now < due:
                        self.waits.append(due - self.now)
                        continue
                    attempt = newest.attempt + 1
                else:
                    attempt = newest.attempt
            if self.svc.spec.mode == GLOBAL:
                self.new_task(None, key, attempt)
            else:
                self.new_task(key, None, attempt)
        if self.svc.spec.mode != GLOBAL:                # scaled down: the highest slots go
            for key, ts in slots.items():
                if key is not None and key not in wanted:
                    for t in ts:
                        self.drop(t)

    def prune(self) -> None:
        for ts in self.by_slot().values():
            old = [t for t in ts if t.desired == SHUTDOWN and t.state in TERMINAL]
            for t in old[:max(0, len(old) - TASK_HISTORY)]:
                self.drop(t)

    # -- rolling update ----------------------------------------------------------------
    def rolling_update(self) -> None:
        status = dict(self.svc.update_status)
        rollback = status.get("state") == ROLLBACK_STARTED
        cfg = self.svc.spec.rollback if rollback else self.svc.spec.update
        started = status.get("started", "")
        fresh = [t for t in self.tasks.values() if spec_key(t.spec) == self.key
                 and t.created >= started]
        failures = list(status.get("failures", []))
        failed = [t for t in fresh if t.state in (FAILED, REJECTED) and t.id not in failures]
        if failed:
            failures += [t.id for t in failed]
            why = f"failure or early termination of task {failed[0].id}"
            if cfg.failure_action == "pause":
                self.set_status({**status, "state": PAUSED, "failures": failures,
                                 "message": f"update paused due to {why}"})
                return
            if cfg.failure_action == "rollback" and not rollback and self.svc.previous:
                self.start_rollback(f"update rolled back due to {why}")
                return
            status["failures"] = failures
        outdated = sorted((t for t in self.tasks.values()
                           if t.desired == RUNNING and spec_key(t.spec) != self.key),
                          key=lambda t: (str(self.slot_of(t)), t.created))
        stopping = [t for t in self.tasks.values() if t.desired != RUNNING
                    and t.state not in TERMINAL and spec_key(t.spec) != self.key]
        unstable = [t for t in fresh if t.desired == RUNNING and (
            t.state != RUNNING or self.now - epoch(t.since) < cfg.monitor)]
        for t in unstable:
            if t.state == RUNNING:
                self.waits.append(cfg.monitor - (self.now - epoch(t.since)))
        if stopping or unstable:
            if not status.get("waiting"):
                status["waiting"] = True
            self.set_status(status)
            return
        if not outdated:
            done = ROLLBACK_COMPLETED if rollback else COMPLETED
            self.set_status({"state": done, "started": started, "completed": iso(self.now),
                             "message": "rollback completed" if rollback else "update completed"})
            return
        if status.pop("waiting", False):                # a batch just became stable
            status["next"] = self.now + cfg.delay
        if self.now < status.get("next", 0.0):
            self.waits.append(status["next"] - self.now)
            self.set_status(status)
            return
        batch = outdated[:cfg.parallelism or len(outdated)]
        for t in batch:
            if cfg.order == "start-first" and t.node:
                if self.svc.spec.mode == GLOBAL:
                    self.new_task(None, t.node, 0)
                else:
                    self.new_task(t.slot, None, 0)
            else:
                self.shut(t)
        status["waiting"] = True
        self.set_status(status)

    def set_status(self, status: dict) -> None:
        if status != self.svc.update_status:
            self.svc = replace(self.svc, update_status=status)
            model.put_service(self.c, self.svc)

    def start_rollback(self, message: str) -> None:
        svc = rollback_of(self.svc, self.now, message)
        self.svc = svc
        self.key = spec_key(svc.spec)
        self.constraints = scheduler.parse_constraints(svc.spec.constraints)
        model.put_service(self.c, svc)


def rollback_of(svc: Service, now: float, message: str) -> Service:
    """The service back on its previous spec, its update status rollback_started."""
    assert svc.previous is not None
    return replace(svc, spec=replace(svc.previous, force_update=svc.spec.force_update),
                   previous=svc.spec, version=svc.version + 1, updated=iso(now),
                   update_status={"state": ROLLBACK_STARTED, "started": iso(now),
                                  "message": message})


def totals(tasks: Iterable[Task]) -> dict[str, int]:
    """Active tasks per node."""
    out: dict[str, int] = {}
    for t in tasks:
        if active(t) and t.node:
            out[t.node] = out.get(t.node, 0) + 1
    return out


def reconcile_service(c: Any, cluster_id: str, svc: Service, now: float,
                      down: set[str] | frozenset[str] = frozenset()) -> list[float]:
    """Bring one service's tasks in line (the service API runs it inside its transaction;
    members `down` take no new task, their tasks are left to the reconciler)."""
    nodes = scheduler.cluster_nodes(c, cluster_id, down)
    every = model.tasks(c)
    return ServicePass(c, svc, [t for t in every if t.service_id == svc.id], nodes,
                       totals(every), now, frozenset()).run()


def reconcile(c: Any, cluster_id: str, down: set[str] | frozenset[str], now: float,
              gone: set[str] | frozenset[str] | None = None) -> float | None:
    """One pass over every service in `c`; seconds until a time-driven change is due.
    Members `down` take no new task; the tasks of those `gone` (down for DOWN_GRACE;
    default: all down) are orphaned and replaced."""
    gone = set(down) if gone is None else gone
    nodes = scheduler.cluster_nodes(c, cluster_id, down)
    members = {n.name for n in nodes}
    every = model.tasks(c)
    svcs = {s.id: s for s in model.services(c)}
    total = totals(every)
    waits: list[float] = []
    for t in every:                                     # tasks of removed services
        if t.service_id not in svcs:
            drop_task(c, t, members)
    for sid in sorted(svcs):
        mine = [t for t in every if t.service_id == sid]
        waits += ServicePass(c, svcs[sid], mine, nodes, total, now, gone).run()
    return min(waits) if waits else None


def agents_down(engine: "Engine", cluster: "ClusterStore", c: Any) -> set[str]:
    """SQLite, one machine: members whose agent is not running (as Swarm.nodes decides)."""
    from netkit.agent import client
    from netkit.cluster import leased
    from netkit.paths import NodePaths
    if leased(cluster):
        return set()
    return {m.node for m in c.members() if m.node != engine.node_name and
            client.pid(NodePaths.of(m.node, engine.root, engine.run_root).run) is None}


def long_down(cluster_id: str, seen: set[str], now: float) -> tuple[set[str], float | None]:
    """The members down for DOWN_GRACE s or more, and when the next one will be."""
    for key in [k for k in _down_since if k[0] == cluster_id and k[1] not in seen]:
        del _down_since[key]                            # back up: counted afresh next time
    gone, wait = set(), None
    for node in seen:
        since = _down_since.setdefault((cluster_id, node), now)
        if now - since >= DOWN_GRACE:
            gone.add(node)
        else:
            left = DOWN_GRACE - (now - since)
            wait = left if wait is None else min(wait, left)
    return gone, wait


def step(engine: "Engine", cluster: "ClusterStore", down: set[str] | frozenset[str]) -> float | None:
    """The MANAGER_STEPS entry: reconcile when something must change; the next time due."""
    snap = cluster.read()
    if not snap.objects(model.SERVICE) and not snap.objects(TASK):
        return None
    seen = set(down) | agents_down(engine, cluster, snap)
    gone, wait_down = long_down(cluster.cluster_id, seen, time.monotonic())
    dry = Writes(snap, dry=True)
    wait = reconcile(dry, cluster.cluster_id, seen, time.time(), gone)
    if dry.changed:
        with cluster.transaction() as c:
            wait = reconcile(Writes(c), cluster.cluster_id, seen, time.time(), gone)
    waits = [w for w in (wait, wait_down, 1.0 if _agents_watch(cluster) else None)
             if w is not None]
    return max(0.05, min(waits)) if waits else None


def _agents_watch(cluster: "ClusterStore") -> bool:
    """SQLite: an agent that stops writes nothing, so look again every second."""
    from netkit.cluster import leased
    return not leased(cluster)
