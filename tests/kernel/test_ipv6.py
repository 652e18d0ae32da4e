"""IPv6 parity: dual-stack user networks in a simulated node, tested as IPv4 is.

The IPv6 counterparts of test_reachability.py (isolation, --internal, icc=false,
published ports), test_networks.py (addresses, gateway, default route), test_nft.py
(the rules) and test_dns_engine.py (AAAA answers). Node A and node B are simulated
hosts on one simulated LAN; the LAN is IPv4 (netkit's LANs are), and the test gives
both nodes' eth0 an IPv6 address of their own (fd00:78::/64) as a node's owner would,
so that B plays "another host on the LAN" over IPv6 too. All IPv6 traffic stays in
the test's namespaces (ULA addresses, no uplink).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from netkit.errors import Conflict
from netkit.specs import ContainerSpec, NetworkSpec
from tests.kernel import helpers
from tests.kernel.helpers import PROBE, addrs, ip_json, lan_pair, nft_ruleset, probe

pytestmark = pytest.mark.root
A6, B6 = "fd00:78::10", "fd00:78::20"
WEB6 = "fd00:82:1::10"


def _node_v6(host, node: str, addr: str) -> None:
    """The node owner's step: IPv6 on the node's eth0 (no RA, no DAD wait)."""
    sh = (f"echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_ra && "
          f"echo 0 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6 && "
          f"ip -6 addr add {addr}/64 dev eth0 nodad")
    assert host.node_exec(node, ["sh", "-c", sh]) == 0


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Nodes A and B on a LAN, dual-stack networks and servers on A; removed at the end."""
    with lan_pair(str(tmp_path_factory.mktemp("ipv6")), "192.168.78.0/24", "192.168.78.1",
                  "192.168.78.10/24", "192.168.78.20/24") as world:
        host, ea, eb, a, b = world["host"], world["a"], world["b"], world["A"], world["B"]
        dual = lambda name, i, **kw: ea.create_network(NetworkSpec(
            name, subnets=(f"10.82.{i}.0/24", f"fd00:82:{i}::/64"), ipv6=True, **kw))
        dual("d1", 1)
        dual("d2", 2)
        dual("di", 3, internal=True)
        dual("dc", 4, options={"com.docker.network.bridge.enable_icc": "false"})
        ea.create_network(NetworkSpec("v4", subnets=("10.82.5.0/24",)))
        serve = lambda proto, port: (*PROBE, "serve", proto, str(port))
        for name, net, extra in (("a1", "d1", {"ipv6": WEB6, "aliases": ("web",),
                                               "publish": ("8080:80", "5353:5300/udp")}),
                                 ("a2", "d1", {}), ("b1", "d2", {}), ("i1", "di", {}), ("i2", "di", {}),
                                 ("c1", "dc", {}), ("c2", "dc", {}), ("v1", "v4", {})):
            ea.run(ContainerSpec(name=name, network=net, detach=True, command=serve("tcp", 80), **extra))
            ea.exec(name, ["sh", "-c", f"{' '.join(serve('udp', 5300))} >/dev/null 2>&1 &"])
        _node_v6(host, a, A6)
        _node_v6(host, b, B6)
        eb.run(ContainerSpec(name="peer", network="host", detach=True, command=serve("tcp", 9000)))
        # B routes A's networks via A, so that only A's firewall can stop B
        assert host.node_exec(b, ["ip", "-6", "route", "add", "fd00:82::/32", "via", A6]) == 0
        time.sleep(0.5)
        yield world


def probe_node(world, node: str, proto: str, ip: str, port: int) -> str | None:
    return helpers.probe_node(world["host"], world[node], proto, ip, port)


def v6(engine, ctr: str, net: str | None = None) -> str:
    eps = engine.container(ctr).endpoints
    return next(ep.ipv6_address for ep in eps if net is None or ep.network_name == net)


def v4(engine, ctr: str) -> str:
    return engine.container(ctr).endpoints[0].ipv4_address


def gw6(engine, net: str) -> str:
    return engine.network(net).gateway_v6


# -- addresses, routes, sysctls (test_networks.py) ------------------------------------

def test_static_ip6_address_and_default_route(world):
    a = world["a"]
    ctr = a.container("a1")
    netns = ctr.netns
    assert f"{WEB6}/64" in addrs(netns, "eth0") and "10.82.1.2/24" in addrs(netns, "eth0")
    routes = ip_json("-6", "route", "show", "default", netns=netns)
    assert [(r["gateway"], r["dev"]) for r in routes] == [("fd00:82:1::1", "eth0")]
    info = a.inspect_containers(["a1"])[0]["NetworkSettings"]["Networks"]["d1"]
    assert (info["GlobalIPv6Address"], info["GlobalIPv6PrefixLen"], info["IPv6Gateway"]) == \
        (WEB6, 64, "fd00:82:1::1")
    assert info["IPAMConfig"]["IPv6Address"] == WEB6
    hosts = a.exec_output("a1", ["cat", "/etc/hosts"])[1]
    assert "::1\tlocalhost ip6-localhost ip6-loopback" in hosts and f"{WEB6}\t" in hosts
    # no router advertisements: netkit sets the addresses, the kernel must not add any
    assert a.exec_output("a1", ["cat", "/proc/sys/net/ipv6/conf/eth0/accept_ra"]) == (0, "0\n")


