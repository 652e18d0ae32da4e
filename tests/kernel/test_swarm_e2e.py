"""Swarm services end to end: the real API and CLI on three simulated nodes (a manager;
b, c workers), the agents' reconciler, runners, load balancing and routing mesh, each
behaviour checked with real traffic.

Tasks run netkit.testing.probe `serve tcp 80 --hostname`: each answers with its host
name (a task's default host name is its container id[:12]), so a client sees which
task took each connection. A client container on the (attachable) overlay `ovl` on
node c connects through the VIP; the nodes themselves connect to the routing mesh.
Every wait polls a condition with a timeout; every test removes what it made.
"""

from __future__ import annotations

import shlex
import threading
import time

import pytest

from netkit.errors import NotFound
from netkit.services import model
from netkit.services.manager import REPLICAS_GLOBAL
from netkit.services.reconcile import spec_key
from netkit.specs import ContainerSpec, NetworkSpec
from tests.kernel.helpers import eventually as wait_for
from tests.kernel.helpers import PROBE, swarm_of_three
from tests.kernel.test_service_vip import query

pytestmark = pytest.mark.root
SUBNET = "192.168.83.0/24"
IPS = {"a": "192.168.83.10", "b": "192.168.83.11", "c": "192.168.83.12"}
FOURTH = "192.168.83.13"
SERVE = [*PROBE, "serve", "tcp", "80", "--hostname"]        # answers: the task's host name
SERVE_ADDR = [*PROBE, "serve", "tcp", "80"]                 # answers: the client's address
SLEEP = ["sleep", "600"]


# -- waiting and traffic ------------------------------------------------------------------
def live(a, ref: str) -> list[model.Task]:
    return [t for t in a.service_tasks(ref) if t.desired == model.RUNNING]


def running(a, ref: str, n: int, timeout: float = 30) -> list[model.Task]:
    """Until `ref` has exactly n tasks that should run, all running the current spec."""
    def ok():
        key = spec_key(a.service(ref).spec)
        ts = live(a, ref)
        return ts if len(ts) == n and all(t.state == model.RUNNING and t.container_id
                                          and spec_key(t.spec) == key for t in ts) else None
    return wait_for(ok, timeout, f"{n} running tasks of {ref}")


def hostnames(tasks) -> set[str]:
    return {t.container_id[:12] for t in tasks}


def probe_ctr(engine, ctr: str, ip: str, port: int, n: int) -> list[str]:
    """`n` connections from container `ctr` to ip:port: one answer each ("!Error" if none)."""
    _, out = engine.exec_output(ctr, [*PROBE, "probe", "tcp", ip, str(port), "--count", str(n),
                                      "--timeout", "1"])
    return out.split()


def probe_from_node(host, node: str, ip: str, port: int, n: int) -> list[str]:
    """The same from simulated node `node` itself."""
    out: list[bytes] = []
    host.node_exec(node, [*PROBE, "probe", "tcp", ip, str(port), "--count", str(n),
                          "--timeout", "1"], capture=out)
    return [line for line in b"".join(out).decode().splitlines()
            if line and not line.startswith("unreachable")]


def vip_of(sw, ref: str) -> str:
    return sw["a"].service(ref).vips[sw["net"].id].split("/")[0]


def addr_of(sw, t: model.Task) -> str:
    return t.addresses[sw["net"].id].split("/")[0]


def engine_of(sw, t: model.Task):
    return sw[next(k for k, n in sw["names"].items() if n == t.node)]


def spread(answers: list[str], want: set[str], rounds: int) -> bool:
    """Every one of `want` answered `rounds` times, nothing else answered."""
    return set(answers) == want and all(answers.count(w) == rounds for w in want)


# -- fixtures ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sw(host, netkit_dirs):
    with swarm_of_three(host, netkit_dirs, SUBNET, IPS) as (engines, names, lan, cid):
        a = engines["a"]
        net = a.create_network(NetworkSpec("ovl", driver="overlay", attachable=True,
                                           subnets=("10.0.51.0/24",)))
        try:
            client, _ = engines["c"].run(ContainerSpec(name="client", network="ovl", detach=True,
                                                       command=tuple(SLEEP)))
            yield {"host": host, "names": names, "lan": lan, "cid": cid, "net": net,
                   "dirs": netkit_dirs, "client": client, **engines}
        finally:
            remove_services(a)
            if any(c.name == "client" for c in engines["c"].containers(all=True)):
                engines["c"].remove_container("client", force=True)
            a.remove_network(net.id)


