"""The node's resolver through the Engine: per-container updates, start on demand, exit.

Every test runs in a throwaway simulated node (the `node` fixture). Its
resolv.conf lists no nameserver, so a name the resolver does not know gets
SERVFAIL at once: nothing is ever sent off the machine.
"""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest
from dnslib import RCODE, DNSRecord

from netkit.dns import daemon
from netkit.kernel import netns
from netkit.specs import ContainerSpec, NetworkSpec

pytestmark = pytest.mark.root


@pytest.fixture
def net(node):
    return node.create_network(NetworkSpec("dn", subnets=("10.61.0.0/24",)))


def query(ns: str, name: str, qtype: str = "A") -> tuple[int, list[str]]:
    """(rcode, answers) of one UDP query to 127.0.0.11 from inside netns `ns`, no retry."""
    q = DNSRecord.question(name, qtype)
    with netns.socket_in(ns, socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.connect(("127.0.0.11", 53))
        s.send(bytes(q.pack()))
        reply = DNSRecord.parse(s.recv(4096))
    assert reply.header.id == q.header.id
    return reply.header.rcode, [str(rr.rdata) for rr in reply.rr]


def run(node, name: str, network: str = "dn", **kw):
    c, _ = node.run(ContainerSpec(name=name, network=network, detach=True, **kw))
    return c


def ip4(c) -> str:
    return c.endpoints[0].ipv4_address


def run_dir(node) -> str:
    return node.paths.run


def test_names_resolve_right_after_run_and_are_gone_right_after_rm(node, net):
    first = run(node, "c1")
    peers = []
    for i in range(2, 7):
        c = run(node, f"c{i}", aliases=("svc",))
        peers.append(c)
        # the moment run returns: the peer resolves the new name, and the new
        # sandbox is served too
        assert query(first.netns, f"c{i}") == (RCODE.NOERROR, [ip4(c)])
        assert query(first.netns, f"c{i}.dn") == (RCODE.NOERROR, [ip4(c)])
        assert query(c.netns, "c1") == (RCODE.NOERROR, [ip4(first)])
    assert query(first.netns, _reverse(ip4(peers[0])), "PTR") == (RCODE.NOERROR, ["c2.dn."])
    gone = peers[1]
    node.remove_container("c3", force=True)
    assert query(first.netns, "c3")[0] == RCODE.SERVFAIL
    assert query(first.netns, gone.id[:12])[0] == RCODE.SERVFAIL
    assert query(first.netns, _reverse(ip4(gone)), "PTR")[0] == RCODE.SERVFAIL
    rc, svc = query(first.netns, "svc")
    assert rc == RCODE.NOERROR and sorted(svc) == sorted(ip4(c) for c in peers if c is not gone)
    assert query(peers[0].netns, "c4") == (RCODE.NOERROR, [ip4(peers[2])])


def _reverse(ip: str) -> str:
    return ".".join(reversed(ip.split("."))) + ".in-addr.arpa"


def test_round_robin_is_not_reset_by_unrelated_changes(node, net):
    client = run(node, "client")
    members = [run(node, f"w{i}", aliases=("svc",)) for i in range(3)]
    order = [ip4(c) for c in members]                   # creation order
    rotations = [order[k:] + order[:k] for k in range(3)]
    assert query(client.netns, "svc")[1] == rotations[0]
    assert query(client.netns, "svc")[1] == rotations[1]
    run(node, "bystander")
    node.remove_container("bystander", force=True)
    assert query(client.netns, "svc")[1] == rotations[2]
    assert query(client.netns, "svc")[1] == rotations[0]


def test_connect_and_disconnect_are_applied_at_once(node, net):
    node.create_network(NetworkSpec("dn2", subnets=("10.62.0.0/24",)))
    a = run(node, "ca")
    b = run(node, "cb", network="dn2")
    assert query(a.netns, "cb")[0] == RCODE.SERVFAIL
    node.connect("dn2", "ca", aliases=("front",))
    assert query(a.netns, "cb") == (RCODE.NOERROR, [ip4(b)])       # a's sandbox: both networks
    rc, got = query(b.netns, "front")                                # a's new name on dn2
    assert rc == RCODE.NOERROR and got[0].startswith("10.62.0.")
    node.disconnect("dn2", "ca")
    assert query(a.netns, "cb")[0] == RCODE.SERVFAIL
    assert query(b.netns, "front")[0] == RCODE.SERVFAIL
    assert query(b.netns, "ca")[0] == RCODE.SERVFAIL


def test_link_alias_follows_its_target_across_rm_and_run(node, net):
    db = run(node, "db")
    app = run(node, "app", links=("db:database",))
    assert query(app.netns, "database") == (RCODE.NOERROR, [ip4(db)])
    assert query(db.netns, "database")[0] == RCODE.SERVFAIL         # private to the linker
    node.remove_container("db", force=True)
    assert query(app.netns, "database")[0] == RCODE.SERVFAIL
    run(node, "db", ipv4="10.61.0.200")                              # a new "db"
    assert query(app.netns, "database") == (RCODE.NOERROR, ["10.61.0.200"])


def test_resolver_starts_on_demand_and_exits_when_unused(node, net):
    run(node, "plain", network="bridge")                 # default bridge: no embedded DNS
    assert not node.dns_status()["running"]
    run(node, "c1")
    status = node.dns_status()
    assert status["running"] and status["sandboxes"] == 1
    pid = status["pid"]
    # it runs in the node's netns
    assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(netns.netns_path(node.node.netns)).st_ino
    run(node, "c2")
    assert node.dns_status()["sandboxes"] == 2 and node.dns_status()["pid"] == pid
    v1 = node.dns_status()["version"]
    node.remove_container("c1", force=True)
    assert node.dns_status()["version"] > v1
    node.remove_container("c2", force=True)
    assert not node.dns_status()["running"]              # it exited by itself
    deadline = time.monotonic() + 5
    while daemon._alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not daemon._alive(pid)
    assert not daemon.crashed(run_dir(node))
    assert "no sandbox left: exiting" in node.dns_log()
    c3 = run(node, "c3")                                 # and comes back when needed
    assert node.dns_status()["running"] and node.dns_status()["pid"] != pid
    assert query(c3.netns, "c3") == (RCODE.NOERROR, [ip4(c3)])


def test_killed_resolver_is_reported_and_the_next_action_restarts_it(node, net):
    a, b = run(node, "ca"), run(node, "cb")
    pid = node.dns_status()["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while daemon._alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [d for d in node.system_check() if d.startswith("resolver:")] == \
        ["resolver: not running (containers on DNS networks need it; "
         "the next netkit action restarts it)"]
    c = run(node, "cc")
    new = node.dns_status()
    assert new["running"] and new["pid"] != pid and new["sandboxes"] == 3
    assert node.system_check() == []
    # the new daemon built a and b from the store, and c came with the update
    assert query(a.netns, "cc") == (RCODE.NOERROR, [ip4(c)])
    assert query(c.netns, "cb") == (RCODE.NOERROR, [ip4(b)])
    # killed again: an rm (of a container that needs no DNS any more) also restarts it
    os.kill(new["pid"], signal.SIGKILL)
    while daemon._alive(new["pid"]) and time.monotonic() < deadline + 5:
        time.sleep(0.01)
    node.remove_container("cc", force=True)
    assert node.dns_status()["running"]
    assert query(a.netns, "cb") == (RCODE.NOERROR, [ip4(b)])
    assert query(a.netns, "cc")[0] == RCODE.SERVFAIL


def test_control_protocol(node, net):
    a = run(node, "ca")
    rd = run_dir(node)
    version, sandboxes = daemon._control(rd, "status")
    assert sandboxes == 1
    assert daemon.update(rd, [a.id, "f" * 64]) == (version + 1, 1)   # unknown id: removed = no-op
    assert daemon._control(rd, "reload") == (version + 2, 1)
    assert daemon._control(rd, "bogus") is None
    assert query(a.netns, "ca") == (RCODE.NOERROR, [ip4(a)])


def test_remote_entries_are_served_kept_across_reloads_and_keep_the_resolver(node, net):
    """`remote`: what the node agent pushes on a swarm node (the other nodes' endpoints)."""
    from netkit.dns.entries import ContainerEntries, EndpointEntry, NetworkEntry
    a = run(node, "ca")
    rd = run_dir(node)
    far = {"f" * 64: ContainerEntries(None, (EndpointEntry(
        "f" * 64, "far", net.id, "10.61.0.250", None, ("far", "faraway")),))}
    assert daemon.set_remote(rd, far, {net.id: NetworkEntry("dn")}) is not None
    assert query(a.netns, "faraway.dn") == (RCODE.NOERROR, ["10.61.0.250"])
    daemon._control(rd, "reload")                        # a full rebuild keeps them
    assert query(a.netns, "far") == (RCODE.NOERROR, ["10.61.0.250"])
    pid = node.dns_status()["pid"]
    node.remove_container("ca", force=True)              # no sandbox, but other nodes' names
    assert node.dns_status()["pid"] == pid
    b = run(node, "cb")                                  # no new resolver to wait for
    assert node.dns_status()["pid"] == pid and query(b.netns, "far")[1] == ["10.61.0.250"]
    assert daemon.set_remote(rd, {}, {}) is not None     # the node left the swarm
    assert query(b.netns, "far")[0] == RCODE.SERVFAIL
    node.remove_container("cb", force=True)              # now nothing is left: it exits
    assert not node.dns_status()["running"]


def test_backstop_catches_a_change_nobody_announced(node, net, monkeypatch):
    a = run(node, "ca")
    from netkit.resolver import ResolverClient
    monkeypatch.setattr(ResolverClient, "after_change", lambda self, *ids: None)
    b = run(node, "cb")                                  # committed, but the resolver not told
    monkeypatch.undo()
    assert query(a.netns, "cb")[0] == RCODE.SERVFAIL
    deadline = time.monotonic() + 3 * daemon.POLL + 3
    while query(a.netns, "cb")[0] != RCODE.NOERROR and time.monotonic() < deadline:
        time.sleep(0.2)
    assert query(a.netns, "cb") == (RCODE.NOERROR, [ip4(b)])
    assert "backstop: 1 containers were not up to date" in node.dns_log()
