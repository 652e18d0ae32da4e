"""Acknowledged draining (netkit/services/drain.py): the retirement version a manager records,
when a node must ack, when a runner may stop a retired task; and the ack step against a
real SQLite cluster store (no kernel: the lb and mesh parts' notes are made by hand)."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

from netkit.services import drain, model, reconcile
from netkit.services.model import (REMOVE, RUNNING, SHUTDOWN, Service, ServiceSpec, Task)
from netkit.store.cluster import MANAGER, WORKER, Member, SqliteClusterStore

T0 = 1_800_000_000.0


@pytest.fixture
def cluster(tmp_path):
    store = SqliteClusterStore(str(tmp_path), "d" * 25, create=True)
    with store.transaction() as c:
        for i, role in ((1, MANAGER), (2, WORKER), (3, WORKER)):
            c.add_member(Member(f"n{i}", role, f"10.9.0.{i}"))
    yield store
    store.close()


def task(**kw) -> Task:
    return Task(id=kw.pop("id", "t1"), service_id="s", service_name="web", slot=1, node="n1",
                **kw)


def test_retire_records_the_version_its_transaction_commits(cluster):
    t = task(state=RUNNING)
    with cluster.transaction() as c:
        model.put_task(c, t)
    before = cluster.version()
    with cluster.transaction() as c:
        retired = model.retire(c, t, SHUTDOWN)
        model.put_task(c, retired)
    assert retired.retired_version == before + 1 == cluster.version()
    with cluster.transaction() as c:                    # shutdown -> remove: left earlier
        again = model.retire(c, retired, REMOVE)
    assert (again.desired, again.retired_version) == (REMOVE, before + 1)
    assert Task.from_dict(again.to_dict()) == again
    assert Task.from_dict({k: v for k, v in t.to_dict().items()
                           if k != "retired_version"}).retired_version == 0    # older objects


def test_reconciler_retirements_carry_the_version(cluster):
    spec = ServiceSpec("web", ("v1",), replicas=3)
    svc = Service(model.new_object_id(), spec, created=reconcile.iso(T0))
    with cluster.transaction() as c:
        model.put_service(c, svc)
        reconcile.reconcile_service(c, cluster.cluster_id, svc, T0)
    assert all(t.retired_version == 0 for t in model.tasks(cluster.read()))
    svc = replace(svc, spec=replace(spec, replicas=1))
    with cluster.transaction() as c:
        model.put_service(c, svc)
        reconcile.reconcile_service(c, cluster.cluster_id, svc, T0)
    gone = [t for t in model.tasks(cluster.read()) if t.desired != RUNNING]
    assert len(gone) == 2 and {t.retired_version for t in gone} == {cluster.version()}


def test_pending_and_due():
    ts = [task(id="a", state=RUNNING, desired=SHUTDOWN, retired_version=7),
          task(id="b", state=model.SHUTDOWN, desired=SHUTDOWN, retired_version=5),   # ended
          task(id="c", state=RUNNING),
          task(id="d", state=RUNNING, desired=REMOVE, retired_version=9),
          task(id="e", state=RUNNING, desired=SHUTDOWN)]                  # an older manager's
    assert drain.pending(ts) == {7, 9}
    assert drain.due(0, 7, {7, 9}) and drain.due(7, 9, {7, 9})
    assert not drain.due(0, 6, {7, 9})           # not applied yet
    assert not drain.due(9, 12, {7, 9})          # acked already: an ack causes no other
    assert not drain.due(0, 12, ())              # nothing waits: nothing written


def test_lagging():
    assert drain.lagging(["n1", "n2", "n3"], {"n1": 8, "n2": 6}, 7) == {"n2", "n3"}
    assert drain.lagging(["n1", "n2", "n3"], {"n1": 8, "n2": 6}, 7, {"n2", "n3"}) == set()


def read(members, seen):
    return SimpleNamespace(members=lambda: [Member(m, WORKER, "") for m in members],
                           objects=lambda kind: [(n, {"version": v}) for n, v in seen.items()]
                           if kind == drain.SEEN else [])


def test_hold():
    t = task(state=RUNNING, desired=SHUTDOWN, retired_version=7)
    asked = []

    def more_down():
        asked.append(1)
        return {"n3"}
    c = read(["n1", "n2", "n3"], {"n1": 7, "n2": 9, "n3": 2})
    assert drain.hold(c, t, 0.0, frozenset(), lambda: set()) == drain.DRAIN_MAX   # n3 late
    assert drain.hold(c, t, 1.0, {"n3"}, more_down) == 0.0 and not asked         # n3 down
    assert drain.hold(c, t, 1.0, frozenset(), more_down) == 0.0 and asked        # agent stopped
    assert drain.hold(c, t, drain.DRAIN_MAX, frozenset(), set) == 0.0           # the bound
    every = read(["n1", "n2"], {"n1": 7, "n2": 7})
    assert drain.hold(every, t, 0.0, frozenset(), more_down) == 0.0              # no minimum
    legacy = replace(t, retired_version=0)
    assert drain.hold(every, legacy, 0.1, frozenset(), set) == pytest.approx(0.4)


def test_ack_step_writes_once_per_retirement(cluster):
    engine = SimpleNamespace(node_name="n2")
    drain.step(engine, cluster, set())                       # nothing noted yet: nothing
    v = cluster.version()
    drain.applied(cluster.cluster_id, "n2", "lb", v + 5, {v + 3})
    drain.step(engine, cluster, set())                       # the mesh has not applied it
    assert cluster.version() == v
    drain.applied(cluster.cluster_id, "n2", "mesh", v + 4)
    drain.step(engine, cluster, set())
    assert drain.acks(cluster.read()) == {"n2": v + 4} and cluster.version() == v + 1
    drain.applied(cluster.cluster_id, "n2", "mesh", v + 6)
    drain.applied(cluster.cluster_id, "n2", "lb", v + 6, {v + 3})
    drain.step(engine, cluster, set())                       # acked already: no write loop
    assert cluster.version() == v + 1
    drain.applied(cluster.cluster_id, "n2", "lb", v + 6, {v + 3, v + 6})
    drain.step(engine, cluster, set())                       # a new retirement
    assert drain.acks(cluster.read()) == {"n2": v + 6} and cluster.version() == v + 2
    with cluster.transaction() as c:
        drain.forget(c, "n2")
    assert drain.acks(cluster.read()) == {}
