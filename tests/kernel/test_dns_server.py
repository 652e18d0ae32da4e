"""The resolver on real sockets: 127.0.0.11 inside throwaway sandbox netns.

Every namespace here is ours (``nkt-dns-*``), deleted in finalizers. The
upstream is a dnslib server we start in its own netns, reached over veth
pairs; nothing is ever sent to an address outside these namespaces.
"""

from __future__ import annotations

import os
import random
import re
import secrets
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time

import pytest
from dnslib import RCODE, DNSRecord

from netkit.dns import daemon
from netkit.dns.daemon import Resolver
from netkit.dns.entries import (ContainerEntries, EndpointEntry, NetworkEntry, SandboxEntry,
                                Snapshot)
from netkit.kernel import netns

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

C1, C2 = "1" * 64, "2" * 64
UP_C1, UP_NODE = "10.253.1.1", "10.253.2.1"       # upstream, as seen from c1 / from node
UP_REFUSING = "10.253.1.3"                       # same upstream process, always REFUSED


# -- fixtures -----------------------------------------------------------------------

@pytest.fixture
def make_ns():
    made: list[str] = []

    def make() -> str:
        name = f"nkt-dns-{secrets.token_hex(4)}"
        netns.create_netns(name)
        made.append(name)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        return name

    yield make
    for name in reversed(made):
        netns.delete_netns(name)


@pytest.fixture
def c1(make_ns):
    return make_ns()


@pytest.fixture
def c2(make_ns):
    return make_ns()


UPSTREAM = textwrap.dedent("""
    import sys, time
    from dnslib import RR, QTYPE, RCODE, A
    from dnslib.server import DNSServer, BaseResolver

    class Upstream(BaseResolver):
        def __init__(self, refuse):
            self.refuse = refuse
        def resolve(self, request, handler):
            reply = request.reply()
            name = str(request.q.qname).lower()
            if self.refuse:
                reply.header.rcode = RCODE.REFUSED
            elif name.startswith("slow."):
                time.sleep(3)
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("198.51.100.9"), ttl=5))
            elif name.startswith("nx."):
                reply.header.rcode = RCODE.NXDOMAIN
            elif name.startswith("fail."):
                reply.header.rcode = RCODE.SERVFAIL
            else:
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("198.51.100.7"), ttl=5))
            return reply

    servers = []
    for addr, refuse in (("10.253.1.1", False), ("10.253.2.1", False), ("10.253.1.3", True)):
        for tcp in (False, True):
            s = DNSServer(Upstream(refuse), address=addr, port=53, tcp=tcp,
                          logger=type("L", (), {"__getattr__": lambda s, n: lambda *a: None})())
            s.start_thread()
            servers.append(s)
    print("ready", flush=True)
    sys.stdin.read()
""")


class Upstream:
    """A dnslib server in netns `ns` (a subprocess we can stop)."""

    def __init__(self, ns: str, script: str) -> None:
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, script],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def veth(a: str, b: str, a_ip: str, b_ip: str) -> None:
    """A veth pair between netns a and b (named eth-<peer> inside each), addresses /24."""
    name_a, name_b = f"v{b[-6:]}", f"v{a[-6:]}"
    subprocess.run(["ip", "-n", a, "link", "add", name_a, "type", "veth",
                    "peer", "name", name_b, "netns", b], check=True)
    for ns, ifname, ip in ((a, name_a, a_ip), (b, name_b, b_ip)):
        subprocess.run(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", ifname], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", ifname, "up"], check=True)


@pytest.fixture
def upstream(make_ns, c1, tmp_path):
    """Upstream netns `up` reachable from c1 (10.253.1.0/24) and from `node` (10.253.2.0/24)."""
    up, node = make_ns(), make_ns()
    veth(c1, up, "10.253.1.2", UP_C1)
    subprocess.run(["ip", "-n", up, "addr", "add", f"{UP_REFUSING}/24", "dev", f"v{c1[-6:]}"],
                   check=True)
    veth(node, up, "10.253.2.2", UP_NODE)
    script = tmp_path / "upstream.py"
    script.write_text(UPSTREAM)
    server = Upstream(up, str(script))
    server.node = node
    yield server
    server.stop()


@pytest.fixture
def resolver():
    started: list[Resolver] = []

    def start(snapshot: Snapshot, **kw) -> Resolver:
        r = Resolver(snapshot, **kw).start()
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()


# -- snapshots and clients --------------------------------------------------------------

def ep(name, net, ipv4, aliases=(), ipv6=None):
    return EndpointEntry(name.ljust(64, "0"), name, net, ipv4, ipv6, (name, *aliases))


