"""`network create/ls/inspect/rm/prune` against the kernel, in throwaway nodes."""

from __future__ import annotations

import pytest

from netkit.errors import AlreadyExists, Conflict, Forbidden, InvalidArgument, NotFound
from netkit.specs import ContainerSpec, NetworkSpec
from tests.kernel.helpers import addrs, links

pytestmark = pytest.mark.root


def test_predefined_networks(node):
    nets = {n.name: n for n in node.networks()}
    assert set(nets) == {"bridge", "host", "none"}
    assert nets["bridge"].ipam[0].subnet == "172.17.0.0/16"
    assert nets["bridge"].ipam[0].gateway == "172.17.0.1"
    assert nets["host"].ipam == () and nets["none"].ipam == ()
    assert "netkit0" not in links(node.node.netns)       # made on first use only
    with pytest.raises(Forbidden, match="predefined bridge network"):
        node.create_network(NetworkSpec("bridge"))
    for name in ("bridge", "host", "none"):
        with pytest.raises(Forbidden, match=f"{name} is a pre-defined network and cannot be removed"):
            node.remove_network(name)


def test_create_default_pool_and_bridge(node):
    net = node.create_network(NetworkSpec("n1"))
    assert len(net.id) == 64
    assert net.ipam[0].subnet == "172.18.0.0/16" and net.ipam[0].gateway == "172.18.0.1"
    br = f"br-{net.id[:12]}"
    ls = links(node.node.netns)
    assert br in ls and ls[br]["operstate"] in ("UP", "UNKNOWN", "DOWN")
    assert ls[br]["linkinfo"]["info_kind"] == "bridge"
    assert ls[br].get("ifalias") == "netkit"
    assert addrs(node.node.netns, br) == ["172.18.0.1/16"]       # no IPv6 link-local
    second = node.create_network(NetworkSpec("n2"))
    assert second.ipam[0].subnet == "172.19.0.0/16"
    node.remove_network("n1")
    assert br not in links(node.node.netns)
    assert node.create_network(NetworkSpec("n3")).ipam[0].subnet == "172.18.0.0/16"   # first fit


def test_pools_skip_onlink_routes(host, lan, netkit_dirs):
    from netkit.engine import Engine
    from tests.conftest import unique
    lan172 = host.create_lan(unique("l"), "172.18.0.0/16", gateway="172.18.0.1")
    name = unique()
    try:
        host.create_node(name, lan=lan172.name, ip="172.18.0.10/16")
        with Engine(name, root=netkit_dirs[0], run=netkit_dirs[1]) as e:
            assert e.create_network(NetworkSpec("n1")).ipam[0].subnet == "172.19.0.0/16"
    finally:
        host.remove_node(name, force=True)
        host.remove_lan(lan172.name)


def test_subnet_range_gateway_aux(node):
    net = node.create_network(NetworkSpec(
        "n1", subnets=("10.30.0.0/16",), ip_ranges=("10.30.5.0/24",), gateways=("10.30.0.254",),
        aux_addresses={"router": "10.30.5.1", "other": "10.30.9.9"}, labels={"a": "b"},
        options={"com.docker.network.bridge.name": "nktestbr0", "com.docker.network.driver.mtu": "1400"}))
    cfg = net.ipam[0]
    assert (cfg.subnet, cfg.ip_range, cfg.gateway) == ("10.30.0.0/16", "10.30.5.0/24", "10.30.0.254")
    ls = links(node.node.netns)
    assert ls["nktestbr0"]["mtu"] == 1400
    assert addrs(node.node.netns, "nktestbr0") == ["10.30.0.254/16"]
    c1, _ = node.run(ContainerSpec(name="c1", network="n1", detach=True))
    c2, _ = node.run(ContainerSpec(name="c2", network="n1", detach=True))
    # the range's .0 is the first dynamic address; .1 is an aux address and is skipped
    assert [c1.endpoints[0].ipv4, c2.endpoints[0].ipv4] == ["10.30.5.0/16", "10.30.5.2/16"]
    static, _ = node.run(ContainerSpec(name="c3", network="n1", ipv4="10.30.200.7", detach=True))
    assert static.endpoints[0].ipv4 == "10.30.200.7/16"               # outside the range is fine
    info = node.inspect_networks(["n1"])[0]
    assert info["IPAM"]["Config"] == [{"Subnet": "10.30.0.0/16", "IPRange": "10.30.5.0/24",
                                       "Gateway": "10.30.0.254",
                                       "AuxiliaryAddresses": {"router": "10.30.5.1", "other": "10.30.9.9"}}]
    assert info["Labels"] == {"a": "b"} and info["Scope"] == "local" and info["Driver"] == "bridge"
    assert {v["Name"] for v in info["Containers"].values()} == {"c1", "c2", "c3"}
    assert info["Containers"][c1.id]["IPv4Address"] == "10.30.5.0/16"
    assert info["Containers"][c1.id]["MacAddress"] == c1.endpoints[0].mac