def test_dynamic_ip6_address(world):
    assert v6(world["a"], "a2") == "fd00:82:1::2"       # the first free host after the gateway


def test_v4_only_network_keeps_ipv6_off(world):
    """Docker: disable_ipv6 on the interfaces of IPv4-only networks."""
    a = world["a"]
    netns = a.container("v1").netns
    assert all(":" not in x for x in addrs(netns, "eth0"))
    assert a.exec_output("v1", ["cat", "/proc/sys/net/ipv6/conf/eth0/disable_ipv6"]) == (0, "1\n")
    assert ip_json("-6", "route", "show", "default", netns=netns) == []
    hosts = a.exec_output("v1", ["cat", "/etc/hosts"])[1]
    assert "ip6-localhost" not in hosts


def test_node_bridge_carries_the_v6_gateway(world):
    a = world["a"]
    from netkit.drivers.bridge import bridge_name
    br = bridge_name(a.network("d1"))
    assert "fd00:82:1::1/64" in addrs(a.node.netns, br)
    v4br = bridge_name(a.network("v4"))
    assert all(":" not in x for x in addrs(a.node.netns, v4br))


# -- reachability (test_reachability.py) ----------------------------------------------

def test_same_network_reaches_over_v6(world):
    a = world["a"]
    assert probe(a, "a2", "tcp", WEB6, 80) == v6(a, "a2")
    assert probe(a, "a2", "udp", WEB6, 5300) == v6(a, "a2")


def test_networks_are_isolated_over_v6_as_over_v4(world):
    a = world["a"]
    assert probe(a, "b1", "tcp", WEB6, 80) is None
    assert probe(a, "b1", "tcp", v4(a, "a1"), 80) is None
    assert probe(a, "a1", "tcp", v6(a, "b1"), 80) is None


def test_lan_cannot_route_into_a_network_over_v6(world):
    assert probe_node(world, "B", "tcp", WEB6, 80) is None


def test_egress_over_v6_is_masqueraded(world):
    # the LAN peer sees A's own address (masquerade), as over IPv4
    assert probe(world["a"], "a1", "tcp", B6, 9000) == A6


def test_internal_blocks_v6_egress(world):
    a = world["a"]
    assert probe(a, "i1", "tcp", v6(a, "i2"), 80) == v6(a, "i1")     # inside: fine
    assert probe(a, "i1", "tcp", B6, 9000) is None                    # out: no
    assert probe(a, "i1", "tcp", WEB6, 80) is None
    assert ip_json("-6", "route", "show", "default", netns=a.container("i1").netns) == []


def test_icc_off_applies_to_v6(world):
    a = world["a"]
    assert probe(a, "c1", "tcp", v6(a, "c2"), 80) is None
    assert probe(a, "c1", "tcp", v4(a, "c2"), 80) is None
    assert probe(a, "c1", "tcp", B6, 9000) == A6                      # egress still works


# -- published ports --------------------------------------------------------------

def test_published_port_answers_on_the_nodes_v6_address(world):
    # DNAT keeps the client's address
    assert probe_node(world, "B", "tcp", A6, 8080) == B6
    assert probe_node(world, "B", "udp", A6, 5353) == B6
    assert probe_node(world, "B", "tcp", "192.168.78.10", 8080) == "192.168.78.20"


def test_published_port_from_another_network_over_v6(world):
    a = world["a"]
    # leaving its own bridge, the connection is masqueraded (to the gateway of a1's
    # network) over IPv6 as over IPv4
    assert probe(a, "b1", "tcp", gw6(a, "d2"), 8080) == "fd00:82:1::1"
    assert probe(a, "b1", "tcp", A6, 8080) == "fd00:82:1::1"
    assert probe(a, "b1", "tcp", "192.168.78.10", 8080) == "10.82.1.1"


def test_published_port_hairpin_over_v6(world):
    a = world["a"]
    assert probe(a, "a1", "tcp", A6, 8080) is not None


def test_inspect_shows_the_v6_binding(world):
    a = world["a"]
    ports = a.inspect_containers(["a1"])[0]["NetworkSettings"]["Ports"]
    assert ports["80/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": "8080"},
                               {"HostIp": "::", "HostPort": "8080"}]
    assert ports["5300/udp"] == [{"HostIp": "0.0.0.0", "HostPort": "5353"},
                                 {"HostIp": "::", "HostPort": "5353"}]



