"""Swarm services on three simulated nodes (a manager; b, c workers) on the SQLite store:
the service API and CLI at the store level (services, VIPs, tasks assigned by the
scheduler, the acting manager's reconciler in a's agent), and end to end with the
nodes' task runners."""

from __future__ import annotations

import time

import pytest

from netkit.errors import AlreadyExists, Conflict, Forbidden, InvalidArgument, NotFound
from netkit.services import model
from netkit.services.manager import DNSRR_INGRESS, REPLICAS_GLOBAL
from netkit.services.model import FileRef, NodeAttrs, PortConfig, ServiceSpec
from netkit.specs import NetworkSpec
from netkit.swarm import WORKER_VIEW
from tests.kernel.helpers import eventually as wait_for
from tests.kernel.helpers import settled, swarm_of_three
from tests.kernel.multihost import cluster_rows

pytestmark = pytest.mark.root
IPS = {"a": "192.168.79.10", "b": "192.168.79.11", "c": "192.168.79.12"}
SLEEP = ("sleep", "600")


@pytest.fixture(scope="module")
def sw(host, netkit_dirs):
    with swarm_of_three(host, netkit_dirs, "192.168.79.0/24", IPS) as (engines, names, lan, cid):
        net = engines["a"].create_network(NetworkSpec("svcnet", driver="overlay"))
        try:
            yield {"host": host, "names": names, "cid": cid, "net": net, **engines}
        finally:
            for svc in engines["a"].services():
                engines["a"].service_remove(svc.id)
            wait_for(lambda: not model.tasks(engines["a"].cluster.store().read()), 15,
                     "the runners to remove the task containers")
            engines["a"].remove_network(net.id)


@pytest.fixture
def clean(sw):
    """Each test starts and ends with no service."""
    yield sw
    a = sw["a"]
    for svc in a.services():
        a.service_remove(svc.id)
    wait_for(lambda: not model.tasks(a.cluster.store().read()), 15,
             "the runners to remove the task containers")


def vip_rows(sw) -> tuple[list, list]:
    rows = cluster_rows(sw["a"].cluster.store())
    return ([r for r in rows["addresses"] if (r[3] or "").startswith("vip:")],
            [e for e in rows["endpoints"] if e.node == ""])


def live(a, ref):
    return [t for t in a.service_tasks(ref) if t.desired == "running"]


def test_create_spreads_assigns_and_publishes_a_vip(clean, cli):
    sw = clean
    a, names = sw["a"], sw["names"]
    svc = a.service_create(ServiceSpec("web", SLEEP, replicas=3, networks=("svcnet",),
                                       ports=(PortConfig(8080, 80),)))
    assert len(svc.id) == 25 and svc.spec.networks == (sw["net"].id,)
    tasks = live(a, "web")
    assert sorted(t.slot for t in tasks) == [1, 2, 3]
    assert sorted(t.node for t in tasks) == sorted(names.values())      # one per node
    assert all(t.state in ("assigned", "preparing", "starting", "running") for t in tasks)
    vips, eps = vip_rows(sw)
    assert [v[3] for v in vips] == [f"vip:{svc.id}"]
    (ep,) = eps
    assert ep.ipv4 == svc.vips[sw["net"].id] and ep.names == ("web",) and ep.vtep == ""
    out = cli("service", "ls", node=names["a"]).stdout.splitlines()
    assert out[0].split() == ["ID", "NAME", "MODE", "REPLICAS", "COMMAND", "PORTS"]
    row = out[1].split()
    assert row[:3] == [svc.id[:12], "web", "replicated"] and row[3].endswith("/3")
    assert out[1].endswith("*:8080->80/tcp")
    ps = cli("service", "ps", "web", node=names["a"]).stdout.splitlines()
    assert ps[0].split()[:7] == ["ID", "NAME", "NODE", "DESIRED", "STATE", "CURRENT", "STATE"]
    assert sorted(line.split()[1] for line in ps[1:]) == ["web.1", "web.2", "web.3"]
    fmt = cli("service", "ps", "--format", "{{.Name}} {{.Node}} {{.DesiredState}}",
              "-f", "desired-state=running", "web", node=names["a"]).stdout.split("\n")
    assert sorted(fmt[:-1]) == sorted(f"{t.name} {t.node} Running" for t in tasks)
    info = cli("service", "inspect", "web", node=names["a"]).stdout
    import json
    (doc,) = json.loads(info)
    assert doc["Spec"]["Mode"] == {"Replicated": {"Replicas": 3}}
    assert doc["Endpoint"]["VirtualIPs"] == [{"NetworkID": sw["net"].id, "Addr": ep.ipv4}]
    pretty = cli("service", "inspect", "--pretty", "web", node=names["a"]).stdout
    assert "Service Mode:\tReplicated\n Replicas:\t3" in pretty and "PublishedPort = 8080" in pretty


