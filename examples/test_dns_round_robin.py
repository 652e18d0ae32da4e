"""Docker's DNS round robin, seen on the wire: one alias, three containers.

Run as root: ``pytest examples/test_dns_round_robin.py`` (netkit's pytest
plugin gives the netkit_node and netkit_capture fixtures).
"""

from netkit import ContainerSpec, NetworkSpec

SLEEP = ("sleep", "infinity")


def test_alias_answers_rotate(netkit_node, netkit_capture):
    netkit_node.create_network(NetworkSpec("app"))
    for name in ("web1", "web2", "web3"):
        netkit_node.run(ContainerSpec(name=name, network="app", aliases=("web",), detach=True, command=SLEEP))
    netkit_node.run(ContainerSpec(name="client", network="app", detach=True, command=SLEEP))

    with netkit_capture("client", filter="udp port 53") as cap:
        for _ in range(6):
            netkit_node.exec_output("client", ["dig", "+short", "web"])

    answers = cap.assert_dns_answer("web", count=6)
    assert {a.src for a in answers} == {"127.0.0.11"}            # the embedded resolver
    orders = [a.addresses for a in answers]
    assert len(set(orders)) == 3 and orders[:3] == orders[3:]    # three rotations, twice
