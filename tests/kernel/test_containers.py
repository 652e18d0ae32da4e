"""`run/exec/ps/rm/inspect` and `network connect/disconnect`, against the kernel."""

from __future__ import annotations

import os
import time

import pytest

from netkit.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from netkit.model import State
from netkit.specs import ContainerSpec, EndpointSpec, NetworkSpec
from tests.kernel.helpers import addrs, ip, links, ping

pytestmark = pytest.mark.root


@pytest.fixture
def net(node):
    return node.create_network(NetworkSpec("n1", subnets=("10.50.0.0/24",)))


def test_two_containers_talk(node, net):
    c1, _ = node.run(ContainerSpec(name="c1", network="n1", detach=True))
    c2, _ = node.run(ContainerSpec(name="c2", network="n1", detach=True))
    assert c1.endpoints[0].ipv4 == "10.50.0.2/24" and c2.endpoints[0].ipv4 == "10.50.0.3/24"
    assert ping(node, "c1", "10.50.0.3") and ping(node, "c2", "10.50.0.2")
    # inside: eth0 with the address and MAC, lo up, default route via the gateway
    assert addrs(c1.netns, "eth0") == ["10.50.0.2/24"]
    ls = links(c1.netns)
    assert ls["eth0"]["address"] == c1.endpoints[0].mac
    assert int(ls["eth0"]["address"][:2], 16) & 0x03 == 0x02       # random, locally administered
    assert "default via 10.50.0.1 dev eth0" in ip("route", netns=c1.netns)
    # host side: the veth end is an up port of the bridge, with no IPv6
    host_if = c1.endpoints[0].host_ifname
    hl = links(node.node.netns)[host_if]
    assert hl["master"] == f"br-{net.id[:12]}" and hl["operstate"] != "DOWN"
    assert addrs(node.node.netns, host_if) == []


def test_hostname_hosts_resolv(node, net, capfd):
    c, _ = node.run(ContainerSpec(name="c1", network="n1", detach=True))
    node.exec("c1", ["sh", "-c", "hostname; cat /etc/hosts /etc/resolv.conf"])
    out = capfd.readouterr().out
    assert out.splitlines()[0] == c.id[:12]
    assert f"10.50.0.2\t{c.id[:12]}" in out and "127.0.0.1\tlocalhost" in out
    assert "nameserver 127.0.0.11" in out and "options ndots:0" in out
    node.run(ContainerSpec(name="c2", network="n1", hostname="web", detach=True))
    node.exec("c2", ["hostname"])
    assert capfd.readouterr().out.strip() == "web"
    # the default bridge has no embedded DNS: the node's own servers (none here)
    node.run(ContainerSpec(name="c3", detach=True))
    node.exec("c3", ["cat", "/etc/resolv.conf"])
    assert "127.0.0.11" not in capfd.readouterr().out


def test_static_ip_and_mac(node, net):
    c, _ = node.run(ContainerSpec(name="c1", network="n1", ipv4="10.50.0.77", mac="02:aa:bb:cc:dd:ee",
                                  detach=True))
    assert c.endpoints[0].ipv4 == "10.50.0.77/24" and links(c.netns)["eth0"]["address"] == "02:aa:bb:cc:dd:ee"
    with pytest.raises(Conflict, match="Address already in use"):
        node.run(ContainerSpec(name="c2", network="n1", ipv4="10.50.0.77"))
    with pytest.raises(InvalidArgument, match="no configured subnet contains IP address 10.99.0.1"):
        node.run(ContainerSpec(name="c2", network="n1", ipv4="10.99.0.1"))
    with pytest.raises(InvalidArgument, match="user specified IP address is supported on user defined networks only"):
        node.run(ContainerSpec(name="c2", ipv4="172.17.0.9"))
    with pytest.raises(InvalidArgument, match="user specified IP address"):
        node.run(ContainerSpec(name="c2", network="host", ipv4="10.50.0.9"))
    with pytest.raises(InvalidArgument, match="network-scoped aliases are only supported for user-defined networks"):
        node.run(ContainerSpec(name="c2", aliases=("x",)))
    with pytest.raises(InvalidArgument, match="invalid MAC address"):
        node.run(ContainerSpec(name="c2", network="n1", mac="zz:zz"))
    assert [c.name for c in node.containers(all=True)] == ["c1"]