def test_errors_leave_nothing_behind(clean, cli):
    sw = clean
    a, b, names = sw["a"], sw["b"], sw["names"]
    a.service_create(ServiceSpec("held", SLEEP, ports=(PortConfig(8081, 80),)))
    wait_for(lambda: all(t.state == "running" for t in a.service_tasks("held")), 20,
             "held's tasks to run")
    settled(a.cluster.store())
    before = (cluster_rows(a.cluster.store()), [s.id for s in a.services()])
    local = a.create_network(NetworkSpec("localnet"))
    try:
        cases = [
            (ServiceSpec("held", SLEEP), AlreadyExists, "name conflicts with an existing object"),
            (ServiceSpec("x", SLEEP, mode="global", replicas=3), InvalidArgument, REPLICAS_GLOBAL),
            (ServiceSpec("x", SLEEP, constraints=("node.hostname",)), InvalidArgument,
             "constraint expected one operator from ==, !="),
            (ServiceSpec("x", SLEEP, networks=("nosuch",)), NotFound, "network nosuch not found"),
            (ServiceSpec("x", SLEEP, networks=("localnet",)), InvalidArgument,
             "The network localnet cannot be used with services. Only networks scoped to the "
             "swarm can be used, such as those created with the overlay driver."),
            (ServiceSpec("x", SLEEP, ports=(PortConfig(8081, 81),)), InvalidArgument,
             "port '8081' is already in use by service 'held'"),
            (ServiceSpec("x", SLEEP, endpoint_mode="dnsrr", ports=(PortConfig(9000, 80),)),
             InvalidArgument, DNSRR_INGRESS),
            (ServiceSpec("x", SLEEP, secrets=(FileRef("nosuch", "nosuch"),)), NotFound,
             "secret not found: nosuch"),
            (ServiceSpec("x", SLEEP, configs=(FileRef("nocfg", "/nocfg"),)), NotFound,
             "config not found: nocfg"),
        ]
        for spec, kind, message in cases:
            with pytest.raises(kind) as exc:
                a.service_create(spec)
            assert message in str(exc.value) and "\n" not in str(exc.value)
        assert (cluster_rows(a.cluster.store()), [s.id for s in a.services()]) == before
        for ref in ("nosuch",):
            with pytest.raises(NotFound, match="no such service: nosuch"):
                a.service(ref)
        with pytest.raises(Forbidden) as exc:
            b.service_create(ServiceSpec("x", SLEEP))
        assert str(exc.value) == WORKER_VIEW
        with pytest.raises(InvalidArgument, match="scale can only be used with replicated"):
            a.service_create(ServiceSpec("g", SLEEP, mode="global"))
            a.service_scale({"g": 2})
        with pytest.raises(Conflict, match="does not have a previous spec"):
            a.service_rollback("held")
        proc = cli("service", "create", "--mode", "global", "--replicas", "2", "sleep", "1",
                   node=names["a"], check=False)
        assert proc.returncode == 1 and proc.stderr == f"Error: {REPLICAS_GLOBAL}\n"
        proc = cli("service", "update", "--image", "nginx", "held", node=names["a"], check=False)
        assert proc.returncode == 1 and "not applicable" in proc.stderr
        proc = cli("service", "rm", "nosuch", node=names["a"], check=False)
        assert proc.returncode == 1 and proc.stderr == "Error: no such service: nosuch\n"
    finally:
        a.remove_network(local.id)


