"""`netkit node ls / promote / demote / update / inspect` and `swarm join-token --rotate` on a
fake engine: Docker's columns, lines and messages."""

from __future__ import annotations

from netkit.errors import Conflict, Forbidden
from netkit.swarm import WORKER_VIEW
from netkit.swarm_nodes import LAST_MANAGER_DEMOTE, SwarmNode

A, B, C = "a" * 25, "b" * 25, "c" * 25


def ok(result):
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def nodes():
    return [SwarmNode(B, "w10", "worker", "Down", "drain", "", "192.168.1.12", labels={"zone": "e"}),
            SwarmNode(A, "m1", "manager", "Ready", "active", "Leader", "192.168.1.10", current=True),
            SwarmNode(C, "w2", "manager", "Ready", "pause", "Reachable", "192.168.1.11")]


def test_node_ls_on_a_manager(nk, fake):
    fake.results["node_list"] = nodes()
    fake.results["swarm_agents"] = {"m1": "running (pid 7)", "w2": "running (pid 8)", "w10": "stopped"}
    assert ok(nk("--node", "m1", "node", "ls")).stdout.splitlines() == [
        "ID                            HOSTNAME   STATUS    AVAILABILITY   MANAGER STATUS   AGENT",
        f"{A} *   m1         Ready     Active         Leader           running (pid 7)",
        f"{C}     w2         Ready     Pause          Reachable        running (pid 8)",
        f"{B}     w10        Down      Drain                           stopped"]
    assert ok(nk("--node", "m1", "node", "ls", "-q")).stdout == f"{A}\n{C}\n{B}\n"
    assert ok(nk("--node", "m1", "node", "ls", "-q", "-f", "role=manager")).stdout == f"{A}\n{C}\n"
    assert ok(nk("--node", "m1", "node", "ls", "-q", "-f", "name=w", "-f", "role=worker")
              ).stdout == f"{B}\n"
    assert ok(nk("--node", "m1", "node", "ls", "-q", "--filter", "id=cc")).stdout == f"{C}\n"
    assert ok(nk("--node", "m1", "node", "ls", "-q", "-f", "node.label=zone=e")).stdout == f"{B}\n"
    assert ok(nk("--node", "m1", "node", "ls", "-q", "-f", "membership=accepted")).stdout.count("\n") == 3
    assert ok(nk("--node", "m1", "node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}")
              ).stdout == "m1 Leader\nw2 Reachable\nw10 \n"
    bad = nk("--node", "m1", "node", "ls", "-f", "role=boss")
    assert (bad.exit_code, bad.stderr) == (1, "Error: Invalid role filter: 'boss'\n")
    assert nk("--node", "m1", "node", "ls", "-f", "color=red").exit_code == 1
    assert nk("node", "ls", "-f", "role=manager").exit_code == 2       # the host view has none


def test_node_ls_on_a_worker_is_refused(nk, fake):
    fake.raises["node_list"] = Forbidden(WORKER_VIEW)
    r = nk("--node", "w1", "node", "ls")
    assert (r.exit_code, r.stderr) == (1, f"Error: {WORKER_VIEW}\n")


def test_promote_and_demote(nk, fake):
    assert ok(nk("--node", "m1", "node", "promote", "w1", "w2")).stdout == (
        "Node w1 promoted to a manager in the swarm.\nNode w2 promoted to a manager in the swarm.\n")
    assert fake.called("node_promote") == [(("w1",), {}), (("w2",), {})]
    fake.results["node_promote"] = False
    fake.results["node_inspect"] = [{"ID": A}]
    assert ok(nk("--node", "m1", "node", "promote", "m1")).stdout == f"Node {A} is already a manager.\n"
    assert ok(nk("--node", "m1", "node", "demote", "w1")).stdout == "Manager w1 demoted in the swarm.\n"
    fake.raises["node_demote"] = {"m1": Conflict(LAST_MANAGER_DEMOTE)}
    r = nk("--node", "m1", "node", "demote", "m1")
    assert (r.exit_code, r.stderr) == (1, f"Error: {LAST_MANAGER_DEMOTE}\n")


def test_update(nk, fake):
    assert ok(nk("--node", "m1", "node", "update", "--availability", "drain", "--label-add", "a=1",
                 "--label-add", "b", "--label-rm", "c", "w1")).stdout == "w1\n"
    assert fake.called("node_update") == [(("w1",), {"availability": "drain",
                                                      "label_add": {"a": "1", "b": ""},
                                                      "label_rm": ("c",)})]
    assert nk("--node", "m1", "node", "update", "--availability", "gone", "w1").exit_code == 2


def test_inspect_pretty(nk, fake):
    fake.results["node_inspect"] = [{
        "ID": A, "Version": {"Index": 3}, "CreatedAt": "2024-01-01T00:00:00.000000Z",
        "UpdatedAt": "2024-01-01T00:00:01.000000Z",
        "Spec": {"Labels": {"zone": "east", "ssd": ""}, "Role": "manager", "Availability": "active"},
        "Description": {"Hostname": "m1", "Platform": {"Architecture": "x86_64", "OS": "linux"}},
        "Status": {"State": "ready", "Addr": "192.168.1.10"},
        "ManagerStatus": {"Leader": True, "Reachability": "reachable", "Addr": "192.168.1.10:2377"}}]
    assert ok(nk("--node", "m1", "node", "inspect", "--pretty", "self")).stdout == (
        f"ID:\t\t\t{A}\nLabels:\n - ssd\n - zone=east\nHostname:              \tm1\n"
        "Joined at:             \t2024-01-01T00:00:00.000000Z\nStatus:\n State:\t\t\tReady\n"
        " Availability:         \tActive\n Address:\t\t192.168.1.10\nManager Status:\n"
        " Address:\t\t192.168.1.10:2377\n Raft Status:\t\tReachable\n Leader:\t\tYes\n"
        "Platform:\n Operating System:\tlinux\n Architecture:\t\tx86_64\n")
    assert ok(nk("--node", "m1", "node", "inspect", "-f", "{{.Spec.Role}}", "self")).stdout == "manager\n"


def test_join_token_rotate(nk, fake):
    out = ok(nk("--node", "m1", "swarm", "join-token", "--rotate", "worker")).stdout
    assert out.startswith("Successfully rotated worker join token.\n\n"
                          "To add a worker to this swarm, run the following command:\n\n")
    assert fake.called("swarm_join_token") == [(("worker",), {"rotate": True})]
    assert ok(nk("--node", "m1", "swarm", "join-token", "-q", "--rotate", "manager")
              ).stdout == f"SWMTKN-1-{'d' * 50}-{'m' * 25}\n"