def test_address_reuse_first_free(node, net):
    for i in range(3):
        node.run(ContainerSpec(name=f"c{i}", network="n1", detach=True))
    node.remove_container("c1", force=True)
    c, _ = node.run(ContainerSpec(name="again", network="n1", detach=True))
    assert c.endpoints[0].ipv4 == "10.50.0.3/24"


def test_pool_exhausted(node):
    node.create_network(NetworkSpec("tiny", subnets=("10.60.0.0/30",)))
    node.run(ContainerSpec(name="c1", network="tiny", detach=True))       # .2 (.1 is the gateway)
    from netkit.errors import Exhausted
    with pytest.raises(Exhausted, match="no available IPv4 addresses on this network's address pools: tiny"):
        node.run(ContainerSpec(name="c2", network="tiny", detach=True))
    assert [c.name for c in node.containers(all=True)] == ["c1"]


def test_duplicate_name_and_refs(node, net):
    c, _ = node.run(ContainerSpec(name="c1", network="n1", detach=True))
    with pytest.raises(AlreadyExists, match='The container name "/c1" is already in use'):
        node.run(ContainerSpec(name="c1", network="n1"))
    assert node.container(c.id).name == "c1" and node.container(c.id[:6]).name == "c1"
    with pytest.raises(NotFound, match="No such container: nope"):
        node.container("nope")


def test_host_and_none_modes(node, capfd):
    node.run(ContainerSpec(name="hh", network="host", detach=True))
    node.run(ContainerSpec(name="nn", network="none", detach=True))
    node.exec("nn", ["ip", "-o", "link"])
    out = capfd.readouterr().out
    assert out.count(": ") and "lo:" in out and "eth0" not in out
    node.exec("hh", ["hostname"])
    assert capfd.readouterr().out.strip() == node.node_name          # the node's UTS
    with pytest.raises(Exception, match="cannot be connected to any other network|host network"):
        node.connect("bridge", "hh")
    with pytest.raises(Exception, match="private \\(none\\) mode"):
        node.connect("bridge", "nn")


def test_container_mode(node, net, capfd):
    c1, _ = node.run(ContainerSpec(name="c1", network="n1", hostname="shared", detach=True))
    c2, _ = node.run(ContainerSpec(name="c2", network="container:c1", detach=True))
    assert c2.netns == c1.netns and c2.endpoints == ()
    node.exec("c2", ["sh", "-c", "hostname; ip -o -4 addr show eth0"])
    out = capfd.readouterr().out
    assert out.startswith("shared") and "10.50.0.2/24" in out
    with pytest.raises(NotFound, match="No such container: ghost"):
        node.run(ContainerSpec(name="c3", network="container:ghost"))
    with pytest.raises(InvalidArgument, match="cannot join own network namespace"):
        node.run(ContainerSpec(name="c3", network="container:c3"))
    with pytest.raises(InvalidArgument, match="conflicting options: hostname and the network mode"):
        node.run(ContainerSpec(name="c3", network="container:c1", hostname="x"))
    with pytest.raises(Exception, match="cannot be connected to any other network"):
        node.connect("n1", "c2")


