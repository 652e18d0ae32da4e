"""`system check|prune|reset`: drift is reported, orphans removed, reset leaves nothing."""

from __future__ import annotations

import os
import subprocess

import pytest

from netkit.specs import ContainerSpec, NetworkSpec
from tests.kernel.helpers import links, settle

pytestmark = pytest.mark.root


def test_check_reports_and_prune_removes_orphans(node):
    net = node.create_network(NetworkSpec("n1"))
    c, _ = node.run(ContainerSpec(name="c1", network="n1", detach=True))
    assert node.system_check() == []
    # a half-made container, as a crash mid-run leaves it: netns + veth + run dir, no rows
    orphan_ns = f"nkc-{node.node_name}-deadbeef0000"
    subprocess.run(["ip", "netns", "add", orphan_ns], check=True)
    subprocess.run(["ip", "-n", node.node.netns, "link", "add", "vethdead000", "type", "veth",
                    "peer", "name", "eth0", "netns", orphan_ns], check=True)
    subprocess.run(["ip", "-n", node.node.netns, "link", "set", "vethdead000", "alias", "netkit"], check=True)
    os.makedirs(os.path.join(node.paths.containers_dir, "f" * 64))
    # and a kernel object the store expects, removed behind netkit's back
    subprocess.run(["ip", "-n", node.node.netns, "link", "del", c.endpoints[0].host_ifname], check=True)
    drift = node.system_check()
    assert f"orphan netns {orphan_ns} (not in the store)" in drift
    assert "orphan link vethdead000 (not in the store)" in drift
    assert f"orphan run dir {'f' * 64} (not in the store)" in drift
    assert any(f"interface {c.endpoints[0].host_ifname} (n1) is missing" in d for d in drift)
    removed = node.system_prune()
    assert f"netns {orphan_ns}" in removed and f"run dir {'f' * 64}" in removed
    assert not os.path.exists(f"/run/netns/{orphan_ns}")
    assert "vethdead000" not in links(node.node.netns)
    assert f"br-{net.id[:12]}" in links(node.node.netns)          # owned and described: kept
    assert [d for d in node.system_check() if "orphan" in d] == []


def test_reset_removes_everything(node):
    node.create_network(NetworkSpec("n1"))
    node.run(ContainerSpec(name="c1", network="n1", detach=True, command=("sleep", "60")))
    node.run(ContainerSpec(name="c2", detach=True))                 # default bridge: netkit0
    assert "netkit0" in links(node.node.netns)
    node.system_reset()
    settle(node)                                  # the kernel frees veths of deleted netns lazily
    assert {n.name for n in node.networks()} == {"bridge", "host", "none"}
    assert node.containers(all=True) == []
    assert [l for l in links(node.node.netns) if l not in ("lo", "eth0")] == []
    assert not [n for n in os.listdir("/run/netns") if n.startswith(f"nkc-{node.node_name}-")]
    assert node.system_check() == []
    # the node itself stays whole: its UTS namespace (bound below its run dir) is still there
    out: list[bytes] = []
    assert node.node_exec(node.node_name, ["hostname"], capture=out) == 0
    assert b"".join(out).decode().strip() == node.node_name
    node.run(ContainerSpec(name="c3", detach=True))
    assert node.exec("c3", ["true"]) == 0
