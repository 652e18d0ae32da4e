"""The scope interface (netkit/scope.py): LocalScope and ClusterScope on real SQLite stores.

No kernel is touched: the cluster scope is driven through a real `Actions`
runner whose kernel session is never used, with `in_agent=True` so that no
agent is started after an action.
"""

from __future__ import annotations

import inspect
import json
import os
import re

import pytest

from netkit.actions import Actions, KernelSessions
from netkit.cluster import ClusterScope, mac_from_ip
from netkit.drivers.overlay import OverlayDriver
from netkit.errors import AlreadyExists, Conflict, Forbidden, InternalError
from netkit.ipam import build_ipam
from netkit.model import Endpoint, Network, Node, Scope
from netkit.paths import NodePaths
from netkit.scope import LocalScope, NetworkScope, Scopes
from netkit.specs import NetworkSpec
from netkit.store import Store
from netkit.store.cluster import MANAGER, SWARM_FILE, WORKER, Member, SqliteClusterStore

MEMBERS = [name for name, _ in inspect.getmembers(NetworkScope)
           if not name.startswith("_")]


def test_both_scopes_implement_the_whole_interface_with_its_signatures():
    assert {"reserve", "allocate", "release", "publish", "withdraw"} <= set(MEMBERS)
    for impl in (LocalScope, ClusterScope):
        for name in MEMBERS:
            assert hasattr(impl, name), f"{impl.__name__}.{name}"
            want = getattr(NetworkScope, name)
            if callable(want):
                assert list(inspect.signature(getattr(impl, name)).parameters) == \
                    list(inspect.signature(want).parameters), f"{impl.__name__}.{name}"
    assert LocalScope.local_gateway is True and ClusterScope.local_gateway is False


def test_scopes_pick_the_implementation_of_the_declared_scope(tmp_path):
    local = LocalScope("n1")
    scopes = Scopes(local, "cluster-impl")             # type: ignore[arg-type]
    assert scopes.of(Scope.LOCAL) is local and scopes.of(Scope.SWARM) == "cluster-impl"


# -- LocalScope: the node's store ------------------------------------------------------

@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "node" / "netkit.db"))
    yield s
    s.close()


def local_net(name: str = "n1") -> Network:
    cfgs = build_ipam(["10.7.0.0/24"], [], [], {"keep": "10.7.0.9"})
    return Network(id=name * 32 if len(name) == 2 else "a" * 64, name=name, driver="bridge",
                   ipam=cfgs)


def endpoint(net: Network, ipv4: str) -> Endpoint:
    return Endpoint(id="e" * 64, network_id=net.id, container_id="c" * 64, ifname="eth0",
                    mac="02:42:00:00:00:01", ipv4=ipv4, network_name=net.name)


def test_local_scope_reserves_allocates_and_releases_in_the_node_store(store):
    scope, net = LocalScope("n1"), local_net()
    with store.transaction() as tx:
        scope.check_create(tx, net.name)
        scope.reserve(tx, net)
        with pytest.raises(AlreadyExists, match="^network with name n1 already exists$"):
            scope.check_create(tx, net.name)
        assert tx.address_owner(net.id, 4, to_key_of("10.7.0.1")) is not None   # gateway
        assert tx.address_owner(net.id, 4, to_key_of("10.7.0.9")) is not None   # aux address
        first = scope.allocate(tx, net, 4, None, "x")
        second = scope.allocate(tx, net, 4, None, "y")
        assert (first, second) == ("10.7.0.2/24", "10.7.0.3/24")
        with pytest.raises(Conflict, match="Address already in use"):
            scope.allocate(tx, net, 4, "10.7.0.3", "z")
        scope.publish(tx, net, endpoint(net, first), None)    # type: ignore[arg-type]
        scope.release(tx, net, endpoint(net, first))
        scope.withdraw(tx, net, endpoint(net, first))
        assert scope.allocate(tx, net, 4, None, "z") == "10.7.0.2/24"   # the hint moved back
    macs = {scope.new_mac("10.7.0.2/24") for _ in range(4)}   # random, as Docker's now
    assert len(macs) == 4 and all(re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", m) and
                                  int(m[:2], 16) & 3 == 2 for m in macs)


def to_key_of(ip: str) -> str:
    from netkit import ipam
    family, value = ipam.ip_to_int(ip)
    return ipam.to_key(value, family)


# -- ClusterScope: the cluster store, through the action hooks ----------------------------