def snapshot(sandboxes, endpoints, version=1, order="rr"):
    return Snapshot(version, tuple(sandboxes),
                    {"n1": NetworkEntry("net1", order), "n2": NetworkEntry("net2", order)},
                    tuple(endpoints))


def sb(cid, ns, networks=("n1",), upstreams=(), host_upstreams=(), external=True):
    return SandboxEntry(cid, ns, tuple(networks), (), tuple(upstreams), tuple(host_upstreams),
                        external)


BASE_EPS = [ep("web1", "n1", "172.18.0.2", ["alias1"]), ep("web2", "n2", "172.19.0.2"),
            *[ep(f"w{i}", "n1", f"172.18.0.{10 + i}", ["svc"]) for i in range(3)]]


def query(ns: str, name: str, qtype: str = "A", tcp: bool = False,
          timeout: float = 3.0) -> DNSRecord:
    """One query to 127.0.0.11:53 from a Python socket inside `ns` (no EDNS)."""
    data = bytes(DNSRecord.question(name, qtype).pack())
    kind = socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
    with netns.socket_in(ns, socket.AF_INET, kind) as s:
        s.settimeout(timeout)
        s.connect(("127.0.0.11", 53))
        if tcp:
            s.sendall(struct.pack("!H", len(data)) + data)
            size = struct.unpack("!H", _recv_exactly(s, 2))[0]
            reply = _recv_exactly(s, size)
        else:
            s.send(data)
            reply = s.recv(65535)
    assert reply[:2] == data[:2]
    return DNSRecord.parse(reply)


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        assert chunk, "connection closed"
        buf += chunk
    return buf


def dig(ns: str, *args: str) -> tuple[str, list[str], str]:
    """(status, answer rdata list, raw output) of `dig @127.0.0.11 ...` inside `ns`."""
    out = subprocess.run(["ip", "netns", "exec", ns, "dig", "+time=2", "+tries=1",
                          "@127.0.0.11", *args], capture_output=True, text=True,
                         timeout=30).stdout
    status = re.search(r"status: (\w+)", out)
    answers = []
    section = False
    for line in out.splitlines():
        if line.startswith(";; ANSWER SECTION"):
            section = True
        elif section and not line.strip():
            section = False
        elif section:
            answers.append(line.split()[-1])
    return (status.group(1) if status else "NO REPLY"), answers, out


def a(reply: DNSRecord) -> list[str]:
    return [str(rr.rdata) for rr in reply.rr]


# -- tests ---------------------------------------------------------------------------------

def test_scoping_per_sandbox(resolver, c1, c2):
    resolver(snapshot([sb(C1, c1, ["n1"]), sb(C2, c2, ["n2"])], BASE_EPS))
    assert dig(c1, "web1")[:2] == ("NOERROR", ["172.18.0.2"])
    assert dig(c1, "+tcp", "alias1.net1")[:2] == ("NOERROR", ["172.18.0.2"])
    assert dig(c1, "web2")[0] == "SERVFAIL"         # not on c1's networks, no upstream
    assert dig(c2, "web2")[:2] == ("NOERROR", ["172.19.0.2"])
    assert dig(c2, "web1")[0] == "SERVFAIL"
    assert a(query(c2, "WEB2.net2")) == ["172.19.0.2"]
    assert query(c1, "web1", "AAAA").header.rcode == RCODE.NOERROR      # NODATA
    assert query(c1, "web1", "AAAA").rr == []
    assert dig(c2, "-x", "172.19.0.2")[1] == ["web2.net2."]
    assert dig(c1, "-x", "172.19.0.2")[0] == "SERVFAIL"


def test_round_robin_order(resolver, c1):
    resolver(snapshot([sb(C1, c1)], BASE_EPS))
    ips = ["172.18.0.10", "172.18.0.11", "172.18.0.12"]
    rotations = [ips[k:] + ips[:k] for k in range(3)]
    assert [a(query(c1, "svc")) for _ in range(6)] == rotations * 2     # hot path
    assert [dig(c1, "svc")[1] for _ in range(3)] == rotations           # EDNS path, same counter
    assert a(query(c1, "svc", tcp=True)) == rotations[0]


