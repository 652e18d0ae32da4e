"""The resolver off port 53: 127.0.0.11:53 redirected to its own ports in each container.

A DNS server of the container's own binds 0.0.0.0:53 and answers on the
container's address, while 127.0.0.11:53 still reaches the embedded
resolver (UDP and TCP); `system check` knows the redirect; a restarted
resolver keeps the ports; one client cannot hold more TCP connections than
the per-client limit. Every server here lives in namespaces the test made.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import textwrap
import time

import pytest

from netkit.dns import client, redirect
from netkit.dns import server as dns_server
from netkit.kernel import netns as knetns
from netkit.specs import ContainerSpec, NetworkSpec
from tests.kernel.helpers import nft_ruleset
from tests.kernel.test_dns_server import C1, BASE_EPS, a, c1, make_ns, query, resolver, sb, snapshot  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

# a DNS server of the container's own: every A question gets 192.0.2.53
OWN_DNS = textwrap.dedent("""
    import time
    from dnslib import RR, A
    from dnslib.server import DNSServer, BaseResolver

    class Fixed(BaseResolver):
        def resolve(self, request, handler):
            reply = request.reply()
            reply.add_answer(RR(request.q.qname, rdata=A("192.0.2.53"), ttl=5))
            return reply

    for tcp in (False, True):
        DNSServer(Fixed(), address="0.0.0.0", port=53, tcp=tcp).start_thread()
    while True:
        time.sleep(60)
