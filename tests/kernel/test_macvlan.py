"""The macvlan driver with real traffic: the classic two-host LAN scenario and the rules.

A simulated LAN 192.168.0.0/24 whose bridge carries the router address .1;
node01 at .50 and node02 at .51 (their eth0 are ports of the LAN bridge).
Each node has `my_macvlan` on parent eth0 with the same subnet and a
disjoint --ip-range, and one container: the containers are hosts on the LAN.
"""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pytest

from netkit.errors import Conflict, InvalidArgument, KernelError, NetkitError, NotFound, Unsupported
from netkit.kernel.session import FaultPlan
from netkit.specs import ContainerSpec, EndpointSpec, NetworkSpec
from tests.conftest import unique
from tests.kernel.helpers import count_kernel_calls, ip, ip_json, links, snapshot

pytestmark = pytest.mark.root
ROUTER = "192.168.0.1"


def mv_spec(name: str = "my_macvlan", ip_range: str | None = "192.168.0.64/28",
            gateway: str | None = ROUTER, subnet: str = "192.168.0.0/24", **options: str) -> NetworkSpec:
    opts = {"macvlan_mode": "bridge", "parent": "eth0", **options}
    return NetworkSpec(name, driver="macvlan", subnets=(subnet,),
                       ip_ranges=(ip_range,) if ip_range else (),
                       gateways=(gateway,) if gateway else (), options=opts)


def ping(engine, ctr: str, target: str, wait: int = 2) -> bool:
    return engine.exec(ctr, ["ping", "-c", "1", "-W", str(wait), "-q", target]) == 0


def node_ping(host, node: str, target: str, wait: int = 2) -> bool:
    return host.node_exec(node, ["ping", "-c", "1", "-W", str(wait), "-q", target], capture=[]) == 0


def addr_of(engine, ctr: str, net: str = "my_macvlan") -> str:
    c = engine.container(ctr)
    return next(ep.ipv4_address for ep in c.endpoints if ep.network_name == net)


def make_lan(host, netkit_dirs, nodes: int):
    """A LAN 192.168.0.0/24 (router .1) with `nodes` nodes at .50, .51 ...; returns a cleanup."""
    from netkit.engine import Engine
    lan = unique("l")
    names = [unique("n") for _ in range(nodes)]
    engines = []
    host.create_lan(lan, "192.168.0.0/24", gateway=ROUTER)

    def cleanup():
        for e in engines:
            e.close()
        for n in names:
            if any(x.name == n for x in host.nodes()):
                host.remove_node(n, force=True)
        host.remove_lan(lan)
    try:
        for i, n in enumerate(names):
            host.create_node(n, lan=lan, ip=f"192.168.0.{50 + i}/24")
            engines.append(Engine(n, root=netkit_dirs[0], run=netkit_dirs[1]))
    except BaseException:
        cleanup()
        raise
    return SimpleNamespace(lan=lan, names=names, engines=engines, host=host), cleanup


@pytest.fixture(scope="module")
def world(host, netkit_dirs):
    """The Docker-book scenario, built once for the module."""
    w, cleanup = make_lan(host, netkit_dirs, 2)
    try:
        e1, e2 = w.engines
        w.net1 = e1.create_network(mv_spec(ip_range="192.168.0.64/28"))
        w.net2 = e2.create_network(mv_spec(ip_range="192.168.0.128/28"))
        e1.run(ContainerSpec(name="c1", network="my_macvlan", detach=True))
        e2.run(ContainerSpec(name="c2", network="my_macvlan", detach=True))
        yield w
    finally:
        cleanup()


@pytest.fixture
def lan1(host, netkit_dirs):
    """A LAN with one node (192.168.0.50) for tests that change it."""
    w, cleanup = make_lan(host, netkit_dirs, 1)
    try:
        yield w.engines[0]
    finally:
        cleanup()


# -- the classic scenario ---------------------------------------------------------------
def test_addresses_come_from_each_nodes_range(world):
    e1, e2 = world.engines
    assert addr_of(e1, "c1") == "192.168.0.64"
    assert addr_of(e2, "c2") == "192.168.0.128"
    cfg = world.net1.ipam[0]
    assert (cfg.subnet, cfg.ip_range, cfg.gateway) == ("192.168.0.0/24", "192.168.0.64/28", ROUTER)
    assert e1.container("c1").endpoints[0].ipv4 == "192.168.0.64/24"


