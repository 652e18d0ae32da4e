"""The scheduler (pure) and the reconciler's passes, driven against a real SQLite cluster
store in a tmp dir with hand-made members (the nodes' runners are played by `run_all`)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from netkit.errors import InvalidArgument
from netkit.services import model, reconcile
from netkit.services.model import (COMPLETE, FAILED, RUNNING, SHUTDOWN, NodeAttrs, RestartPolicy,
                                   Service, ServiceSpec, UpdateConfig)
from netkit.services.scheduler import (NodeInfo, Placement, explain, parse_constraint, satisfies)
from netkit.store.cluster import MANAGER, WORKER, Member, SqliteClusterStore

N = [NodeInfo("n1", "id1", MANAGER, labels={"zone": "east"}),
     NodeInfo("n2", "id2", WORKER, labels={"zone": "west"}),
     NodeInfo("n3", "id3", WORKER)]


# -- constraints ------------------------------------------------------------------------
@pytest.mark.parametrize("expr,want", [
    ("node.hostname==n2", ["n2"]), ("node.hostname != n2", ["n1", "n3"]),
    ("node.role==manager", ["n1"]), ("node.role==worker", ["n2", "n3"]),
    ("node.id==id3", ["n3"]), ("node.labels.zone==east", ["n1"]),
    ("node.labels.zone!=east", ["n2", "n3"]), ("Node.Labels.ZONE==WEST", ["n2"]),
    ("node.platform.os==linux", []),            # unknown key: matches no node (swarmkit's)
])
def test_constraint_matching(expr, want):
    c = parse_constraint(expr)
    assert [n.name for n in N if satisfies(c, n)] == want


@pytest.mark.parametrize("expr,message", [
    ("node.hostname", "constraint expected one operator from ==, !="),
    ("node.hostname=n1", "constraint expected one operator from ==, !="),
    ("==n1", "key '' is invalid"),
    ("node.hostname==", "value '' is invalid"),
    ("node.hostname==a;b", "value 'a;b' is invalid"),
])
def test_malformed_constraints(expr, message):
    with pytest.raises(InvalidArgument) as exc:
        parse_constraint(expr)
    assert str(exc.value) == message


# -- placement -------------------------------------------------------------------------
def test_spread_fewest_of_the_service_then_overall_then_name():
    p = Placement(N, [], mine={}, total={"n1": 2})
    assert [p.pick().name for _ in range(6)] == ["n2", "n3", "n1", "n2", "n3", "n1"]
    p = Placement(N, [], mine={"n2": 1}, total={})
    assert p.pick().name == "n1"


def test_availability_and_down_and_constraints():
    nodes = [replace(N[0], availability="drain"), replace(N[1], availability="pause"),
             replace(N[2], down=True)]
    p = Placement(nodes, [], {}, {})
    assert p.pick() is None
    assert p.error() == "no suitable node (3 nodes not available for new tasks)"
    p = Placement(N, [parse_constraint("node.labels.zone==north")], {}, {})
    assert p.pick() is None
    assert p.error() == "no suitable node (scheduling constraints not satisfied on 3 nodes)"
    mixed = [replace(N[0], availability="drain"), N[1], N[2]]
    assert explain(mixed, [parse_constraint("node.hostname==n1")]) == \
        "no suitable node (scheduling constraints not satisfied on 2 nodes; " \
        "1 node not available for new tasks)"
    assert explain([], []) == "no suitable node"


# -- the reconciler on a real cluster store ------------------------------------------------
@pytest.fixture
def cluster(tmp_path):
    store = SqliteClusterStore(str(tmp_path), "c" * 25, create=True)
    with store.transaction() as c:
        c.add_member(Member("n1", MANAGER, "10.9.0.1"))
        c.add_member(Member("n2", WORKER, "10.9.0.2"))
        c.add_member(Member("n3", WORKER, "10.9.0.3"))
    yield store
    store.close()


T0 = 1_800_000_000.0


def add(store, spec: ServiceSpec, now: float = T0) -> Service:
    svc = Service(model.new_object_id(), spec, created=reconcile.iso(now))
    with store.transaction() as c:
        model.put_service(c, svc)
        reconcile.reconcile_service(c, store.cluster_id, svc, now)
    return svc


def tick(store, now: float, down=frozenset()) -> float | None:
    with store.transaction() as c:
        return reconcile.reconcile(c, store.cluster_id, set(down), now)


def tasks(store, svc: Service | None = None):
    return model.tasks(store.read(), service_id=svc.id if svc else None)


def live(store, svc):
    return sorted((t for t in tasks(store, svc) if t.desired == RUNNING),
                  key=lambda t: (str(t.slot), t.node))


def run_all(store, now: float) -> None:
    """The runners' part: assigned tasks run; tasks desired shutdown stop."""
    with store.transaction() as c:
        for t in model.tasks(c):
            if t.desired == RUNNING and t.state == model.ASSIGNED:
                model.put_task(c, t.with_state(RUNNING, reconcile.iso(now)))
            elif t.desired != RUNNING and t.state not in model.TERMINAL:
                model.put_task(c, t.with_state(SHUTDOWN, reconcile.iso(now)))


