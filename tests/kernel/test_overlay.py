"""Swarm mode and overlay networks across three simulated nodes on one LAN.

Node a is the manager, b and c are workers (192.168.77.10/.11/.12). Traffic
between containers on different nodes is real VXLAN over the LAN; the
peers (FDB + neighbour entries) come from the cluster store.

The module's swarm runs twice: on the embedded SQLite store (b and c join
by naming a), and on a three-member etcd cluster inside the LAN with nodes
that share no files (roots of their own; b and c join with a token over the
LAN: tests/kernel/multihost.py).
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from netkit.errors import AlreadyExists, Conflict, Forbidden, KernelError, NetkitError
from netkit.kernel.session import FaultPlan
from netkit.specs import ContainerSpec, NetworkSpec
from netkit.swarm import LAST_MANAGER, NOT_MANAGER
from tests.kernel.helpers import ip, ip_json, snapshot, swarm_of_three, wait_converged
from tests.kernel.multihost import cluster_rows as store_rows
from tests.kernel.multihost import etcd_swarm, shared_files

pytestmark = pytest.mark.root
IPS = {"a": "192.168.77.10", "b": "192.168.77.11", "c": "192.168.77.12"}
SLEEP = ["sleep", "600"]


@pytest.fixture(scope="module", params=["sqlite", "etcd"])
def sw(request, host, netkit_dirs, tmp_path_factory):
    """A LAN, three nodes, a swarm (a manager; b, c workers); all removed afterwards,
    the cluster's files included (etcd: the nodes never had any shared file)."""
    root = netkit_dirs[0]
    if request.param == "etcd":
        with etcd_swarm(host, netkit_dirs, str(tmp_path_factory.mktemp("mh")),
                        "192.168.77.0/24", IPS) as made:
            names = made["names"]
            yield {"host": host, "lan": made["lan"], "names": names, "cid": made["cid"],
                   "root": root, "store": "etcd", **made["engines"]}
            assert shared_files(netkit_dirs, names.values()) == []
        return
    with swarm_of_three(host, netkit_dirs, "192.168.77.0/24", IPS) as (engines, names, lan, cid):
        yield {"host": host, "lan": lan, "names": names, "cid": cid, "root": root,
               "store": "sqlite", **engines}
    cluster_dir = os.path.join(root, "cluster")
    left = [f for f in os.listdir(cluster_dir) if f.startswith(cid)] if os.path.isdir(cluster_dir) else []
    assert not left, f"cluster files left behind: {left}"


def converge(sw) -> None:
    wait_converged(sw[k] for k in IPS)


def node_ns(sw, k: str) -> str:
    return sw[k].node.netns


def fdb(sw, k: str, dev: str) -> str:
    return subprocess.run(["bridge", "-n", node_ns(sw, k), "fdb", "show", "dev", dev],
                          capture_output=True, text=True).stdout


def neigh(sw, k: str, dev: str) -> str:
    return subprocess.run(["ip", "-n", node_ns(sw, k), "neigh", "show", "dev", dev],
                          capture_output=True, text=True).stdout


def cluster_rows(sw) -> dict:
    return store_rows(sw["a"].cluster.store())


def world(sw) -> dict:
    return {"cluster": cluster_rows(sw), **{k: snapshot(sw[k]) for k in IPS}}


def ping(engine, ctr: str, target: str) -> bool:
    return engine.exec_output(ctr, ["ping", "-c", "1", "-W", "1", "-q", target])[0] == 0


def addr(ctr) -> str:
    return ctr.endpoints[0].ipv4_address


# -- swarm membership ---------------------------------------------------------------
def test_roles(sw, cli):
    roles = sw["host"].swarm_roles()
    n = sw["names"]
    assert (roles[n["a"]], roles[n["b"]], roles[n["c"]]) == ("manager", "worker", "worker")
    out = cli("node", "ls").stdout.splitlines()
    assert out[0].split() == ["NAME", "LAN", "IP", "ROLE", "AGENT"]
    row = next(line for line in out if line.startswith(n["b"]))
    from netkit.agent import client as agent_client
    pid = agent_client.pid(sw["b"].paths.run)
    assert row.split()[-4:] == ["worker", "running", "(pid", f"{pid})"]


