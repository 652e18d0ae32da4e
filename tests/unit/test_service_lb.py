"""Service VIPs: the per-container nft table (golden), the VIP table from services and tasks,
VXLAN peers and resolver entries of a VIP's cluster endpoint (pure; nft check mode as root).

NETKIT_UPDATE_GOLDEN=1 rewrites the golden file from the current renderer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from netkit.agent.cluster_sync import remote_entries
from netkit.agent.peers import desired
from netkit.kernel import vipnat
from netkit.model import Network
from netkit.services.lb import container_vips, in_rotation, vip_table
from netkit.services.model import (DNSRR, RUNNING, SHUTDOWN, STARTING, Service, ServiceSpec,
                                   Task)
from netkit.store.cluster import ClusterEndpoint

GOLDEN = Path(__file__).parent / "golden" / "vipnat" / "three_vips.nft"
VIPS = [("10.0.9.10", ("10.0.9.8",)), ("10.0.9.3", ()),
        ("10.0.9.2", ("10.0.9.5", "10.0.9.6", "10.0.9.7"))]


def test_render_golden():
    text = vipnat.render(VIPS)
    if os.environ.get("NETKIT_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_render_empty_keeps_the_chains():
    text = vipnat.render([])
    assert "dnat" not in text and "reject" not in text
    assert text.startswith("add table ip netkit-lb\nflush table ip netkit-lb\n")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft"), reason="root and nft")
def test_nft_check_accepts_golden():
    proc = subprocess.run(["unshare", "--net", "nft", "-c", "-f", str(GOLDEN)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _task(tid, sid, node, addr, *, state=RUNNING, desired_=RUNNING, net="n1"):
    return Task(tid, sid, "web", 1, node=node, state=state, desired=desired_,
                addresses={net: addr} if addr else {})


def test_vip_table_backends_in_rotation_only():
    web = Service("s1", ServiceSpec("web", ("x",)), vips={"n1": "10.0.9.2/24", "n2": "10.1.0.2/24"})
    rr = Service("s2", ServiceSpec("rr", ("x",), endpoint_mode=DNSRR), vips={"n1": "10.0.9.99/24"})
    tasks = [_task("t1", "s1", "a", "10.0.9.10/24"),
             _task("t2", "s1", "b", "10.0.9.9/24"),
             _task("t3", "s1", "c", "10.0.9.11/24", desired_=SHUTDOWN),   # draining
             _task("t4", "s1", "c", "10.0.9.12/24", state=STARTING),      # not yet running
             _task("t5", "s1", "d", "10.0.9.13/24"),                      # its node is down
             _task("t6", "s1", "a", "10.1.0.5/24", net="n2"),
             _task("t7", "s2", "a", "10.0.9.20/24")]
    table = vip_table([web, rr], tasks, down={"d"})
    assert table == {"n1": {"10.0.9.2": ("10.0.9.9", "10.0.9.10")},
                     "n2": {"10.1.0.2": ("10.1.0.5",)}}
    assert not in_rotation(tasks[2]) and in_rotation(tasks[4]) and not in_rotation(tasks[4], {"d"})
    assert container_vips(table, ["n2", "n1"]) == [("10.0.9.2", ("10.0.9.9", "10.0.9.10")),
                                                   ("10.1.0.2", ("10.1.0.5",))]
    assert container_vips(table, ["other"]) == []
    assert vip_table([web], [], set()) == {"n1": {"10.0.9.2": ()}, "n2": {"10.1.0.2": ()}}


class _Cluster:
    """The cluster transaction's reads that peers.desired and remote_entries use."""

    def __init__(self, eps):
        self.eps = eps

    def vnis(self):
        return {"n1": 4096}

    def endpoints(self):
        return list(self.eps)

    def networks(self):
        return [Network(id="n1", name="ovl", driver="overlay")]


