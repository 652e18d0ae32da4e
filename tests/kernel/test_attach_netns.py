"""Engine.attach / detach: a network namespace the caller made and owns, wired by netkit.

The caller's namespace is a plain `ip netns add` one (not a netkit name), with a process
of the caller's in it; its interface's other end is in the test's throwaway node.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from netkit.errors import Conflict, Forbidden, NotFound
from netkit.model import State
from netkit.specs import ContainerSpec, NetworkSpec
from tests.conftest import unique
from tests.kernel.helpers import addrs, ip, links, ping

pytestmark = pytest.mark.root


@pytest.fixture
def caller_netns():
    """A namespace the caller made (lo down, as `ip netns add` leaves it) with a process
    of its own inside; removed afterwards, also on failure."""
    name = unique("cni-")
    subprocess.run(["ip", "netns", "add", name], check=True)
    proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{name}", "sleep", "300"])
    try:
        yield name, proc
    finally:
        proc.kill()
        proc.wait()
        subprocess.run(["ip", "netns", "del", name], check=False)


def in_ns(name: str, *cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", f"--net=/run/netns/{name}", *cmd], capture_output=True,
                          text=True, timeout=30)


def lookup(name: str, host: str) -> str:
    """What the resolver at 127.0.0.11 answers inside netns `name` (busybox nslookup)."""
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox is not installed (Debian: busybox-static)")
    return in_ns(name, busybox, "nslookup", "-type=a", host, "127.0.0.11").stdout


def test_attach_detach_caller_netns(node, caller_netns):
    name, proc = caller_netns
    path = f"/run/netns/{name}"
    node.create_network(NetworkSpec("n1", subnets=("10.61.0.0/24",)))
    node.run(ContainerSpec(name="web", network="n1", detach=True))
    box, ep = node.attach(path, "n1", ifname="net1", name="pod1", aliases=("api",))
    assert ep.ifname == "net1" and ep.ipv4 == "10.61.0.3/24"
    assert box.state is State.RUNNING and box.pid is None and not box.command
    assert "10.61.0.3/24" in addrs(name, "net1") and links(name)["net1"]["address"] == ep.mac
    assert "default via 10.61.0.1 dev net1" in ip("route", netns=name)
    assert node.attached(netns=path).id == box.id and node.attached(netns=proc.pid).id == box.id
    # reachability both ways, and names both ways through the embedded DNS
    assert in_ns(name, "ping", "-c", "1", "-W", "2", "10.61.0.2").returncode == 0
    assert ping(node, "web", "pod1") and ping(node, "web", "api")
    assert "10.61.0.2" in lookup(name, "web")
    # attached twice to one network: refused; the node's own namespace: refused
    with pytest.raises(Conflict):
        node.attach(path, "n1", ifname="net2")
    with pytest.raises(Forbidden):
        node.attach(f"/run/netns/{node.node.netns}", "n1")
    with pytest.raises(NotFound):
        node.attach("/run/netns/no-such-netns", "n1")
    # rm -f of another container, then detach: the caller's process and namespace survive
    assert node.detach(path, "n1") is True
    assert "net1" not in links(name) and proc.poll() is None and os.path.exists(path)
    assert node.attached(netns=path) is None
    assert not any(c.id == box.id for c in node.containers(all=True))
    assert not os.path.exists(os.path.join("/run/netns", box.netns))
    assert node.detach(path, "n1") is False                   # idempotent
    assert not ping(node, "web", "pod1")
    assert node.system_check() == []


def test_attach_by_pid_two_networks_and_rm(node, caller_netns):
    name, proc = caller_netns
    node.create_network(NetworkSpec("n1", subnets=("10.62.0.0/24",)))
    node.create_network(NetworkSpec("n2", subnets=("10.63.0.0/24",)))
    box, ep1 = node.attach(proc.pid, "n1", sandbox="k1", ip="10.62.0.50")
    _, ep2 = node.attach(proc.pid, "n2", ifname="eth1", sandbox="k1")
    assert ep1.ipv4 == "10.62.0.50/24" and ep2.ipv4 == "10.63.0.2/24"
    assert sorted(l for l in links(name) if l != "lo") == ["eth0", "eth1"]
    # the first network's gateway keeps the default route (the caller's routes stay)
    assert "default via 10.62.0.1 dev eth0" in ip("route", netns=name)
    # `netkit rm -f` of the sandbox: its interfaces go, never its processes or namespace
    node.remove_container(box.name, force=True)
    assert sorted(links(name)) == ["lo"] and proc.poll() is None
    assert node.detach(None, "n1", sandbox="k1") is False
    assert node.system_check() == []


def test_detach_after_the_namespace_is_gone(node):
    name = unique("cni-")
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        node.create_network(NetworkSpec("n1", subnets=("10.64.0.0/24",)))
        box, _ = node.attach(name, "n1", sandbox="gone")
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)
    # netkit's own name keeps the namespace (and its veth) until detach
    assert node.detach(None, "n1", sandbox="gone") is True
    assert node.system_check() == []
    assert node.network("n1") and not node.network_members(node.network("n1"))


def test_stop_and_start_of_an_attached_sandbox(node, caller_netns):
    name, proc = caller_netns
    node.create_network(NetworkSpec("n1", subnets=("10.65.0.0/24",)))
    box, _ = node.attach(name, "n1", name="pod1")
    assert [c.name for c in node.containers()] == ["pod1"]
    state = node.inspect_containers(["pod1"])[0]["State"]     # no process: Docker's created
    assert (state["Status"], state["Running"], state["Pid"]) == ("created", False, 0)
    # `netkit stop` takes its interfaces (nothing of the caller's is signalled) ...
    assert node.stop("pod1").state is State.EXITED
    assert sorted(links(name)) == ["lo"] and proc.poll() is None
    # ... `netkit start` cannot join it again (its owner attaches it) ...
    with pytest.raises(Conflict):
        node.start("pod1")
    # ... but its owner can, and the owner's detach forgets one left without networks
    box, _ = node.attach(name, "n1")
    assert box.state is State.RUNNING and ping(node, "pod1", "10.65.0.1")
    node.stop("pod1")
    assert node.detach(name, "n1") is False
    assert node.containers(all=True) == [] and node.system_check() == []


def test_every_failure_point_of_attach_and_detach(node, caller_netns):
    """A failed attach or detach leaves the node, netkit's records and the caller's
    namespace as they were (tests/kernel/test_rollback.py's method)."""
    from tests.kernel.helpers import netns_state, snapshot
    from tests.kernel.test_rollback import fail_every_call
    name, proc = caller_netns
    node.create_network(NetworkSpec("n1", subnets=("10.66.0.0/24",)))
    node.create_network(NetworkSpec("n2", subnets=("10.67.0.0/24",)))
    state = lambda: (snapshot(node), netns_state(name))
    assert fail_every_call(node, lambda: node.attach(name, "n1", name="pod1"), state,
                           at_least=5)
    assert fail_every_call(node, lambda: node.attach(name, "n2", ifname="eth1"), state,
                           at_least=3)
    assert fail_every_call(node, lambda: node.detach(name, "n2"), state)
    assert fail_every_call(node, lambda: node.detach(name, "n1"), state)
    assert node.containers(all=True) == [] and proc.poll() is None
    assert node.system_check() == []
