"""Swarm membership as Docker's notes show it, on three simulated nodes (SQLite store):
`swarm init` / `join --token` / `join-token --rotate` / `leave`, and the node verbs
`node ls` (on a member: --node), `promote`, `demote`, `update`, `inspect`; `node rm`
leaving the swarm first."""

from __future__ import annotations

import json
import os

import pytest

from netkit.agent.join import WRONG_TOKEN
from netkit.errors import Conflict, Forbidden, NotFound
from netkit.services.model import NODE, node_attrs, node_id
from netkit.swarm import LAST_MANAGER, NOT_MANAGER, WORKER_VIEW, read_cluster_id
from netkit.swarm_nodes import LAST_MANAGER_DEMOTE
from tests.kernel.helpers import swarm_of_three, wait_converged

pytestmark = pytest.mark.root
IPS = {"a": "192.168.77.20", "b": "192.168.77.21", "c": "192.168.77.22"}
HEADER = ["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER STATUS", "AGENT"]


@pytest.fixture(scope="module")
def sw(host, netkit_dirs):
    """A LAN, nodes a (manager), b and c (workers); all removed afterwards."""
    with swarm_of_three(host, netkit_dirs, "192.168.77.0/24", IPS) as (engines, names, lan, cid):
        yield {"names": names, "cid": cid, "lan": lan, **engines}


def ls_rows(cli, node: str) -> dict[str, list[str]]:
    """`node ls` on `node`: the header and each row by hostname, cut into columns."""
    lines = cli("node", "ls", node=node).stdout.splitlines()
    cols = [lines[0].index(h) for h in HEADER]
    cut = [[line[s:e].strip() for s, e in zip(cols, cols[1:] + [None])] for line in lines]
    assert cut[0] == HEADER
    return {row[1]: row for row in cut[1:]}


def test_init_join_rotate_and_role_changes(host, lan, cli, netkit_dirs):
    """init prints Docker's text with the node id; a rotated token is refused; a promoted
    node's agent admits joins on its own address; a demoted one sees no cluster state."""
    from tests.conftest import unique
    m, w1, w2 = unique("m"), unique("w"), unique("w")
    for n, last in ((m, 70), (w1, 71), (w2, 72)):
        host.create_node(n, lan=lan.name, ip=f"192.168.77.{last}/24")
    try:
        out = cli("swarm", "init", "--advertise-addr", "192.168.77.70", node=m).stdout.splitlines()
        cid = read_cluster_id(os.path.join(netkit_dirs[0], "nodes", m))
        assert out[0] == f"Swarm initialized: current node ({node_id(cid, m)}) is now a manager."
        assert out[2] == "To add a worker to this swarm, run the following command:"
        old, addr = out[4].split()[-2:]
        assert out[4] == f"    netkit swarm join --token {old} 192.168.77.70:2377"
        assert out[6] == ("To add a manager to this swarm, run 'netkit swarm join-token manager' "
                          "and follow the instructions.")
        rotated = cli("swarm", "join-token", "--rotate", "worker", node=m).stdout.splitlines()
        assert rotated[0] == "Successfully rotated worker join token."
        token = rotated[4].split()[-2]
        assert token != old and cli("swarm", "join-token", "-q", "worker", node=m).stdout.strip() == token
        bad = cli("swarm", "join", "--token", old, addr, node=w1, check=False)
        assert (bad.returncode, bad.stderr) == (1, f"Error: {WRONG_TOKEN}\n")
        assert cli("swarm", "join", "--token", token, addr, node=w1).stdout == \
            "This node joined a swarm as a worker.\n"
        # w1 promoted: its agent now admits joins on its own address
        assert cli("node", "promote", w1, node=m).stdout == \
            f"Node {w1} promoted to a manager in the swarm.\n"
        assert cli("swarm", "join", "--token", token, "192.168.77.71", node=w2).stdout == \
            "This node joined a swarm as a worker.\n"
        rows = ls_rows(cli, w1)
        assert [rows[n][4] for n in (m, w1, w2)] == ["Leader", "Reachable", ""]
        assert rows[w1][0] == f"{node_id(cid, w1)} *"
        cli("node", "demote", w1, node=m)
        bad = cli("swarm", "join-token", "worker", node=w1, check=False)
        assert (bad.returncode, bad.stderr) == (1, f"Error: {WORKER_VIEW}\n")
        bad = cli("node", "ls", node=w1, check=False)
        assert (bad.returncode, bad.stderr) == (1, f"Error: {WORKER_VIEW}\n")
    finally:
        for n in (w2, w1, m):
            host.remove_node(n, force=True)