def test_no_gateway_on_the_node_and_no_new_links(world):
    e1, _ = world.engines
    node_links = links(e1.node.netns)
    assert sorted(node_links) == ["eth0", "lo"]            # nothing made for the network
    assert ROUTER not in ip("-o", "addr", netns=e1.node.netns)


def test_child_is_ethN_with_planned_mac(world):
    e1, _ = world.engines
    c = e1.container("c1")
    ep = c.endpoints[0]
    link = links(c.netns)[ep.ifname]
    assert ep.ifname == "eth0"
    assert link["address"] == ep.mac
    assert link["linkinfo"]["info_kind"] == "macvlan"
    assert link["linkinfo"]["info_data"]["mode"] == "bridge"
    assert ep.host_ifname is None


def test_default_route_via_the_lan_router(world):
    e1, _ = world.engines
    routes = ip_json("route", netns=e1.container("c1").netns)
    default = [r for r in routes if r["dst"] == "default"]
    assert [(r["gateway"], r["dev"]) for r in default] == [(ROUTER, "eth0")]


def test_containers_reach_each_other_and_the_router(world):
    e1, e2 = world.engines
    assert ping(e1, "c1", addr_of(e2, "c2"))
    assert ping(e2, "c2", addr_of(e1, "c1"))
    assert ping(e1, "c1", ROUTER)
    assert ping(e2, "c2", ROUTER)


def test_node_cannot_reach_its_own_containers(world):
    """The kernel rule Docker documents: not through the parent, neither way..."""
    e1, e2 = world.engines
    n1, n2 = world.names
    assert not node_ping(world.host, n1, addr_of(e1, "c1"), wait=1)
    assert not ping(e1, "c1", "192.168.0.50", wait=1)
    assert not node_ping(world.host, n2, addr_of(e2, "c2"), wait=1)
    # ... while the other node can, both ways
    assert node_ping(world.host, n2, addr_of(e1, "c1"))
    assert ping(e1, "c1", "192.168.0.51")
    assert node_ping(world.host, n1, addr_of(e2, "c2"))


def test_shim_workaround(lan1, host):
    """Docker's documented workaround: a macvlan shim on the node plus a route to the range."""
    lan1.create_network(mv_spec())
    lan1.run(ContainerSpec(name="s1", network="my_macvlan", detach=True))
    node = lan1.node_name
    assert not node_ping(host, node, "192.168.0.64", wait=1)
    for cmd in (["ip", "link", "add", "mv-shim", "link", "eth0", "type", "macvlan", "mode", "bridge"],
                ["ip", "addr", "add", "192.168.0.79/32", "dev", "mv-shim"],
                ["ip", "link", "set", "mv-shim", "up"],
                ["ip", "route", "add", "192.168.0.64/28", "dev", "mv-shim"]):
        assert host.node_exec(node, cmd) == 0
    assert node_ping(host, node, "192.168.0.64")
    assert ping(lan1, "s1", "192.168.0.79")


def test_dns_between_containers_of_one_node(world):
    e1, _ = world.engines
    e1.run(ContainerSpec(name="c3", network="my_macvlan", detach=True, aliases=("web",)))
    try:
        ip3 = addr_of(e1, "c3")
        assert ip3 == "192.168.0.65"
        code, out = e1.exec_output("c1", ["getent", "hosts", "c3"])
        assert code == 0 and out.split()[0] == ip3
        code, out = e1.exec_output("c1", ["getent", "hosts", "web"])
        assert code == 0 and out.split()[0] == ip3
        code, out = e1.exec_output("c3", ["getent", "hosts", "c1"])
        assert code == 0 and out.split()[0] == addr_of(e1, "c1")
        assert ping(e1, "c3", "c1")
    finally:
        e1.remove_container("c3", force=True)


def test_inspect(world):
    e1, _ = world.engines
    (j,) = e1.inspect_networks(["my_macvlan"])
    assert j["Driver"] == "macvlan" and j["Internal"] is False
    assert j["IPAM"]["Config"] == [{"Subnet": "192.168.0.0/24", "IPRange": "192.168.0.64/28",
                                    "Gateway": ROUTER}]
    assert j["Options"] == {"macvlan_mode": "bridge", "parent": "eth0"}


