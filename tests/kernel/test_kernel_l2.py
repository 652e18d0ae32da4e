"""VXLAN, bridge-port, FDB and neighbour calls of a kernel handle (netkit/kernel/session.py).

They are what the overlay driver and the agent's peer programming use: each
counts toward the action's FaultPlan, fails as a netkit error and journals
its undo, so a failure at any of them leaves the node's tables as they were.
The vxlan device here stays down on `lo`: no frame leaves the namespace.
"""

from __future__ import annotations

import pytest

from netkit import drivers
from netkit.agent import peers
from netkit.agent.peers import VNI_OPTION, Peer
from netkit.drivers.base import Checkable, DriverContext
from netkit.errors import KernelError, NetkitError, NotFound
from netkit.kernel.session import FaultPlan, KernelSession
from netkit.model import Network, Scope
from tests.kernel.helpers import ip, ip_json

pytestmark = pytest.mark.root
DEV = "vx-0000aa"
A = Peer(DEV, "02:42:0a:00:00:02", "10.0.0.2", "192.0.2.2")
B = Peer(DEV, "02:42:0a:00:00:03", "10.0.0.3", "192.0.2.3")
C = Peer(DEV, "02:42:0a:00:00:04", "10.0.0.4", "192.0.2.3")


@pytest.fixture
def vx(node):
    """A vxlan device (down) in a node's netns; yields the node's netns name."""
    session = KernelSession(node.node.netns)
    try:
        h = session.host
        index = h.add_vxlan(DEV, 170, local="127.0.0.1", link=h.link_index("lo"), mtu=1450)
        h.add_bridge("ov-0000aa", mac="02:00:00:00:00:aa")
        h.set_link(index, master=h.link_index("ov-0000aa"))
        h.set_port_learning(DEV, False)
        session.journal.discard()
    finally:
        session.close()
    yield node.node.netns


def apply(netns: str, want: set[Peer], faults: FaultPlan | None = None) -> int:
    """peers.apply in one session, rolled back on failure as an action is."""
    session = KernelSession(netns, faults=faults)
    try:
        n = peers.apply(session.host, want)
    except BaseException:
        session.journal.rollback()
        raise
    finally:
        session.close()
    session.journal.discard()
    return n


def tables(netns: str) -> peers.Current:
    session = KernelSession(netns)
    try:
        return peers.current(session.host)
    finally:
        session.close()


def test_vxlan_device_is_made_as_asked(vx):
    link = ip_json("-d", "link", "show", DEV, netns=vx)[0]
    info = link["linkinfo"]["info_data"]
    assert (info["id"], info["port"], info["local"], info["link"], info["learning"],
            info["proxy"]) == (170, 4789, "127.0.0.1", "lo", False, True)
    assert link["mtu"] == 1450 and link["master"] == "ov-0000aa"
    port = link["linkinfo"]["info_slave_data"]
    assert (port["learning"], port["hairpin"]) == (False, False)   # one flag set, the other kept


def test_every_peer_change_is_counted_and_undone(vx):
    first, second = {A, B}, {A, C}                # second: delete B's entries, add C's
    plan = FaultPlan(fail_at=0)
    assert apply(vx, first, plan) == 4 and plan.calls == 4
    apply(vx, set())
    for want, before in ((first, set()), (second, first)):
        apply(vx, before)
        have = tables(vx)
        plan = FaultPlan(fail_at=0)
        changes = apply(vx, want, plan)
        assert plan.calls == changes == 4
        apply(vx, before)
        for n in range(1, changes + 1):
            with pytest.raises(KernelError, match=f"injected fault at kernel call {n}"):
                apply(vx, want, FaultPlan(fail_at=n))
            assert tables(vx) == have, f"kernel call {n} left the tables changed"
    assert apply(vx, second) == 4 and apply(vx, second) == 0
    assert tables(vx) == peers.Current(
        frozenset({(DEV, A.mac, A.vtep), (DEV, C.mac, C.vtep)}),
        frozenset({(DEV, A.ip, A.mac), (DEV, C.ip, C.mac)}))


def test_errors_are_netkit_errors(vx):
    session = KernelSession(vx)
    try:
        h = session.host
        with pytest.raises(NotFound, match="link vx-nothere not found"):
            h.add_fdb("vx-nothere", A.mac, A.vtep)
        with pytest.raises(NetkitError, match="add fdb entry .* dev lo in netns"):
            h.add_fdb("lo", A.mac, A.vtep)                   # no FDB on a loopback
        with pytest.raises(NetkitError, match="create vxlan vx-0000ab"):
            h.add_vxlan("vx-0000ab", 170, local="127.0.0.1", link=h.link_index("lo"))  # VNI taken
        h.del_fdb("vx-nothere", A.mac, A.vtep)               # gone already: fine (CNI DEL)
        h.del_neighbour(DEV, "10.9.9.9", A.mac)
        assert len(session.journal) == 0                     # nothing made, nothing to undo
    finally:
        session.close()


def test_the_overlay_driver_checks_its_segment(vx, node):
    """What `system check` asks of the overlay driver, on a segment like its own (VNI 170)."""
    driver = drivers.get("overlay")
    net = Network(id="f" * 64, name="ov", driver="overlay", scope=Scope.SWARM,
                  options={VNI_OPTION: "170"})
    assert isinstance(driver, Checkable)
    assert driver.owned_links(net, True) == {"ov-0000aa", DEV}
    assert driver.owned_links(net, False) == set()     # no endpoint here: leave removed it
    session = KernelSession(vx)
    ctx = DriverContext(node.node, session)
    try:
        assert driver.check(ctx, net, True) == ["bridge ov-0000aa is down", f"vxlan {DEV} is down"]
        ip("link", "set", "ov-0000aa", "up", netns=vx)
        ip("link", "set", DEV, "up", netns=vx)
        assert driver.check(ctx, net, True) == []
        ip("link", "set", DEV, "nomaster", netns=vx)
        assert driver.check(ctx, net, True) == [f"vxlan {DEV} is not a port of ov-0000aa"]
        ip("link", "del", DEV, netns=vx)
        assert driver.check(ctx, net, True) == [f"vxlan {DEV} is missing"]
        assert driver.check(ctx, net, False) == []
    finally:
        session.close()
