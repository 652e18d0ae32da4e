"""The embedded DNS as users meet it: real containers querying 127.0.0.11 with real clients."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from netkit.errors import InvalidArgument
from netkit.specs import ContainerSpec, EndpointSpec, NetworkSpec

pytestmark = pytest.mark.root


def out(engine, ctr: str, *cmd: str) -> str:
    code, text = engine.exec_output(ctr, list(cmd))
    return text


def dig(engine, ctr: str, *args: str) -> list[str]:
    return out(engine, ctr, "dig", "+short", "+tries=1", "+time=2", *args).split()


@pytest.fixture
def aliased(node):
    """The Docker-book scenario: three containers with --net-alias alias1, and a client."""
    node.create_network(NetworkSpec("n1", subnets=("10.85.0.0/24",)))
    ips = []
    for i in range(3):
        c, _ = node.run(ContainerSpec(name=f"web{i}", network="n1", aliases=("alias1",), detach=True))
        ips.append(c.endpoints[0].ipv4_address)
    node.run(ContainerSpec(name="client", network="n1", detach=True))
    return ips


def test_round_robin_classic(node, aliased):
    firsts = []
    for _ in range(6):
        answer = dig(node, "client", "alias1")
        assert sorted(answer) == sorted(aliased)           # every query carries all three
        firsts.append(answer[0])
    # strict rotation: each address first twice, in a fixed cycle
    assert firsts[:3] == firsts[3:] and sorted(firsts[:3]) == sorted(aliased)
    for i in range(3):                                      # successive answers rotate by one
        a, b = dig(node, "client", "alias1"), dig(node, "client", "alias1")
        assert b == a[1:] + a[:1]


def test_standard_tools_and_names(node, aliased):
    web0 = node.container("web0")
    assert out(node, "client", "getent", "hosts", "web0").split()[0] == aliased[0]
    code = node.exec("client", ["ping", "-c", "1", "-W", "1", "-q", "web1"])
    assert code == 0
    py = out(node, "client", sys.executable, "-c", "import socket; print(socket.gethostbyname('web2'))")
    assert py.strip() == aliased[2]
    assert dig(node, "client", web0.short_id) == [aliased[0]]          # short id
    assert dig(node, "client", web0.hostname) == [aliased[0]]          # hostname (= short id here)
    assert dig(node, "client", "WEB0") == [aliased[0]]                 # case-insensitive
    assert dig(node, "client", "web0.n1") == [aliased[0]]              # name.network
    assert dig(node, "client", "-x", aliased[1]) == ["web1.n1."]       # PTR
    assert dig(node, "client", "+tcp", "web0") == [aliased[0]]         # TCP
    full = out(node, "client", "dig", "+tries=1", "AAAA", "web0")
    assert "status: NOERROR" in full and "ANSWER: 0" in full           # NODATA, not NXDOMAIN
    node.run(ContainerSpec(name="named", network="n1", hostname="db.local", detach=True))
    assert len(dig(node, "client", "db.local")) == 1


def test_scoping_connect_disconnect_and_removal(node, aliased):
    node.create_network(NetworkSpec("n2", subnets=("10.86.0.0/24",)))
    node.run(ContainerSpec(name="other", network="n2", detach=True))
    assert dig(node, "other", "web0") == []                             # not on its networks
    assert node.exec("other", ["getent", "hosts", "web0"]) != 0
    node.connect("n1", "other", aliases=("extra",))
    assert dig(node, "other", "web0") == [aliased[0]]                   # at once
    assert dig(node, "client", "extra") == [node.container("other").endpoints[1].ipv4_address]
    node.disconnect("n1", "other")
    assert dig(node, "other", "web0") == [] and dig(node, "client", "extra") == []
    node.remove_container("web1", force=True)
    assert sorted(dig(node, "client", "alias1")) == sorted([aliased[0], aliased[2]])
    assert dig(node, "client", "web1") == []


def test_default_bridge_has_no_embedded_dns(node):
    node.run(ContainerSpec(name="plain", detach=True))
    assert "127.0.0.11" not in out(node, "plain", "cat", "/etc/resolv.conf")


def test_links(node):
    node.create_network(NetworkSpec("n1", subnets=("10.87.0.0/24",)))
    db, _ = node.run(ContainerSpec(name="mysql", network="n1", detach=True))
    node.run(ContainerSpec(name="app", network="n1", links=("mysql:db",), detach=True))
    node.run(ContainerSpec(name="bystander", network="n1", detach=True))
    assert dig(node, "app", "db") == [db.endpoints[0].ipv4_address]     # private alias
    assert dig(node, "bystander", "db") == []
    # default bridge: legacy links are /etc/hosts lines
    t, _ = node.run(ContainerSpec(name="target", detach=True))
    node.run(ContainerSpec(name="linker", links=("target:tgt",), detach=True))
    hosts = out(node, "linker", "cat", "/etc/hosts")
    assert f"{t.endpoints[0].ipv4_address}\ttgt {t.hostname} target" in hosts
    with pytest.raises(InvalidArgument, match="Cannot link to /mysql, as it does not belong to the default network"):
        node.run(ContainerSpec(name="bad", links=("mysql",)))


def test_truncation_and_tcp_fallback(node):
    node.create_network(NetworkSpec("big", subnets=("10.88.0.0/24",)))
    for i in range(40):
        node.run(ContainerSpec(name=f"m{i}", network="big", aliases=("many",), detach=True))
    udp = out(node, "m0", "dig", "+tries=1", "+ignore", "+notcp", "+noedns", "many")   # 512-byte limit
    assert " tc " in udp.split("flags:")[1].split(";")[0] + " "       # TC bit over UDP
    assert len(dig(node, "m0", "many")) == 40                          # dig retries over TCP


@pytest.fixture
def upstream(host, lan, netkit_dirs):
    """Node B on the LAN runs an authoritative server (dnslib) for example.test; A uses it."""
    from netkit.engine import Engine
    from tests.conftest import unique
    a, b = unique(), unique()
    host.create_node(b, lan=lan.name, ip="192.168.77.53/24")
    host.create_node(a, lan=lan.name, ip="192.168.77.10/24", dns=("192.168.77.53",))
    eb = Engine(b, root=netkit_dirs[0], run=netkit_dirs[1])
    ea = Engine(a, root=netkit_dirs[0], run=netkit_dirs[1])
    eb.run(ContainerSpec(name="upstream", network="host", detach=True,
                         command=(sys.executable, "-m", "netkit.testing.dnsserver",
                                  "--record", "example.test=192.0.2.10")))
    time.sleep(0.5)
    yield ea, eb
    ea.close()
    eb.close()


def test_forwarding_to_the_nodes_upstream(upstream):
    a, b = upstream
    a.create_network(NetworkSpec("n1", subnets=("10.89.0.0/24",)))
    a.run(ContainerSpec(name="c1", network="n1", detach=True))
    assert dig(a, "c1", "example.test") == ["192.0.2.10"]
    full = out(a, "c1", "dig", "+tries=1", "nosuch.test")
    assert "status: NXDOMAIN" in full                                   # relayed, not invented
    # --dns: the container's own upstream, dialled from the container
    a.run(ContainerSpec(name="c2", network="n1", dns=("192.168.77.53",), detach=True))
    assert dig(a, "c2", "example.test") == ["192.0.2.10"]
    assert "ExtServers: [192.168.77.53]" in out(a, "c2", "cat", "/etc/resolv.conf")
    # an --internal-only container gets SERVFAIL for outside names
    a.create_network(NetworkSpec("inner", subnets=("10.90.0.0/24",), internal=True))
    a.run(ContainerSpec(name="c3", network="inner", detach=True))
    assert "status: SERVFAIL" in out(a, "c3", "dig", "+tries=1", "example.test")
    # upstream gone: SERVFAIL
    b.remove_container("upstream", force=True)
    assert "status: SERVFAIL" in out(a, "c1", "dig", "+tries=1", "+time=9", "example.test")


def test_resolver_killed_comes_back(node, aliased):
    status = node.dns_status()
    assert status["running"] and status["sandboxes"] == 4
    os.kill(status["pid"], signal.SIGKILL)
    deadline = time.time() + 5
    while node.dns_status()["running"] and time.time() < deadline:
        time.sleep(0.05)
    assert any(line.startswith("resolver: not running") for line in node.system_check())
    node.run(ContainerSpec(name="late", network="n1", detach=True))      # the next action restarts it
    assert node.dns_status()["running"]
    assert dig(node, "client", "late") != [] and len(dig(node, "client", "alias1")) == 3
    assert node.system_check() == []


def test_garbage_does_not_break_it(node, aliased):
    script = ("import os, socket\n"
              "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
              "for i in range(500):\n"
              "    s.sendto(os.urandom(i % 300), ('127.0.0.11', 53))\n"
              "s.sendto(b'\\x12\\x34\\x01\\x00\\x00\\x00' + bytes(6), ('127.0.0.11', 53))\n")
    node.exec("client", [sys.executable, "-c", script])
    assert sorted(dig(node, "client", "alias1")) == sorted(aliased)


def test_resolver_stops_when_unused(node, aliased):
    assert node.dns_status()["running"]
    for name in ("web0", "web1", "web2", "client"):
        node.remove_container(name, force=True)
    assert not node.dns_status()["running"]