def remove_services(a, timeout: float = 30) -> None:
    for svc in a.services():
        a.service_remove(svc.id)
    wait_for(lambda: not a.service_tasks(), timeout, "the runners to remove every task")


@pytest.fixture
def clean(sw):
    """Each test starts and ends with no service and every node active."""
    yield sw
    try:
        for k in IPS:
            sw["a"].node_update(sw["names"][k], availability="active")
    finally:
        remove_services(sw["a"])


def client_ip(sw) -> str:
    return sw["c"].container("client").endpoints[0].ipv4_address


# -- replicas, VIP, tasks. DNS, the routing mesh -----------------------------------------
def test_replicas_spread_vip_dns_and_round_robin(clean, cli):
    sw = clean
    a, names = sw["a"], sw["names"]
    proc = cli("service", "create", "--name", "web", "--replicas", "3", "--network", "ovl",
               "-p", "8080:80", *SERVE, node=names["a"])
    assert proc.stdout.splitlines()[-1] == "verify: Service converged "
    tasks = running(a, "web", 3)
    assert sorted(t.node for t in tasks) == sorted(names.values())       # one per node
    vip = vip_of(sw, "web")
    ns = sw["client"].netns
    assert wait_for(lambda: query(ns, "web") == [vip], 10, "web -> the VIP")
    want = sorted(addr_of(sw, t) for t in tasks)
    assert wait_for(lambda: sorted(query(ns, "tasks.web")) == want, 10, "tasks.web")
    got = wait_for(lambda: (g := probe_ctr(sw["c"], "client", vip, 80, 9)) and
                   spread(g, hostnames(tasks), 3) and g, 15, "the VIP to spread over the tasks")
    assert got[:3] == got[3:6] == got[6:], got                           # round robin
    by_name = probe_ctr(sw["c"], "client", "web", 80, 3)
    assert sorted(by_name) == sorted(hostnames(tasks)), by_name

    # the routing mesh: every node's LAN address answers from every node
    host = sw["host"]
    for k in IPS:
        for ip in IPS.values():
            ans = wait_for(lambda: (g := probe_from_node(host, names[k], ip, 8080, 6)) and
                           set(g) == hostnames(tasks) and g, 15,
                           f"{ip}:8080 from {k} to reach every task")
            assert spread(ans, hostnames(tasks), 2), (k, ip, ans)


def test_dnsrr_names_the_tasks_in_rotation_and_no_vip(clean):
    sw = clean
    a = sw["a"]
    svc = a.service_create(model.ServiceSpec("rr", tuple(SERVE), replicas=3, networks=("ovl",),
                                             endpoint_mode="dnsrr"))
    assert svc.vips == {}
    tasks = running(a, "rr", 3)
    eps = [e for e in a.cluster.store().read().endpoints(network_id=sw["net"].id) if e.node == ""]
    assert eps == []
    ns = sw["client"].netns
    want = sorted(addr_of(sw, t) for t in tasks)
    first = wait_for(lambda: (q := query(ns, "rr")) and sorted(q) == want and q, 10,
                     "rr -> the task addresses")
    second = query(ns, "rr")
    assert sorted(second) == want and second == first[1:] + first[:1]    # rotation
    assert sorted(query(ns, "tasks.rr")) == want
    got = []
    for _ in range(6):                      # each resolution names a task first: all answer
        got += probe_ctr(sw["c"], "client", "rr", 80, 1)
    assert set(got) == hostnames(tasks), got


def test_host_mode_publishes_only_where_a_task_runs(clean):
    sw = clean
    a, names, host = sw["a"], sw["names"], sw["host"]
    a.service_create(model.ServiceSpec(
        "hp", tuple(SERVE), replicas=2,
        ports=(model.PortConfig(9091, 80, mode=model.HOST_MODE),),
        constraints=(f"node.hostname!={names['c']}",)))
    tasks = running(a, "hp", 2)
    assert sorted(t.node for t in tasks) == sorted([names["a"], names["b"]])
    for t in tasks:
        ip = IPS[next(k for k, n in names.items() if n == t.node)]
        for k in IPS:
            wait_for(lambda: probe_from_node(host, names[k], ip, 9091, 1) == [t.container_id[:12]],
                     10, f"{ip}:9091 from {k} to answer with its own task")
    for k in IPS:
        assert probe_from_node(host, names[k], IPS["c"], 9091, 2) == ["!ConnectionRefusedError"] * 2


