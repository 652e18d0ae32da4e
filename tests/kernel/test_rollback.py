"""Every failure point of an action leaves the kernel, the files and the stores as they were.

Each test makes the Nth kernel call of one action fail, for N = 1, 2, ... until the
action makes fewer than N calls and succeeds; after every failure the state
(tests/kernel/helpers.py `snapshot`: the node's and its containers' kernel objects, its
nftables ruleset, mounts, container files, every store row) must be what it was.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest

from netkit.errors import KernelError
from netkit.kernel.session import FaultPlan
from netkit.model import State
from netkit.paths import lan_netns, node_netns
from netkit.specs import ContainerSpec, EndpointSpec, NetworkSpec
from tests.conftest import unique
from tests.kernel.helpers import (addrs, count_kernel_calls, host_snapshot, links, snapshot,
                                  store_rows, swarm_of_three, wait_converged)

pytestmark = pytest.mark.root


def fail_every_call(engine, action: Callable[[], Any], state: Callable[[], Any] | None = None,
                    *, at_least: int = 1) -> int:
    """Run `action` with its 1st, 2nd, ... kernel call failing until it makes fewer calls
    than that and succeeds (it is then done, once); after each failure `state()` must be
    what it was before. Returns the number of kernel calls of the successful run."""
    state = state or (lambda: snapshot(engine))
    before = state()
    n = 0
    while True:
        n += 1
        engine.faults = FaultPlan(fail_at=n)
        try:
            action()
        except KernelError as exc:
            assert f"injected fault at kernel call {n}" in str(exc), exc
        else:
            break
        finally:
            engine.faults = None
        assert state() == before, f"kernel call {n} left something behind"
    assert n - 1 >= at_least, f"only {n - 1} kernel calls"
    return n - 1


def two_networks_and_a_port() -> ContainerSpec:
    return ContainerSpec(name="c1", network="n1", extra_networks=(EndpointSpec("n2"),),
                         publish=("8080:80",), detach=True)


@pytest.fixture
def nets(node):
    """Networks n1 (IPv6 too) and n2 on a node that had a container on both: the kernel
    gives an IPv6 bridge its link-local address when its first port comes up, and keeps it."""
    node.create_network(NetworkSpec("n1", ipv6=True))
    node.create_network(NetworkSpec("n2"))
    node.run(ContainerSpec(name="warm", network="n1", extra_networks=(EndpointSpec("n2"),),
                           detach=True))
    node.remove_container("warm", force=True)
    return node


# -- creating ------------------------------------------------------------------------------
def test_every_failure_point_of_run(nets):
    node = nets
    spec = lambda: ContainerSpec(name="c1", network="n1", extra_networks=(EndpointSpec("n2"),),
                                 detach=True)
    assert fail_every_call(node, lambda: node.run(spec()), at_least=10)


def test_every_failure_point_of_run_with_a_port(nets):
    assert fail_every_call(nets, lambda: nets.run(two_networks_and_a_port()), at_least=10)
    assert nets.container("c1").ports


def test_every_failure_point_of_network_create(node):
    assert fail_every_call(node, lambda: node.create_network(NetworkSpec("n1", ipv6=True)),
                           at_least=3)


def test_every_failure_point_of_create_container(nets):
    fail_every_call(nets, lambda: nets.create_container(two_networks_and_a_port()), at_least=2)
    assert nets.container("c1").state is State.CREATED


def test_every_failure_point_of_start(nets):
    nets.create_container(two_networks_and_a_port())
    assert fail_every_call(nets, lambda: nets.start("c1"), at_least=10)
    ctr = nets.container("c1")
    assert ctr.state is State.RUNNING and len(ctr.endpoints) == 2 and ctr.ports


# -- connect, disconnect -------------------------------------------------------------------
def test_every_failure_point_of_connect(nets):
    nets.run(ContainerSpec(name="c1", network="n1", detach=True))
    assert fail_every_call(nets, lambda: nets.connect("n2", "c1", aliases=("a",)), at_least=4)


def test_every_failure_point_of_connect_retargeting_ports(nets):
    """n1 sorts first (Docker's Endpoint order): connecting it moves the published port."""
    nets.run(ContainerSpec(name="c1", network="n2", publish=("8080:80",), detach=True))
    old = nets.container("c1").ports[0]
    fail_every_call(nets, lambda: nets.connect("n1", "c1"), at_least=5)
    new = nets.container("c1").ports[0]
    assert new.network_id == nets.network("n1").id != old.network_id


def test_every_failure_point_of_disconnect(nets):
    nets.run(two_networks_and_a_port())
    fail_every_call(nets, lambda: nets.disconnect("n2", "c1"), at_least=1)
    assert [ep.network_name for ep in nets.container("c1").endpoints] == ["n1"]


def test_every_failure_point_of_disconnect_of_the_gateway_network(nets):
    """Leaving n1 moves the default route and the published port to n2."""
    nets.run(two_networks_and_a_port())
    fail_every_call(nets, lambda: nets.disconnect("n1", "c1"), at_least=3)
    ctr = nets.container("c1")
    assert ctr.ports[0].network_id == nets.network("n2").id


# -- stop, rm ------------------------------------------------------------------------------
def test_every_failure_point_of_stop_of_a_sandbox(nets):
    """A bare sandbox (no command): the engine itself leaves the networks."""
    nets.run(two_networks_and_a_port())
    fail_every_call(nets, lambda: nets.stop("c1"), at_least=2)
    ctr = nets.container("c1")
    assert ctr.state is State.EXITED and not ctr.endpoints and not ctr.ports


def test_every_failure_point_of_rm(nets):
    nets.run(two_networks_and_a_port())
    fail_every_call(nets, lambda: nets.remove_container("c1", force=True), at_least=1)
    assert not nets.containers(all=True)


def test_every_failure_point_of_rm_of_a_created_container(nets):
    nets.create_container(two_networks_and_a_port())
    fail_every_call(nets, lambda: nets.remove_container("c1"), at_least=1)
    assert not nets.containers(all=True)


def test_count_is_stable(nets):
    """The helper's premise: the same action makes the same calls each time."""
    spec = lambda: ContainerSpec(name="c1", network="n1", detach=True)
    first = count_kernel_calls(nets, lambda: nets.run(spec()))
    nets.remove_container("c1", force=True)
    assert count_kernel_calls(nets, lambda: nets.run(spec())) == first


def test_every_failure_point_of_network_rm(nets):
    nets.create_network(NetworkSpec("n3", ipv6=True, options={"com.docker.network.bridge.name": "br-n3"}))
    fail_every_call(nets, lambda: nets.remove_network("n3"), at_least=1)
    assert "br-n3" not in links(nets.node.netns)


# -- simulated nodes and LANs (on the real host) -------------------------------------------
def test_every_failure_point_of_lan_create(host, netkit_dirs):
    name = unique("l")
    state = lambda: host_snapshot(host, netkit_dirs[1], name)
    try:
        fail_every_call(host, lambda: host.create_lan(name, "192.168.79.0/24",
                                                      gateway="192.168.79.1"), state, at_least=4)
        assert "lan0" in links(lan_netns(name))
    finally:
        if any(lan.name == name for lan in host.lans()):
            host.remove_lan(name)


def test_every_failure_point_of_node_create(host, lan, netkit_dirs):
    name = unique("n")
    state = lambda: host_snapshot(host, netkit_dirs[1], name, lan.name)
    try:
        fail_every_call(host, lambda: host.create_node(name, lan=lan.name, ip="192.168.77.30/24"),
                        state, at_least=6)
        assert "192.168.77.30/24" in addrs(node_netns(name), "eth0")
    finally:
        if any(n.name == name for n in host.nodes()):
            host.remove_node(name, force=True)


def test_every_failure_point_of_node_rm_leaves_it(host, lan, netkit_dirs):
    """`node rm` resets the node first (actions of the node's engine); its own last action
    on the host only forgets it: failing there keeps the node whole."""
    name = unique("n")
    host.create_node(name, lan=lan.name, ip="192.168.77.31/24")
    state = lambda: host_snapshot(host, netkit_dirs[1], name, lan.name)
    try:
        fail_every_call(host, lambda: host.remove_node(name), state, at_least=2)
        assert name not in {n.name for n in host.nodes()}
        assert f"n-{name}" not in links(lan_netns(lan.name))
    finally:
        if any(n.name == name for n in host.nodes()):
            host.remove_node(name, force=True)


# -- a swarm: overlay networks and membership ------------------------------------------------
SWARM_IPS = {"a": "192.168.78.10", "b": "192.168.78.11", "c": "192.168.78.12"}


@pytest.fixture(scope="module")
def sw(host, netkit_dirs):
    """Three nodes (a manager; b, c workers), overlay `ov` with a sandbox on a and c; b has
    none: its first endpoint makes its segment."""
    with swarm_of_three(host, netkit_dirs, "192.168.78.0/24", SWARM_IPS) as (engines, *_):
        a = engines["a"]
        a.create_network(NetworkSpec("ov", driver="overlay", attachable=True))
        for k in ("a", "c"):
            engines[k].run(ContainerSpec(name=f"p{k}", network="ov", detach=True))
        yield engines
        for e in engines.values():
            for ctr in e.containers(all=True):
                e.remove_container(ctr.id, force=True)
        a.remove_network("ov")


def world(sw) -> dict:
    """The cluster store's rows and every node's snapshot, once their agents caught up."""
    wait_converged(sw.values())
    return {"cluster": store_rows(sw["a"].cluster.store()), **{k: snapshot(e) for k, e in sw.items()}}


def test_overlay_network_create_makes_nothing_in_the_kernel(sw):
    """The segment is made on a node's first endpoint (the run tests below): creating the
    network is store work only, so no kernel call can fail it."""
    try:
        assert fail_every_call(sw["a"], lambda: sw["a"].create_network(
            NetworkSpec("ov2", driver="overlay")), lambda: world(sw), at_least=0) == 0
    finally:
        sw["a"].remove_network("ov2")


def test_every_failure_point_of_first_overlay_run_and_rm_on_a_node(sw):
    b = sw["b"]
    try:
        calls = fail_every_call(b, lambda: b.run(ContainerSpec(name="r1", network="ov", detach=True)),
                                lambda: world(sw), at_least=12)
        assert b.container("r1").state is State.RUNNING
        # its last endpoint on b: the segment goes with it (netkit_gwbridge stays, as Docker's)
        fail_every_call(b, lambda: b.remove_container("r1", force=True), lambda: world(sw),
                        at_least=3)
        assert "ov-001000" not in links(b.node.netns) and calls
    finally:
        if any(c.name == "r1" for c in b.containers(all=True)):
            b.remove_container("r1", force=True)
        if any(n.name == "netkit_gwbridge" for n in b.networks()):
            b.remove_network("netkit_gwbridge")


def test_every_failure_point_of_overlay_connect_and_disconnect(sw):
    b = sw["b"]
    b.create_network(NetworkSpec("lb"))
    try:
        b.run(ContainerSpec(name="r2", network="lb", publish=("8081:80",), detach=True))
        fail_every_call(b, lambda: b.connect("ov", "r2"), lambda: world(sw), at_least=6)
        fail_every_call(b, lambda: b.disconnect("ov", "r2"), lambda: world(sw), at_least=3)
        assert [ep.network_name for ep in b.container("r2").endpoints] == ["lb"]
    finally:
        if any(c.name == "r2" for c in b.containers(all=True)):
            b.remove_container("r2", force=True)
        b.remove_network("lb")


def test_swarm_join_and_leave(sw):
    """Membership is store work: `leave` makes no kernel call of its own (the node's agent
    then drops its peers); `leave -f` first disconnects the node's containers from swarm
    networks, one action each, so a failure there leaves the node a member as it was.
    `join` makes none either: the node programs its peers after the commit (sync_node)."""
    b, manager = sw["b"], sw["a"].node_name
    b.run(ContainerSpec(name="r3", network="ov", detach=True))
    try:
        fail_every_call(b, lambda: b.swarm_leave(force=True), lambda: world(sw), at_least=3)
        assert b.cluster.store() is None
        assert "ov" not in {ep.network_name for ep in b.container("r3").endpoints}
        assert fail_every_call(b, lambda: b.swarm_join(manager), lambda: world(sw), at_least=0) == 0
        assert b.cluster.store() is not None
    finally:
        if b.cluster.store() is None:
            b.swarm_join(manager)
        b.remove_container("r3", force=True)
        if any(n.name == "netkit_gwbridge" for n in b.networks()):
            b.remove_network("netkit_gwbridge")