def test_node_ls_on_manager_worker_and_host(sw, cli, host):
    from netkit.agent import client
    n = sw["names"]
    rows = ls_rows(cli, n["a"])
    assert sorted(rows) == sorted(n.values())
    pid = client.pid(sw["a"].paths.run)
    assert rows[n["a"]] == [f"{node_id(sw['cid'], n['a'])} *", n["a"], "Ready", "Active", "Leader",
                            f"running (pid {pid})"]
    assert rows[n["b"]][:5] == [node_id(sw["cid"], n["b"]), n["b"], "Ready", "Active", ""]
    assert cli("node", "ls", "-q", "-f", "role=manager", node=n["a"]).stdout == \
        node_id(sw["cid"], n["a"]) + "\n"
    assert cli("node", "ls", "--format", "{{.Hostname}}", "-f", f"name={n['c']}",
               node=n["a"]).stdout == n["c"] + "\n"
    bad = cli("node", "ls", node=n["b"], check=False)
    assert (bad.returncode, bad.stderr) == (1, f"Error: {WORKER_VIEW}\n")
    assert cli("node", "ls").stdout.split()[:5] == ["NAME", "LAN", "IP", "ROLE", "AGENT"]
    with pytest.raises(Forbidden) as exc:
        sw["b"].node_list()
    assert str(exc.value) == WORKER_VIEW


def test_node_ls_off_swarm(node, cli):
    bad = cli("node", "ls", node=node.node_name, check=False)
    assert (bad.returncode, bad.stderr) == (1, f"Error: {NOT_MANAGER}\n")


def test_promote_demote_and_the_last_manager(sw, cli):
    n, a, b = sw["names"], sw["a"], sw["b"]
    try:
        assert a.node_promote(n["b"]) is True
        assert cli("node", "promote", n["b"], node=n["a"]).stdout == \
            f"Node {node_id(sw['cid'], n['b'])} is already a manager.\n"
        assert {r.hostname: r.manager_status for r in b.node_list()} == \
            {n["a"]: "Leader", n["b"]: "Reachable", n["c"]: ""}
        # a manager that leaves without --force: Docker's words (2 of 2: the quorum is lost)
        with pytest.raises(Conflict, match="Removing this node leaves 1 managers out of 2"):
            b.swarm_leave()
        assert cli("node", "demote", n["a"], node=n["b"]).stdout == \
            f"Manager {n['a']} demoted in the swarm.\n"
        assert [r.manager_status for r in b.node_list() if r.hostname == n["b"]] == ["Leader"]
        with pytest.raises(Forbidden):
            a.node_list()
        with pytest.raises(Conflict) as exc:
            b.node_demote("self")
        assert str(exc.value) == LAST_MANAGER_DEMOTE
        bad = cli("node", "demote", n["b"], node=n["b"], check=False)
        assert (bad.returncode, bad.stderr) == (1, f"Error: {LAST_MANAGER_DEMOTE}\n")
        assert b.node_promote(node_id(sw["cid"], n["a"])[:10]) is True     # by id prefix
    finally:
        if {m.node: m.role for m in a.swarm_members()}[n["a"]] != "manager":
            b.node_promote(n["a"])
        if {m.node: m.role for m in a.swarm_members()}[n["b"]] == "manager":
            a.node_demote(n["b"])
    assert {m.node: m.role for m in a.swarm_members()} == \
        {n["a"]: "manager", n["b"]: "worker", n["c"]: "worker"}