# -- drain and pause -----------------------------------------------------------------------
def test_drain_moves_tasks_away_pause_keeps_them(clean, cli):
    sw = clean
    a, names = sw["a"], sw["names"]
    a.service_create(model.ServiceSpec("dr", tuple(SERVE), replicas=3, networks=("ovl",),
                                       stop_grace_period=1.0))
    running(a, "dr", 3)
    vip = vip_of(sw, "dr")
    cli("node", "update", "--availability", "drain", names["b"], node=names["a"])
    tasks = wait_for(lambda: (ts := running(a, "dr", 3)) and
                     names["b"] not in {t.node for t in ts} and ts, 30,
                     "the tasks to leave the drained node")
    assert not [t for t in a.service_tasks("dr") if t.node == names["b"]
                and t.state == model.RUNNING]
    wait_for(lambda: spread(probe_ctr(sw["c"], "client", vip, 80, 6), hostnames(tasks), 2), 15,
             "the VIP to reach the moved tasks")
    ls = cli("node", "ls", node=names["a"]).stdout
    assert any(names["b"] in line and "Drain" in line for line in ls.splitlines()), ls

    cli("node", "update", "--availability", "pause", names["c"], node=names["a"])
    before = {t.id for t in tasks}
    a.service_scale({"dr": 4})
    more = running(a, "dr", 4)
    assert {t.id for t in more} >= before                              # kept where they were
    (new,) = [t for t in more if t.id not in before]
    assert new.node == names["a"]                                      # nothing new on b, c
    assert [t.node for t in more].count(names["c"]) == [t.node for t in tasks].count(names["c"])

    for k in ("b", "c"):
        cli("node", "update", "--availability", "active", names[k], node=names["a"])
    a.service_scale({"dr": 6})
    placed = running(a, "dr", 6)
    assert names["b"] in {t.node for t in placed}                      # active again
    wait_for(lambda: set(probe_ctr(sw["c"], "client", vip, 80, 12)) == hostnames(placed), 15,
             "the VIP to reach all six tasks")


# -- rolling updates and rollback ----------------------------------------------------------
class Traffic(threading.Thread):
    """Connections through the VIP from the client, in a loop, until stopped."""

    def __init__(self, sw, vip: str) -> None:
        super().__init__(daemon=True)
        from netkit.engine import Engine
        self.engine = Engine(sw["names"]["c"], root=sw["dirs"][0], run=sw["dirs"][1])
        self.vip, self.answers, self.halt = vip, [], threading.Event()

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                got = probe_ctr(self.engine, "client", self.vip, 80, 5)
                self.answers += got
        finally:
            self.engine.close()

    def stop(self) -> list[str]:
        self.halt.set()
        self.join(30)
        return self.answers


def update_under_traffic(sw, cli, *args: str) -> list[str]:
    """Run `service ARGS` (an update of `up` that replaces its three tasks one by one) under
    traffic through the VIP; the answers, after checking the service stayed reachable.

    A replaced task takes no new connection once it is stopped: its node stops it only
    after every member (the client's node too) acknowledged that its VIP rules dropped it
    (netkit/services/drain.py), so no connection times out on a stopped task. A refused
    connection is tolerated once per new task (three here): a new task is in the table
    from RUNNING, which may come before its server listens (as in Docker without a health
    check)."""
    traffic = Traffic(sw, vip_of(sw, "up"))
    traffic.start()
    try:
        cli("service", *args, node=sw["names"]["a"])
    finally:
        answers = traffic.stop()
    failed = [x for x in answers if x.startswith("!")]
    print(f"service {args[0]}: {len(answers)} connections, {len(failed)} failed")
    assert len(answers) >= 20 and len(failed) <= 3, (len(answers), failed)
    assert set(failed) <= {"!ConnectionRefusedError"}, failed     # none sent to a stopped task
    return [x for x in answers if not x.startswith("!")]


