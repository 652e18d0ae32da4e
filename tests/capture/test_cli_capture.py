"""`netkit capture` as a user runs it: a separate process, stopped by -c, --duration or Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from scapy.utils import rdpcap

pytestmark = pytest.mark.root


@pytest.fixture
def start(world, netkit_dirs):
    """Start `netkit --node A capture ARGS...`; returns once it says it is listening."""
    procs: list[subprocess.Popen] = []

    def run(*args: str) -> subprocess.Popen:
        env = dict(os.environ, NETKIT_ROOT=netkit_dirs[0], NETKIT_RUN=netkit_dirs[1])
        env.pop("NETKIT_NODE", None)
        proc = subprocess.Popen([sys.executable, "-m", "netkit", "--node", world.a, "capture", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        procs.append(proc)
        first = proc.stderr.readline()
        assert first.startswith("listening on "), first + proc.stderr.read()
        return proc

    yield run
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for f in (proc.stdout, proc.stderr):
            f.close()


def finish(proc: subprocess.Popen, timeout: float = 10) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def test_prints_one_line_per_packet_and_stops_after_count(world, start):
    proc = start("client", "-f", "icmp", "-c", "2")
    assert world.ping("client", world.ips["web1"], 3) == 0
    code, out, err = finish(proc)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2, out + err
    assert "eth0 Out IP 10.91.0.5 > 10.91.0.2: ICMP echo request" in lines[0]
    assert "eth0 In  IP 10.91.0.2 > 10.91.0.5: ICMP echo reply" in lines[1]
    assert err.strip() == "2 packets captured"


def test_decodes_dns_like_tcpdump(world, start):
    proc = start("client", "-i", "lo", "-f", "udp port 53", "-c", "2")
    world.dig("client", "web")
    code, out, err = finish(proc)
    query, answer = out.splitlines()
    assert " lo " not in query                       # one interface: no interface column
    assert "> 127.0.0.11.53: " in query and "A? web." in query
    assert "127.0.0.11.53 > " in answer and " 3/0/" in answer and answer.count(" A 10.91.0.") == 3


def test_writes_a_pcap_for_a_duration(world, start, tmp_path):
    path = tmp_path / "out.pcap"
    proc = start("network:app", "-f", "icmp", "--duration", "1.5", "-w", str(path))
    assert world.ping("client", world.ips["web2"]) == 0
    code, out, err = finish(proc)
    assert code == 0 and out == "" and err.strip() == "2 packets captured"
    assert len(rdpcap(str(path))) == 2
    read = subprocess.run(["tcpdump", "-nr", str(path)], capture_output=True, text=True)
    assert read.returncode == 0 and "ICMP echo request" in read.stdout


def test_ctrl_c_ends_cleanly_with_a_count(world, start):
    proc = start(f"lan:{world.lan}", "-f", "icmp")
    assert world.ping("client", "192.168.78.1") == 0
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    code, out, err = finish(proc)
    assert code == 0, err
    assert len(out.splitlines()) == 2
    assert err.strip().endswith("2 packets captured") and "Traceback" not in err


def test_errors_are_one_line(world, cli):
    bad = cli("--node", world.a, "capture", "nosuchcontainer", check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("Error: ") and len(bad.stderr.splitlines()) == 1
    bad = cli("--node", world.a, "capture", "client", "-f", "udp port", check=False)
    assert bad.returncode == 1 and "invalid capture filter: udp port" in bad.stderr
    bad = cli("--node", world.a, "capture", "client", "-c", "0", check=False)
    assert bad.returncode == 2


def test_write_dash_streams_a_pcap_to_stdout(world, netkit_dirs):
    """`-w -` is tcpdump's: the pcap on stdout (readable by scapy and `tcpdump -r -`), the
    messages on stderr, and no file named `-`."""
    env = dict(os.environ, NETKIT_ROOT=netkit_dirs[0], NETKIT_RUN=netkit_dirs[1])
    env.pop("NETKIT_NODE", None)
    cwd = os.getcwd()
    proc = subprocess.Popen([sys.executable, "-m", "netkit", "--node", world.a, "capture",
                             "client", "-f", "icmp", "-c", "2", "-w", "-"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        first = proc.stderr.readline().decode()
        assert first.startswith("listening on "), first
        assert world.ping("client", world.ips["web1"]) == 0
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0 and err.decode().strip() == "2 packets captured"
    assert not os.path.exists(os.path.join(cwd, "-"))
    from io import BytesIO

    from scapy.layers.inet import ICMP, IP
    from scapy.layers.l2 import Ether
    request, reply = rdpcap(BytesIO(out))
    assert Ether in request and request[ICMP].type == 8 and reply[ICMP].type == 0
    assert (request[IP].src, request[IP].dst) == (world.ips["client"], world.ips["web1"])
    read = subprocess.run(["tcpdump", "-nr", "-"], input=out, capture_output=True)
    lines = read.stdout.decode().splitlines()
    assert read.returncode == 0 and len(lines) == 2 and "ICMP echo request" in lines[0]


def test_write_dash_into_a_closed_pipe_ends_quietly(world, netkit_dirs):
    """`netkit capture -w - ... | head -c 24`: the reader goes away, the capture ends."""
    env = dict(os.environ, NETKIT_ROOT=netkit_dirs[0], NETKIT_RUN=netkit_dirs[1])
    env.pop("NETKIT_NODE", None)
    cmd = (f"{sys.executable} -m netkit --node {world.a} capture client -f icmp -w - "
           "| head -c 24 | od -An -tx1")
    proc = subprocess.Popen(["sh", "-c", cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, text=True)
    try:
        time.sleep(1.5)                           # started, header written, head gone
        assert world.ping("client", world.ips["web1"], 2) == 0
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert out.split()[:4] == ["d4", "c3", "b2", "a1"]       # the pcap magic, little-endian
    assert "Traceback" not in err and "Exception ignored" not in err, err
