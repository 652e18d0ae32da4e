"""Service VIPs and service DNS across three simulated nodes, with real traffic.

A swarm of three nodes (a manager; b, c workers) on the embedded store, an
attachable overlay and a client container on node c. The services are made
through the service API (`Engine.service_create / service_scale /
service_remove`); the acting manager's reconciler and the node runners run
their tasks, and every node's agent programs its containers' VIP table
(netkit/services/lb.py, kernel/vipnat.py). `web`'s tasks run on a and b only
(constraint node.hostname!=c: every connection from the client crosses the
overlay) and answer with their host name (a task's default host name is its
container id[:12]) on TCP 80 and on UDP 8080 (any port goes through a VIP).
Their pid 1 is a shell, which ignores SIGTERM: a task told to stop keeps
serving until every node acked its retirement, then for its stop grace
period, long enough to check it takes no new connections through the VIP
meanwhile.

test_swarm_e2e.py covers the basic round robin from the client's node and DNS
from the client; this module covers the VIP's own behaviours.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys
import time

import pytest
from dnslib import DNSRecord

from netkit.kernel import netns, vipnat
from netkit.services import model
from netkit.specs import ContainerSpec, NetworkSpec
from tests.kernel.helpers import PROBE, swarm_of_three

pytestmark = pytest.mark.root
IPS = {"a": "192.168.78.10", "b": "192.168.78.11", "c": "192.168.78.12"}
NET = "svcnet"
P = shlex.join(PROBE)
SERVE = ("sh", "-c", f"{P} serve udp 8080 --hostname & {P} serve tcp 80 --hostname & wait")
GRACE = 4.0            # s a stopping task keeps serving (its pid 1, sh, ignores SIGTERM)

# n connections (tcp) or datagrams from new sockets (udp): the names that answered, or
# "!Error:seconds" for one that failed (the time it took to fail)
CLIENT = """
import json, socket, sys, time
ip, port, n, proto = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
out = []
for _ in range(n):
    t = time.monotonic()
    try:
        if proto == "tcp":
            with socket.create_connection((ip, port), timeout=3) as c:
                c.sendall(b"?")
                out.append(c.recv(100).decode().strip())
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.settimeout(3)
                u.connect((ip, port))
                u.send(b"?")
                out.append(u.recv(100).decode().strip())
    except OSError as exc:
        out.append(f"!{type(exc).__name__}:{time.monotonic() - t:.3f}")