def test_port_and_ps_show_the_v6_binding(world):
    """`netkit port` and ps PORTS print what is published, as Docker's CLI prints it
    (net.JoinHostPort, natural order): [::] beside 0.0.0.0 for the dual-stack a1 only."""
    a = world["a"]
    env = dict(os.environ, NETKIT_ROOT=a.root, NETKIT_RUN=a.run_root, NETKIT_NODE=a.node_name)
    nk = lambda *args: subprocess.run([sys.executable, "-m", "netkit", *args], env=env,
                                      capture_output=True, text=True, timeout=60)
    out = nk("port", "a1")
    assert (out.returncode, out.stdout) == (0, "80/tcp -> 0.0.0.0:8080\n80/tcp -> [::]:8080\n"
                                            "5300/udp -> 0.0.0.0:5353\n5300/udp -> [::]:5353\n")
    assert nk("port", "a1", "80").stdout == "0.0.0.0:8080\n[::]:8080\n"
    assert nk("port", "a1", "5300/udp").stdout == "0.0.0.0:5353\n[::]:5353\n"
    row = nk("ps", "--filter", "name=a1", "--format", "{{.Ports}}").stdout.strip()
    assert row == ("0.0.0.0:8080->80/tcp, [::]:8080->80/tcp, "
                   "0.0.0.0:5353->5300/udp, [::]:5353->5300/udp")
    assert nk("port", "v1").stdout == ""


SQUAT6 = ("import socket, time; s = socket.socket(socket.AF_INET6); "
          "s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1); s.bind(('::', 8091)); "
          "s.listen(); time.sleep(60)")


def test_port_taken_on_v6_only(world):
    """A dual-stack port needs [::]:port too (Docker binds both); a v4-only one does not."""
    a = world["a"]
    a.run(ContainerSpec(name="squat6", network="host", detach=True, command=(sys.executable, "-c", SQUAT6)))
    try:
        time.sleep(0.3)
        with pytest.raises(Conflict, match=r"failed to bind host port \[::\]:8091/tcp: address already in use"):
            a.run(ContainerSpec(name="dup6", network="d2", publish=("8091:80",), detach=True))
        assert [c.name for c in a.containers(all=True) if c.name == "dup6"] == []
        a.run(ContainerSpec(name="only4", network="v4", publish=("8091:80",), detach=True))
        assert [(p.host_ip, p.host_port) for p in a.container("only4").ports] == [("0.0.0.0", 8091)]
        ports = a.inspect_containers(["only4"])[0]["NetworkSettings"]["Ports"]
        assert ports["80/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": "8091"}]
    finally:
        for name in ("only4", "squat6"):
            a.remove_container(name, force=True)


def test_nft_rules_of_the_v6_port(world):
    text = nft_ruleset(world["a"].node.netns)
    assert f"dnat ip6 to [{WEB6}]:80" in text
    assert f"ip6 daddr {WEB6} oifname" in text
    assert "ip6 saddr fd00:82:1::/64" in text and "masquerade" in text
    assert "ip6 daddr fd00:82:4::/64 drop" in text                    # icc=false, bridge table


def test_ipv6_forwarding_only_inside_the_node(world):
    from netkit.kernel.netns import read_sysctl
    assert read_sysctl(world["a"].node.netns, "ipv6/conf/all/forwarding").strip() == "1"


# -- DNS (test_dns_engine.py) -----------------------------------------------------

def dig(engine, ctr: str, *args: str) -> list[str]:
    code, out = engine.exec_output(ctr, ["dig", "+short", "+tries=1", "+time=2", *args])
    assert code == 0, out
    return out.split()


def test_aaaa_answers_for_names_and_aliases(world):
    a = world["a"]
    assert dig(a, "a2", "AAAA", "a1") == [WEB6]
    assert dig(a, "a2", "AAAA", "web") == [WEB6]
    assert dig(a, "a2", "AAAA", a.container("a1").short_id) == [WEB6]
    assert dig(a, "a2", "a1") == [v4(a, "a1")]
    assert dig(a, "b1", "AAAA", "a1") == []                             # another network
    assert dig(a, "a2", "-x", WEB6) == ["a1.d1."]


# -- the CLI, as a user types it ----------------------------------------------------

def test_cli_dual_stack(node, cli):
    name = node.node.name
    cli("network", "create", "--ipv6", "--subnet", "fd00:1::/64", "--subnet", "10.83.0.0/24", "ds",
        node=name)
    cli("run", "-d", "--name", "web6", "--network", "ds", "--ip6", "fd00:1::10", "busybox",
        "sleep", "60", node=name)
    out = cli("exec", "web6", "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global",
              node=name).stdout
    assert "inet6 fd00:1::10/64" in out
    net = json.loads(cli("network", "inspect", "ds", node=name).stdout)[0]
    assert net["EnableIPv6"] is True
    assert sorted(c["Subnet"] for c in net["IPAM"]["Config"]) == ["10.83.0.0/24", "fd00:1::/64"]
    cli("rm", "-f", "web6", node=name)
    cli("network", "rm", "ds", node=name)