def test_without_gateway_no_default_route(lan1):
    net = lan1.create_network(mv_spec(gateway=None))
    assert net.gateway_v4 is None and net.ipam[0].gateway is None
    lan1.run(ContainerSpec(name="g1", network="my_macvlan", detach=True))
    routes = ip_json("route", netns=lan1.container("g1").netns)
    assert [r["dst"] for r in routes] == ["192.168.0.0/24"]       # on-link only
    assert ping(lan1, "g1", ROUTER)                               # the LAN, without a route out
    (j,) = lan1.inspect_networks(["my_macvlan"])
    assert j["IPAM"]["Config"] == [{"Subnet": "192.168.0.0/24", "IPRange": "192.168.0.64/28"}]


def test_ipv6(node):
    node.create_network(NetworkSpec("inner", driver="macvlan", subnets=("10.66.0.0/24", "fd66::/64"),
                                    ipv6=True))
    node.run(ContainerSpec(name="s1", network="inner", detach=True))
    node.run(ContainerSpec(name="s2", network="inner", detach=True))
    ep = node.container("s2").endpoints[0]
    assert ep.ipv6.startswith("fd66::") and ep.ipv6.endswith("/64")
    assert node.exec("s1", ["ping", "-6", "-c", "1", "-W", "2", "-q", ep.ipv6_address]) == 0


# -- modes ----------------------------------------------------------------------------------
def test_private_mode_isolates_containers_of_one_node(lan1):
    lan1.create_network(mv_spec(macvlan_mode="private"))
    lan1.run(ContainerSpec(name="p1", network="my_macvlan", detach=True))
    lan1.run(ContainerSpec(name="p2", network="my_macvlan", detach=True))
    assert links(lan1.container("p1").netns)["eth0"]["linkinfo"]["info_data"]["mode"] == "private"
    assert not ping(lan1, "p1", addr_of(lan1, "p2"), wait=1)
    assert not ping(lan1, "p2", addr_of(lan1, "p1"), wait=1)
    assert ping(lan1, "p1", ROUTER) and ping(lan1, "p2", ROUTER)    # the LAN is still there


def test_vepa_mode_needs_a_hairpin_switch(lan1, host):
    """VEPA sends everything to the switch; the LAN bridge must hairpin for siblings to talk."""
    lan1.create_network(mv_spec(macvlan_mode="vepa"))
    lan1.run(ContainerSpec(name="v1", network="my_macvlan", detach=True))
    lan1.run(ContainerSpec(name="v2", network="my_macvlan", detach=True))
    assert ping(lan1, "v1", ROUTER)
    assert not ping(lan1, "v1", addr_of(lan1, "v2"), wait=1)
    lan = next(l for l in host.lans() if l.name == lan1.node.lan)
    subprocess.run(["ip", "-n", lan.netns, "link", "set", f"n-{lan1.node_name}", "type",
                    "bridge_slave", "hairpin", "on"], check=True)
    assert ping(lan1, "v1", addr_of(lan1, "v2"))


def test_passthru_child_takes_the_parent_mac(lan1):
    eth0_mac = links(lan1.node.netns)["eth0"]["address"]
    lan1.create_network(mv_spec(macvlan_mode="passthru"))
    lan1.run(ContainerSpec(name="t1", network="my_macvlan", detach=True))
    c = lan1.container("t1")
    assert c.endpoints[0].mac == eth0_mac == links(c.netns)["eth0"]["address"]
    assert ping(lan1, "t1", ROUTER)
    lan1.remove_container("t1", force=True)
    lan1.remove_network("my_macvlan")


def test_passthru_is_exclusive_both_ways(lan1):
    pt = lan1.create_network(mv_spec("pt", macvlan_mode="passthru"))
    before = snapshot(lan1)
    with pytest.raises(Conflict) as exc:
        lan1.create_network(mv_spec("other", subnet="10.70.0.0/24", ip_range=None, gateway=None))
    assert str(exc.value) == (f"macvlan network {pt.id} is already using parent interface eth0 "
                              "in mode passthru")
    assert snapshot(lan1) == before
    lan1.remove_network("pt")
    br = lan1.create_network(mv_spec("br"))
    before = snapshot(lan1)
    with pytest.raises(Conflict) as exc:
        lan1.create_network(mv_spec("pt", macvlan_mode="passthru", subnet="10.70.0.0/24",
                                    ip_range=None, gateway=None))
    assert str(exc.value) == (f"cannot use mode passthru, macvlan network {br.id} is already "
                              "using parent interface eth0")
    assert snapshot(lan1) == before


