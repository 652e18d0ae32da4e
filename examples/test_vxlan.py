"""Overlay traffic on the LAN is VXLAN: two swarm nodes, one overlay network, a ping
between their containers, and what the LAN's switch carries meanwhile.

Run as root: ``pytest examples/test_vxlan.py``.
"""

import secrets

import pytest
from scapy.layers.inet import ICMP, UDP
from scapy.layers.vxlan import VXLAN

from netkit import ContainerSpec, NetworkSpec
from netkit.engine import Engine

SLEEP = ("sleep", "infinity")


@pytest.fixture
def two_swarm_nodes(netkit_host, netkit_state_dirs):
    """A LAN 192.168.88.0/24 with nodes at .10 (swarm manager) and .11 (worker)."""
    lan, names = f"l{secrets.token_hex(3)}", [f"v{secrets.token_hex(3)}" for _ in range(2)]
    netkit_host.create_lan(lan, "192.168.88.0/24", gateway="192.168.88.1")
    engines = []
    try:
        for i, name in enumerate(names):
            netkit_host.create_node(name, lan=lan, ip=f"192.168.88.{10 + i}/24")
            engines.append(Engine(name, root=netkit_state_dirs[0], run=netkit_state_dirs[1]))
        manager, worker = engines
        manager.swarm_init()
        worker.swarm_join(names[0])
        yield lan, manager, worker
    finally:
        for e in engines:
            e.close()
        for name in names:                       # removing a member leaves its swarm
            if any(n.name == name for n in netkit_host.nodes()):
                netkit_host.remove_node(name, force=True)
        netkit_host.remove_lan(lan)


@pytest.mark.netkit_requires("vxlan")
def test_overlay_traffic_is_vxlan_on_the_lan(two_swarm_nodes, netkit_capture):
    lan, manager, worker = two_swarm_nodes
    manager.create_network(NetworkSpec("ov", driver="overlay", attachable=True, subnets=("10.0.9.0/24",)))
    manager.run(ContainerSpec(name="ca", network="ov", detach=True, command=SLEEP))
    b, _ = worker.run(ContainerSpec(name="cb", network="ov", detach=True, command=SLEEP))
    b_ip = b.endpoints[0].ipv4_address

    between_nodes = "ip and host 192.168.88.10 and host 192.168.88.11"   # ARP aside
    with netkit_capture(f"lan:{lan}", engine=manager, filter=between_nodes) as wire:
        code, out = manager.exec_output("ca", ["ping", "-c", "2", "-i", "0.2", "-W", "2", b_ip])
        assert code == 0, out

    wire.assert_only(lambda p: UDP in p and p[UDP].dport == 4789, "VXLAN (UDP 4789)")
    inner = wire.assert_packets(lambda p: VXLAN in p and ICMP in p[VXLAN])
    from netkit.drivers.overlay import vni_of
    assert {p[VXLAN].vni for p in inner} == {vni_of(manager.network("ov"))}   # the network's VNI
    assert {p[VXLAN][ICMP].type for p in inner} == {0, 8}      # the ping and its replies, encapsulated
    wire.assert_no_packets(lambda p: ICMP in p and VXLAN not in p)   # nothing in the clear