def test_reload_adds_and_removes_names_and_sandboxes(resolver, c1, c2):
    r = resolver(snapshot([sb(C1, c1)], BASE_EPS))
    st = r.server.states[C1]
    udp, tcp_sock = st.udp, st.tcp
    with netns.socket_in(c1, socket.AF_INET, socket.SOCK_STREAM) as conn:
        conn.settimeout(3)
        conn.connect(("127.0.0.11", 53))
        r.reload(snapshot([sb(C1, c1), sb(C2, c2)],
                          BASE_EPS + [ep("late", "n1", "172.18.0.99")], version=2))
        assert a(query(c1, "late")) == ["172.18.0.99"]
        assert a(query(c2, "late")) == ["172.18.0.99"]          # new sandbox served
        # the unchanged sandbox kept its sockets and its open TCP connection
        assert r.server.states[C1].udp is udp and r.server.states[C1].tcp is tcp_sock
        data = bytes(DNSRecord.question("late").pack())
        conn.sendall(struct.pack("!H", len(data)) + data)
        size = struct.unpack("!H", _recv_exactly(conn, 2))[0]
        assert a(DNSRecord.parse(_recv_exactly(conn, size))) == ["172.18.0.99"]
    r.reload(snapshot([sb(C1, c1)], BASE_EPS[:1], version=3))
    assert query(c1, "late").header.rcode == RCODE.SERVFAIL
    assert query(c1, "svc").header.rcode == RCODE.SERVFAIL
    assert a(query(c1, "web1")) == ["172.18.0.2"]
    with pytest.raises(OSError):                                # c2's sockets are closed
        query(c2, "web1", timeout=1)
    assert r.version == 3


def test_incremental_update_opens_closes_and_keeps_the_rest(resolver, c1, c2):
    r = resolver(snapshot([sb(C1, c1)], BASE_EPS))
    st = r.server.states[C1]
    udp, tcp_sock, table = st.udp, st.tcp, st.sandbox.table
    ips = ["172.18.0.10", "172.18.0.11", "172.18.0.12"]
    rotations = [ips[k:] + ips[:k] for k in range(3)]
    assert a(query(c1, "svc")) == rotations[0]
    late = ep("late", "n1", "172.18.0.99")
    delta = r.update({C2: ContainerEntries(sb(C2, c2)),
                      late.container_id: ContainerEntries(None, (late,))}, version=7)
    assert [s.container_id for s in delta.opened] == [C2] and r.version == 7
    assert a(query(c1, "late")) == ["172.18.0.99"]
    assert a(query(c2, "late")) == ["172.18.0.99"]          # new sandbox bound at once
    st = r.server.states[C1]
    assert (st.udp, st.tcp, st.sandbox.table) == (udp, tcp_sock, table)     # untouched
    assert a(query(c1, "svc")) == rotations[1]              # counter kept
    r.update({C2: ContainerEntries(), late.container_id: ContainerEntries()})
    with pytest.raises(OSError):                            # c2's sockets are closed
        query(c2, "web1", timeout=1)
    assert query(c1, "late").header.rcode == RCODE.SERVFAIL
    assert a(query(c1, "svc")) == rotations[2]
    assert set(r.server.states) == {C1}


def test_sandbox_that_could_not_bind_is_retried_on_its_next_update(resolver, c1):
    r = resolver(snapshot([sb(C1, c1)], BASE_EPS))
    name = f"nkt-dns-{secrets.token_hex(4)}"
    r.update({C2: ContainerEntries(sb(C2, name))})                     # netns not there (yet)
    assert C2 in r.server.catalog.sandboxes and C2 not in r.server.states
    netns.create_netns(name)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        r.update({C2: ContainerEntries(sb(C2, name))})
        assert a(query(name, "web1")) == ["172.18.0.2"]
        r.update({C2: ContainerEntries()})
    finally:
        netns.delete_netns(name)


def test_vanished_netns_is_skipped(resolver, c1, caplog):
    r = resolver(snapshot([sb(C2, "nkt-dns-gone"), sb(C1, c1)], BASE_EPS))
    assert set(r.server.states) == {C1}
    assert a(query(c1, "web1")) == ["172.18.0.2"]
    assert "cannot listen in netns nkt-dns-gone" in caplog.text


def test_tcp_several_queries_per_connection(resolver, c1):
    resolver(snapshot([sb(C1, c1)], BASE_EPS))
    names = ["web1", "alias1", "svc"]
    msgs = [bytes(DNSRecord.question(n).pack()) for n in names]
    with netns.socket_in(c1, socket.AF_INET, socket.SOCK_STREAM) as conn:
        conn.settimeout(3)
        conn.connect(("127.0.0.11", 53))
        conn.sendall(b"".join(struct.pack("!H", len(m)) + m for m in msgs))   # pipelined
        replies = []
        for _ in msgs:
            size = struct.unpack("!H", _recv_exactly(conn, 2))[0]
            replies.append(DNSRecord.parse(_recv_exactly(conn, size)))
    assert [r.header.id for r in replies] == [DNSRecord.parse(m).header.id for m in msgs]
    assert a(replies[0]) == a(replies[1]) == ["172.18.0.2"] and len(replies[2].rr) == 3


