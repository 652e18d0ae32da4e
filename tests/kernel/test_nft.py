"""netkit.firewall rendered and applied for real (netkit.kernel.nft), checked with traffic.

Each test builds its own small world by hand with ``ip`` (no Engine), in
namespaces named nkt-fw-<hex>-*, all deleted afterwards, also on failure:

    c11 10.91.1.11 ─┐                               ┌─ c21 10.91.2.21
    c12 10.91.1.12 ─┴ nkbr1 10.91.1.1   nkbr2 10.91.2.1 ┴─ c22 10.91.2.22
                           └──── node (ip_forward=1) ────┘
                                   lan0 192.168.91.1 (+ .3)
                                     │
                                   peer 192.168.91.2  (route to 10.91.0.0/16 via .1)

The peer has a route back to the containers, so without the ruleset
everything reaches everything: each drop seen below is the ruleset's doing.
Traffic never leaves these namespaces.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import struct
import subprocess
import time
from dataclasses import dataclass

import pytest

from netkit.errors import KernelError, NotFound
from netkit.firewall import FwNetwork, FwPort, needs_route_localnet, render, render_delete
from netkit.kernel import netns as ns
from netkit.kernel import nft

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() == 0 and not nft.available(),
                                 reason="nft with inet nat is not available")]

CTRS = {"c11": ("nkbr1", "10.91.1.11"), "c12": ("nkbr1", "10.91.1.12"),
        "c21": ("nkbr2", "10.91.2.21"), "c22": ("nkbr2", "10.91.2.22")}
NODE_LAN, NODE_LAN2, PEER = "192.168.91.1", "192.168.91.3", "192.168.91.2"
GW = {"nkbr1": "10.91.1.1", "nkbr2": "10.91.2.1"}


def net1(**kw) -> FwNetwork:
    return FwNetwork("n1", "nkbr1", ("10.91.1.0/24",), **kw)


def net2(**kw) -> FwNetwork:
    return FwNetwork("n2", "nkbr2", ("10.91.2.0/24",), **kw)


def sh(*argv: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc.stdout


@dataclass
class World:
    prefix: str

    def ns(self, short: str) -> str:
        return f"{self.prefix}-{short}"

    @property
    def node(self) -> str:
        return self.ns("node")

    @property
    def peer(self) -> str:
        return self.ns("peer")

    def apply(self, networks, ports=()) -> None:
        nft.apply(self.node, render(networks, list(ports)))

    def ping(self, src: str, dst: str) -> bool:
        proc = subprocess.run(["ip", "netns", "exec", self.ns(src), "ping", "-c1", "-W1", "-q", dst],
                              capture_output=True)
        return proc.returncode == 0

    def udp_source(self, src: str, server: str, bind: tuple[str, int],
                   dst: tuple[str, int], reply: bool = False) -> str | None:
        """Send one datagram from netns `src` to `dst`; the address the server in
        netns `server` (bound to `bind`) saw it from, or None. With reply=True the
        server answers and None is returned unless the answer comes back."""
        with ns.socket_in(self.ns(server), socket.AF_INET, socket.SOCK_DGRAM) as srv, \
                ns.socket_in(self.ns(src), socket.AF_INET, socket.SOCK_DGRAM) as cli:
            srv.bind(bind)
            srv.settimeout(1.0)
            cli.settimeout(1.0)
            cli.sendto(b"hello", dst)
            try:
                data, (seen, port) = srv.recvfrom(100)
                if reply:
                    srv.sendto(b"back:" + data, (seen, port))
                    answer, _ = cli.recvfrom(100)
                    assert answer == b"back:hello"
            except (socket.timeout, TimeoutError):
                return None
            return seen

    def tcp_source(self, src: str, server: str, bind: tuple[str, int],
                   dst: tuple[str, int]) -> str | None:
        """Connect from netns `src` to `dst`; the peer address the server saw, or None."""
        with ns.socket_in(self.ns(server), socket.AF_INET, socket.SOCK_STREAM) as srv, \
                ns.socket_in(self.ns(src), socket.AF_INET, socket.SOCK_STREAM) as cli:
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind(bind)
            srv.listen(4)
            srv.settimeout(1.0)
            cli.settimeout(1.0)
            try:
                cli.connect(dst)
                cli.sendall(b"ping")
                conn, (seen, _) = srv.accept()
                with conn:
                    conn.settimeout(1.0)
                    assert conn.recv(4) == b"ping"
                    conn.sendall(b"pong")
                assert cli.recv(4) == b"pong"
            except (socket.timeout, TimeoutError, ConnectionError):
                return None
            return seen

    def tables(self) -> str:
        return sh("ip", "netns", "exec", self.node, "nft", "list", "tables")


@pytest.fixture
def world():
    w = World(f"nkt-fw-{secrets.token_hex(3)}")
    made: list[str] = []
    try:
        for short in ("node", "peer", *CTRS):
            sh("ip", "netns", "add", w.ns(short))
            made.append(w.ns(short))
            sh("ip", "-n", w.ns(short), "link", "set", "lo", "up")
            ns.write_sysctl(w.ns(short), "ipv6/conf/all/disable_ipv6", "1")
        node = w.node
        ns.write_sysctl(node, "ipv4/ip_forward", "1")
        for br, gw in GW.items():
            sh("ip", "-n", node, "link", "add", br, "type", "bridge")
            sh("ip", "-n", node, "addr", "add", f"{gw}/24", "dev", br)
            sh("ip", "-n", node, "link", "set", br, "up")
        for short, (br, addr) in CTRS.items():
            ctr, veth = w.ns(short), f"v{short[1:]}"
            sh("ip", "-n", node, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ctr)
            # hairpin: a container reaching its own published port (Docker, userland-proxy off)
            sh("ip", "-n", node, "link", "set", veth, "master", br, "up")
            sh("ip", "-n", node, "link", "set", veth, "type", "bridge_slave", "hairpin", "on")
            sh("ip", "-n", ctr, "addr", "add", f"{addr}/24", "dev", "eth0")
            sh("ip", "-n", ctr, "link", "set", "eth0", "up")
            sh("ip", "-n", ctr, "route", "add", "default", "via", GW[br])
        sh("ip", "-n", node, "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", w.peer)
        sh("ip", "-n", node, "addr", "add", f"{NODE_LAN}/24", "dev", "lan0")
        sh("ip", "-n", node, "addr", "add", f"{NODE_LAN2}/24", "dev", "lan0")
        sh("ip", "-n", node, "link", "set", "lan0", "up")
        sh("ip", "-n", w.peer, "addr", "add", f"{PEER}/24", "dev", "eth0")
        sh("ip", "-n", w.peer, "link", "set", "eth0", "up")
        sh("ip", "-n", w.peer, "route", "add", "10.91.0.0/16", "via", NODE_LAN)
        _wait_reachable(w)
        yield w
    finally:
        for name in reversed(made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _wait_reachable(w: World) -> None:
    deadline = time.time() + 10
    while not (w.ping("c11", "10.91.1.1") and w.ping("c21", "10.91.2.1") and w.ping("peer", NODE_LAN)):
        assert time.time() < deadline, "test topology did not come up"
        time.sleep(0.1)


def test_isolation_between_networks(world):
    # baseline: the node routes everything, in every direction
    assert world.ping("c11", "10.91.2.21") and world.ping("c21", "10.91.1.11")
    assert world.ping("peer", "10.91.1.11")
    world.apply([net2(), net1()])
    assert world.ping("c11", "10.91.1.12") and world.ping("c21", "10.91.2.22")   # same network
    assert world.ping("c11", "10.91.1.1")                                         # its gateway
    assert not world.ping("c11", "10.91.2.21")                                    # A -> B
    assert not world.ping("c21", "10.91.1.11")                                    # B -> A
    assert not world.ping("peer", "10.91.1.11")                                   # LAN -> container
    assert world.ping("c11", PEER) and world.ping("c22", PEER)                   # container -> LAN
    assert world.ping("node", "10.91.1.11")                                       # the node itself


def test_masquerade_snat_and_off(world):
    udp = lambda src: world.udp_source(src, "peer", ("0.0.0.0", 9999), (PEER, 9999))
    assert udp("c11") == "10.91.1.11"                     # baseline: no NAT
    world.apply([net1(), net2(snat_ipv4=NODE_LAN2)])
    assert udp("c11") == NODE_LAN                         # masquerade: the LAN sees the node
    assert udp("c21") == NODE_LAN2                        # com.docker.network.host_ipv4
    world.apply([net1(masquerade=False), net2()])
    assert udp("c11") == "10.91.1.11"
    assert udp("c21") == NODE_LAN


def test_internal_network(world):
    world.apply([net1(), net2(internal=True)])
    assert world.ping("c21", "10.91.2.22")                # its own network
    assert world.ping("c21", "10.91.2.1")                 # the gateway
    assert world.ping("node", "10.91.2.21")               # the node reaches it
    assert not world.ping("c21", PEER)                    # not the LAN
    assert world.udp_source("c21", "peer", ("0.0.0.0", 9999), (PEER, 9999)) is None
    assert not world.ping("peer", "10.91.2.21")
    assert not world.ping("c11", "10.91.2.21") and not world.ping("c21", "10.91.1.11")
    assert world.ping("c11", PEER)                        # other networks unaffected


@pytest.mark.parametrize("br_netfilter", ["0", "1"])
def test_icc_false(world, br_netfilter):
    key = "bridge/bridge-nf-call-iptables"
    if not os.path.exists(f"/proc/sys/net/{key}"):
        pytest.skip("br_netfilter is not loaded")
    ns.write_sysctl(world.node, key, br_netfilter)        # per netns since Linux 5.3
    assert world.ping("c11", "10.91.1.12")
    world.apply([net1(icc=False), net2()])
    assert not world.ping("c11", "10.91.1.12") and not world.ping("c12", "10.91.1.11")
    assert world.tcp_source("c11", "c12", ("0.0.0.0", 8080), ("10.91.1.12", 8080)) is None
    assert world.ping("c11", "10.91.1.1") and world.ping("c11", PEER)
    assert world.ping("c21", "10.91.2.22")                # icc only where disabled
    world.apply([net1(), net2()])
    assert world.ping("c11", "10.91.1.12")


PORTS = [
    FwPort("tcp", "0.0.0.0", 18080, "10.91.1.11", 8080, "nkbr1"),
    FwPort("tcp", "127.0.0.1", 15432, "10.91.1.12", 5432, "nkbr1"),
    FwPort("udp", NODE_LAN, 15353, "10.91.2.21", 5353, "nkbr2"),
    FwPort("udp", "0.0.0.0", 15354, "10.91.1.12", 5354, "nkbr1"),
]


def test_published_ports(world):
    assert needs_route_localnet(PORTS)
    ns.write_sysctl(world.node, "ipv4/conf/all/route_localnet", "1")
    world.apply([net1(), net2()], PORTS)
    web = lambda src, dst: world.tcp_source(src, "c11", ("0.0.0.0", 8080), dst)
    # from the LAN at the node's address; the client address is kept
    assert web("peer", (NODE_LAN, 18080)) == PEER
    assert web("peer", (NODE_LAN2, 18080)) == PEER       # 0.0.0.0: every local address
    # from the node itself, also at 127.0.0.1 (masqueraded to the gateway)
    assert web("node", ("127.0.0.1", 18080)) == "10.91.1.1"
    assert web("node", (NODE_LAN, 18080)) == NODE_LAN
    # hairpin: the container reaches its own published port
    assert web("c11", (NODE_LAN, 18080)) == "10.91.1.1"
    # another network reaches the published port through the node, not at the container's
    # own address (only connections that came through the port's DNAT are let in)
    assert web("c21", (NODE_LAN, 18080)) is not None
    assert web("c21", ("10.91.1.11", 8080)) is None
    assert world.tcp_source("c21", "c11", ("0.0.0.0", 8081), ("10.91.1.11", 8081)) is None

    db = lambda src, dst: world.tcp_source(src, "c12", ("0.0.0.0", 5432), dst)
    assert db("node", ("127.0.0.1", 15432)) == "10.91.1.1"    # 127.0.0.1-only port
    assert db("peer", (NODE_LAN, 15432)) is None               # ... not on the LAN

    dns = lambda src, dst: world.udp_source(src, "c21", ("0.0.0.0", 5353), dst, reply=True)
    assert dns("peer", (NODE_LAN, 15353)) == PEER              # udp, with the answer back
    assert dns("peer", (NODE_LAN2, 15353)) is None             # bound to one address only

    # fewer ports: the mapping is gone
    world.apply([net1(), net2()], PORTS[1:])
    assert web("peer", (NODE_LAN, 18080)) is None


def _udp_frame(src_mac: bytes, dst_mac: bytes, src: str, dst: str, dport: int) -> bytes:
    payload = b"sneaky"
    udp = struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0) + payload
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                      ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    words = sum(struct.unpack("!10H", hdr))
    while words >> 16:
        words = (words & 0xFFFF) + (words >> 16)
    hdr = hdr[:10] + struct.pack("!H", ~words & 0xFFFF) + hdr[12:]
    return dst_mac + src_mac + b"\x08\x00" + hdr + udp


def _mac(netns: str, ifname: str) -> bytes:
    out = sh("ip", "-n", netns, "-o", "link", "show", ifname)
    return bytes.fromhex(out.split("link/ether ")[1].split()[0].replace(":", ""))


def test_loopback_not_reachable_from_the_lan(world):
    """A frame from the LAN addressed to 127.0.0.1 must not reach a published port."""
    ns.write_sysctl(world.node, "ipv4/conf/all/route_localnet", "1")
    frame = _udp_frame(_mac(world.peer, "eth0"), _mac(world.node, "lan0"), PEER, "127.0.0.1", 15354)

    def received() -> bool:
        with ns.socket_in(world.ns("c12"), socket.AF_INET, socket.SOCK_DGRAM) as srv, \
                ns.socket_in(world.peer, socket.AF_PACKET, socket.SOCK_RAW) as raw:
            srv.bind(("0.0.0.0", 5354))
            srv.settimeout(1.0)
            raw.bind(("eth0", 0))
            raw.send(frame)
            try:
                return srv.recv(100) == b"sneaky"
            except (socket.timeout, TimeoutError):
                return False

    script = render([net1(), net2()], PORTS)
    # control: without the localnet chain the frame is DNATed to the container
    start = script.index("\tchain localnet {")
    nft.apply(world.node, script[:start] + script[script.index("\t}\n", start) + 3:])
    assert received()
    nft.apply(world.node, script)
    assert not received()


def test_fewer_networks_then_delete(world):
    world.apply([net1(), net2()])
    assert not world.ping("c11", "10.91.2.21")
    assert "nkbr2" in nft.list_table(world.node)
    world.apply([net1()])
    listed = nft.list_table(world.node)
    assert "nkbr1" in listed and "nkbr2" not in listed
    assert world.ping("c11", "10.91.2.21")                # nkbr2's rules are gone
    assert not world.ping("c21", "10.91.1.11")            # nkbr1 still isolated
    world.apply([net1(icc=False)])
    assert nft.list_table(world.node, "bridge") is not None
    world.apply([], [])                                   # render([], []) deletes
    assert world.tables() == ""
    assert world.ping("c21", "10.91.1.11")
    world.apply([net1(icc=False)])
    nft.delete(world.node)
    nft.delete(world.node)                                # idempotent
    assert world.tables() == "" and nft.list_table(world.node) is None


def test_failed_apply_changes_nothing(world):
    world.apply([net1(icc=False), net2()])
    before = sh("ip", "netns", "exec", world.node, "nft", "list", "ruleset")
    # parses, but the kernel rejects it: late in the same transaction as the delete
    bad = render([net1()], []).replace("ct state established,related accept",
                                       "ct state established,related accept\n\t\tjump nosuch")
    with pytest.raises(KernelError, match=r"apply nft ruleset in netns nkt-fw-\w+-node: .*line \d+"):
        nft.apply(world.node, bad)
    assert sh("ip", "netns", "exec", world.node, "nft", "list", "ruleset") == before
    assert not world.ping("c11", "10.91.1.12")            # still icc=false


def test_only_netkit_tables_are_touched(world):
    sh("ip", "netns", "exec", world.node, "nft", "add", "table", "ip", "other")
    sh("ip", "netns", "exec", world.node, "nft", "add", "chain", "ip", "other", "c")
    world.apply([net1()])
    world.apply([net2()])
    nft.delete(world.node)
    assert world.tables() == "table ip other\n"


def test_missing_netns():
    with pytest.raises(NotFound):
        nft.apply("nkt-fw-absent", render_delete())
    nft.delete("nkt-fw-absent")