def test_rolling_update_stop_first_start_first_and_rollback(clean, cli):
    sw = clean
    a, names = sw["a"], sw["names"]
    cli("service", "create", "-d", "--name", "up", "--replicas", "3", "--network", "ovl",
        "--update-monitor", "1s", "--stop-grace-period", "2s", *SERVE, node=names["a"])
    old = running(a, "up", 3)
    vip, me = vip_of(sw, "up"), client_ip(sw)
    wait_for(lambda: set(probe_ctr(sw["c"], "client", vip, 80, 6)) == hostnames(old), 15,
             "the VIP to reach the tasks")

    # stop-first: the new tasks answer with the client's address (the new args)
    answers = update_under_traffic(sw, cli, "update", "--args", shlex.join(SERVE_ADDR),
                                   "--update-parallelism", "1", "--update-delay", "0.5s",
                                   "--update-order", "stop-first", "up")
    assert set(answers) <= hostnames(old) | {me} and me in answers    # old and new served
    new = running(a, "up", 3)
    assert not {t.id for t in new} & {t.id for t in old}
    assert all(t.spec.command == tuple(SERVE_ADDR) for t in new)
    assert probe_ctr(sw["c"], "client", vip, 80, 6) == [me] * 6
    assert a.service("up").update_status["state"] == "completed"

    # rollback: the previous args again (host names)
    answers = update_under_traffic(sw, cli, "rollback", "up")
    back = running(a, "up", 3)
    assert all(t.spec.command == tuple(SERVE) for t in back)
    assert a.service("up").update_status["state"] == "rollback_completed"
    assert set(probe_ctr(sw["c"], "client", vip, 80, 6)) == hostnames(back)

    # start-first: the new task runs before the old one stops
    answers = update_under_traffic(sw, cli, "update", "--args", shlex.join(SERVE_ADDR),
                                   "--update-parallelism", "1", "--update-delay", "0.5s",
                                   "--update-order", "start-first", "up")
    assert {x for x in answers} <= hostnames(back) | {me}
    running(a, "up", 3)
    assert probe_ctr(sw["c"], "client", vip, 80, 6) == [me] * 6


def test_failed_update_rolls_back(clean, cli):
    sw = clean
    a, names = sw["a"], sw["names"]
    a.service_create(model.ServiceSpec(
        "fr", tuple(SERVE), replicas=3, networks=("ovl",), stop_grace_period=1.0,
        update=model.UpdateConfig(monitor=1.0), rollback=model.UpdateConfig(monitor=1.0)))
    running(a, "fr", 3)
    cli("service", "update", "-d", "--args", "sh -c 'exit 1'", "--update-failure-action",
        "rollback", "fr", node=names["a"])
    wait_for(lambda: a.service("fr").update_status.get("state") == "rollback_completed", 60,
             "the failed update to roll back")
    svc = a.service("fr")
    assert svc.spec.command == tuple(SERVE)
    assert svc.update_status["message"] == "rollback completed"
    tasks = running(a, "fr", 3)
    assert any(t.state == model.FAILED and t.error == "task: non-zero exit (1)"
               for t in a.service_tasks("fr"))
    wait_for(lambda: set(probe_ctr(sw["c"], "client", vip_of(sw, "fr"), 80, 6))
             == hostnames(tasks), 15, "the VIP to reach the rolled-back tasks")


# -- secrets -------------------------------------------------------------------------------
def test_secret_readable_in_the_task_only(clean, cli):
    sw = clean
    a, names = sw["a"], sw["names"]
    cli("secret", "create", "e2e_pw", "-", input="s3cr3t\n", node=names["a"])
    plain = None
    try:
        cli("service", "create", "-d", "--name", "sec", "--secret", "e2e_pw,target=T,mode=0400",
            *SLEEP, node=names["a"])
        (t,) = running(a, "sec", 1)
        eng = engine_of(sw, t)
        assert eng.exec_output(t.container_id, ["cat", "/run/secrets/T"]) == (0, "s3cr3t\n")
        assert eng.exec_output(t.container_id, ["stat", "-c", "%a", "/run/secrets/T"]) == (0, "400\n")
        plain, _ = eng.run(ContainerSpec(name="plain", detach=True, command=tuple(SLEEP)))
        code, _ = eng.exec_output("plain", ["cat", "/run/secrets/T"])
        assert code != 0
    finally:
        if plain is not None:
            engine_of(sw, t).remove_container("plain", force=True)
        remove_services(a)
        a.secret_remove("e2e_pw")


# -- global mode ---------------------------------------------------------------------------
def test_global_runs_everywhere_including_a_node_that_joins_later(clean, host):
    from netkit.engine import Engine
    from tests.conftest import unique
    sw = clean
    a, names = sw["a"], sw["names"]
    a.service_create(model.ServiceSpec("mon", tuple(SERVE), mode="global", networks=("ovl",),
                                       stop_grace_period=1.0))
    tasks = running(a, "mon", 3)
    assert sorted(t.node for t in tasks) == sorted(names.values())
    assert all(t.slot is None for t in tasks)
    d = unique("d")
    eng = None
    try:
        host.create_node(d, lan=sw["lan"], ip=f"{FOURTH}/24")
        eng = Engine(d, root=sw["dirs"][0], run=sw["dirs"][1])
        eng.swarm_join(names["a"])
        tasks = running(a, "mon", 4, timeout=40)
        assert sorted(t.node for t in tasks) == sorted([*names.values(), d])
        vip = vip_of(sw, "mon")
        wait_for(lambda: set(probe_ctr(sw["c"], "client", vip, 80, 8)) == hostnames(tasks), 15,
                 "the VIP to reach the task on the new node")
        assert sorted(query(sw["client"].netns, "tasks.mon")) == sorted(addr_of(sw, t)
                                                                        for t in tasks)
    finally:
        remove_services(a)
        if eng is not None:
            eng.close()
        if host.host_store.read().node(d) is not None:
            host.remove_node(d, force=True)