def test_no_reply_without_question_and_notimp_for_other_opcodes(resolver, c1):
    resolver(snapshot([sb(C1, c1)], BASE_EPS))
    with netns.socket_in(c1, socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        s.connect(("127.0.0.11", 53))
        s.send(b"\x00\x07\x01\x00" + bytes(8))          # zero questions
        with pytest.raises(socket.timeout):
            s.recv(512)
        notify = DNSRecord.question("web1")
        notify.header.opcode = 4
        s.send(bytes(notify.pack()))
        reply = DNSRecord.parse(s.recv(512))
        assert reply.header.rcode == RCODE.NOTIMP and reply.header.id == notify.header.id


def test_truncation_then_tcp_retry(resolver, c1):
    eps = [ep(f"m{i}", "n1", f"172.18.1.{i + 1}", ["many"]) for i in range(60)]
    resolver(snapshot([sb(C1, c1)], eps))
    udp = query(c1, "many")
    assert udp.header.tc == 1 and 0 < len(udp.rr) < 60
    status, answers, out = dig(c1, "+noedns", "many")        # dig retries over TCP itself
    assert "Truncated, retrying in TCP mode" in out
    assert status == "NOERROR" and len(answers) == 60
    assert len(dig(c1, "+bufsize=4096", "+ignore", "many")[1]) == 60   # EDNS size honoured


def test_forwarding_from_the_container_netns(resolver, c1, upstream):
    resolver(snapshot([sb(C1, c1, upstreams=[UP_REFUSING, UP_C1])], BASE_EPS), timeout=1.0)
    assert dig(c1, "ext.example")[:2] == ("NOERROR", ["198.51.100.7"])   # REFUSED -> next
    assert dig(c1, "+tcp", "ext.example")[:2] == ("NOERROR", ["198.51.100.7"])
    reply = query(c1, "nx.example")                                      # relayed as is
    assert reply.header.rcode == RCODE.NXDOMAIN
    assert query(c1, "fail.example").header.rcode == RCODE.SERVFAIL
    assert query(c1, "web1", "TXT").header.rcode == RCODE.NOERROR         # other types go out
    assert a(query(c1, "web1")) == ["172.18.0.2"]                         # ours stay ours
    upstream.stop()
    t0 = time.monotonic()
    assert query(c1, "ext.example").header.rcode == RCODE.SERVFAIL
    assert time.monotonic() - t0 < 3


def test_host_upstreams_only_when_external(resolver, c1):
    # host upstreams are dialled from the resolver's netns: here a loopback socket
    # of this test plays the node's resolver (nothing leaves the machine)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as fake:
        fake.bind(("127.0.0.1", 0))
        fake.setblocking(False)
        host_up = f"127.0.0.1:{fake.getsockname()[1]}"
        r = resolver(snapshot([sb(C1, c1, host_upstreams=[host_up], external=False)],
                              BASE_EPS), timeout=1.0)
        t0 = time.monotonic()
        assert query(c1, "ext.example").header.rcode == RCODE.SERVFAIL
        assert time.monotonic() - t0 < 0.5
        with pytest.raises(BlockingIOError):
            fake.recvfrom(4096)                 # not even tried
        r.reload(snapshot([sb(C1, c1, host_upstreams=[host_up])], BASE_EPS, version=2))
        with netns.socket_in(c1, socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(3)
            client.connect(("127.0.0.11", 53))
            q = DNSRecord.question("ext.example")
            client.send(bytes(q.pack()))
            fake.settimeout(3)
            data, addr = fake.recvfrom(4096)
            got = DNSRecord.parse(data)
            assert str(got.q.qname) == "ext.example." and got.header.id != q.header.id
            reply = got.reply()
            reply.header.rcode = RCODE.NXDOMAIN
            fake.sendto(bytes(reply.pack()), addr)
            answer = DNSRecord.parse(client.recv(4096))
        assert answer.header.id == q.header.id and answer.header.rcode == RCODE.NXDOMAIN


def test_refused_over_inflight_limit(resolver, c1, upstream):
    resolver(snapshot([sb(C1, c1, upstreams=[UP_C1])], BASE_EPS), timeout=5.0, max_inflight=1)
    with netns.socket_in(c1, socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(4)
        s.connect(("127.0.0.11", 53))
        slow = DNSRecord.question("slow.example")
        s.send(bytes(slow.pack()))
        time.sleep(0.2)
        assert query(c1, "other.example").header.rcode == RCODE.REFUSED
        assert a(query(c1, "web1")) == ["172.18.0.2"]       # known names never wait
        reply = DNSRecord.parse(s.recv(4096))
        assert reply.header.id == slow.header.id and a(reply) == ["198.51.100.9"]
    assert a(query(c1, "other.example")) == ["198.51.100.7"]     # slot free again


def test_garbage_burst_then_correct_answer(resolver, c1):
    r = resolver(snapshot([sb(C1, c1)], BASE_EPS))
    good = bytes(DNSRecord.question("web1").pack())
    rng = random.Random(5)
    with netns.socket_in(c1, socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("127.0.0.11", 53))
        for i in range(2000):
            if i % 3 == 0:
                data = rng.randbytes(rng.randrange(0, 100))
            else:
                data = bytearray(good)
                for _ in range(3):
                    data[rng.randrange(len(data))] = rng.randrange(256)
                data = bytes(data[:rng.randrange(len(data) + 1)])
            s.send(data)
        s.send(b"\x00\x07\x01\x00" + bytes(8))          # zero questions: no reply
    with netns.socket_in(c1, socket.AF_INET, socket.SOCK_STREAM) as t:   # TCP junk too
        t.connect(("127.0.0.11", 53))
        t.sendall(b"\x00\x05hello\x00\x00" + b"\xff" * 50)
    assert a(query(c1, "web1")) == ["172.18.0.2"]
    assert a(query(c1, "web1", tcp=True)) == ["172.18.0.2"]
    assert C1 in r.server.states


def test_daemon_lifecycle(tmp_path, c1, upstream, monkeypatch):
    node = upstream.node
    run_dir = str(tmp_path / "run")
    monkeypatch.setenv("NETKIT_DNS_TIMEOUT", "1")
    daemon.write_snapshot(run_dir, snapshot([sb(C1, c1, host_upstreams=[UP_NODE])], BASE_EPS))
    try:
        pid = daemon.ensure_running(run_dir, node)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert b"netkit.dns.daemon" in f.read()
        assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
        assert daemon.ensure_running(run_dir, node) == pid                # idempotent
        st = daemon.status(run_dir)
        assert st["running"] and st["pid"] == pid and st["version"] == 1 and st["sandboxes"] == 1
        assert a(query(c1, "web1")) == ["172.18.0.2"]
        # host upstreams are dialled from the daemon's netns (the node), which reaches `up`
        assert a(query(c1, "ext.example")) == ["198.51.100.7"]

        daemon.write_snapshot(run_dir, snapshot([sb(C1, c1)], BASE_EPS + [
            ep("newbie", "n1", "172.18.0.77")], version=2))
        assert daemon.notify(run_dir)
        assert a(query(c1, "newbie")) == ["172.18.0.77"]
        assert daemon.status(run_dir)["version"] == 2

        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while daemon.status(run_dir)["running"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not daemon.status(run_dir)["running"]
        assert not daemon.notify(run_dir)
        pid2 = daemon.ensure_running(run_dir, node)
        assert pid2 != pid
        assert a(query(c1, "newbie")) == ["172.18.0.77"]

        daemon.stop(run_dir)
        assert not os.path.exists(os.path.join(run_dir, "dns", "resolver.pid"))
        assert not os.path.exists(f"/proc/{pid2}") or \
            open(f"/proc/{pid2}/stat").read().split()[2] == "Z"
        assert not daemon.status(run_dir)["running"]
        log = open(os.path.join(run_dir, "dns", "resolver.log")).read()
        assert "version 2" in log and "stop pid" in log
    finally:
        daemon.stop(run_dir)


def test_daemon_reloads_on_snapshot_change_without_signal(tmp_path, c1):
    run_dir = str(tmp_path / "run")
    daemon.write_snapshot(run_dir, snapshot([sb(C1, c1)], BASE_EPS))
    try:
        daemon.ensure_running(run_dir, None)
        daemon.write_snapshot(run_dir, snapshot([sb(C1, c1)], BASE_EPS + [
            ep("polled", "n1", "172.18.0.88")], version=5))
        deadline = time.monotonic() + 6                   # backstop poll every 2 s
        while daemon.status(run_dir)["version"] != 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert a(query(c1, "polled")) == ["172.18.0.88"]
    finally:
        daemon.stop(run_dir)


def test_no_namespaces_left_behind():
    # runs last in this module: the fixtures above must have removed theirs
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "nkt-dns-" not in out