# -- no parent: an internal network on a private device ---------------------------------------
def test_internal_network_without_parent(node):
    before = sorted(links(node.node.netns))
    net = node.create_network(NetworkSpec("inner", driver="macvlan", subnets=("10.66.0.0/24",),
                                          gateways=("10.66.0.1",)))
    dm = f"dm-{net.id[:12]}"
    assert net.internal and net.options == {}
    dev = links(node.node.netns)[dm]
    assert dev["linkinfo"]["info_kind"] in ("dummy", "bridge") and dev.get("ifalias") == "netkit-macvlan"
    assert "LOWER_UP" in dev["flags"]                              # carrier: children can talk
    assert "10.66.0.1" not in ip("-o", "addr", netns=node.node.netns)   # the gateway is nowhere
    node.run(ContainerSpec(name="i1", network="inner", detach=True))
    node.run(ContainerSpec(name="i2", network="inner", detach=True))
    assert addr_of(node, "i1", "inner") == "10.66.0.2"           # .1 is the given gateway
    assert ping(node, "i1", addr_of(node, "i2", "inner"))
    code, out = node.exec_output("i1", ["getent", "hosts", "i2"])
    assert code == 0 and out.split()[0] == addr_of(node, "i2", "inner")
    routes = ip_json("route", netns=node.container("i1").netns)
    assert not [r for r in routes if r["dst"] == "default"]       # internal: no default route
    assert node.system_check() == []                              # dm- is no orphan ...
    assert node.system_prune() == []                              # ... and prune keeps it
    assert dm in links(node.node.netns)
    ip("link", "set", dm, "down", netns=node.node.netns)          # the driver's check: CNI CHECK
    assert node.system_check() == [f"network inner: parent interface {dm} is down"]
    ip("link", "set", dm, "up", netns=node.node.netns)
    node.remove_container("i1", force=True)
    node.remove_container("i2", force=True)
    node.remove_network("inner")
    assert sorted(links(node.node.netns)) == before               # dm- removed with the network


def test_connect_and_disconnect(node):
    node.create_network(NetworkSpec("n1", subnets=("10.67.0.0/24",)))
    node.create_network(NetworkSpec("inner", driver="macvlan", subnets=("10.66.0.0/24",)))
    node.run(ContainerSpec(name="c1", network="n1", detach=True))
    node.run(ContainerSpec(name="c2", network="inner", detach=True))
    ep = node.connect("inner", "c1")
    ns = node.container("c1").netns
    assert ep.ifname == "eth1" and links(ns)["eth1"]["address"] == ep.mac
    assert links(ns)["eth1"]["linkinfo"]["info_kind"] == "macvlan"
    assert ping(node, "c1", addr_of(node, "c2", "inner"))
    node.disconnect("inner", "c1")
    assert "eth1" not in links(ns)
    assert not ping(node, "c2", ep.ipv4_address, wait=1)


def test_published_ports_are_ignored(lan1):
    lan1.create_network(mv_spec())
    lan1.create_network(NetworkSpec("br", subnets=("10.68.0.0/24",)))
    ctr = lan1.run(ContainerSpec(name="m1", network="my_macvlan", publish=("8080:80",),
                                 detach=True))[0]
    assert ctr.ports == () and lan1.port("m1") == []
    lan1.run(ContainerSpec(name="b1", network="br", publish=("8080:80",), detach=True))
    assert [p.host_port for p in lan1.port("b1")] == [8080]     # the host port was not taken
    assert lan1.firewall_check() == []
    lan1.remove_container("b1", force=True)
    assert lan1.firewall_check() == []


# -- errors leave nothing behind -----------------------------------------------------------------
@pytest.mark.parametrize("options, cls, message", [
    ({"macvlan_mode": "x"}, InvalidArgument,
     "requested macvlan mode 'x' is not valid, 'bridge' mode is the macvlan driver default"),
    ({"parent": "lo"}, InvalidArgument, "loopback interface is not a valid macvlan parent link"),
    ({"parent": "eth9"}, NotFound, "-o parent interface was not found on the host: eth9"),
    ({"parent": "eth9.10"}, NotFound, "-o parent interface was not found on the host: eth9"),
    ({"parent": "eth9.5000"}, NotFound, "-o parent interface was not found on the host: eth9"),
    ({"parent": "eth0.5000"}, InvalidArgument, "vlan id must be between 1-4094, received: 5000"),
    ({"parent": "eth0.0"}, InvalidArgument, "vlan id must be between 1-4094, received: 0"),
    ({"parent": "eth0.ten"}, InvalidArgument,
     "unable to parse a valid vlan id from: ten (ex. eth0.10 for vlan 10)"),
    ({"parent": "eth0.1.2"}, InvalidArgument,
     "required interface name format is: name.vlan_id, ex. eth0.10 for vlan 10, instead received eth0.1.2"),
    ({"parent": "eth0", "foo": "1"}, InvalidArgument, "unknown option foo for driver macvlan"),
])
def test_create_errors_leave_nothing(lan1, options, cls, message):
    before = snapshot(lan1)
    with pytest.raises(cls) as exc:
        lan1.create_network(mv_spec(**options))
    assert str(exc.value) == message
    assert snapshot(lan1) == before