def test_constraints_pending_and_placed(clean, cli):
    sw = clean
    a, names = sw["a"], sw["names"]
    a.service_create(ServiceSpec("pinned", SLEEP, replicas=2,
                                 constraints=(f"node.hostname=={names['c']}",)))
    assert {t.node for t in live(a, "pinned")} == {names["c"]}
    a.service_create(ServiceSpec("nowhere", SLEEP, constraints=("node.labels.disk==ssd",)))
    (t,) = live(a, "nowhere")
    assert t.state == "pending" and t.node == ""
    assert t.error == "no suitable node (scheduling constraints not satisfied on 3 nodes)"
    ps = cli("service", "ps", "--no-trunc", "nowhere", node=names["a"]).stdout
    assert '"no suitable node (scheduling constraints not satisfied on 3 nodes)"' in ps
    store = a.cluster.store()
    with store.transaction() as c:                   # what `node update --label-add` writes
        c.put_object(model.NODE, names["b"], NodeAttrs(labels={"disk": "ssd"}).to_dict())
    (t,) = wait_for(lambda: [t for t in live(a, "nowhere") if t.node], 10,
                    "the acting manager to place the pending task")
    assert t.node == names["b"] and t.state != "pending" and t.error == ""
    wait_for(lambda: all(t.state == "running" for t in live(a, "nowhere") + live(a, "pinned")),
             20, "the tasks to run")
    settled(store)                                   # then the reconciler writes nothing
    version = store.version()
    time.sleep(2.5)                                  # > two of its SQLite look-arounds (1 s)
    assert store.version() == version
    with store.transaction() as c:
        c.delete_object(model.NODE, names["b"])


def test_scale_update_rollback_rm(clean, cli):
    sw = clean
    a, names = sw["a"], sw["names"]
    svc = a.service_create(ServiceSpec("app", SLEEP, replicas=2, networks=("svcnet",)))
    out = cli("service", "scale", "-d", "app=5", node=names["a"]).stdout
    assert out == "app scaled to 5\n"
    assert sorted(t.slot for t in live(a, "app")) == [1, 2, 3, 4, 5]
    a.service_scale({"app": 1})
    assert [t.slot for t in live(a, "app")] == [1]
    assert {t.slot for t in a.service_tasks("app") if t.desired == "remove"} <= {2, 3, 4, 5}
    out = cli("service", "update", "-d", "--args", "sleep 700", "--env-add", "A=1",
              "--update-parallelism", "2", "--update-delay", "1s", "app", node=names["a"]).stdout
    assert out == "app\n"
    new = a.service("app")
    assert new.spec.command == ("sleep", "700") and new.spec.env == {"A": "1"}
    assert new.spec.update.parallelism == 2 and new.spec.update.delay == 1.0
    assert new.previous.command == SLEEP and new.version > svc.version
    assert new.update_status["state"] in ("updating", "completed")
    cli("service", "update", "-d", "--publish-add", "9090:90", "--constraint-add",
        "node.role==manager", "app", node=names["a"])
    spec = a.service("app").spec
    assert spec.ports == (PortConfig(9090, 90),) and spec.constraints == ("node.role==manager",)
    cli("service", "update", "-d", "--publish-rm", "90", "--constraint-rm", "node.role==manager",
        "--env-rm", "A", "app", node=names["a"])
    spec = a.service("app").spec
    assert (spec.ports, spec.constraints, spec.env) == ((), (), {})
    back = a.service_rollback("app")
    assert back.spec.ports == (PortConfig(9090, 90),)
    assert back.update_status["state"] == "rollback_started"
    assert back.update_status["message"] == "manually requested rollback"
    forced = a.service_update("app", back.spec, force=True)
    assert forced.spec.force_update == back.spec.force_update + 1
    assert vip_rows(sw)[0] and vip_rows(sw)[1]
    assert cli("service", "rm", "app", node=names["a"]).stdout == "app\n"
    assert a.services() == [] and vip_rows(sw) == ([], [])
    assert all(t.desired == "remove" for t in a.service_tasks())