def test_update_availability_and_labels(sw, cli):
    n, a = sw["names"], sw["a"]
    try:
        assert cli("node", "update", "--availability", "drain", "--label-add", "zone=east",
                   "--label-add", "ssd", n["c"], node=n["a"]).stdout == n["c"] + "\n"
        assert ls_rows(cli, n["a"])[n["c"]][3] == "Drain"
        spec = a.node_inspect([n["c"]])[0]["Spec"]
        assert spec == {"Labels": {"zone": "east", "ssd": ""}, "Role": "worker", "Availability": "drain"}
        version = a.node_inspect([n["c"]])[0]["Version"]["Index"]
        a.node_update(n["c"], availability="pause", label_rm=["ssd"])
        got = a.node_inspect([n["c"]])[0]
        assert (got["Spec"]["Labels"], got["Spec"]["Availability"], got["Version"]["Index"]) == \
            ({"zone": "east"}, "pause", version + 1)
        assert node_attrs(a.cluster.store().read(), n["c"]).availability == "pause"   # the scheduler's view
        bad = cli("node", "update", "--label-rm", "nope", n["c"], node=n["a"], check=False)
        assert (bad.returncode, bad.stderr) == (1, "Error: key nope doesn't exist in node's labels\n")
        assert "Pause" in cli("node", "ls", "-f", "node.label=zone=east", node=n["a"]).stdout
        with pytest.raises(Forbidden):
            sw["b"].node_update(n["c"], availability="active")
    finally:
        a.node_update(n["c"], availability="active", label_rm=list(
            node_attrs(a.cluster.store().read(), n["c"]).labels))
    assert ls_rows(cli, n["a"])[n["c"]][3] == "Active"


def test_inspect(sw, cli):
    import platform
    n, a = sw["names"], sw["a"]
    me = a.node_inspect(["self"])[0]
    assert set(me) == {"ID", "Version", "CreatedAt", "UpdatedAt", "Spec", "Description", "Status",
                       "ManagerStatus"}
    assert me["ID"] == node_id(sw["cid"], n["a"])
    assert me["Description"] == {"Hostname": n["a"], "Platform": {"Architecture": platform.machine(),
                                                                  "OS": "linux"}}
    assert me["Status"] == {"State": "ready", "Addr": IPS["a"]}
    assert me["ManagerStatus"] == {"Leader": True, "Reachability": "reachable",
                                   "Addr": f"{IPS['a']}:2377"}
    assert me["Spec"]["Role"] == "manager"
    worker = json.loads(cli("node", "inspect", node_id(sw["cid"], n["b"])[:8], node=n["a"]).stdout)
    assert [w["Description"]["Hostname"] for w in worker] == [n["b"]]
    assert "ManagerStatus" not in worker[0]
    with pytest.raises(NotFound, match="node nope not found"):
        a.node_inspect(["nope"])
    pretty = cli("node", "inspect", "--pretty", "self", node=n["a"]).stdout
    assert f"Hostname:              \t{n['a']}\n" in pretty and " Leader:\t\tYes\n" in pretty
    assert cli("node", "inspect", "-f", "{{.Status.State}}", n["c"], node=n["a"]).stdout == "ready\n"


def test_leave_and_node_rm(host, lan, cli, netkit_dirs):
    """A worker leaves with `swarm leave`; node rm leaves the swarm first, the remaining
    members agree on who is left; the last manager with members left is kept without -f."""
    from netkit.engine import Engine
    from tests.conftest import unique
    m, x, y = unique("m"), unique("x"), unique("y")
    for n, last in ((m, 80), (x, 81), (y, 82)):
        host.create_node(n, lan=lan.name, ip=f"192.168.77.{last}/24")
    em = Engine(m, root=netkit_dirs[0], run=netkit_dirs[1])
    try:
        em.swarm_init()
        for n in (x, y):
            cli("swarm", "join", "--manager", m, node=n)
        assert cli("swarm", "leave", node=y).stdout == "Node left the swarm.\n"
        assert sorted(ls_rows(cli, m)) == sorted([m, x])
        cli("swarm", "join", "--manager", m, node=y)
        em.node_promote(x)
        em.node_update(x, label_add={"zone": "east"})
        store = em.cluster.store()
        assert store.read().get_object(NODE, x) is not None
        host.remove_node(x)                     # a manager, not the last one: it leaves first
        wait_converged([em])
        assert sorted(m_.node for m_ in store.read().members()) == sorted([m, y])
        assert store.read().get_object(NODE, x) is None
        assert sorted(ls_rows(cli, m)) == sorted([m, y])
        with pytest.raises(Conflict) as exc:    # the last manager, a worker still in the swarm
            host.remove_node(m)
        assert str(exc.value) == LAST_MANAGER
        host.remove_node(y)
        assert [m_.node for m_ in store.read().members()] == [m]
        assert [r.hostname for r in em.node_list()] == [m]
    finally:
        em.close()
        for n in (y, x, m):
            if host.host_store.read().node(n) is not None:
                host.remove_node(n, force=True)