def test_swarm_errors(sw, host):
    with pytest.raises(Conflict, match="already part of a swarm"):
        sw["b"].swarm_init()
    with pytest.raises(Conflict, match="already part of a swarm"):
        sw["c"].swarm_join(sw["names"]["a"])
    with pytest.raises(Conflict) as exc:
        sw["a"].swarm_leave()
    assert str(exc.value) == LAST_MANAGER
    with pytest.raises(NetkitError, match="LAN address"):
        host.swarm_init()


def test_overlay_refused_on_worker(sw, cli):
    with pytest.raises(Forbidden) as exc:
        sw["b"].create_network(NetworkSpec("nope", driver="overlay"))
    assert str(exc.value) == NOT_MANAGER
    proc = cli("network", "create", "-d", "overlay", "nope", node=sw["names"]["c"], check=False)
    assert proc.returncode == 1 and NOT_MANAGER in proc.stderr
    assert all("nope" not in [n.name for n in sw[k].networks()] for k in IPS)


def test_overlay_defaults_and_visibility(sw, cli):
    from netkit.agent.peers import VNI_OPTION
    n1 = sw["a"].create_network(NetworkSpec("ov1", driver="overlay"))
    n2 = sw["a"].create_network(NetworkSpec("ov2", driver="overlay"))
    try:
        assert (n1.options[VNI_OPTION], n2.options[VNI_OPTION]) == ("4097", "4098")
        assert (n1.ipam[0].subnet, n2.ipam[0].subnet) == ("10.0.1.0/24", "10.0.2.0/24")
        for k in IPS:
            by_name = {n.name: n for n in sw[k].networks()}
            assert by_name["ov1"].id == n1.id and by_name["ov1"].scope.value == "swarm"
            assert sw[k].network(n2.id[:12]).name == "ov2"
        [js] = sw["c"].inspect_networks(["ov1"])
        assert js["Scope"] == "swarm" and js["Driver"] == "overlay"
        ls = cli("network", "ls", node=sw["names"]["b"]).stdout
        assert any(line.split()[1:] == ["ov1", "overlay", "swarm"] for line in ls.splitlines())
        with pytest.raises(AlreadyExists):
            sw["a"].create_network(NetworkSpec("ov1", driver="overlay"))
        with pytest.raises(Forbidden, match="not a swarm manager"):
            sw["b"].remove_network("ov1")
    finally:
        sw["a"].remove_network("ov1")
        sw["a"].remove_network("ov2")
    for k in IPS:
        assert not {"ov1", "ov2"} & {n.name for n in sw[k].networks()}


# -- containers on three nodes ---------------------------------------------------------
@pytest.fixture(scope="module")
def myoverlay(sw):
    sw["a"].create_network(NetworkSpec("myoverlay", driver="overlay", subnets=("10.0.9.0/24",),
                                       attachable=True))
    ctrs = {k: sw[k].run(ContainerSpec(name=f"c{k}", network="myoverlay", detach=True,
                                       command=SLEEP))[0] for k in IPS}
    converge(sw)
    yield ctrs
    for k in IPS:
        if any(c.name == f"c{k}" for c in sw[k].containers(all=True)):
            sw[k].remove_container(f"c{k}", force=True)
    sw["a"].remove_network("myoverlay")


def test_distinct_addresses_and_ping(sw, myoverlay):
    ips = {k: addr(c) for k, c in myoverlay.items()}
    assert sorted(ips.values()) == ["10.0.9.2", "10.0.9.3", "10.0.9.4"]
    for k in IPS:
        for other, target in ips.items():
            if other != k:
                assert ping(sw[k], f"c{k}", target), f"c{k} -> c{other} ({target})"