print(json.dumps(out))
"""


def query(ns: str, name: str) -> list[str]:
    """The A answers of one UDP query to 127.0.0.11 from inside netns `ns`."""
    q = DNSRecord.question(name, "A")
    with netns.socket_in(ns, socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.connect(("127.0.0.11", 53))
        s.send(bytes(q.pack()))
        reply = DNSRecord.parse(s.recv(4096))
    return [str(rr.rdata) for rr in reply.rr]


def connect(engine, ctr: str, ip: str, port: int = 80, n: int = 1, proto: str = "tcp"
            ) -> list[str]:
    code, out = engine.exec_output(ctr, [sys.executable, "-c", CLIENT, ip, str(port), str(n),
                                         proto], timeout=60)
    assert code == 0, out
    return json.loads(out)


def wait_for(what, cond, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while not (got := cond()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)
    return got


# -- the swarm, the overlay, the client, the service ---------------------------------------
def remove_services(a) -> None:
    for svc in a.services():
        a.service_remove(svc.id)
    wait_for("the runners to remove every task", lambda: not a.service_tasks(), 30)


@pytest.fixture(scope="module")
def sw(host, netkit_dirs):
    with swarm_of_three(host, netkit_dirs, "192.168.78.0/24", IPS) as (engines, names, lan, cid):
        a = engines["a"]
        net = a.create_network(NetworkSpec(NET, driver="overlay", attachable=True,
                                           subnets=("10.0.29.0/24",)))
        try:
            client, _ = engines["c"].run(ContainerSpec(name="client", network=NET, detach=True,
                                                       command=("sleep", "600")))
            yield {"names": names, "net": net, "client": client, **engines}
        finally:
            try:
                remove_services(a)
            finally:
                if any(c.name == "client" for c in engines["c"].containers(all=True)):
                    engines["c"].remove_container("client", force=True)
                a.remove_network(net.id)


def live(sw, ref: str = "web") -> list[model.Task]:
    return [t for t in sw["a"].service_tasks(ref) if t.desired == model.RUNNING]


def running(sw, n: int, ref: str = "web") -> list[model.Task]:
    """Until `ref` has exactly n tasks that should run, all running; those."""
    return wait_for(f"{n} running tasks of {ref}", lambda: (ts := live(sw, ref)) and len(ts) == n
                    and all(t.state == model.RUNNING and t.container_id for t in ts) and ts, 30)


@pytest.fixture(scope="module")
def web(sw):
    sw["a"].service_create(model.ServiceSpec(
        "web", SERVE, replicas=3, networks=(NET,), stop_grace_period=GRACE,
        constraints=(f"node.hostname!={sw['names']['c']}",)))
    return running(sw, 3)


def vip(sw, ref: str = "web") -> str:
    return sw["a"].service(ref).vips[sw["net"].id].split("/")[0]


def addr(sw, t: model.Task) -> str:
    return t.addresses[sw["net"].id].split("/")[0]


def name(t: model.Task) -> str:
    return t.container_id[:12]


def engine_of(sw, t: model.Task):
    return sw[next(k for k, n in sw["names"].items() if n == t.node)]


def table_has(sw, tasks: list[model.Task], ref: str = "web") -> None:
    """Until the client's VIP table DNATs `ref`'s VIP to exactly these tasks' addresses
    (none: rejects)."""
    ip = vip(sw, ref)

    def ok() -> bool:
        text = vipnat.current(sw["client"].netns) or ""
        want = sorted((addr(sw, t) for t in tasks), key=lambda a: int(a.split(".")[-1]))
        if not want:
            return f"ip daddr {ip} reject" in text
        if f"ip daddr {ip} meta l4proto {{ tcp, udp }} dnat to" not in text:
            return False
        line = text.split(f"ip daddr {ip} ")[1].splitlines()[0].rstrip()
        if len(want) == 1:
            return line.endswith(want[0])
        return line.endswith("{ " + ", ".join(f"{i} : {a}" for i, a in enumerate(want)) + " }")
    wait_for(f"the client's VIP table -> {[name(t) for t in tasks]}", ok)


# -- DNS ------------------------------------------------------------------------------
def test_service_name_is_the_vip_on_every_node(sw, web):
    assert {t.node for t in web} == {sw["names"]["a"], sw["names"]["b"]}
    for eng, ctr in [(engine_of(sw, t), t.container_id) for t in web] + [(sw["c"], "client")]:
        ns = eng.container(ctr).netns
        wait_for(f"web from {ctr}", lambda: query(ns, "web") == [vip(sw)])
    # tasks.web from a task's own netns on a, in rotation
    want = sorted(addr(sw, t) for t in web)
    ns = engine_of(sw, web[0]).container(web[0].container_id).netns
    first = wait_for("tasks.web", lambda: (q := query(ns, "tasks.web")) and sorted(q) == want and q)
    assert query(ns, "tasks.web") == first[1:] + first[:1]


# -- the VIP --------------------------------------------------------------------------
def test_connections_spread_round_robin_over_tasks_on_other_nodes(sw, web):
    table_has(sw, web)
    got = connect(sw["c"], "client", vip(sw), 80, 6)
    assert sorted(got) == sorted([name(t) for t in web] * 2), got
    assert got[:3] == got[3:], got                                        # strict rotation
    udp = connect(sw["c"], "client", vip(sw), 8080, 6, "udp")             # udp, another port
    assert sorted(udp) == sorted([name(t) for t in web] * 2), udp
    assert udp[:3] == udp[3:], udp


def test_a_task_leaving_takes_no_new_connections_while_it_runs(sw, web):
    sw["a"].service_scale({"web": 2})
    stay = running(sw, 2)
    (gone,) = [t for t in web if t.id not in {t.id for t in stay}]
    table_has(sw, stay)
    got = connect(sw["c"], "client", vip(sw), 80, 6)
    assert sorted(got) == sorted([name(t) for t in stay] * 3), got
    # the leaving task still serves (its stop waits out GRACE): the VIP alone left it out
    t = next(t for t in sw["a"].service_tasks("web") if t.id == gone.id)
    assert t.desired != model.RUNNING
    assert engine_of(sw, gone).container(gone.container_id).running
    assert connect(sw["c"], "client", addr(sw, gone)) == [name(gone)]


def test_a_new_running_task_joins(sw, web):
    before = {t.id for t in live(sw)}
    sw["a"].service_scale({"web": 3})
    now = running(sw, 3)
    assert len({t.id for t in now} - before) == 1
    table_has(sw, now)
    got = connect(sw["c"], "client", vip(sw), 80, 6)
    assert sorted(got) == sorted([name(t) for t in now] * 2), got
    # seen from a task's own netns too: it balances over every task, itself included
    t0 = now[0]
    got = wait_for("the VIP from a task's netns", lambda: sorted(
        connect(engine_of(sw, t0), t0.container_id, vip(sw), 80, 3)) == sorted(map(name, now)))
    assert got


def test_no_backend_refused_at_once(sw, web):
    """A service whose only task no node may run: a VIP with no backend refuses at once."""
    sw["a"].service_create(model.ServiceSpec("none", SERVE, networks=(NET,),
                                             constraints=("node.hostname==nowhere",)))
    (t,) = live(sw, "none")
    assert t.state == model.PENDING
    table_has(sw, [], "none")
    for port in (80, 9999):
        (got,) = connect(sw["c"], "client", vip(sw, "none"), port)
        error, seconds = got.split(":")
        assert error == "!ConnectionRefusedError" and float(seconds) < 0.5, got
    sw["a"].service_remove("none")
    wait_for("the pending task gone", lambda: not [x for x in sw["a"].service_tasks()
                                                   if x.service_id == t.service_id])


def test_agent_restart_reprograms(sw, web):
    """A table lost while the agent was away (here: deleted by hand) is back after the
    agent starts again (its first step rewrites every container's table)."""
    from netkit.agent import client
    engine, ns = sw["c"], sw["client"].netns
    now = running(sw, 3)
    table_has(sw, now)
    pid = client.pid(engine.paths.run)
    os.kill(pid, 9)
    wait_for("agent gone", lambda: client.pid(engine.paths.run) is None)
    vipnat.remove(ns)
    assert vipnat.current(ns) is None
    engine.cluster.ensure_agent(poke=True)
    assert client.pid(engine.paths.run) not in (None, pid)
    table_has(sw, now)
    assert sorted(connect(engine, "client", vip(sw), 80, 3)) == sorted(map(name, now))
