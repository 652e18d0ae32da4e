"""The node agent's cluster sync: each swarm node's agent programs its own node.

Three simulated nodes on one LAN in a swarm (a manager; b, c workers) and an
attachable overlay. A change committed on one node reaches the others
through their node agents (netkit/agent/README.md), which poll the cluster
store and push the other nodes' names to their node's resolver: the acting
command programs only its own node and pokes the others. Names are
cluster-wide: a container on b resolves one on a by name, alias and
`name.network`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import pytest
from dnslib import DNSRecord

from netkit.agent import client as agent_client
from netkit.dns import daemon
from netkit.kernel import netns
from netkit.specs import ContainerSpec, NetworkSpec
from tests.kernel.helpers import swarm_of_three
from tests.kernel.test_overlay import wait_converged

pytestmark = pytest.mark.root
IPS = {"a": "192.168.78.10", "b": "192.168.78.11", "c": "192.168.78.12"}
SLEEP = ["sleep", "600"]
NET = "agov"


@pytest.fixture(scope="module")
def sw(host, netkit_dirs):
    root, run = netkit_dirs
    with swarm_of_three(host, netkit_dirs, "192.168.78.0/24", IPS) as (engines, names, lan, cid):
        engines["a"].create_network(NetworkSpec(NET, driver="overlay", subnets=("10.0.19.0/24",),
                                                attachable=True))
        yield {"host": host, "names": names, "root": root, "run": run, **engines}


@pytest.fixture(scope="module")
def peers(sw):
    """A container on b and one on c: the places names and pings are tried from."""
    out = {k: sw[k].run(ContainerSpec(name=f"p{k}", network=NET, detach=True, command=SLEEP))[0]
           for k in ("b", "c")}
    converge(sw)
    yield out
    for k in ("b", "c"):
        if any(c.name == f"p{k}" for c in sw[k].containers(all=True)):
            sw[k].remove_container(f"p{k}", force=True)


def converge(sw, keys=tuple(IPS)) -> None:
    wait_converged([sw[k] for k in keys])


def agent_pid(sw, k: str) -> int | None:
    return agent_client.pid(sw[k].paths.run)


def fdb(sw, k: str) -> str:
    return subprocess.run(["bridge", "-n", sw[k].node.netns, "fdb", "show", "dev", "vx-001001"],
                          capture_output=True, text=True).stdout


def neigh(sw, k: str) -> str:
    return subprocess.run(["ip", "-n", sw[k].node.netns, "neigh", "show", "dev", "vx-001001"],
                          capture_output=True, text=True).stdout


def query(ns: str, name: str, timeout: float = 2.0) -> list[str]:
    """A answers of one query to 127.0.0.11 from inside netns `ns` ([] for none/failure).

    While no resolver listens, a query gets no answer (the redirect of 127.0.0.11:53 points
    at the resolver's port, and the port-unreachable error names that port, not 53): give
    calls that wait for a restarted resolver a short `timeout`."""
    q = DNSRecord.question(name, "A")
    with netns.socket_in(ns, socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect(("127.0.0.11", 53))
        s.send(bytes(q.pack()))
        try:
            reply = DNSRecord.parse(s.recv(4096))
        except (ConnectionRefusedError, TimeoutError):         # no resolver listens (yet)
            return []
    return sorted(str(rr.rdata) for rr in reply.rr)


def ctr_ns(sw, k: str, name: str) -> str:
    return sw[k].container(name).netns


def ping(engine, ctr: str, target: str) -> bool:
    return engine.exec_output(ctr, ["ping", "-c", "1", "-W", "1", "-q", target])[0] == 0


def until(fn, timeout: float = 5.0, step: float = 0.005) -> float:
    """Seconds until fn() is true (fails after `timeout`)."""
    t0 = time.monotonic()
    while not fn():
        assert time.monotonic() - t0 < timeout, f"not true after {timeout} s: {fn}"
        time.sleep(step)
    return time.monotonic() - t0


def test_agents_run_on_every_member_without_sandboxes(sw):
    converge(sw)
    agents = sw["host"].swarm_agents()
    for k in IPS:
        st = agent_client.status(sw[k].paths.run)
        assert st["running"] and st["applied"] is not None
        assert agents[sw["names"][k]] == f"running (pid {st['pid']})"
        assert not daemon.status(sw[k].paths.run)["running"]     # no sandbox: no resolver
    assert [sw[k].system_check() for k in IPS] == [[], [], []]


def test_run_on_a_is_reachable_by_name_from_b_and_c(sw, peers, capsys):
    t0 = time.monotonic()
    x = sw["a"].run(ContainerSpec(name="x1", network=NET, aliases=("web",), hostname="xhost",
                                  detach=True, command=SLEEP))[0]
    t1 = time.monotonic()
    returned = t1 - t0
    ip4 = x.endpoints[0].ipv4_address
    timings = {}
    for k in ("b", "c"):                  # times counted from the return of run on a
        ns = ctr_ns(sw, k, f"p{k}")
        until(lambda: query(ns, "x1") == [ip4])
        timings[f"resolvable on {k}"] = time.monotonic() - t1
        until(lambda: ping(sw[k], f"p{k}", ip4), step=0)
        timings[f"reachable on {k}"] = time.monotonic() - t1
        assert query(ns, "web") == [ip4] and query(ns, f"x1.{NET}") == [ip4]
        assert query(ns, x.id[:12]) == [ip4] and query(ns, "xhost") == [ip4]   # short id, hostname
        code, out = sw[k].exec_output(f"p{k}", ["getent", "hosts", "x1"])
        assert code == 0 and out.split()[0] == ip4
        assert ping(sw[k], f"p{k}", "web")
    # and back: a resolves b's container (the agent on a serves the others' names)
    assert query(ctr_ns(sw, "a", "x1"), "pb") == [peers["b"].endpoints[0].ipv4_address]
    with capsys.disabled():
        print(f"\n  run on a returned in {returned * 1000:.0f} ms; since then: " +
              ", ".join(f"{what} at {t * 1000:.0f} ms" for what, t in timings.items()))
    sw["a"].remove_container("x1", force=True)


def test_polling_alone_converges(sw, peers, monkeypatch, capsys):
    """Without the poke, the agents' 50 ms poll of the cluster version finds the change."""
    monkeypatch.setattr(agent_client, "poke", lambda run_dir, timeout=0.5: False)
    converge(sw)
    t0 = time.monotonic()
    x = sw["a"].run(ContainerSpec(name="x2", network=NET, detach=True, command=SLEEP))[0]
    returned = time.monotonic() - t0
    ip4 = x.endpoints[0].ipv4_address
    took = until(lambda: query(ctr_ns(sw, "b", "pb"), "x2") == [ip4], timeout=2)
    with capsys.disabled():
        print(f"\n  no poke: run on a returned in {returned * 1000:.0f} ms; "
              f"resolvable on b {took * 1000:.0f} ms later")
    sw["a"].remove_container("x2", force=True)
    converge(sw)


def test_the_agent_answers_while_it_syncs(sw, peers):
    """b's sync waits for b's store (the test holds its write lock, as a long action would):
    b's agent still answers at once, and applies the change once the lock is free."""
    import sqlite3
    converge(sw)
    run_b = sw["b"].paths.run
    before = agent_client.status(run_b)["applied"]
    db = sqlite3.connect(sw["b"].paths.db, timeout=5, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    try:
        sw["a"].run(ContainerSpec(name="s1", network=NET, detach=True, command=SLEEP))
        time.sleep(0.2)                                   # b was poked: its sync is waiting
        t0 = time.monotonic()
        st = agent_client.status(run_b)
        took = time.monotonic() - t0
        assert st["running"] and st["applied"] == before and took < 0.15, (st, took)
    finally:
        db.execute("ROLLBACK")
        db.close()
    converge(sw)
    assert query(ctr_ns(sw, "b", "pb"), "s1") == [sw["a"].container("s1").endpoints[0].ipv4_address]
    sw["a"].remove_container("s1", force=True)
    converge(sw)


def test_acting_command_does_not_touch_other_nodes(sw, peers, cli):
    """b's agent stopped (SIGSTOP): a change made on a reaches b only when it runs again."""
    converge(sw)                                      # x1's removal is done everywhere
    pid = agent_pid(sw, "b")
    assert pid is not None
    before = fdb(sw, "b"), neigh(sw, "b")
    os.kill(pid, signal.SIGSTOP)
    try:
        cli("run", "-d", "--name", "y1", "--network", NET, "sleep", "600", node=sw["names"]["a"])
        y = sw["a"].container("y1")
        mac, ip4 = y.endpoints[0].mac, y.endpoints[0].ipv4_address
        converge(sw, ("a", "c"))
        assert mac in fdb(sw, "c") and ip4 in neigh(sw, "c")
        time.sleep(0.5)                               # b's agent would have polled 10 times
        assert mac not in fdb(sw, "b") and f"{ip4} " not in neigh(sw, "b")
        assert (fdb(sw, "b"), neigh(sw, "b")) == before
    finally:
        os.kill(pid, signal.SIGCONT)
    converge(sw)
    assert mac in fdb(sw, "b") and f"{ip4} " in neigh(sw, "b")
    assert query(ctr_ns(sw, "b", "pb"), "y1") == [ip4]
    with open(agent_client.path(sw["b"].paths.run, "agent.log")) as f:
        assert "cluster version" in f.read()


def test_removed_container_disappears_everywhere(sw, peers):
    y = sw["a"].container("y1")
    mac, ip4 = y.endpoints[0].mac, y.endpoints[0].ipv4_address
    converge(sw)
    sw["a"].remove_container("y1", force=True)
    converge(sw)
    for k in IPS:
        assert mac not in fdb(sw, k) and f"{ip4} " not in neigh(sw, k), k
    for k in ("b", "c"):
        assert query(ctr_ns(sw, k, f"p{k}"), "y1") == []


def test_a_new_resolver_gets_the_other_nodes_names_at_once(sw, peers):
    """Killed or stopped: while there are other nodes' names the agent starts the resolver
    again and pushes them within a second, with no cluster change; an action finds it."""
    x = sw["a"].run(ContainerSpec(name="w1", network=NET, detach=True, command=SLEEP))[0]
    ip4 = x.endpoints[0].ipv4_address
    try:
        converge(sw)
        old = daemon._pid(sw["c"].paths.run)
        os.kill(old, signal.SIGKILL)
        took = until(lambda: daemon._pid(sw["c"].paths.run) not in (None, old), 1.0)
        took += until(lambda: query(ctr_ns(sw, "c", "pc"), "w1", 0.1) == [ip4], 1.0)
        assert took < 1.0
        daemon.stop(sw["b"].paths.run)                   # not a crash: no heal, but names
        assert until(lambda: query(ctr_ns(sw, "b", "pb"), "w1", 0.1) == [ip4], 1.0) < 1.0
        pid = daemon._pid(sw["b"].paths.run)
        q = sw["b"].run(ContainerSpec(name="q1", network=NET, detach=True, command=SLEEP))[0]
        assert daemon._pid(sw["b"].paths.run) == pid and query(q.netns, "w1") == [ip4]
        sw["b"].remove_container("q1", force=True)
    finally:
        sw["a"].remove_container("w1", force=True)
        converge(sw)


def test_killed_agent_is_reported_restarted_and_catches_up(sw, peers):
    pid = agent_pid(sw, "c")
    os.kill(pid, signal.SIGKILL)
    until(lambda: agent_pid(sw, "c") is None)
    assert any(line.startswith("node agent: not running") for line in sw["c"].system_check())
    assert sw["host"].swarm_agents()[sw["names"]["c"]] == "stopped"
    z = sw["a"].run(ContainerSpec(name="z1", network=NET, detach=True, command=SLEEP))[0]
    mac, ip4 = z.endpoints[0].mac, z.endpoints[0].ipv4_address
    time.sleep(0.3)
    assert mac not in fdb(sw, "c")                  # nobody programs c while its agent is dead
    sw["c"].create_network(NetworkSpec("lc"))        # any action on c restarts it
    try:
        assert agent_pid(sw, "c") not in (None, pid)
        converge(sw)
        assert mac in fdb(sw, "c") and f"{ip4} " in neigh(sw, "c")
        assert query(ctr_ns(sw, "c", "pc"), "z1") == [ip4]
        assert ping(sw["c"], "pc", "z1")
        assert sw["c"].system_check() == []
    finally:
        sw["c"].remove_network("lc")
        sw["a"].remove_container("z1", force=True)


def test_swarm_leave_ends_the_sync_not_the_agent(sw, peers, cli):
    nc = sw["names"]["c"]
    sw["c"].remove_container("pc", force=True)
    converge(sw)
    pid = agent_pid(sw, "c")
    assert pid is not None
    cli("swarm", "leave", node=nc)
    until(lambda: agent_client.status(sw["c"].paths.run)["applied"] is None, 1)
    assert agent_pid(sw, "c") == pid and sw["host"].swarm_agents()[nc] == f"running (pid {pid})"
    converge(sw)
    assert f"dst {IPS['c']}" not in fdb(sw, "b")
    cli("swarm", "join", "--manager", sw["names"]["a"], node=nc)
    converge(sw)
    assert agent_client.status(sw["c"].paths.run)["applied"] is not None