# -- restarts ------------------------------------------------------------------------------
def test_exited_task_replaced_per_restart_condition(clean, cli):
    sw = clean
    a, names = sw["a"], sw["names"]
    cli("service", "create", "-d", "--name", "crash", "--restart-condition", "on-failure",
        "--restart-max-attempts", "2", "--restart-delay", "0.2s",
        "sh", "-c", "sleep 0.5; exit 3", node=names["a"])
    wait_for(lambda: len(ts := a.service_tasks("crash")) == 3 and
             all(t.state == model.FAILED for t in ts), 40, "two restarts, then no more")
    time.sleep(1)                        # no fourth: max attempts reached (nothing to poll for)
    assert len(a.service_tasks("crash")) == 3
    rows = cli("service", "ps", "--format", "{{.Name}}|{{.DesiredState}}|{{.Error}}", "crash",
               node=names["a"]).stdout.splitlines()
    assert rows[0].startswith("crash.1|")
    assert [r.split("|")[0] for r in rows] == ["crash.1", " \\_ crash.1", " \\_ crash.1"]
    assert all(r.endswith('|Shutdown|"task: non-zero exit (3)"') for r in rows), rows

    # condition any: a task that ends well is replaced too, and serves again
    cli("service", "create", "-d", "--name", "again", "--network", "ovl",
        "--restart-condition", "any", "--restart-delay", "0.2s",
        "sh", "-c", f"timeout 3 {shlex.join(SERVE)}; exit 0", node=names["a"])
    first = running(a, "again", 1)[0]
    vip = vip_of(sw, "again")
    wait_for(lambda: probe_ctr(sw["c"], "client", vip, 80, 1) == [first.container_id[:12]], 10,
             "the first task to answer")
    second = wait_for(lambda: (ts := [t for t in live(a, "again") if t.id != first.id
                                      and t.state == model.RUNNING]) and ts[0], 30,
                      "a replacement of the task that ended")
    wait_for(lambda: probe_ctr(sw["c"], "client", vip, 80, 1) == [second.container_id[:12]], 10,
             "the replacement to answer")
    done = next(t for t in a.service_tasks("again") if t.id == first.id)
    assert done.state == model.COMPLETE and done.desired == model.SHUTDOWN


# -- bad input -----------------------------------------------------------------------------
def test_bad_input(clean, cli):
    sw = clean
    a, names = sw["a"], sw["names"]
    cli("service", "create", "-d", "--name", "nowhere", "--constraint", "node.labels.zone==mars",
        *SLEEP, node=names["a"])
    (t,) = live(a, "nowhere")
    assert t.state == model.PENDING
    ps = cli("service", "ps", "--no-trunc", "--format", "{{.CurrentState}}|{{.Error}}", "nowhere",
             node=names["a"]).stdout
    state, error = ps.strip().split("|")
    assert state.startswith("Pending")
    assert error == '"no suitable node (scheduling constraints not satisfied on 3 nodes)"'
    for args in (("inspect", "nosuch"), ("ps", "nosuch"), ("rm", "nosuch"),
                 ("scale", "nosuch=2"), ("update", "--replicas", "2", "nosuch")):
        proc = cli("service", *args, node=names["a"], check=False)
        assert proc.returncode == 1 and proc.stderr == "Error: no such service: nosuch\n", \
            (args, proc.stderr)
    proc = cli("service", "create", "-d", "--name", "nowhere", *SLEEP, node=names["a"],
               check=False)
    assert proc.returncode == 1
    assert proc.stderr == ("Error: rpc error: code = AlreadyExists desc = name conflicts with an "
                           "existing object: service nowhere already exists\n"), proc.stderr
    proc = cli("service", "create", "-d", "--mode", "global", "--replicas", "2", *SLEEP,
               node=names["a"], check=False)
    assert proc.returncode == 1 and proc.stderr == f"Error: {REPLICAS_GLOBAL}\n"
    assert [s.name for s in a.services()] == ["nowhere"]
    with pytest.raises(NotFound):
        a.service("nosuch")
