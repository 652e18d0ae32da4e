"""Docker's reachability rules, proven with real traffic between real namespaces.

Node A and node B are simulated hosts on one simulated LAN (192.168.77.0/24,
router .1). On A: networks n1 and n2 (isolated from each other), an
--internal network, an icc=false network, and published ports. B plays the
"other host on the LAN". Each row of docs/reachability.md is a test here.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from netkit.errors import Conflict
from netkit.specs import ContainerSpec, NetworkSpec
from tests.kernel import helpers
from tests.kernel.helpers import PROBE, lan_pair, probe

pytestmark = pytest.mark.root
A_IP, B_IP = "192.168.77.10", "192.168.77.20"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two nodes on a LAN, networks and servers on A; removed at the end, also on failure."""
    with lan_pair(str(tmp_path_factory.mktemp("reach")), "192.168.77.0/24", "192.168.77.1",
                  f"{A_IP}/24", f"{B_IP}/24") as world:
        host, ea, eb, b = world["host"], world["a"], world["b"], world["B"]
        ea.create_network(NetworkSpec("n1", subnets=("10.81.1.0/24",)))
        ea.create_network(NetworkSpec("n2", subnets=("10.81.2.0/24",)))
        ea.create_network(NetworkSpec("ni", subnets=("10.81.3.0/24",), internal=True))
        ea.create_network(NetworkSpec("nc", subnets=("10.81.4.0/24",),
                                      options={"com.docker.network.bridge.enable_icc": "false"}))
        serve = lambda proto, port: (*PROBE, "serve", proto, str(port))
        for name, net, extra in (("a1", "n1", {"publish": ("8080:80", "127.0.0.1:8081:80", "5353:5300/udp")}),
                                 ("a2", "n1", {}), ("b1", "n2", {}), ("i1", "ni", {}), ("i2", "ni", {}),
                                 ("c1", "nc", {}), ("c2", "nc", {})):
            ea.run(ContainerSpec(name=name, network=net, detach=True, command=serve("tcp", 80), **extra))
            ea.exec(name, ["sh", "-c", f"{' '.join(serve('udp', 5300))} >/dev/null 2>&1 &"])
        # the LAN peer: a server on B itself, and a route to A's networks so that only
        # A's firewall (not a missing route) can stop B from reaching containers directly
        eb.run(ContainerSpec(name="peer", network="host", detach=True, command=serve("tcp", 9000)))
        eb.exec("peer", ["sh", "-c", f"{' '.join(serve('udp', 9001))} >/dev/null 2>&1 &"])
        host.node_exec(b, ["ip", "route", "add", "10.81.0.0/16", "via", A_IP])
        time.sleep(0.5)                                  # servers listening
        yield world


def probe_node(world, node: str, proto: str, ip: str, port: int) -> str | None:
    return helpers.probe_node(world["host"], world[node], proto, ip, port)


def ip_of(engine, name: str) -> str:
    return engine.container(name).endpoints[0].ipv4_address


def test_same_network(world):
    a = world["a"]
    assert probe(a, "a2", "tcp", ip_of(a, "a1"), 80) == ip_of(a, "a2")
    assert probe(a, "a1", "udp", ip_of(a, "a2"), 5300) == ip_of(a, "a1")


def test_other_network_isolated_both_ways(world):
    a = world["a"]
    assert probe(a, "a1", "tcp", ip_of(a, "b1"), 80) is None
    assert probe(a, "b1", "tcp", ip_of(a, "a2"), 80) is None
    assert probe(a, "b1", "udp", ip_of(a, "a2"), 5300) is None
    # even a published container port is not reachable at the container's own address
    # from another network (Docker 28's direct-routing protection); only via the node
    assert probe(a, "b1", "tcp", ip_of(a, "a1"), 80) is None


def test_egress_is_masqueraded(world):
    a = world["a"]
    assert probe(a, "a1", "tcp", B_IP, 9000) == A_IP          # B sees node A, not 10.81.1.x
    assert probe(a, "b1", "udp", B_IP, 9001) == A_IP


def test_lan_peer_cannot_reach_containers_directly(world):
    a = world["a"]
    assert probe_node(world, "B", "tcp", ip_of(a, "a1"), 80) is None


def test_internal_network(world):
    a = world["a"]
    assert probe(a, "i1", "tcp", ip_of(a, "i2"), 80) == ip_of(a, "i1")      # inside: yes
    assert a.exec("i1", ["ping", "-c", "1", "-W", "1", "-q", "10.81.3.1"]) == 0   # the gateway: yes
    assert probe(a, "i1", "tcp", B_IP, 9000) is None                         # out: no
    code, routes = a.exec_output("i1", ["ip", "route"])
    assert "default" not in routes                                           # no default route
    assert probe(a, "a1", "tcp", ip_of(a, "i1"), 80) is None                 # in: no
    assert probe_node(world, "B", "tcp", ip_of(a, "i1"), 80) is None


