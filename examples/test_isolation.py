"""Two user networks on one node: a ping from one to the other never reaches the wire.

Run as root: ``pytest examples/test_isolation.py``.
"""

from netkit import ContainerSpec, NetworkSpec
from scapy.layers.inet import ICMP

SLEEP = ("sleep", "infinity")


def test_networks_are_isolated(netkit_node, netkit_capture):
    netkit_node.create_network(NetworkSpec("front"))
    netkit_node.create_network(NetworkSpec("back"))
    netkit_node.run(ContainerSpec(name="alice", network="front", detach=True, command=SLEEP))
    bob, _ = netkit_node.run(ContainerSpec(name="bob", network="back", detach=True, command=SLEEP))
    bob_ip = bob.endpoints[0].ipv4_address

    to_bob = f"icmp and host {bob_ip}"
    with netkit_capture("network:front", filter=to_bob) as sent, \
            netkit_capture("network:back", filter=to_bob) as arrived:
        assert netkit_node.exec_output("alice", ["ping", "-c", "2", "-i", "0.2", "-W", "1", bob_ip])[0] != 0

    sent.assert_packets(ICMP, count=2)      # the requests left alice's network...
    arrived.assert_no_packets()              # ...and never showed up on bob's