def test_mtu_and_devices(sw, myoverlay):
    code, out = sw["b"].exec_output("cb", ["cat", "/sys/class/net/eth0/mtu"])
    assert code == 0 and out.strip() == "1450"
    for k in IPS:
        [vx] = ip_json("-d", "link", "show", "vx-001001", netns=node_ns(sw, k))
        info = vx["linkinfo"]["info_data"]
        assert (info["id"], info["port"], info["local"]) == (4097, 4789, IPS[k])
        assert info.get("learning") is False and info.get("proxy") is True
        assert vx["master"] == "ov-001001"
    assert [sw[k].system_check() for k in IPS] == [[], [], []]
    # static peers only: a knows b and c, nothing learned
    assert f"dst {IPS['b']} self permanent" in fdb(sw, "a", "vx-001001")
    assert f"{addr(myoverlay['c'])} lladdr" in neigh(sw, "a", "vx-001001")


def test_egress_through_gwbridge(sw, myoverlay):
    gw = {n.name: n for n in sw["a"].networks()}["netkit_gwbridge"]
    assert gw.scope.value == "local" and gw.options["com.docker.network.bridge.enable_icc"] == "false"
    code, routes = sw["a"].exec_output("ca", ["ip", "route"])
    assert f"default via {gw.gateway_v4} dev eth1" in routes
    assert ping(sw["a"], "ca", "192.168.77.1")                  # the LAN's router, masqueraded
    assert [ep.network_name for ep in sw["a"].container("ca").endpoints] == ["myoverlay", "netkit_gwbridge"]
    sw["a"].create_network(NetworkSpec("inside", driver="overlay", attachable=True, internal=True))
    try:
        i = sw["a"].run(ContainerSpec(name="i1", network="inside", detach=True, command=SLEEP))[0]
        assert [ep.network_name for ep in i.endpoints] == ["inside"]
        assert "default" not in sw["a"].exec_output("i1", ["ip", "route"])[1]
        sw["a"].remove_container("i1", force=True)
    finally:
        sw["a"].remove_network("inside")