def test_icc_false(world):
    a = world["a"]
    assert probe(a, "c1", "tcp", ip_of(a, "c2"), 80) is None
    assert probe(a, "c1", "udp", ip_of(a, "c2"), 5300) is None
    assert probe(a, "c1", "tcp", B_IP, 9000) == A_IP                         # still has a way out


def test_published_ports(world):
    a = world["a"]
    assert sorted((p.container_port, p.proto, p.host_ip, p.host_port) for p in a.port("a1")) == [
        (80, "tcp", "0.0.0.0", 8080), (80, "tcp", "127.0.0.1", 8081), (5300, "udp", "0.0.0.0", 5353)]
    assert probe_node(world, "A", "tcp", "127.0.0.1", 8080) is not None     # the node's own processes
    assert probe_node(world, "A", "tcp", A_IP, 8080) is not None
    assert probe_node(world, "B", "tcp", A_IP, 8080) == B_IP                 # LAN peer, real source kept
    assert probe_node(world, "B", "udp", A_IP, 5353) == B_IP                 # UDP
    assert probe(a, "b1", "tcp", A_IP, 8080) is not None                     # other network, via the host
    assert probe(a, "a1", "tcp", A_IP, 8080) is not None                     # hairpin: its own port
    assert probe_node(world, "A", "tcp", "127.0.0.1", 8081) is not None     # 127.0.0.1-only binding
    assert probe_node(world, "B", "tcp", A_IP, 8081) is None                 # ... not from the LAN
    assert probe_node(world, "B", "tcp", A_IP, 8082) is None                 # nothing published there


def test_port_conflicts_and_random_port(world):
    a = world["a"]
    with pytest.raises(Conflict, match="Bind for 0.0.0.0:8080 failed: port is already allocated"):
        a.run(ContainerSpec(name="dup", network="n2", publish=("8080:80",), detach=True))
    # a process on the node already listening
    a.run(ContainerSpec(name="squat", network="host", detach=True, command=(*PROBE, "serve", "tcp", "8090")))
    time.sleep(0.3)
    with pytest.raises(Conflict, match="failed to bind host port 0.0.0.0:8090/tcp: address already in use"):
        a.run(ContainerSpec(name="dup", network="n2", publish=("8090:80",), detach=True))
    assert "dup" not in [c.name for c in a.containers(all=True)]
    c, _ = a.run(ContainerSpec(name="rnd", network="n2", publish=("80",), detach=True,
                               command=(*PROBE, "serve", "tcp", "80")))
    (pm,) = c.ports
    lo, hi = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    assert lo <= pm.host_port <= hi
    time.sleep(0.3)
    assert probe_node(world, "B", "tcp", A_IP, pm.host_port) == B_IP
    a.remove_container("rnd", force=True)
    a.remove_container("squat", force=True)
    assert probe_node(world, "B", "tcp", A_IP, pm.host_port) is None        # removed with the container


def test_ruleset_follows_the_store(world):
    a = world["a"]
    assert a.firewall_check() == []
    a.create_network(NetworkSpec("tmp", subnets=("10.81.9.0/24",)))
    assert a.firewall_check() == [] and "10.81.9.0/24" in nft_list(world["A"])
    a.remove_network("tmp")
    assert a.firewall_check() == [] and "10.81.9.0/24" not in nft_list(world["A"])
    subprocess.run(["ip", "netns", "exec", f"nkn-{world['A']}", "nft", "add", "rule", "inet", "netkit",
                    "forward", "accept"], check=True)
    assert a.firewall_check() == ["firewall: table inet netkit was changed outside netkit"]
    a.system_prune()
    assert a.firewall_check() == []


def nft_list(node: str) -> str:
    return subprocess.run(["ip", "netns", "exec", f"nkn-{node}", "nft", "list", "ruleset"],
                          capture_output=True, text=True).stdout


def test_reset_removes_the_table(world, netkit_dirs):
    from netkit.engine import Engine
    from tests.conftest import unique
    name = unique()
    world["host"].create_node(name)
    try:
        with Engine(name, root=world["host"].root, run=world["host"].run_root) as e:
            e.create_network(NetworkSpec("x"))
            e.run(ContainerSpec(name="web", network="x", publish=("80",), detach=True))
            assert "table inet netkit" in nft_list(name)
            e.system_reset()
            assert "netkit" not in nft_list(name)
    finally:
        world["host"].remove_node(name, force=True)
