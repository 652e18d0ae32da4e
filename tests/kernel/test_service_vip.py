"""Service VIPs and service DNS across three simulated nodes, with real traffic.

A swarm of three nodes (a manager; b, c workers) on the embedded store, an
attachable overlay. The manager and runner are other parts of the work, so
this module writes what they would: ordinary containers stand in for a
service's tasks (TCP and UDP servers that answer with their own name, alias
`tasks.web`), a `Service` with a VIP held in the cluster IPAM and published
as a cluster endpoint of node "", and `Task` objects (running, the
containers' addresses). Every node's agent then programs its containers'
VIP table (netkit/services/lb.py); a client container on node c checks
names and connections.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time

import pytest
from dnslib import DNSRecord

from netkit.kernel import netns, vipnat
from netkit.services.model import (RUNNING, SERVICE, SHUTDOWN, TASK, Service, ServiceSpec, Task,
                                   new_object_id, put_service, put_task)
from netkit.specs import ContainerSpec, NetworkSpec
from netkit.store.cluster import ClusterEndpoint
from tests.kernel.helpers import swarm_of_three, wait_converged

pytestmark = pytest.mark.root
IPS = {"a": "192.168.78.10", "b": "192.168.78.11", "c": "192.168.78.12"}
NET = "svcnet"

# a task stand-in: answers every TCP connection and UDP datagram on each port with its name
SERVER = """
import selectors, signal, socket, sys
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
name, sel = sys.argv[1].encode(), selectors.DefaultSelector()
for port in map(int, sys.argv[2:]):
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET, kind)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        if kind == socket.SOCK_STREAM:
            s.listen(128)
        sel.register(s, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        s = key.fileobj
        if s.type == socket.SOCK_DGRAM:
            _, peer = s.recvfrom(100)
            s.sendto(name, peer)
        else:
            c, _ = s.accept()
            c.sendall(name)
            c.close()
"""
# n connections (tcp) or datagrams from new sockets (udp): the names that answered, or
# "!Error:seconds" for one that failed
CLIENT = """
import json, socket, sys, time
ip, port, n, proto = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
out = []
for _ in range(n):
    t = time.monotonic()
    try:
        if proto == "tcp":
            with socket.create_connection((ip, port), timeout=3) as c:
                out.append(c.recv(100).decode())
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.settimeout(3)
                u.connect((ip, port))
                u.send(b"?")
                out.append(u.recv(100).decode())
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


def wait_for(what, cond, timeout: float = 8.0):
    deadline = time.monotonic() + timeout
    while not (got := cond()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)
    return got


@pytest.fixture(scope="module")
def sw(host, netkit_dirs):
    with swarm_of_three(host, netkit_dirs, "192.168.78.0/24", IPS) as (engines, names, lan, cid):
        yield {"names": names, **engines}


class World:
    """The overlay, the stand-in tasks, the client, the service and its VIP."""

    def __init__(self, sw) -> None:
        self.sw = sw
        self.cluster = sw["a"].cluster.store()
        self.net = sw["a"].create_network(NetworkSpec(NET, driver="overlay", attachable=True,
                                                      subnets=("10.0.29.0/24",)))
        self.sid = new_object_id()
        self.tasks: dict[str, Task] = {}         # container name -> its task
        self.where: dict[str, str] = {}          # container name -> node key
        self.vip = ""

    def run(self, k: str, name: str, server: bool = True):
        cmd = (sys.executable, "-c", SERVER, name, "80", "8080") if server else ("sleep", "600")
        ctr, _ = self.sw[k].run(ContainerSpec(name=name, network=NET, detach=True, command=cmd,
                                              aliases=("tasks.web",) if server else ()))
        self.where[name] = k
        return ctr

    def create_service(self) -> None:
        from netkit.ipam import allocate
        with self.cluster.transaction() as c:
            net = c.network(self.net.id)
            self.vip = allocate(c, net, 4, None, f"vip:{self.sid}", hints=False)
            put_service(c, Service(self.sid, ServiceSpec("web", ("x",), networks=(self.net.id,)),
                                   vips={self.net.id: self.vip}))
            c.publish_endpoint(ClusterEndpoint(
                f"vip-{self.net.id[:12]}-{self.sid}", self.net.id, "", self.sid, "web",
                self.vip, None, "", "", ("web",)))

    def add_task(self, ctr, slot: int) -> Task:
        t = Task(new_object_id(), self.sid, "web", slot, node=self.sw["names"][self.where[ctr.name]],
                 state=RUNNING, desired=RUNNING, container_id=ctr.id,
                 addresses={self.net.id: ctr.endpoints[0].ipv4})
        self.put(t)
        return t

    def put(self, t: Task) -> None:
        with self.cluster.transaction() as c:
            put_task(c, t)
        self.tasks[next(n for n in self.where if self.sw[self.where[n]].container(n).id
                        == t.container_id)] = t

    def remove(self) -> None:
        with self.cluster.transaction() as c:
            for t in self.tasks.values():
                c.delete_object(TASK, t.id)
            c.delete_object(SERVICE, self.sid)
            c.withdraw_endpoint(f"vip-{self.net.id[:12]}-{self.sid}")
            if self.vip:
                self.sw["a"].cluster.release_addresses(c, self.net.id, self.vip)
        for name, k in self.where.items():
            if any(x.name == name for x in self.sw[k].containers(all=True)):
                self.sw[k].remove_container(name, force=True)
        self.sw["a"].remove_network(NET)


@pytest.fixture(scope="module")
def world(sw):
    w = World(sw)
    try:
        for k, name in (("a", "w1"), ("b", "w2"), ("a", "w3")):
            w.run(k, name)
        w.client = w.run("c", "client", server=False)
        w.create_service()
        for slot, name in enumerate(("w1", "w2", "w3"), 1):
            w.add_task(sw[w.where[name]].container(name), slot)
        wait_converged(sw[k] for k in IPS)
        yield w
    finally:
        w.remove()


def vip_ip(w) -> str:
    return w.vip.split("/")[0]


def ip_of(w, name: str) -> str:
    return w.sw[w.where[name]].container(name).endpoints[0].ipv4_address


def table_has(w, names: list[str]):
    """Until the client's VIP table DNATs to exactly these containers' addresses."""
    def ok() -> bool:
        text = vipnat.current(w.client.netns) or ""
        want = sorted((ip_of(w, n) for n in names), key=lambda a: int(a.split(".")[-1]))
        if not want:
            return f"ip daddr {vip_ip(w)} reject" in text
        target = want[0] if len(want) == 1 else ", ".join(f"{i} : {a}" for i, a in enumerate(want))
        return f"ip daddr {vip_ip(w)} meta l4proto {{ tcp, udp }} dnat to" in text and \
            text.split(f"ip daddr {vip_ip(w)} ")[1].splitlines()[0].rstrip().endswith(
                target if len(want) == 1 else f"{{ {target} }}")
    wait_for(f"the client's VIP table -> {names}", ok)


# -- DNS ------------------------------------------------------------------------------
def test_service_name_is_the_vip_on_every_node(world):
    for name, k in (("w1", "a"), ("w2", "b"), ("client", "c")):
        ns = world.sw[k].container(name).netns
        assert wait_for(f"web from {name}", lambda: query(ns, "web") == [vip_ip(world)]), k


def test_tasks_name_answers_every_task_in_rotation(world):
    tasks = sorted(ip_of(world, n) for n in ("w1", "w2", "w3"))
    ns = world.client.netns
    wait_for("tasks.web", lambda: sorted(query(ns, "tasks.web")) == tasks)
    a, b = query(ns, "tasks.web"), query(ns, "tasks.web")
    assert sorted(a) == tasks and b == a[1:] + a[:1]
    ns_a = world.sw["a"].container("w1").netns
    assert sorted(query(ns_a, "tasks.web")) == tasks


# -- the VIP --------------------------------------------------------------------------
def test_connections_spread_round_robin_over_all_tasks(world):
    table_has(world, ["w1", "w2", "w3"])
    got = connect(world.sw["c"], "client", vip_ip(world), 80, 9)
    assert sorted(got) == sorted(["w1", "w2", "w3"] * 3), got
    assert got[:3] == got[3:6] == got[6:], got          # strict rotation
    other = connect(world.sw["c"], "client", vip_ip(world), 8080, 3)   # any port
    assert sorted(other) == ["w1", "w2", "w3"]
    udp = connect(world.sw["c"], "client", vip_ip(world), 8080, 6, "udp")
    assert sorted(udp) == sorted(["w1", "w2", "w3"] * 2), udp
    # by name, as a client would
    assert sorted(connect(world.sw["c"], "client", "web", 80, 3)) == ["w1", "w2", "w3"]


def test_a_task_leaving_takes_no_new_connections_while_it_runs(world):
    from dataclasses import replace
    world.put(replace(world.tasks["w3"], desired=SHUTDOWN))
    table_has(world, ["w1", "w2"])
    got = connect(world.sw["c"], "client", vip_ip(world), 80, 6)
    assert sorted(got) == ["w1", "w1", "w1", "w2", "w2", "w2"], got
    assert world.sw["a"].container("w3").running
    assert connect(world.sw["c"], "client", ip_of(world, "w3")) == ["w3"]   # still serving


def test_a_new_running_task_joins(world):
    w4 = world.run("c", "w4")
    t = world.add_task(w4, 4)
    table_has(world, ["w1", "w2", "w4"])
    got = connect(world.sw["c"], "client", vip_ip(world), 80, 6)
    assert sorted(got) == sorted(["w1", "w2", "w4"] * 2), got
    # seen from a node with no client of its own, too: w1 on a reaches w4 on c through the VIP
    assert sorted(connect(world.sw["a"], "w1", vip_ip(world), 80, 3)) == ["w1", "w2", "w4"]
    assert t.state == RUNNING


def test_no_backend_refused_at_once(world):
    from dataclasses import replace
    for name in ("w1", "w2", "w4"):
        world.put(replace(world.tasks[name], desired=SHUTDOWN))
    table_has(world, [])
    for port in (80, 9999):
        (got,) = connect(world.sw["c"], "client", vip_ip(world), port)
        error, seconds = got.split(":")
        assert error == "!ConnectionRefusedError" and float(seconds) < 0.5, got
    # back: one task running again
    world.put(replace(world.tasks["w2"], desired=RUNNING))
    table_has(world, ["w2"])
    assert connect(world.sw["c"], "client", vip_ip(world), 80, 2) == ["w2", "w2"]


def test_agent_restart_reprograms(world):
    """A table lost while the agent was away (here: deleted by hand) is back after the
    agent starts again (its first step rewrites every container's table)."""
    from netkit.agent import client
    engine = world.sw["c"]
    pid = client.pid(engine.paths.run)
    os.kill(pid, 9)
    wait_for("agent gone", lambda: client.pid(engine.paths.run) is None)
    vipnat.remove(world.client.netns)
    assert vipnat.current(world.client.netns) is None
    engine.cluster.ensure_agent(poke=True)
    assert client.pid(engine.paths.run) not in (None, pid)
    table_has(world, ["w2"])
    assert connect(engine, "client", vip_ip(world), 80, 1) == ["w2"]