""")


def dig(engine, ctr: str, *args: str) -> list[str]:
    code, text = engine.exec_output(ctr, ["dig", "+short", "+tries=1", "+time=2", *args])
    return text.split()


def served(engine) -> dict[str, tuple[str, int, int]]:
    ports = client.ports(engine.paths.run)
    assert ports is not None
    return ports


@pytest.fixture
def dns_lab(node):
    node.create_network(NetworkSpec("n1", subnets=("10.87.0.0/24",)))
    # inline: the container's /tmp is its own, the test's tmp_path is not there
    ns, _ = node.run(ContainerSpec(name="ns", network="n1", detach=True,
                                   command=(sys.executable, "-c", OWN_DNS)))
    web, _ = node.run(ContainerSpec(name="web", network="n1", detach=True))
    node.run(ContainerSpec(name="client", network="n1", detach=True))
    own = ns.endpoints[0].ipv4_address
    deadline = time.monotonic() + 10
    while dig(node, "client", f"@{own}", "anything") != ["192.0.2.53"]:
        assert time.monotonic() < deadline, "the container's own DNS server did not come up"
        time.sleep(0.1)
    return node, own, web.endpoints[0].ipv4_address


def test_own_dns_server_on_port_53_beside_the_embedded_resolver(dns_lab):
    node, own, web = dns_lab
    assert dig(node, "client", f"@{own}", "foo.example") == ["192.0.2.53"]
    assert dig(node, "client", f"@{own}", "+tcp", "foo.example") == ["192.0.2.53"]
    # inside the DNS server's own container, 127.0.0.11:53 is still the embedded resolver
    assert dig(node, "ns", "web") == [web]
    assert dig(node, "ns", "+tcp", "web") == [web]
    assert dig(node, "ns", "@127.0.0.1", "anything") == ["192.0.2.53"]   # its own, on lo
    assert dig(node, "client", "web") == [web]
    assert node.system_check() == []


def test_redirect_rules_and_system_check(dns_lab):
    node, own, web = dns_lab
    ctr = node.container("client")
    ports = served(node)
    netns, udp, tcp = ports[ctr.id]
    assert netns == ctr.netns
    rules = nft_ruleset(ctr.netns)
    assert f"udp dport 53 udp dport set {udp}" in rules
    assert f"tcp sport {tcp} tcp sport set 53" in rules
    assert knetns.run_in(ctr.netns, redirect.current) == (udp, tcp)
    # the resolver's sockets really are on those ports, not on 53
    listening = node.exec_output("client", ["ss", "-lnuH", "src", "127.0.0.11"])[1]
    assert f"127.0.0.11:{udp}" in listening and "127.0.0.11:53 " not in listening
    # drift: the redirect gone -> system check says which container
    knetns.run_in(ctr.netns, redirect.remove)
    problems = node.system_check()
    assert problems == [f"container client: 127.0.0.11:53 is redirected to nowhere, but the "
                        f"resolver listens on udp {udp}, tcp {tcp}"]
    assert web not in dig(node, "client", "web")          # nobody on 127.0.0.11:53
    knetns.run_in(ctr.netns, lambda: redirect.install(udp, tcp))
    assert node.system_check() == []
    assert dig(node, "client", "web") == [web]


def test_restarted_resolver_keeps_the_ports(dns_lab):
    node, own, web = dns_lab
    before = served(node)
    pid = node.dns_status()["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}/stat") and time.monotonic() < deadline:
        time.sleep(0.01)
    node.run(ContainerSpec(name="late", network="n1", detach=True))   # restarts it
    after = served(node)
    assert node.dns_status()["pid"] != pid
    assert {cid: v for cid, v in after.items() if cid in before} == before
    assert dig(node, "client", "web") == [web]
    assert dig(node, "late", "web") == [web]
    assert node.system_check() == []


def test_disconnect_from_the_last_dns_network_removes_the_redirect(node):
    node.create_network(NetworkSpec("n1", subnets=("10.88.0.0/24",)))
    ctr, _ = node.run(ContainerSpec(name="solo", network="n1", detach=True))
    node.run(ContainerSpec(name="keep", network="n1", detach=True))   # keeps the resolver up
    assert knetns.run_in(ctr.netns, redirect.current) is not None
    node.disconnect("n1", "solo")
    assert knetns.run_in(ctr.netns, redirect.current) is None
    assert "netkit-dns" not in nft_ruleset(ctr.netns)


def test_one_client_cannot_hold_many_tcp_connections(resolver, c1):  # noqa: F811
    resolver(snapshot([sb(C1, c1)], BASE_EPS))
    conns = []
    try:
        for _ in range(1500):
            s = knetns.socket_in(c1, socket.AF_INET, socket.SOCK_STREAM)
            conns.append(s)
            s.settimeout(2)
            s.connect(("127.0.0.11", 53))
        time.sleep(0.3)
        alive = 0
        for s in conns:             # the server closed the ones over the limit: EOF at once
            s.setblocking(False)
            try:
                alive += s.recv(1) != b""
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
        assert alive == dns_server.TCP_PER_CLIENT
    finally:
        for s in conns:
            s.close()
    assert a(query(c1, "web1", tcp=True)) == ["172.18.0.2"]    # room again once they closed


def test_idle_tcp_connection_is_closed(resolver, c1, monkeypatch):  # noqa: F811
    monkeypatch.setattr(dns_server, "TCP_IDLE", 0.3)
    resolver(snapshot([sb(C1, c1)], BASE_EPS))
    with knetns.socket_in(c1, socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(3)
        s.connect(("127.0.0.11", 53))
        t0 = time.monotonic()
        assert s.recv(1) == b""                 # closed by the server
        assert 0.2 < time.monotonic() - t0 < 2.5


def test_without_nftables_it_listens_on_port_53_itself(resolver, c1, monkeypatch):  # noqa: F811
    from netkit.errors import Unsupported

    def no_nft(*ports):
        raise Unsupported("libnftables not found")
    monkeypatch.setattr(redirect, "install", no_nft)
    r = resolver(snapshot([sb(C1, c1)], BASE_EPS))
    assert r.server.ports()[C1] == (c1, 53, 53)
    assert knetns.run_in(c1, redirect.current) is None
    assert a(query(c1, "web1")) == ["172.18.0.2"]
    assert a(query(c1, "web1", tcp=True)) == ["172.18.0.2"]