def test_global_and_drain_through_the_acting_managers_reconciler(clean):
    sw = clean
    a, names = sw["a"], sw["names"]
    a.service_create(ServiceSpec("mon", SLEEP, mode="global", stop_grace_period=1.0))
    assert sorted(t.node for t in live(a, "mon")) == sorted(names.values())
    store = a.cluster.store()
    with store.transaction() as c:                   # what `node update --availability drain` writes
        c.put_object(model.NODE, names["c"], NodeAttrs(availability="drain").to_dict())
    try:
        wait_for(lambda: names["c"] not in {t.node for t in live(a, "mon")}, 10,
                 "a's reconciler to shut down the task on the drained node")
        assert sorted(t.node for t in live(a, "mon")) == sorted([names["a"], names["b"]])
    finally:
        with store.transaction() as c:
            c.delete_object(model.NODE, names["c"])
    wait_for(lambda: names["c"] in {t.node for t in live(a, "mon")}, 10,
             "a task on the node active again")


def test_node_down_rescheduled_after_grace_and_not_moved_back(clean):
    from netkit.agent import client
    from netkit.services.reconcile import DOWN_GRACE
    sw = clean
    a, c_node = sw["a"], sw["names"]["c"]
    a.service_create(ServiceSpec("spread", SLEEP, replicas=3))
    assert c_node in {t.node for t in live(a, "spread")}
    client.stop(sw["c"].paths.run)                   # c's agent stops reporting
    try:
        started = time.monotonic()
        wait_for(lambda: c_node not in {t.node for t in live(a, "spread")}, DOWN_GRACE + 10,
                 "a's reconciler to reschedule the task of the node that went down")
        assert time.monotonic() - started >= DOWN_GRACE - 1.5
        (gone,) = [t for t in a.service_tasks("spread") if t.node == c_node]
        assert (gone.state, gone.desired) == ("orphaned", "shutdown")
        assert len(live(a, "spread")) == 3
    finally:
        sw["c"].cluster.ensure_agent()
    time.sleep(2)                                     # back: nothing moves to it
    assert c_node not in {t.node for t in live(a, "spread")}


# -- end to end: needs the runner ------------------------------------------------------
def test_tasks_run_and_converge(clean, cli):
    sw = clean
    names = sw["names"]
    proc = cli("service", "create", "--name", "e2e", "--replicas", "3", "sh", "-c",
               "echo hello from $HOSTNAME; sleep 600", node=names["a"])
    lines = proc.stdout.splitlines()
    assert len(lines[0]) == 25
    assert "overall progress: 3 out of 3 tasks " in lines
    assert "1/3: running   [==================================================>] " in lines
    assert lines[-1] == "verify: Service converged "
    ls = cli("service", "ls", node=names["a"]).stdout
    assert " 3/3 " in ls
    wait_for(lambda: len(sw["a"].service_logs("e2e")) == 3, 10, "three tasks' logs")
    for entry in sw["a"].service_logs("e2e"):
        prefix, _, text = entry.text.partition(" | ")
        assert prefix.startswith("e2e.") and "@" in prefix and text.startswith("hello from")


def test_task_exit_is_restarted(clean):
    sw = clean
    a = sw["a"]
    a.service_create(ServiceSpec("crash", ("sh", "-c", "sleep 0.3; exit 3"),
                                 restart=model.RestartPolicy("on-failure", 1, 0.2)))
    wait_for(lambda: len(a.service_tasks("crash")) == 2 and all(
        t.state == "failed" for t in a.service_tasks("crash")), 20, "one restart, then no more")
    assert all(t.error == "task: non-zero exit (3)" for t in a.service_tasks("crash"))
