"""Three simulated nodes that share no files, their cluster in a three-member etcd cluster.

etcd runs inside the simulated LAN (netkit.testing.etcd: one simulated node per
member); nodes a, b, c have state and run roots of their own; a initialises the
swarm on etcd, b and c join with a token over the LAN (tests/kernel/multihost.py).
What is tested end to end: nothing shared on disk, names and traffic across nodes,
cluster IPAM; a member whose agent stops renewing its lease is shown down and its
peers and names are withdrawn until it is back; losing one etcd member changes
nothing for users; losing two makes cluster actions fail within 10 s with one line
and nothing half-done, while running containers keep talking; when the members
return, the agents converge by themselves.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from netkit.agent import client as agent_client
from netkit.paths import NodePaths
from netkit.specs import ContainerSpec, NetworkSpec
from tests.kernel.helpers import snapshot, wait_converged
from tests.kernel.multihost import cluster_rows, etcd_swarm, shared_files

pytestmark = pytest.mark.root
IPS = {"a": "192.168.79.10", "b": "192.168.79.11", "c": "192.168.79.12"}
SLEEP = ["sleep", "600"]
NET = "ov"


@pytest.fixture(scope="module")
def mh(host, netkit_dirs, tmp_path_factory):
    with etcd_swarm(host, netkit_dirs, str(tmp_path_factory.mktemp("mh")), "192.168.79.0/24",
                    IPS) as made:
        e = made["engines"]
        e["a"].create_network(NetworkSpec(NET, driver="overlay", attachable=True))
        for k in IPS:
            e[k].run(ContainerSpec(name=f"p{k}", network=NET, detach=True, command=SLEEP))
        wait_converged(e.values())
        yield {**made, **e, "host": host, "dirs": netkit_dirs}
        for k in IPS:
            e[k].remove_container(f"p{k}", force=True)
        e["a"].remove_network(NET)
    assert shared_files(netkit_dirs, made["names"].values()) == []


def until(fn, timeout: float, step: float = 0.05) -> float:
    start = time.monotonic()
    while not fn():
        assert time.monotonic() - start < timeout, f"not within {timeout} s"
        time.sleep(step)
    return time.monotonic() - start


def ping(engine, ctr: str, target: str) -> bool:
    return engine.exec_output(ctr, ["ping", "-c", "1", "-W", "1", "-q", target])[0] == 0


def resolves(engine, ctr: str, name: str) -> bool:
    return engine.exec_output(ctr, ["getent", "hosts", name])[0] == 0


def fdb(mh, k: str) -> str:
    return subprocess.run(["bridge", "-n", mh[k].node.netns, "fdb", "show", "dev", "vx-001001"],
                          capture_output=True, text=True).stdout


def mac(mh, k: str) -> str:
    return mh[k].container(f"p{k}").endpoints[0].mac


def status(mh, k: str, of: str) -> str:
    return dict((m.node, s) for m, s in mh[k].swarm_nodes())[mh["names"][of]]


# -- nothing shared --------------------------------------------------------------------
def test_nodes_share_no_files(mh, cli):
    assert shared_files(mh["dirs"], mh["names"].values()) == []
    for k, n in mh["names"].items():
        state, run = mh["roots"][k]
        assert NodePaths.of(n, *mh["dirs"]) == NodePaths(os.path.realpath(state), os.path.realpath(run))
        with open(os.path.join(state, "swarm.json")) as f:
            assert json.load(f) == {"cluster": mh["cid"], "store": mh["etcd"].url,
                                    "advertise": f"{IPS[k]}:2377"}
        assert os.path.exists(os.path.join(state, "netkit.db"))
        assert agent_client.pid(run) is not None
        assert os.path.isdir(os.path.join(run, "containers", mh[k].container(f"p{k}").id))
    info = cli("info", node=mh["names"]["b"]).stdout.splitlines()
    assert f" Cluster Store: etcd ({mh['etcd'].url})" in info
    assert [line.strip() for line in info if line.startswith("  http://")] == \
        [f"{ep}: healthy" for ep in mh["etcd"].endpoints()]
    assert " Is Manager: false" in info and " Nodes: 3" in info


# -- overlay across nodes ----------------------------------------------------------------
def test_names_traffic_and_cluster_ipam(mh):
    ips = {k: mh[k].container(f"p{k}").endpoints[0].ipv4_address for k in IPS}
    assert len(set(ips.values())) == 3
    held = {owner for *_, owner in cluster_rows(mh["a"].cluster.store())["addresses"]}
    assert {mh[k].container(f"p{k}").endpoints[0].id for k in IPS} <= held
    for k, other in (("a", "b"), ("b", "c"), ("c", "a")):
        assert ping(mh[k], f"p{k}", f"p{other}"), f"p{k} -> p{other}"


def test_a_service_on_the_etcd_store(mh):
    """Swarm services when the cluster is in etcd and the nodes share no files: the service
    API, the acting manager's reconciler, each node's runner and VIP rules all go through
    etcd (its watches wake the agents). Three replicas spread over the three nodes answer
    through the VIP from a container on node c; scale and rm converge."""
    from netkit.services.model import ServiceSpec
    from tests.kernel.helpers import PROBE
    from tests.kernel.test_swarm_e2e import hostnames, probe_ctr, running, wait_for
    a = mh["a"]
    a.service_create(ServiceSpec("etcdweb", (*PROBE, "serve", "tcp", "80", "--hostname"),
                                 replicas=3, networks=(NET,), stop_grace_period=1.0))
    try:
        tasks = running(a, "etcdweb", 3)
        assert sorted(t.node for t in tasks) == sorted(mh["names"].values())
        want = hostnames(tasks)
        wait_for(lambda: set(probe_ctr(mh["c"], "pc", "etcdweb", 80, 6)) == want, 20,
                 "the three tasks answering through the VIP from node c")
        a.service_scale({"etcdweb": 1})
        (left,) = running(a, "etcdweb", 1)
        wait_for(lambda: set(probe_ctr(mh["c"], "pc", "etcdweb", 80, 3)) == hostnames([left]),
                 20, "only the task left answering through the VIP")
    finally:
        a.service_remove("etcdweb")
    wait_for(lambda: not a.service_tasks() and not any(
        c.name.startswith("etcdweb.") for k in IPS for c in mh[k].containers(all=True)), 30,
        "the tasks and their containers gone")


def test_token_join_refusals(mh):
    from netkit.agent.join import INVALID_TOKEN, WRONG_TOKEN
    from netkit.errors import Forbidden, InvalidArgument
    token = mh["a"].swarm_join_token("worker")
    mh["b"].swarm_leave(force=True)                 # pb leaves the overlay first
    try:
        assert mh["b"].cluster.membership() is None
        with pytest.raises(InvalidArgument, match=INVALID_TOKEN):
            mh["b"].swarm_join(token="SWMTKN-1-x", remote=IPS["a"])
        with pytest.raises(Forbidden, match=WRONG_TOKEN):
            mh["b"].swarm_join(token=token[:-25] + "1" * 25, remote=IPS["a"])
        assert mh["b"].cluster.membership() is None
        assert mh["names"]["b"] not in {m.node for m in mh["a"].swarm_members()}
    finally:                                        # back, as a manager this time
        mh["b"].swarm_join(token=mh["a"].swarm_join_token("manager"), remote=IPS["a"])
        mh["b"].connect(NET, "pb")
    assert {m.node: m.role for m in mh["a"].swarm_members()}[mh["names"]["b"]] == "manager"
    wait_converged(mh[k] for k in IPS)
    assert ping(mh["a"], "pa", "pb") and ping(mh["b"], "pb", "pc")


def test_two_managers_allocate_at_once(mh):
    """a and b (managers since the test above) create overlays and run containers on one
    overlay at the same moment: no VNI, subnet or address is handed out twice."""
    import threading
    from netkit.agent.peers import VNI_OPTION
    made: dict = {"a": [], "b": []}
    errors: list = []
    go = threading.Barrier(2)

    def act(k: str) -> None:
        try:
            go.wait()
            for i in range(3):
                made[k].append(mh[k].create_network(NetworkSpec(f"cc{k}{i}", driver="overlay",
                                                                attachable=True)))
                mh[k].run(ContainerSpec(name=f"cc{k}{i}", network=NET, detach=True, command=SLEEP))
        except Exception as exc:                    # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=act, args=(k,)) for k in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert errors == []
        nets = made["a"] + made["b"]
        assert len({n.options[VNI_OPTION] for n in nets}) == 6
        assert len({n.ipam[0].subnet for n in nets}) == 6
        addrs = [c.endpoints[0].ipv4_address for k in ("a", "b")
                 for c in mh[k].containers() if c.name.startswith("cc")]
        addrs += [mh[k].container(f"p{k}").endpoints[0].ipv4_address for k in IPS]
        assert len(addrs) == 9 and len(set(addrs)) == 9
    finally:
        for k in ("a", "b"):
            for i in range(3):
                if any(c.name == f"cc{k}{i}" for c in mh[k].containers(all=True)):
                    mh[k].remove_container(f"cc{k}{i}", force=True)
            for n in made[k]:
                mh[k].remove_network(n.id)


# -- leases ------------------------------------------------------------------------------
def test_expired_lease_is_down_and_withdrawn_until_back(mh, cli):
    """c's agent dies: once its lease expires a and b show c Down and drop its peers and
    names; the next netkit command on c starts the agent again, which renews the lease,
    and a and b put c back, without any cluster change."""
    from netkit.cluster import LEASE_TTL
    mac_c = mac(mh, "c")
    pid = agent_client.pid(mh["c"].paths.run)
    os.kill(pid, signal.SIGKILL)
    took = until(lambda: status(mh, "a", "c") == "Down", LEASE_TTL + 8)
    assert took > LEASE_TTL / 3                            # the lease, not the kill, decides
    until(lambda: mac_c not in fdb(mh, "a") and mac_c not in fdb(mh, "b"), 5)
    assert not resolves(mh["a"], "pa", "pc") and not resolves(mh["b"], "pb", "pc")
    assert ping(mh["a"], "pa", "pb")                       # the others are untouched
    assert mh["names"]["c"] in cli("info", node=mh["names"]["a"]).stdout
    cli("ps", node=mh["names"]["c"])                       # heals the agent
    until(lambda: status(mh, "a", "c") == "Ready", 10)
    until(lambda: mac_c in fdb(mh, "a") and mac_c in fdb(mh, "b"), 5)
    assert ping(mh["a"], "pa", "pc") and ping(mh["c"], "pc", "pb")


def test_node_cut_off_is_down_until_it_is_back(mh):
    """c's LAN port goes down: c's agent cannot renew its lease, so a and b show c Down and
    drop its peers; c keeps what it had. The port comes back: c's agent takes a new lease
    by itself and every node is in step again, with no user action."""
    from netkit.cluster import LEASE_TTL
    lan_ns = f"nkl-{mh['lan']}"
    port = f"n-{mh['names']['c']}"
    mac_c, mac_a = mac(mh, "c"), mac(mh, "a")
    subprocess.run(["ip", "-n", lan_ns, "link", "set", port, "down"], check=True)
    try:
        until(lambda: status(mh, "a", "c") == "Down", LEASE_TTL + 8)
        until(lambda: mac_c not in fdb(mh, "a") and mac_c not in fdb(mh, "b"), 5)
        assert mac_a in fdb(mh, "c")                       # cut off, c changes nothing
    finally:
        subprocess.run(["ip", "-n", lan_ns, "link", "set", port, "up"], check=True)
    until(lambda: status(mh, "a", "c") == "Ready", 15)
    until(lambda: mac_c in fdb(mh, "a") and mac_c in fdb(mh, "b"), 5)
    assert ping(mh["a"], "pa", "pc") and ping(mh["c"], "pc", "pb")


# -- losing etcd members -----------------------------------------------------------------
def test_one_member_down_changes_nothing_for_users(mh):
    etcd = mh["etcd"]
    gone = etcd.names[0]
    etcd.stop_member(gone)
    try:
        mh["a"].create_network(NetworkSpec("ov1", driver="overlay", attachable=True))
        x = mh["b"].run(ContainerSpec(name="x1", network="ov1", detach=True, command=SLEEP))[0]
        y = mh["c"].run(ContainerSpec(name="y1", network="ov1", detach=True, command=SLEEP))[0]
        assert x.endpoints[0].ipv4_address != y.endpoints[0].ipv4_address
        wait_converged(mh[k] for k in IPS)
        assert ping(mh["b"], "x1", "y1") and ping(mh["c"], "y1", "x1")
        mh["b"].remove_container("x1", force=True)
        mh["c"].remove_container("y1", force=True)
        mh["a"].remove_network("ov1")
    finally:
        etcd.start_member(gone)


def test_majority_lost_refuses_cleanly_then_converges(mh, cli):
    etcd = mh["etcd"]
    na, nb = mh["names"]["a"], mh["names"]["b"]
    wait_converged(mh[k] for k in IPS)
    before = {k: snapshot(mh[k]) for k in IPS}
    cluster_before = cluster_rows(mh["a"].cluster.store())
    for gone in etcd.names[:2]:
        etcd.stop_member(gone)
    try:
        for args, node, code in ((("network", "create", "-d", "overlay", "ov2"), na, 1),
                                 (("run", "-d", "--name", "z1", "--network", NET, "sleep", "600"),
                                  nb, 125)):
            start = time.monotonic()
            proc = cli(*args, node=node, check=False)
            took = time.monotonic() - start
            assert took < 10, f"{args[0]} took {took:.1f} s"
            assert proc.returncode == code, proc.stderr
            assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("Error: "), proc.stderr
            assert "cluster store" in proc.stderr
        assert {k: snapshot(mh[k]) for k in IPS} == before         # store, kernel, files
        for k, other in (("a", "b"), ("b", "c"), ("c", "a")):
            assert ping(mh[k], f"p{k}", f"p{other}"), f"p{k} -> p{other} while etcd is down"
        mh["b"].create_network(NetworkSpec("local1"))              # local actions go on
        mh["b"].remove_network("local1")
    finally:
        for gone in etcd.names[:2]:
            etcd.start_member(gone, wait=False)
        etcd.wait_healthy(etcd.names)
    assert cluster_rows(mh["a"].cluster.store()) == cluster_before
    z = mh["b"].run(ContainerSpec(name="z1", network=NET, detach=True, command=SLEEP))[0]
    try:
        until(lambda: z.endpoints[0].mac in fdb(mh, "a") and z.endpoints[0].mac in fdb(mh, "c"), 15)
        assert ping(mh["a"], "pa", "z1") and ping(mh["c"], "pc", "z1")
        assert all(status(mh, "a", k) == "Ready" for k in IPS)
        assert [mh[k].system_check() for k in IPS] == [[], [], []]
    finally:
        mh["b"].remove_container("z1", force=True)
