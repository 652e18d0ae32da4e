"""The routing mesh's nft text (netkit/firewall/mesh.py) and its view of the cluster (pure)."""

from __future__ import annotations

import pytest

from netkit.firewall.mesh import MeshPort, render_delete, render_node, render_sandbox
from netkit.services import mesh
from netkit.services.model import (HOST_MODE, RUNNING, SHUTDOWN, PortConfig, Service,
                                   ServiceSpec, Task)

HEAD = "table ip netkit_mesh {}\ndelete table ip netkit_mesh\n"


def test_node_rules_per_protocol_from_lan_and_node():
    text = render_node("192.168.77.10", "169.254.254.2", [
        MeshPort("tcp", 8080, 80), MeshPort("udp", 53, 53), MeshPort("tcp", 443, 8443)])
    rule = "ip daddr 192.168.77.10 tcp dport { 443, 8080 } dnat ip to 169.254.254.2"
    assert text == HEAD + (
        "table ip netkit_mesh {\n"
        "\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat - 1; policy accept;\n"
        f"\t\t{rule}\n"
        "\t\tip daddr 192.168.77.10 udp dport { 53 } dnat ip to 169.254.254.2\n\t}\n"
        "\tchain output {\n\t\ttype nat hook output priority -101; policy accept;\n"
        f"\t\t{rule}\n"
        "\t\tip daddr 192.168.77.10 udp dport { 53 } dnat ip to 169.254.254.2\n\t}\n}\n")
    assert render_node("192.168.77.10", "169.254.254.2", []) == HEAD == render_delete()


def test_sandbox_round_robin_single_and_empty():
    text = render_sandbox("10.0.0.2", "10.0.0.0/24", [
        MeshPort("tcp", 8080, 80, ("10.0.0.10", "10.0.0.9", "10.0.0.9")),
        MeshPort("tcp", 9090, 90, ("10.0.0.4",)),
        MeshPort("udp", 5353, 53, ())])
    assert ("tcp dport 8080 dnat ip to numgen inc mod 2 map "
            "{ 0 : 10.0.0.9 . 80, 1 : 10.0.0.10 . 80 }") in text
    assert "tcp dport 9090 dnat ip to 10.0.0.4:90\n" in text
    assert "5353" not in text                     # no task: no rule, the sandbox refuses
    assert "ip daddr 10.0.0.0/24 ct status dnat snat ip to 10.0.0.2\n" in text
    assert render_sandbox("10.0.0.2", "10.0.0.0/24", []) == HEAD


@pytest.mark.parametrize("port", [
    MeshPort("icmp", 80, 80), MeshPort("tcp", 0, 80), MeshPort("tcp", 80, 65536),
    MeshPort("tcp", 80, 80, ("10.0.0.2; flush ruleset",)), MeshPort("tcp", 80, 80, ("fd00::1",))])
def test_bad_input_is_refused(port):
    with pytest.raises(ValueError):
        render_sandbox("10.0.0.2", "10.0.0.0/24", [port])
    with pytest.raises(ValueError):
        render_node("192.168.0.2", "169.254.254.2", [port])


def test_bad_address_is_refused():
    for lan, sandbox in (("192.168.0.2; flush ruleset", "169.254.254.2"), ("192.168.0.2", "fd00::1")):
        with pytest.raises(ValueError):
            render_node(lan, sandbox, [MeshPort("tcp", 80, 80)])
    with pytest.raises(ValueError):
        render_sandbox("10.0.0.2; flush ruleset", "10.0.0.0/24", [])


class FakeTx:
    def __init__(self, objects):
        self._objects = objects

    def objects(self, kind):
        return sorted(self._objects.get(kind, {}).items())


def test_mesh_ports_take_running_tasks_that_should_run():
    ing = "i" * 64
    spec = ServiceSpec("web", ("srv",), ports=(PortConfig(8080, 80), PortConfig(22, 22, mode=HOST_MODE)))
    other = ServiceSpec("plain", ("srv",))
    svc, svc2 = Service("s1", spec), Service("s2", other)

    def task(tid, node, state=RUNNING, desired=RUNNING, addr="10.0.0.5/24"):
        return Task(tid, "s1", "web", 1, node=node, state=state, desired=desired,
                    addresses={ing: addr} if addr else {}).to_dict()
    tx = FakeTx({"service": {"s1": svc.to_dict(), "s2": svc2.to_dict()},
                 "task": {"t1": task("t1", "a"), "t2": task("t2", "b", addr="10.0.0.6/24"),
                          "t3": task("t3", "c", desired=SHUTDOWN, addr="10.0.0.7/24"),
                          "t4": task("t4", "a", state="starting", addr="10.0.0.8/24"),
                          "t5": task("t5", "d", addr="10.0.0.9/24"),
                          "t6": task("t6", "a", addr=None)}})
    assert mesh.mesh_ports(tx, ing, down={"d"}) == [MeshPort("tcp", 8080, 80, ("10.0.0.5", "10.0.0.6"))]