def test_vlan_parent(lan1):
    """eth0.10: made and removed by netkit where the kernel has 8021q, else Unsupported."""
    before = snapshot(lan1)
    try:
        lan1.create_network(mv_spec(parent="eth0.10"))
    except Unsupported as exc:
        assert str(exc).startswith("failed to create eth0.10 vlan link: operation not supported")
        assert "802.1q" in str(exc)
        assert snapshot(lan1) == before
        return
    vlan = links(lan1.node.netns)["eth0.10"]
    assert vlan["linkinfo"]["info_kind"] == "vlan" and vlan["linkinfo"]["info_data"]["id"] == 10
    lan1.create_network(mv_spec("second", parent="eth0.10", subnet="10.70.0.0/24", ip_range=None,
                                gateway=None))
    lan1.remove_network("my_macvlan")
    assert "eth0.10" in links(lan1.node.netns)                   # still used by "second"
    lan1.remove_network("second")
    assert snapshot(lan1) == before


def test_join_without_parent_device_leaves_nothing(node):
    net = node.create_network(NetworkSpec("inner", driver="macvlan", subnets=("10.66.0.0/24",)))
    subprocess.run(["ip", "-n", node.node.netns, "link", "del", f"dm-{net.id[:12]}"], check=True)
    before = snapshot(node)
    with pytest.raises(NotFound) as exc:
        node.run(ContainerSpec(name="c1", network="inner", detach=True))
    assert str(exc.value) == (f"the requested parent interface dm-{net.id[:12]} was not found "
                              "on the Docker host")
    assert snapshot(node) == before
    node.remove_network("inner")                                  # succeeds with the device gone


def test_second_passthru_child_fails_cleanly(lan1):
    lan1.create_network(mv_spec(macvlan_mode="passthru"))
    lan1.run(ContainerSpec(name="t1", network="my_macvlan", detach=True))
    before = snapshot(lan1)
    with pytest.raises(KernelError, match="create macvlan eth0"):
        lan1.run(ContainerSpec(name="t2", network="my_macvlan", detach=True))
    assert snapshot(lan1) == before


# -- rollback: every kernel call of an action fails in turn ---------------------------------------


def _fail_each(engine, action, undo, at_least: int) -> None:
    calls = count_kernel_calls(engine, action)
    undo()
    assert calls >= at_least
    before = snapshot(engine)
    for n in range(1, calls + 1):
        engine.faults = FaultPlan(fail_at=n)
        with pytest.raises(NetkitError, match=f"injected fault at kernel call {n}"):
            action()
        engine.faults = None
        assert snapshot(engine) == before, f"kernel call {n} left something behind"


def test_every_failure_point_of_run(lan1):
    lan1.create_network(mv_spec())
    lan1.create_network(NetworkSpec("inner", driver="macvlan", subnets=("10.66.0.0/24",)))
    spec = lambda: ContainerSpec(name="c1", network="my_macvlan",
                                 extra_networks=(EndpointSpec("inner"),), detach=True)
    _fail_each(lan1, lambda: lan1.run(spec()),
               lambda: lan1.remove_container("c1", force=True), at_least=8)


def test_every_failure_point_of_network_create_without_parent(node):
    spec = lambda: NetworkSpec("inner", driver="macvlan", subnets=("10.66.0.0/24",))
    _fail_each(node, lambda: node.create_network(spec()), lambda: node.remove_network("inner"),
               at_least=3)


def test_every_failure_point_of_connect(lan1):
    lan1.create_network(mv_spec())
    lan1.create_network(NetworkSpec("n1", subnets=("10.67.0.0/24",)))
    lan1.run(ContainerSpec(name="c1", network="n1", detach=True))
    _fail_each(lan1, lambda: lan1.connect("my_macvlan", "c1"),
               lambda: lan1.disconnect("my_macvlan", "c1"), at_least=3)