def set_state(store, task_id: str, state: str, now: float) -> None:
    with store.transaction() as c:
        t = model.Task.from_dict(c.get_object(model.TASK, task_id))
        model.put_task(c, t.with_state(state, reconcile.iso(now)))


def set_node(store, node: str, **attrs) -> None:
    with store.transaction() as c:
        c.put_object(model.NODE, node, NodeAttrs(**attrs).to_dict())


def test_replicas_spread_and_scale_down_removes_highest_slots(cluster):
    svc = add(cluster, ServiceSpec("web", ("sleep", "inf"), replicas=3))
    ts = live(cluster, svc)
    assert [t.slot for t in ts] == [1, 2, 3] and {t.node for t in ts} == {"n1", "n2", "n3"}
    assert all(t.state == model.ASSIGNED and t.node_id for t in ts)
    assert tick(cluster, T0) is None
    v = cluster.version()
    reconcile_dry_nothing = reconcile.Writes(cluster.read(), dry=True)
    reconcile.reconcile(reconcile_dry_nothing, cluster.cluster_id, set(), T0)
    assert not reconcile_dry_nothing.changed and cluster.version() == v
    with cluster.transaction() as c:
        svc = replace(svc, spec=replace(svc.spec, replicas=1))
        model.put_service(c, svc)
    tick(cluster, T0 + 1)
    assert {t.slot: t.desired for t in tasks(cluster, svc)} == {1: RUNNING, 2: "remove", 3: "remove"}


def test_pending_when_nothing_fits_then_placed(cluster):
    svc = add(cluster, ServiceSpec("db", ("x",), constraints=("node.labels.disk==ssd",)))
    (t,) = tasks(cluster, svc)
    assert t.state == model.PENDING and t.node == ""
    assert t.error == "no suitable node (scheduling constraints not satisfied on 3 nodes)"
    set_node(cluster, "n3", labels={"disk": "ssd"})
    tick(cluster, T0 + 1)
    (t,) = tasks(cluster, svc)
    assert (t.state, t.node, t.error) == (model.ASSIGNED, "n3", "")


def test_global_on_every_eligible_node_and_later_joiners(cluster):
    set_node(cluster, "n2", availability="pause")
    svc = add(cluster, ServiceSpec("mon", ("x",), mode=model.GLOBAL))
    assert sorted(t.node for t in live(cluster, svc)) == ["n1", "n3"]
    assert all(t.slot is None and t.name == f"mon.{t.node_id}" for t in live(cluster, svc))
    with cluster.transaction() as c:
        c.add_member(Member("n4", WORKER, "10.9.0.4"))
    tick(cluster, T0 + 1)
    assert sorted(t.node for t in live(cluster, svc)) == ["n1", "n3", "n4"]