@pytest.fixture
def member(tmp_path):
    """A node `m1` (in no netns: nothing here reaches the kernel) that is its cluster's
    manager, with its engine's runner and cluster scope; and the cluster store."""
    root, run = str(tmp_path / "root"), str(tmp_path / "run")
    node = Node(name="m1", ip="192.168.50.11/24")
    paths = NodePaths.of("m1", root, run)
    store = Store(paths.db)
    cluster = SqliteClusterStore(root, "c" * 25, create=True)
    with cluster.transaction() as c:
        c.add_member(Member("m1", MANAGER, "192.168.50.11"))
        c.add_member(Member("w1", WORKER, "192.168.50.12"))
    with open(os.path.join(paths.root, SWARM_FILE), "w") as f:
        json.dump({"cluster": cluster.cluster_id}, f)
    actions = Actions(store, node, KernelSessions(None))
    scope = ClusterScope(store, root, run, node, actions, KernelSessions(None), None, None,  # type: ignore[arg-type]
                         in_agent=True)
    yield scope, actions, store, cluster
    scope.close()
    cluster.close()
    store.close()


def create_overlay(scope, actions, name: str = "ov") -> Network:
    spec = NetworkSpec(name, driver="overlay", attachable=True)
    with actions() as (tx, ctx):
        scope.check_create(tx, name)
        plan = scope.plan(tx, ctx, spec, OverlayDriver())
        net = Network(id=name[0] * 64, name=name, driver="overlay", scope=Scope.SWARM,
                      ipam=plan.ipam, ipv4=plan.ipv4, ipv6=plan.ipv6, options=plan.options)
        scope.reserve(tx, net)
    return net


def test_cluster_scope_keeps_networks_and_addresses_in_the_cluster_store(member):
    scope, actions, store, cluster = member
    net = create_overlay(scope, actions)
    assert net.options["com.docker.network.driver.overlay.vxlanid_list"] == "4096"
    assert [n.name for n in cluster.read().networks()] == ["ov"]
    assert store.read().network(net.id) is not None                 # mirrored into the node
    with actions() as (tx, _):
        with pytest.raises(AlreadyExists):
            scope.check_create(tx, "ov")
        ipv4 = scope.allocate(tx, net, 4, None, "e" * 64)
        ep = endpoint(net, ipv4)
        scope.publish(tx, net, ep, _Ctr())
    assert ipv4.endswith(".2/24")                                    # .1: the gateway
    assert [e.ipv4 for e in cluster.read().endpoints()] == [ipv4]
    assert store.read().count_addresses(net.id, 4) == 0              # held cluster-wide only
    with actions() as (tx, _):
        scope.release(tx, net, ep)
        scope.withdraw(tx, net, ep)
    assert cluster.read().endpoints() == []
    with actions() as (tx, _):
        assert scope.allocate(tx, net, 4, None, "f" * 64) == ipv4     # released cluster-wide
    assert scope.new_mac(ipv4) == mac_from_ip(ipv4) == "02:42:" + ":".join(
        f"{int(b):02x}" for b in ipv4.split("/")[0].split("."))


def test_a_failed_action_rolls_back_the_cluster_transaction_too(member):
    scope, actions, store, cluster = member
    net = create_overlay(scope, actions)
    version = cluster.version()
    with pytest.raises(InternalError, match="RuntimeError: boom"):
        with actions() as (tx, _):
            scope.allocate(tx, net, 4, None, "e" * 64)
            raise RuntimeError("boom")           # the abort hook rolls the cluster back
    assert cluster.version() == version
    with actions() as (tx, _):
        assert scope.allocate(tx, net, 4, None, "f" * 64).endswith(".2/24")


def test_unreserve_refuses_while_another_node_has_an_endpoint(member):
    scope, actions, store, cluster = member
    net = create_overlay(scope, actions)
    with actions() as (tx, _):
        ep = endpoint(net, scope.allocate(tx, net, 4, None, "e" * 64))
        scope.publish(tx, net, ep, _Ctr())
    with pytest.raises(Conflict, match='has active endpoints .*node:"m1"'):
        with actions() as (tx, _):
            scope.unreserve(tx, net)
    assert [n.name for n in cluster.read().networks()] == ["ov"]


def test_workers_may_not_create_cluster_networks(member):
    scope, actions, store, cluster = member
    with cluster.transaction() as c:
        c.remove_member("m1")
        c.add_member(Member("m1", WORKER, "192.168.50.11"))
    with pytest.raises(Forbidden, match="not a swarm manager"):
        with actions() as (tx, _):
            scope.check_create(tx, "ov")


class _Ctr:
    """What publish() reads of a container."""

    id = "c" * 64
    name = "web"
    short_id = "c" * 12
    hostname = "cccccccccccc"