def test_traffic_between_nodes_is_vxlan(sw, myoverlay):
    lan_ns = f"nkl-{sw['lan']}"
    cap = subprocess.Popen(["ip", "netns", "exec", lan_ns, "tcpdump", "-i", "lan0", "-c", "1", "-n",
                            "udp", "port", "4789"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True)
    try:
        deadline = time.time() + 10
        while cap.poll() is None and time.time() < deadline:
            ping(sw["a"], "ca", addr(myoverlay["b"]))
            time.sleep(0.2)
        out = cap.communicate(timeout=5)[0] if cap.poll() is not None else ""
    finally:
        if cap.poll() is None:
            cap.kill()
            cap.wait()
    assert "VXLAN" in out and "4789" in out, out
    stats = ip_json("-s", "link", "show", "vx-001001", netns=node_ns(sw, "a"))[0]["stats64"]
    assert stats["tx"]["packets"] > 0 and stats["rx"]["packets"] > 0


def test_second_overlay_is_isolated(sw, myoverlay):
    sw["a"].create_network(NetworkSpec("other", driver="overlay", attachable=True))
    try:
        o = sw["b"].run(ContainerSpec(name="ob", network="other", detach=True, command=SLEEP))[0]
        assert o.endpoints[0].ipv4_address.startswith("10.0.1.")
        assert not ping(sw["a"], "ca", addr(o))
        assert not ping(sw["b"], "ob", addr(myoverlay["c"]))
        assert not ping(sw["b"], "ob", addr(myoverlay["b"]))      # same node, other bridge
        assert "vx-001002" in ip("link", netns=node_ns(sw, "b"))
        assert "vx-001002" not in ip("link", netns=node_ns(sw, "a"))   # no endpoint on a
        sw["b"].remove_container("ob", force=True)
        assert "vx-001002" not in ip("link", netns=node_ns(sw, "b"))
    finally:
        sw["a"].remove_network("other")


def test_remove_network_refused_while_endpoints_anywhere(sw, myoverlay):
    with pytest.raises(Conflict, match="has active endpoints"):
        sw["a"].remove_network("myoverlay")         # a's own container
    with pytest.raises(Forbidden, match="not a swarm manager"):
        sw["c"].remove_network("myoverlay")


def test_not_attachable_refused(sw, myoverlay):
    sw["a"].create_network(NetworkSpec("svc", driver="overlay"))
    try:
        with pytest.raises(Forbidden, match="network svc not manually attachable"):
            sw["b"].run(ContainerSpec(name="x1", network="svc", detach=True, command=SLEEP))
        with pytest.raises(Forbidden, match="network svc not manually attachable"):
            sw["b"].connect("svc", "cb")
    finally:
        sw["a"].remove_network("svc")


def test_error_paths_leave_nothing(sw, myoverlay):
    before = world(sw)
    with pytest.raises(AlreadyExists):
        sw["a"].create_network(NetworkSpec("myoverlay", driver="overlay"))
    with pytest.raises(Forbidden):
        sw["b"].create_network(NetworkSpec("w", driver="overlay"))
    with pytest.raises(NetkitError):
        sw["a"].create_network(NetworkSpec("bad", driver="overlay", options={"foo": "1"}))
    with pytest.raises(NetkitError):
        sw["a"].create_network(NetworkSpec("dup", driver="overlay", subnets=("10.0.9.0/25",)))
    with pytest.raises(Conflict, match="Address already in use"):     # held by cb, on node b
        sw["c"].run(ContainerSpec(name="x1", network="myoverlay", ipv4=addr(myoverlay["b"]),
                                  detach=True, command=SLEEP))
    assert world(sw) == before


def test_rollback_of_overlay_run_at_every_kernel_call(sw, myoverlay):
    spec = lambda: ContainerSpec(name="r1", network="myoverlay", detach=True)
    # c has one endpoint: remove it so that the run also makes the node's segment
    sw["c"].remove_container("cc", force=True)
    try:
        plan = FaultPlan(fail_at=0)
        sw["c"].faults = plan
        try:
            sw["c"].run(spec())
        finally:
            sw["c"].faults = None
        calls = plan.calls
        sw["c"].remove_container("r1", force=True)
        assert calls >= 6
        converge(sw)
        before = world(sw)
        for n in range(1, calls + 1):
            sw["c"].faults = FaultPlan(fail_at=n)
            with pytest.raises(KernelError, match=f"injected fault at kernel call {n}"):
                sw["c"].run(spec())
            sw["c"].faults = None
            converge(sw)
            assert world(sw) == before, f"kernel call {n} left something behind"
    finally:
        sw["c"].faults = None
        myoverlay["c"] = sw["c"].run(ContainerSpec(name="cc", network="myoverlay", detach=True,
                                                   command=SLEEP))[0]


def test_leaving_container_disappears_everywhere(sw, myoverlay):
    gone = sw["b"].run(ContainerSpec(name="tmp", network="myoverlay", detach=True, command=SLEEP))[0]
    mac, ip4 = gone.endpoints[0].mac, addr(gone)
    converge(sw)
    for k in ("a", "c"):
        assert mac in fdb(sw, k, "vx-001001") and ip4 in neigh(sw, k, "vx-001001")
    assert ping(sw["a"], "ca", ip4)
    sw["b"].remove_container("tmp", force=True)
    converge(sw)
    for k in IPS:
        assert mac not in fdb(sw, k, "vx-001001"), k
        assert f"{ip4} " not in neigh(sw, k, "vx-001001"), k
    # connect / disconnect do the same, also with a local bridge network (and its firewall) on b
    sw["b"].create_network(NetworkSpec("lb"))
    try:
        sw["b"].run(ContainerSpec(name="tmp2", network="lb", detach=True, command=SLEEP))
        ep = sw["b"].connect("myoverlay", "tmp2")
        assert ep.ipv4_address == ip4          # the address "tmp" had: ca's ARP cache holds it
        assert ep.mac == mac == "02:42:" + ":".join(f"{int(x):02x}" for x in ip4.split("."))
        converge(sw)
        assert ep.mac in fdb(sw, "a", "vx-001001")
        assert ping(sw["b"], "tmp2", addr(myoverlay["a"]))
        sw["b"].disconnect("myoverlay", "tmp2")
        converge(sw)
        assert ep.mac not in fdb(sw, "a", "vx-001001")
        assert f"{ep.ipv4_address} " not in neigh(sw, "c", "vx-001001")
    finally:
        if any(c.name == "tmp2" for c in sw["b"].containers(all=True)):
            sw["b"].remove_container("tmp2", force=True)
        sw["b"].remove_network("lb")


def test_sync_is_idempotent(sw, myoverlay):
    from netkit.agent import peers
    from netkit.agent.cluster_sync import sync_node
    converge(sw)
    assert [sync_node(sw[k]) for k in IPS] == [0, 0, 0]
    want = peers.desired(sw["a"].cluster.store().read(), sw["names"]["a"])
    assert {p.ip for p in want} == {addr(myoverlay["b"]), addr(myoverlay["c"])}
    assert {p.container_name for p in want} == {"cb", "cc"}
    assert all(p.container_name in p.names for p in want)


def test_worker_leave_and_rejoin(sw, myoverlay, cli):
    nc = sw["names"]["c"]
    with pytest.raises(Conflict, match="attached to swarm networks"):
        sw["c"].swarm_leave()
    sw["c"].remove_container("cc", force=True)
    assert "vx-001001" not in ip("link", netns=node_ns(sw, "c"))
    cli("swarm", "leave", node=nc)
    converge(sw)
    assert sw["host"].swarm_roles()[nc] == ""
    assert sw["host"].swarm_agents()[nc].startswith("running (pid ")    # the node agent stays
    assert "myoverlay" not in {n.name for n in sw["c"].networks()}
    assert addr(myoverlay["c"]) not in neigh(sw, "a", "vx-001001")
    proc = cli("network", "create", "-d", "overlay", "x", node=nc, check=False)
    assert NOT_MANAGER in proc.stderr
    out = cli("swarm", "join", "--manager", sw["names"]["a"], node=nc).stdout
    assert "joined a swarm as a worker" in out
    assert "myoverlay" in {n.name for n in sw["c"].networks()}
    myoverlay["c"] = sw["c"].run(ContainerSpec(name="cc", network="myoverlay", detach=True,
                                               command=SLEEP))[0]
    converge(sw)
    assert ping(sw["c"], "cc", addr(myoverlay["a"]))


def test_cli_swarm_init_on_fresh_nodes(host, lan, cli, netkit_dirs):
    from netkit.store.cluster import cluster_path
    from netkit.swarm import read_cluster_id
    from netkit.paths import NodePaths
    from tests.conftest import unique
    m, w = unique("m"), unique("w")
    host.create_node(m, lan=lan.name, ip="192.168.77.50/24")
    host.create_node(w, lan=lan.name, ip="192.168.77.51/24")
    assert "is now a manager" in cli("swarm", "init", node=m).stdout
    cli("swarm", "join", "--manager", m, node=w)
    cid = read_cluster_id(NodePaths.of(m, *netkit_dirs).root)
    assert os.path.exists(cluster_path(netkit_dirs[0], cid))
    proc = cli("swarm", "leave", node=m, check=False)
    assert proc.returncode == 1 and "Removing the last manager" in proc.stderr
    # a member removed with a container on an overlay: it leaves first, its endpoint goes
    cli("network", "create", "-d", "overlay", "--attachable", "ov", node=m)
    cli("run", "-d", "--name", "x1", "--network", "ov", "sleep", "600", node=w)
    cli("run", "-d", "--name", "x2", "--network", "ov", "sleep", "600", node=m)
    assert " dst 192.168.77.51 " in subprocess.run(
        ["bridge", "-n", f"nkn-{m}", "fdb", "show", "dev", "vx-001001"], capture_output=True,
        text=True).stdout
    host.remove_node(w, force=True)
    from netkit.engine import Engine
    with Engine(m, root=netkit_dirs[0], run=netkit_dirs[1]) as em:
        wait_converged([em])
    from netkit.store.cluster import SqliteClusterStore
    store = SqliteClusterStore(netkit_dirs[0], cid)
    try:
        assert [mb.node for mb in store.read().members()] == [m]
        assert [ep.container_name for ep in store.read().endpoints()] == ["x2"]
    finally:
        store.close()
    assert "dst" not in subprocess.run(["bridge", "-n", f"nkn-{m}", "fdb", "show", "dev", "vx-001001"],
                                       capture_output=True, text=True).stdout
    cli("rm", "-f", "x2", node=m)
    cli("network", "rm", "ov", node=m)
    cli("swarm", "leave", "-f", node=m)
    assert not os.path.exists(cluster_path(netkit_dirs[0], cid))
    proc = cli("swarm", "leave", node=m, check=False)
    assert "not part of a swarm" in proc.stderr


def test_rollback_of_first_overlay_run_on_a_node(host, lan, netkit_dirs):
    """The first run on a node also makes the segment, netkit_gwbridge and its firewall:
    failing at every kernel call of it leaves the node, its ruleset and the cluster as before."""
    from netkit.engine import Engine
    from tests.conftest import unique
    m, w = unique("m"), unique("w")
    host.create_node(m, lan=lan.name, ip="192.168.77.60/24")
    host.create_node(w, lan=lan.name, ip="192.168.77.61/24")
    em, ew = Engine(m, root=netkit_dirs[0], run=netkit_dirs[1]), Engine(w, root=netkit_dirs[0], run=netkit_dirs[1])
    try:
        em.swarm_init()
        ew.swarm_join(m)
        em.create_network(NetworkSpec("ov", driver="overlay", attachable=True))
        em.run(ContainerSpec(name="peer", network="ov", detach=True, command=SLEEP))
        spec = lambda: ContainerSpec(name="r1", network="ov", detach=True)

        def state() -> dict:
            wait_converged([em, ew])
            nft = subprocess.run(["ip", "netns", "exec", ew.node.netns, "nft", "list", "ruleset"],
                                 capture_output=True, text=True).stdout
            db = em.cluster.store().db
            rows = {t: sorted(map(tuple, db.execute(f"SELECT * FROM {t}").fetchall()))
                    for t in ("networks", "addresses", "endpoints")}
            return {"w": snapshot(ew), "m": snapshot(em), "nft": nft, "cluster": rows,
                    "fdb_m": subprocess.run(["bridge", "-n", em.node.netns, "fdb", "show", "dev",
                                             "vx-001001"], capture_output=True, text=True).stdout}

        before = state()
        plan = FaultPlan(fail_at=0)
        ew.faults = plan
        try:
            ew.run(spec())
        finally:
            ew.faults = None
        calls = plan.calls
        ew.remove_container("r1", force=True)
        ew.remove_network("netkit_gwbridge")
        assert calls >= 12
        assert state() == before
        for n in range(1, calls + 1):
            ew.faults = FaultPlan(fail_at=n)
            with pytest.raises(KernelError, match=f"injected fault at kernel call {n}"):
                ew.run(spec())
            ew.faults = None
            assert state() == before, f"kernel call {n} left something behind"
    finally:
        em.close()
        ew.close()
        host.remove_node(w, force=True)
        host.remove_node(m, force=True)


def test_join_over_the_network_with_private_roots(host, lan, cli, netkit_dirs, tmp_path):
    """Nodes whose files live in roots of their own join with a token over the LAN (the
    manager's agent listens on 2377 in its netns); wrong tokens are refused; only managers
    see the tokens; containers on both nodes reach each other over the overlay."""
    from netkit.agent.join import INVALID_TOKEN, WRONG_TOKEN
    from netkit.paths import NodePaths
    from netkit.swarm import WORKER_VIEW
    from tests.conftest import unique
    m, w = unique("m"), unique("w")
    roots = {n: (str(tmp_path / n / "state"), str(tmp_path / n / "run")) for n in (m, w)}
    for n, ip4 in ((m, "192.168.77.70"), (w, "192.168.77.71")):
        cli("node", "create", "--lan", lan.name, "--ip", f"{ip4}/24", "--state-dir", roots[n][0],
            "--run-dir", roots[n][1], n)
        assert NodePaths.of(n, *netkit_dirs) == NodePaths(*roots[n])
    try:
        out = cli("swarm", "init", "--advertise-addr", "192.168.77.70", node=m).stdout
        join_line = next(line for line in out.splitlines() if "swarm join --token" in line)
        token, addr = join_line.split()[-2:]
        assert addr == "192.168.77.70:2377" and token.startswith("SWMTKN-1-")
        assert cli("swarm", "join-token", "-q", "worker", node=m).stdout.strip() == token
        manager_token = cli("swarm", "join-token", "-q", "manager", node=m).stdout.strip()
        assert manager_token != token and manager_token[:59] == token[:59]
        bad = cli("swarm", "join", "--token", "SWMTKN-1-nope", addr, node=w, check=False)
        assert (bad.returncode, bad.stderr) == (1, f"Error: {INVALID_TOKEN}\n")
        wrong = token[:-25] + "0" * 25
        bad = cli("swarm", "join", "--token", wrong, addr, node=w, check=False)
        assert (bad.returncode, bad.stderr) == (1, f"Error: {WRONG_TOKEN}\n")
        assert "joined a swarm as a worker" in cli("swarm", "join", "--token", token, addr, node=w).stdout
        bad = cli("swarm", "join-token", "worker", node=w, check=False)
        assert (bad.returncode, bad.stderr) == (1, f"Error: {WORKER_VIEW}\n")
        nodes = cli("swarm", "nodes", node=m).stdout.splitlines()
        assert [line.split()[:3] for line in nodes[1:]] == \
            sorted([[m, "*", "Ready"], [w, "Ready", "worker"]])
        cli("network", "create", "-d", "overlay", "--attachable", "ov", node=m)
        cli("run", "-d", "--name", "x1", "--network", "ov", "sleep", "600", node=m)
        cli("run", "-d", "--name", "x2", "--network", "ov", "sleep", "600", node=w)
        from netkit.engine import Engine
        with Engine(m, root=netkit_dirs[0], run=netkit_dirs[1]) as em, \
                Engine(w, root=netkit_dirs[0], run=netkit_dirs[1]) as ew:
            wait_converged([em, ew])
            assert ping(ew, "x2", "x1") and ping(em, "x1", "x2")
            for n, e in ((m, em), (w, ew)):
                assert e.paths == NodePaths(*roots[n])
                assert os.path.exists(os.path.join(roots[n][0], "swarm.json"))
                assert os.path.exists(os.path.join(roots[n][0], "netkit.db"))
                assert os.path.exists(os.path.join(roots[n][1], "agent", "agent.pid"))
                for shared in netkit_dirs:
                    assert not os.path.exists(os.path.join(shared, "nodes", n))
        info = cli("info", node=w).stdout
        assert " Cluster Store: sqlite" in info and " Is Manager: false" in info
    finally:
        for n in (w, m):
            host.remove_node(n, force=True)
    for n in (m, w):
        assert not os.path.exists(roots[n][0]) and not os.path.exists(roots[n][1])
        assert not os.path.exists(os.path.join(netkit_dirs[0], "nodes", f"{n}.roots"))