def test_drain_moves_pause_keeps(cluster):
    svc = add(cluster, ServiceSpec("web", ("x",), replicas=3))
    run_all(cluster, T0)
    set_node(cluster, "n2", availability="pause")
    tick(cluster, T0 + 1)
    assert sorted(t.node for t in live(cluster, svc)) == ["n1", "n2", "n3"]
    set_node(cluster, "n3", availability="drain")
    tick(cluster, T0 + 2)
    on_n3 = [t for t in tasks(cluster, svc) if t.node == "n3"]
    assert [t.desired for t in on_n3] == [SHUTDOWN]
    run_all(cluster, T0 + 3)                     # the runner stopped it
    tick(cluster, T0 + 3)
    assert sorted(t.node for t in live(cluster, svc)) == ["n1", "n1", "n2"]  # not paused n2 twice


def test_restart_policy_delay_and_max_attempts(cluster):
    svc = add(cluster, ServiceSpec("job", ("x",), restart=RestartPolicy("on-failure", 2, 5.0)))
    run_all(cluster, T0)
    (t,) = live(cluster, svc)
    set_state(cluster, t.id, FAILED, T0 + 1)
    assert tick(cluster, T0 + 2) == pytest.approx(4.0)          # Docker's 5 s delay
    assert live(cluster, svc) == []
    tick(cluster, T0 + 6)
    (t2,) = live(cluster, svc)
    assert t2.slot == 1 and t2.attempt == 1
    run_all(cluster, T0 + 6)
    set_state(cluster, t2.id, FAILED, T0 + 7)
    tick(cluster, T0 + 13)
    (t3,) = live(cluster, svc)
    run_all(cluster, T0 + 13)
    set_state(cluster, t3.id, FAILED, T0 + 14)
    tick(cluster, T0 + 30)                        # two restarts were all it had
    assert live(cluster, svc) == [] and len(tasks(cluster, svc)) == 3
    ok = add(cluster, ServiceSpec("once", ("x",), restart=RestartPolicy("on-failure")))
    run_all(cluster, T0)
    set_state(cluster, live(cluster, ok)[0].id, COMPLETE, T0 + 1)
    tick(cluster, T0 + 20)
    assert live(cluster, ok) == []                # on-failure: a clean exit stays done


def test_node_down_reschedules_and_does_not_move_back(cluster):
    svc = add(cluster, ServiceSpec("web", ("x",), replicas=3))
    run_all(cluster, T0)
    tick(cluster, T0 + 1, down={"n2"})
    gone = [t for t in tasks(cluster, svc) if t.node == "n2"]
    assert [(t.state, t.desired) for t in gone] == [(model.ORPHANED, SHUTDOWN)]
    assert sorted(t.node for t in live(cluster, svc)) == ["n1", "n1", "n3"] or \
        sorted(t.node for t in live(cluster, svc)) == ["n1", "n3", "n3"]
    run_all(cluster, T0 + 2)
    tick(cluster, T0 + 3)                         # n2 is back: nothing moves
    assert "n2" not in {t.node for t in live(cluster, svc)}


def test_down_grace(cluster):
    reconcile._down_since.clear()
    gone, wait = reconcile.long_down("c", {"n2"}, 100.0)
    assert gone == set() and wait == reconcile.DOWN_GRACE
    gone, wait = reconcile.long_down("c", {"n2"}, 100.0 + reconcile.DOWN_GRACE)
    assert gone == {"n2"} and wait is None
    assert reconcile.long_down("c", set(), 200.0) == (set(), None)
    assert reconcile.long_down("c", {"n2"}, 201.0)[0] == set()       # counted afresh


def start_update(store, svc: Service, spec: ServiceSpec, now: float) -> Service:
    """What `service update` writes: the new spec, the old one as previous, updating."""
    with store.transaction() as c:
        svc = replace(svc, spec=spec, previous=svc.spec, version=svc.version + 1,
                      update_status={"state": reconcile.UPDATING, "started": reconcile.iso(now)})
        model.put_service(c, svc)
    return svc