def test_connect_disconnect_live(node, net):
    node.create_network(NetworkSpec("n2", subnets=("10.51.0.0/24",)))
    c1, _ = node.run(ContainerSpec(name="c1", network="n1", detach=True, command=("sleep", "60")))
    node.run(ContainerSpec(name="peer", network="n2", detach=True))
    ep = node.connect("n2", "c1", aliases=("api",), ipv4="10.51.0.50")
    assert ep.ifname == "eth1" and ep.ipv4 == "10.51.0.50/24" and ep.aliases == ("api",)
    assert addrs(c1.netns, "eth1") == ["10.51.0.50/24"]
    assert ping(node, "c1", "10.51.0.2")
    with pytest.raises(AlreadyExists, match="endpoint with name c1 already exists in network n2"):
        node.connect("n2", "c1")
    # the default route stays with the network that sorts first (n1)
    assert "default via 10.50.0.1" in ip("route", netns=c1.netns)
    node.disconnect("n1", "c1")
    assert "eth0" not in links(c1.netns)
    assert "default via 10.51.0.1" in ip("route", netns=c1.netns)     # moved to n2
    with pytest.raises(NotFound, match="is not connected to network n1"):
        node.disconnect("n1", "c1")
    info = node.inspect_containers(["c1"])[0]
    assert list(info["NetworkSettings"]["Networks"]) == ["n2"]
    n2 = info["NetworkSettings"]["Networks"]["n2"]
    assert n2["IPAddress"] == "10.51.0.50" and n2["IPPrefixLen"] == 24 and n2["Gateway"] == "10.51.0.1"
    assert n2["Aliases"] == ["api"] and n2["DNSNames"][:2] == ["c1", "api"]
    assert info["State"]["Running"] is True and info["State"]["Pid"] > 0


def test_run_foreground_exit_code_and_rm(node, net):
    c, code = node.run(ContainerSpec(name="fg", network="n1", command=("sh", "-c", "exit 7")))
    assert code == 7
    assert node.container("fg").state is State.EXITED and node.container("fg").exit_code == 7
    c, code = node.run(ContainerSpec(name="gone", network="n1", auto_remove=True, command=("true",)))
    assert code == 0 and "gone" not in [x.name for x in node.containers(all=True)]
    assert not os.path.exists(f"/run/netns/{c.netns}")


def test_detached_process_lifecycle(node, net):
    c, _ = node.run(ContainerSpec(name="dd", network="n1", detach=True, command=("sh", "-c", "sleep 0.3; exit 4")))
    assert c.pid and [x.name for x in node.containers()] == ["dd"]
    with pytest.raises(Conflict, match="container is running"):
        node.remove_container("dd")
    deadline = time.time() + 10
    while node.container("dd").state is State.RUNNING and time.time() < deadline:
        time.sleep(0.05)
    done = node.container("dd")
    assert done.state is State.EXITED and done.exit_code == 4
    assert node.containers() == [] and len(node.containers(all=True)) == 1
    with pytest.raises(Conflict, match="is not running"):
        node.exec("dd", ["true"])
    node.remove_container("dd")
    assert not os.path.exists(f"/run/netns/{c.netns}")


def test_rm_force_kills_everything_inside(node, net):
    c, _ = node.run(ContainerSpec(name="kk", network="n1", detach=True, command=("sleep", "300")))
    node.exec("kk", ["sh", "-c", "sleep 300 >/dev/null 2>&1 &"])       # a stray process too
    pid = c.pid
    node.remove_container("kk", force=True)
    time.sleep(0.1)
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    assert not os.path.exists(f"/run/netns/{c.netns}")
    assert c.endpoints[0].host_ifname not in links(node.node.netns)


def test_extra_networks_at_run(node, net):
    node.create_network(NetworkSpec("n2", subnets=("10.52.0.0/24",)))
    c, _ = node.run(ContainerSpec(name="multi", network="n1", detach=True,
                                  extra_networks=(EndpointSpec("n2", aliases=("m2",)),)))
    assert [(e.ifname, e.network_name) for e in c.endpoints] == [("eth0", "n1"), ("eth1", "n2")]
    assert addrs(c.netns, "eth1") == ["10.52.0.2/24"]


def test_exec_output_stderr_and_timeout(node, net):
    node.run(ContainerSpec(name="eo", network="n1", detach=True))
    assert node.exec_output("eo", ["sh", "-c", "echo out; echo err >&2"], stderr=True) == (0, "out\nerr\n")
    t = time.time()
    code, _ = node.exec_output("eo", ["sleep", "30"], timeout=0.5)
    assert code == 137 and time.time() - t < 5
