"""The multi-host labs end to end through the CLI, in throwaway state dirs:
`lab up -d`, `lab test`, `lab down` for labs/macvlan-two-hosts (per-node macvlan
networks) and labs/overlay-three-nodes (x-netkit.swarm, an overlay network, names across
hosts and a capture check on the LAN), and nothing left behind: nodes, LANs, swarm
membership, cluster files, the lab's record."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import unique
from tests.labs.conftest import LABS

pytestmark = pytest.mark.root
MACVLAN = os.path.join(LABS, "macvlan-two-hosts", "lab.yml")
OVERLAY = os.path.join(LABS, "overlay-three-nodes", "lab.yml")


class Run:
    """`netkit lab ...` as a user runs it, with the tests' state dirs and the lab's names."""

    def __init__(self, netkit_dirs, **names: str) -> None:
        self.dirs, self.names = netkit_dirs, names

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = dict(os.environ, NETKIT_ROOT=self.dirs[0], NETKIT_RUN=self.dirs[1], **self.names)
        env.pop("NETKIT_NODE", None)
        env.pop("COMPOSE_PROJECT_NAME", None)
        proc = subprocess.run([sys.executable, "-m", "netkit", "lab", *args], capture_output=True,
                              text=True, env=env, timeout=180)
        if check and proc.returncode != 0:
            raise AssertionError(f"lab {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc


def assert_nothing_left(host, netkit_dirs, run: Run, files: list[str], lan: str, nodes: list[str]) -> None:
    assert not {n.name for n in host.nodes()} & set(nodes)
    assert lan not in {x.name for x in host.lans()}
    cluster = os.path.join(netkit_dirs[0], "cluster")
    assert not os.path.isdir(cluster) or os.listdir(cluster) == []
    labs = os.path.join(netkit_dirs[0], "labs")
    assert not os.path.isdir(labs) or os.listdir(labs) == []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(n in netns for n in nodes + [lan]), netns
    args = [a for f in files for a in ("-f", f)]
    assert run(*args, "ps", "-a").stdout.count("\n") == 1              # header only


def up_test_down(host, netkit_dirs, run: Run, files: list[str], lan: str, nodes: list[str]) -> str:
    args = [a for f in files for a in ("-f", f)]
    run(*args, "config", "-q")
    try:
        up = run(*args, "up", "-d")
        assert "Started" in up.stderr
        test = run(*args, "test", check=False)
        assert test.returncode == 0, test.stdout + test.stderr
        assert " 0 failed" in test.stdout and "FAILED" not in test.stdout
    finally:
        run(*args, "down")
    assert_nothing_left(host, netkit_dirs, run, files, lan, nodes)
    return test.stdout


def test_macvlan_two_hosts(host, netkit_dirs):
    lan, n1, n2 = unique("l"), unique("n"), unique("n")
    run = Run(netkit_dirs, LAN=lan, NODE01=n1, NODE02=n2)
    out = up_test_down(host, netkit_dirs, run, [MACVLAN], lan, [n1, n2])
    assert "13 passed, 0 failed" in out
    assert f"node:{n1} -> 192.168.0.64: blocked" in out        # the node cannot reach its own child


@pytest.fixture(scope="module")
def overlay(host, netkit_dirs):
    """labs/overlay-three-nodes, up for the module; `down` is a test of its own."""
    lan, nodes = unique("l"), [unique("n") for _ in range(3)]
    run = Run(netkit_dirs, LAN=lan, NODE1=nodes[0], NODE2=nodes[1], NODE3=nodes[2])
    try:
        run("-f", OVERLAY, "config", "-q")
        up = run("-f", OVERLAY, "up", "-d")
        assert "Swarm" in up.stderr and "Started" in up.stderr
        yield run, lan, nodes
    finally:
        run("-f", OVERLAY, "down", check=False)


def test_overlay_three_nodes_checks(overlay, host):
    run, lan, nodes = overlay
    roles = host.swarm_roles()
    assert [roles[n] for n in nodes] == ["manager", "worker", "worker"]
    test = run("-f", OVERLAY, "test", check=False)
    assert test.returncode == 0, test.stdout + test.stderr
    assert "10 passed, 0 failed" in test.stdout
    assert "ca asked dns 127.0.0.11 1x for cb: 10.0.9.3" in test.stdout      # cluster-wide DNS
    assert "all udp port 4789" in test.stdout                # the capture check on the LAN


def test_overlay_three_nodes_down_leaves_nothing(overlay, host, netkit_dirs):
    run, lan, nodes = overlay
    down = run("-f", OVERLAY, "down")
    assert "Network myoverlay  Removed" in down.stderr and down.stderr.count("Left") == 3
    assert_nothing_left(host, netkit_dirs, run, [OVERLAY], lan, nodes)


SWARM = os.path.join(LABS, "swarm-services", "lab.yml")


def test_swarm_services(host, netkit_dirs):
    """labs/swarm-services: services, VIP, tasks., the routing mesh, drain, a rolling update,
    a secret and the notes' stack; `down` leaves no node, LAN, cluster file or record."""
    lan, nodes = unique("l"), [unique("n") for _ in range(3)]
    run = Run(netkit_dirs, LAN=lan, NODE1=nodes[0], NODE2=nodes[1], NODE3=nodes[2])
    run("-f", SWARM, "config", "-q")
    try:
        up = run("-f", SWARM, "up", "-d")
        assert "Ignoring unsupported options: links" in up.stderr
        assert "Service web  Created" in up.stderr and "Creating service mystack_web" in up.stderr
        test = run("-f", SWARM, "test", check=False)
        assert test.returncode == 0, test.stdout + test.stderr
        assert "26 passed, 0 failed, 3 steps" in test.stdout
        assert "s3cret" in test.stdout                            # the secret, read in a task
        assert "on 2 nodes" in test.stdout                        # after the drain
    finally:
        down = run("-f", SWARM, "down", check=False)
    assert down.returncode == 0, down.stderr
    assert "Service web  Removed" in down.stderr and "Secret db_password  Removed" in down.stderr
    assert_nothing_left(host, netkit_dirs, run, [SWARM], lan, nodes)