def test_rolling_update_stop_first_in_batches_with_delay(cluster):
    spec = ServiceSpec("web", ("v1",), replicas=3, update=UpdateConfig(2, 10.0, monitor=1.0))
    svc = add(cluster, spec)
    run_all(cluster, T0)
    now = T0 + 100
    svc = start_update(cluster, svc, replace(spec, command=("v2",)), now)
    tick(cluster, now)
    stopping = [t for t in tasks(cluster, svc) if t.desired == SHUTDOWN]
    assert len(stopping) == 2 and len(live(cluster, svc)) == 1      # parallelism 2, stop-first
    tick(cluster, now + 0.1)
    assert len(live(cluster, svc)) == 1                              # not before they stopped
    run_all(cluster, now + 0.2)
    tick(cluster, now + 0.2)
    new = [t for t in live(cluster, svc) if t.spec.command == ("v2",)]
    assert len(new) == 2
    run_all(cluster, now + 0.3)
    assert tick(cluster, now + 0.5) == pytest.approx(0.8)            # monitor
    wait = tick(cluster, now + 1.5)                                   # stable: delay 10 s
    assert wait == pytest.approx(10.0)
    assert len([t for t in live(cluster, svc) if t.spec.command == ("v1",)]) == 1
    tick(cluster, now + 11.6)
    run_all(cluster, now + 11.7)
    tick(cluster, now + 11.7)
    run_all(cluster, now + 11.8)
    tick(cluster, now + 13)
    svc = model.service(cluster.read(), svc.id)
    assert svc.update_status["state"] == reconcile.COMPLETED
    assert svc.update_status["message"] == "update completed"
    assert {t.spec.command for t in live(cluster, svc)} == {("v2",)} and len(live(cluster, svc)) == 3


def test_update_failure_pauses_or_rolls_back(cluster):
    for action, state in (("pause", reconcile.PAUSED), ("rollback", reconcile.ROLLBACK_STARTED)):
        spec = ServiceSpec(f"s{action}", ("v1",), update=UpdateConfig(failure_action=action))
        svc = add(cluster, spec)
        run_all(cluster, T0)
        now = T0 + 100
        svc = start_update(cluster, svc, replace(spec, command=("v2",)), now)
        tick(cluster, now)
        run_all(cluster, now + 0.1)
        tick(cluster, now + 0.1)
        (new,) = live(cluster, svc)
        set_state(cluster, new.id, FAILED, now + 0.2)
        tick(cluster, now + 0.3)
        svc = model.service(cluster.read(), svc.id)
        assert svc.update_status["state"] == state
        assert new.id in svc.update_status["message"]
        if action == "rollback":
            assert svc.spec.command == ("v1",) and svc.previous.command == ("v2",)
            assert svc.update_status["message"].startswith("update rolled back due to failure")


def test_history_pruned(cluster):
    svc = add(cluster, ServiceSpec("flaky", ("x",), restart=RestartPolicy("any", 0, 0.0)))
    now = T0
    for _ in range(model.TASK_HISTORY + 3):
        run_all(cluster, now)
        set_state(cluster, live(cluster, svc)[0].id, FAILED, now)
        now += 1
        tick(cluster, now)
    ts = tasks(cluster, svc)
    kept = [t for t in ts if t.desired == SHUTDOWN]
    assert len(kept) == model.TASK_HISTORY and len(live(cluster, svc)) == 1
    assert all(t.desired == "remove" for t in ts if t.desired not in (SHUTDOWN, RUNNING))


def test_tasks_of_removed_services_go(cluster):
    svc = add(cluster, ServiceSpec("web", ("x",), replicas=2))
    with cluster.transaction() as c:
        c.delete_object(model.SERVICE, svc.id)
    tick(cluster, T0 + 1)
    assert {t.desired for t in tasks(cluster, svc)} == {"remove"}


def test_just_down_takes_nothing_new_but_keeps_its_tasks(cluster):
    svc = add(cluster, ServiceSpec("web", ("x",), replicas=2))
    run_all(cluster, T0)
    on = {t.node for t in live(cluster, svc)}
    down = next(iter(on))
    with cluster.transaction() as c:
        reconcile.reconcile(c, cluster.cluster_id, {down}, T0 + 1, gone=set())
        model.put_service(c, replace(svc, spec=replace(svc.spec, replicas=3)))
    with cluster.transaction() as c:
        reconcile.reconcile(c, cluster.cluster_id, {down}, T0 + 2, gone=set())
    ts = live(cluster, svc)
    assert len(ts) == 3 and sum(t.node == down for t in ts) == 1     # kept, and none new there