def _eps():
    vip = ClusterEndpoint("vip-n1-s1", "n1", "", "s1", "web", "10.0.9.2/24", None, "", "",
                          ("web",))
    a = ClusterEndpoint("e1", "n1", "a", "c1", "t1", "10.0.9.5/24", None, "02:42:0a:00:09:05",
                        "192.168.77.10", ("t1", "tasks.web"))
    b = ClusterEndpoint("e2", "n1", "b", "c2", "t2", "10.0.9.6/24", None, "02:42:0a:00:09:06",
                        "192.168.77.11", ("t2", "tasks.web"))
    return vip, a, b


def test_no_vxlan_peer_for_a_vip():
    vip, a, b = _eps()
    got = desired(_Cluster([vip, a, b]), "a")
    assert [(p.ip, p.vtep) for p in got] == [("10.0.9.6", "192.168.77.11")]


def test_resolver_gets_the_vip_on_every_node_also_with_members_down():
    vip, a, b = _eps()
    for node, down in (("a", set()), ("b", set()), ("c", {"a", "b"})):
        ctrs, nets = remote_entries(_Cluster([vip, a, b]), node, down)
        assert "s1" in ctrs and set(nets) == {"n1"}
        (entry,) = ctrs["s1"].endpoints
        assert (entry.ipv4, entry.names, entry.network_id) == ("10.0.9.2", ("web",), "n1")
        assert ctrs["s1"].sandbox is None
    ctrs, _ = remote_entries(_Cluster([vip, a, b]), "c", {"a"})
    assert set(ctrs) == {"s1", "c2"}


class _Store:
    def __init__(self, c):
        self.c = c

    def read(self):
        return self.c


class _Engine:
    """What lb.step uses of an in-agent engine; records the order of peer syncs and tables."""

    def __init__(self, node, calls):
        self.node_name, self.calls = node, calls
        self.store = _Store(type("NodeTx", (), {"containers": lambda self: []})())
        self.cluster = self

    def sync_node(self):
        self.calls.append("peers")
        return 0


class _Objects:
    cluster_id = "c" * 25

    def __init__(self, svcs, tasks):
        self.objects_ = {"service": [(s.id, s.to_dict()) for s in svcs],
                         "task": [(t.id, t.to_dict()) for t in tasks]}

    def read(self):
        return self

    def meta(self, key):
        return "7" if key == "version" else None

    def objects(self, kind):
        return self.objects_.get(kind, [])


def test_peers_are_synced_before_new_backends_go_into_rotation(monkeypatch):
    from netkit.services import lb
    calls = []
    monkeypatch.setattr(lb, "program", lambda node, ctrs, table, first, failed: calls.append(
        sorted(a for v in table.values() for b in v.values() for a in b)))
    svc = Service("s1", ServiceSpec("web", ("x",), networks=("n1",)), vips={"n1": "10.0.9.2/24"})

    def task(i, state=RUNNING):
        return Task(f"t{i}", "s1", "web", i, node="other", state=state, desired=RUNNING,
                    addresses={"n1": f"10.0.9.{10 + i}/24"})
    engine = _Engine("nodeq", calls)
    lb.forget("nodeq")
    try:
        lb.step(engine, _Objects([svc], [task(1), task(2, STARTING)]), frozenset())
        assert calls == ["peers", ["10.0.9.11"]]
        calls.clear()
        lb.step(engine, _Objects([svc], [task(1), task(2, STARTING)]), frozenset())
        assert calls == [["10.0.9.11"]]                 # nothing new: no extra sync
        calls.clear()
        lb.step(engine, _Objects([svc], [task(1), task(2)]), frozenset())
        assert calls == ["peers", ["10.0.9.11", "10.0.9.12"]]
        calls.clear()
        lb.step(engine, _Objects([svc], [task(2)]), frozenset())
        assert calls == [["10.0.9.12"]]                 # one left the rotation: no sync
    finally:
        lb.forget("nodeq")