def test_ipv6_network(node):
    net = node.create_network(NetworkSpec("v6", ipv6=True, subnets=("fd00:1::/64",)))
    assert net.ipv6 and net.ipv4
    assert [c.family for c in net.ipam] == [4, 6]
    c1, _ = node.run(ContainerSpec(name="c1", network="v6", detach=True))
    c2, _ = node.run(ContainerSpec(name="c2", network="v6", detach=True, ipv6="fd00:1::99"))
    assert c1.endpoints[0].ipv6 == "fd00:1::2/64"
    assert c2.endpoints[0].ipv6 == "fd00:1::99/64"
    assert node.exec("c1", ["ping", "-6", "-c", "1", "-W", "2", "-q", "fd00:1::99"]) == 0
    auto = node.create_network(NetworkSpec("v6auto", ipv6=True))
    assert auto.ipam[1].subnet.startswith("fd") and auto.ipam[1].subnet.endswith("::/64")


BAD = [
    (NetworkSpec("x", subnets=("foo",)), InvalidArgument, "invalid CIDR address: foo"),
    (NetworkSpec("x", subnets=("10.1.2.3/16",)), InvalidArgument, "it should be 10.1.0.0/16"),
    (NetworkSpec("x", subnets=("10.1.0.0/16",), gateways=("10.2.0.1",)), InvalidArgument,
     "no matching subnet for gateway 10.2.0.1"),
    (NetworkSpec("x", subnets=("10.1.0.0/16",), ip_ranges=("10.2.0.0/24",)), InvalidArgument,
     "no matching subnet for range 10.2.0.0/24"),
    (NetworkSpec("x", subnets=("10.1.0.0/16",), aux_addresses={"a": "10.9.0.1"}), InvalidArgument,
     "no matching subnet for aux-address"),
    (NetworkSpec("x", driver="nosuch"), NotFound, 'plugin "nosuch" not found'),
    (NetworkSpec("x", options={"no.such.option": "1"}), InvalidArgument, "unknown option no.such.option"),
    (NetworkSpec("x", options={"com.docker.network.bridge.name": "a-very-long-bridge-name"}),
     InvalidArgument, "too long"),
    (NetworkSpec("bad name!"), InvalidArgument, "invalid network name"),
    (NetworkSpec("x", ipv4=False), InvalidArgument, "IPv4 or IPv6 must be enabled"),
]


@pytest.mark.parametrize("spec,exc,msg", BAD, ids=[b[2][:30] for b in BAD])
def test_bad_input_leaves_nothing(node, spec, exc, msg):
    from tests.kernel.helpers import snapshot
    before = snapshot(node)
    with pytest.raises(exc, match=msg.replace(".", r"\.").replace("(", r"\(")):
        node.create_network(spec)
    assert snapshot(node) == before


def test_duplicates_and_overlap(node):
    node.create_network(NetworkSpec("n1", subnets=("10.40.0.0/16",)))
    with pytest.raises(AlreadyExists, match="network with name n1 already exists"):
        node.create_network(NetworkSpec("n1"))
    with pytest.raises(Conflict, match="Pool overlaps with other one on this address space"):
        node.create_network(NetworkSpec("n2", subnets=("10.40.3.0/24",)))


def test_rm_with_endpoints_and_prune(node):
    node.create_network(NetworkSpec("busy"))
    node.create_network(NetworkSpec("idle1"))
    node.create_network(NetworkSpec("idle2"))
    node.run(ContainerSpec(name="c1", network="busy", detach=True))
    with pytest.raises(Conflict, match='network busy has active endpoints \\(name:"c1"'):
        node.remove_network("busy")
    assert node.prune_networks() == ["idle1", "idle2"]
    assert {n.name for n in node.networks()} == {"bridge", "host", "none", "busy"}


def test_refs_by_id_and_prefix(node):
    net = node.create_network(NetworkSpec("n1"))
    assert node.network(net.id).name == "n1"
    assert node.network(net.id[:5]).name == "n1"
    with pytest.raises(NotFound, match="network nosuch not found"):
        node.network("nosuch")


def test_br_netfilter_only_on_bridge_networks(node):
    """Docker's bridges see bridged traffic in nftables (NAT between two ports of one bridge);
    the node's other bridges (overlay) do not, so their frames skip nftables and conntrack."""
    import os
    from tests.kernel.helpers import ip
    net = node.create_network(NetworkSpec("n1"))
    detail = ip("-d", "link", "show", f"br-{net.id[:12]}", netns=node.node.netns)
    assert "nf_call_iptables 1" in detail and "nf_call_ip6tables 1" in detail
    if os.path.exists("/proc/sys/net/bridge/bridge-nf-call-iptables"):
        from netkit.kernel import netns
        assert netns.read_sysctl(node.node.netns, "bridge/bridge-nf-call-iptables") == "0"
