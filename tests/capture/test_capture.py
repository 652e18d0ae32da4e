"""Captures against known traffic, on every kind of target.

Counts are exact: the world's namespaces carry nothing but what each test
makes (the resolver answers on 127.0.0.11 inside `client`; pings go
between containers, nodes and the LAN router, all ours).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import pytest
from scapy.layers.dns import DNS
from scapy.layers.inet import ICMP, IP, UDP
from scapy.utils import rdpcap

from netkit.capture import capture
from netkit.capture.session import Capture, WaitTimeout
from netkit.errors import InvalidArgument, NotFound
from netkit.kernel import netns as kns
from tests.capture.conftest import A_IP, B_IP, LAN_GW, promiscuity

pytestmark = pytest.mark.root


def echo(kind: int):
    return lambda p: ICMP in p and p[ICMP].type == kind


REQUEST, REPLY = echo(8), echo(0)


# -- DNS, exact counts ----------------------------------------------------------------

def test_dns_queries_and_answers_counted_exactly(world):
    with capture(world.engine, "client", filter="udp port 53") as cap:
        for _ in range(5):
            world.dig("client", "web")
    queries = cap.assert_dns_query("web", count=5, type="A")
    answers = cap.assert_dns_answer("web", count=5, addresses=world.web_ips)
    assert len(cap.packets) == 10
    assert {a.src for a in answers} == {"127.0.0.11"}
    assert [(q.id, q.sport) for q in queries] == [(a.id, a.dport) for a in answers]


def test_dns_answers_rotate(world):
    with capture(world.engine, "client", filter="udp port 53") as cap:
        for _ in range(6):
            world.dig("client", "web")
    orders = [a.addresses for a in cap.assert_dns_answer("web", count=6)]
    assert len(set(orders)) == 3 and orders[:3] == orders[3:]


# -- filters ------------------------------------------------------------------------------

def test_filter_is_applied_in_the_kernel(world):
    with capture(world.engine, "client", filter="icmp") as cap:
        world.dig("client", "web")                               # not matched
        assert world.ping("client", world.ips["web1"], 2) == 0
    cap.assert_only(ICMP)
    cap.assert_packets(REQUEST, count=2)
    cap.assert_packets(REPLY, count=2)
    assert cap.stats["received"] == 4                            # nothing else was even queued


def test_filter_by_host_and_port(world):
    web1, web2 = world.ips["web1"], world.ips["web2"]
    with capture(world.engine, "client", filter=f"icmp and host {web2}") as cap:
        world.ping("client", web1)
        world.ping("client", web2)
    cap.assert_only(lambda p: web2 in (p[IP].src, p[IP].dst), f"host {web2}")
    assert len(cap.packets) == 2


def test_no_packet_lost_right_after_enter(world):
    """The capture is ready when `with` returns: a datagram sent at once is always there."""
    sock = kns.socket_in(world.netns("client"), socket.AF_INET, socket.SOCK_DGRAM)
    peer = world.ips["peer"]
    assert world.ping("client", peer) == 0                       # ARP resolved beforehand
    started = time.monotonic()
    try:
        for i in range(100):
            with capture(world.engine, "client", iface="eth0", filter="udp dst port 7777") as cap:
                sock.sendto(b"%d" % i, (peer, 7777))
            assert [bytes(p[UDP].payload) for p in cap.packets] == [b"%d" % i], f"round {i}"
    finally:
        sock.close()
    assert time.monotonic() - started < 30


def test_a_flood_is_captured_without_gaps_and_stop_is_prompt(world):
    sock = kns.socket_in(world.netns("client"), socket.AF_INET, socket.SOCK_DGRAM)
    peer, done = world.ips["peer"], threading.Event()

    def flood() -> None:
        i = 0
        while not done.is_set():
            sock.sendto(b"%d" % i, (peer, 7777))
            i += 1
            if i % 20 == 0:
                time.sleep(0.001)                # ~10k datagrams a second

    sender = threading.Thread(target=flood)
    sender.start()
    try:
        with capture(world.engine, "client", iface="eth0", filter="udp dst port 7777") as cap:
            time.sleep(0.3)
            stopping = time.monotonic()
        stopped = time.monotonic() - stopping
    finally:
        done.set()
        sender.join()
        sock.close()
    seq = [int(bytes(p[UDP].payload)) for p in cap.packets]
    assert len(seq) > 500 and seq == list(range(seq[0], seq[0] + len(seq))), len(seq)  # no gap
    assert cap.stats["dropped"] == 0
    assert stopped < 1.0                         # traffic goes on: leaving still returns


# -- targets ------------------------------------------------------------------------------

def test_network_target_sees_frames_forwarded_by_the_bridge(world):
    from netkit.drivers.bridge import bridge_name
    bridge = bridge_name(world.engine.network("app"))
    node_ns = world.engine.node.netns
    with capture(world.engine, "network:app", filter="icmp") as cap:
        assert promiscuity(node_ns, bridge) == 1
        assert world.ping("client", world.ips["web1"], 2) == 0
    assert cap.target.iface == bridge
    cap.assert_packets(REQUEST, count=2)                         # port to port: needs promisc
    cap.assert_packets(REPLY, count=2)
    assert promiscuity(node_ns, bridge) == 0                     # given back when it ends


def test_node_target_on_one_interface(world):
    with capture(world.engine, f"node:{world.a}", iface="eth0", filter="icmp") as cap:
        assert world.ping("client", LAN_GW, 2) == 0
    requests = cap.assert_packets(REQUEST, count=2)
    assert {p[IP].src for p in requests} == {A_IP}               # masqueraded on the way out
    assert {p.sniffed_on for p in cap.packets} == {"eth0"}


def test_node_target_every_interface_sees_each_hop(world):
    with capture(world.engine, f"node:{world.a}", filter="icmp") as cap:
        assert world.ping("client", LAN_GW) == 0
    hops = {p.sniffed_on for p in cap.assert_packets(REQUEST)}
    assert "eth0" in hops and len(hops) >= 2                     # the veth (and bridge), then eth0


def test_lan_target_sees_traffic_between_nodes(world):
    with capture(world.engine, f"lan:{world.lan}", filter="icmp") as cap:
        ping = world.host.node_exec(world.a, ["ping", "-c", "2", "-i", "0.2", "-W", "1", "-q", B_IP],
                                    capture=[])
        assert ping == 0
    assert cap.target.iface == "lan0"
    assert [(p[IP].src, p[IP].dst) for p in cap.assert_packets(REQUEST, count=2)] == [(A_IP, B_IP)] * 2
    cap.assert_packets(REPLY, count=2)


def test_container_target_on_one_interface(world):
    with capture(world.engine, "client", iface="lo", filter="udp port 53") as cap:
        world.dig("client", "web")
    assert len(cap.packets) == 2 and {p.sniffed_on for p in cap.packets} == {"lo"}


# -- limits, waiting, live decode ---------------------------------------------------------

def test_count_ends_the_capture(world):
    with capture(world.engine, "client", filter="icmp", count=2) as cap:
        world.ping("client", world.ips["web1"], 3)
        assert cap.wait(5)
        assert not cap.running
    assert len(cap.packets) == 2


def test_timeout_ends_the_capture(world):
    started = time.monotonic()
    with capture(world.engine, "client", timeout=0.3) as cap:
        assert cap.wait(5)
    assert 0.3 <= time.monotonic() - started < 3


def test_wait_for_packets_as_they_come(world):
    with capture(world.engine, "client", filter="icmp") as cap:
        later = threading.Timer(0.2, world.ping, ("client", world.ips["web2"]))
        later.start()
        reply = cap.wait_for(REPLY, timeout=5)
        later.join()
    assert reply[IP].src == world.ips["web2"]
    assert cap.wait_for(REQUEST, timeout=0)[IP].dst == world.ips["web2"]   # already seen: found


def test_wait_for_timeout_shows_what_was_seen(world):
    with capture(world.engine, "client", filter="icmp") as cap:
        world.ping("client", world.ips["web1"])
        with pytest.raises(WaitTimeout) as info:
            cap.wait_for(DNS, timeout=0.2)
    msg = str(info.value)
    assert "no packet matched DNS within 0.2 s" in msg
    assert f"{world.ips['client']} > {world.ips['web1']}: ICMP echo request" in msg


def test_packets_are_decoded_live(world):
    seen = []
    with capture(world.engine, "client", filter="icmp", on_packet=seen.append) as cap:
        world.ping("client", world.ips["web3"])
        deadline = time.monotonic() + 5
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(seen) == 2 and cap.running                    # before the capture ends
    assert [p.summary() for p in seen] == [p.summary() for p in cap.packets]


# -- helpers and assertion messages -----------------------------------------------------

def test_flows_count_packets_and_bytes(world):
    client, web1 = world.ips["client"], world.ips["web1"]
    with capture(world.engine, "client", iface="eth0", filter="icmp") as cap:
        world.ping("client", web1, 3, "-s", "100")
    flows = {f.key: f for f in cap.flows()}
    assert set(flows) == {("icmp", client, None, web1, None), ("icmp", web1, None, client, None)}
    out = flows[("icmp", client, None, web1, None)]
    assert (out.packets, out.bytes) == (3, 3 * (20 + 8 + 100))


def test_failed_assertions_show_the_packets(world):
    with capture(world.engine, "client", filter="udp port 53") as cap:
        world.dig("client", "web")
    with pytest.raises(AssertionError) as info:
        cap.assert_dns_answer("web", count=3)
    msg = str(info.value)
    assert "expected 3 DNS answers for web with NOERROR, saw 1" in msg
    assert "A? web." in msg and "127.0.0.11.53 > 127.0.0.1." in msg
    with pytest.raises(AssertionError, match=r"(?s)expected no packets.*A\? web\."):
        cap.assert_no_packets()
    with pytest.raises(AssertionError, match=r"(?s)expected only packets matching ICMP, 2 others"):
        cap.assert_only(ICMP)
    with pytest.raises(AssertionError, match="do not carry exactly"):
        cap.assert_dns_answer("web", addresses={"10.0.0.1"})


def test_pcap_files_are_standard(world, tmp_path):
    live = tmp_path / "live.pcap"
    with capture(world.engine, "client", filter="udp port 53 or icmp", pcap=str(live)) as cap:
        world.dig("client", "web")
        world.ping("client", world.ips["web1"])
    after = cap.write_pcap(str(tmp_path / "after.pcap"))
    frames = [bytes(p.original) for p in cap.packets]
    assert len(frames) == 4                                      # query, answer, request, reply
    for path in (str(live), after):
        again = rdpcap(path)
        assert [bytes(p) for p in again] == frames
        assert all(abs(float(a.time) - float(b.time)) < 2e-6 for a, b in zip(again, cap.packets))
        out = subprocess.run(["tcpdump", "-nr", path], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert "link-type EN10MB" in out.stderr
        assert len(out.stdout.splitlines()) == 4 and "A? web." in out.stdout


def test_empty_capture_still_writes_a_valid_pcap(world, tmp_path):
    path = tmp_path / "empty.pcap"
    with capture(world.engine, "client", filter="tcp port 1", pcap=str(path)):
        pass
    assert len(rdpcap(str(path))) == 0
    assert subprocess.run(["tcpdump", "-nr", str(path)], capture_output=True).returncode == 0


# -- errors, clean-up, API ------------------------------------------------------------------

def test_bad_requests_fail_before_anything_opens(world):
    threads = threading.active_count()
    e = world.engine
    with pytest.raises(InvalidArgument, match="invalid capture filter"):
        capture(e, "client", filter="udp port")
    with pytest.raises(NotFound):
        capture(e, "nosuchcontainer")
    with pytest.raises(NotFound, match=r"interface nope0 not found in netns nkc-"):
        capture(e, "client", iface="nope0").start()
    with pytest.raises(InvalidArgument, match="has no bridge"):
        capture(e, "network:host")
    with pytest.raises(NotFound, match="node nosuch not found"):
        capture(e, "node:nosuch")
    with pytest.raises(NotFound, match="lan nosuch not found"):
        capture(e, "lan:nosuch")
    with pytest.raises(InvalidArgument, match="needs a name"):
        capture(e, "network:")
    with pytest.raises(InvalidArgument, match="at least 1"):
        capture(e, "client", count=0)
    assert threading.active_count() == threads


def test_a_capture_runs_once(world):
    with capture(world.engine, "client") as cap:
        pass
    with pytest.raises(InvalidArgument, match="runs once"):
        cap.start()


def test_engine_capture(world):
    cap = world.engine.capture("client", filter="icmp", count=1)
    assert isinstance(cap, Capture) and cap.target.netns == world.netns("client")
    with cap:
        world.ping("client", world.ips["web1"])
    assert len(cap.packets) == 1


def test_importing_netkit_does_not_import_scapy():
    code = ("import sys, netkit, netkit.capture, netkit.engine, netkit.pytest_plugin, "
            "netkit.cli.main; bad = sorted(m for m in sys.modules if m.startswith('scapy')); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "netkit", "capture", "--help"],
                          capture_output=True, text=True, check=True)
    assert "scapy" not in proc.stderr and "TARGET" in proc.stdout
