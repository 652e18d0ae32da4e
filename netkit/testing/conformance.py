"""A conformance kit for network drivers: pytest tests a driver's author runs against it.

Subclass `DriverConformance` in a test module and name the driver; pytest collects the
inherited tests, each in a throwaway simulated node (the `netkit_node` fixture of netkit's
pytest plugin; root and the real kernel are needed):

    from netkit.testing.conformance import DriverConformance

    class TestAcmeBridge(DriverConformance):
        driver = "acmebridge"              # as registered under `netkit.drivers`
        options = {"acme.mtu": "1400"}     # -o options of its networks, if it needs some

The tests ask the driver what netkit asks any driver, end to end through the Engine
and directly through its contract (netkit/drivers/base.py):

    create        `network create` makes it; no drift (`system check`); its own links exist
    join/leave    two containers join (an interface, an address; they reach each other when
                  `connectivity`), then leave (the interface goes; no drift)
    delete        `network rm` removes what it made (its owned links are gone)
    idempotent    delete_network and leave succeed again once their objects are gone
    check         a Checkable driver reports its network healthy, and a link of it deleted
                  behind its back as a problem
    rollback      a kernel call failing at every step of create and of join leaves the
                  node's links, the store and `system check` as they were

An IPAM plugin's author runs the same tests with a driver of netkit's and their plugin:
`ipam_driver` (as registered under `netkit.ipam`) and `ipam_options` (`--ipam-opt`) make
the kit's networks use it, and `test_create` checks that the network records it.

A driver whose only network is predefined (netkit's `null`: `none`) sets `predefined` to
that network: the create and delete tests are skipped, the others use it.

A swarm-scoped driver (netkit's `overlay`) sets `swarm = True`: each test then runs on a
simulated node on a LAN of its own that is the manager of a one-node swarm (`swarm
init`), and its networks are made `--attachable` so that the kit's standalone
containers may join them, as Docker requires. The traffic between containers of
different nodes is beyond the kit (netkit's tests/kernel/test_overlay.py covers it).

The engine under test is the `conformance_engine` fixture (a method of the class): a
driver that needs another kind of node overrides it.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import subprocess
import time
from typing import Any, ClassVar, Iterator

import pytest

from netkit.errors import KernelError
from netkit.specs import ContainerSpec, NetworkSpec

MAX_STEPS = 80                     # kernel calls of one action the rollback test walks through


def node_links(eng: Any) -> set[str]:
    """The names of the links in the node's network namespace."""
    out = subprocess.run(["ip", "-j", "-n", eng.node.netns, "link", "show"], capture_output=True,
                         text=True, check=True, timeout=30).stdout
    return {link["ifname"] for link in json.loads(out or "[]")}


def container_links(eng: Any, name: str) -> set[str]:
    """The names of the links in a container's network namespace."""
    ctr = eng.container(name)
    out = subprocess.run(["ip", "-j", "-n", ctr.netns, "link", "show"], capture_output=True,
                         text=True, check=True, timeout=30).stdout
    return {link["ifname"] for link in json.loads(out or "[]")}


class DriverConformance:
    """The conformance tests (see the module docstring); subclass and set `driver`."""

    driver: ClassVar[str]
    options: ClassVar[dict[str, str]] = {}
    subnet: ClassVar[str | None] = "10.199.0.0/24"     # None: let IPAM choose one
    predefined: ClassVar[str | None] = None            # the driver's predefined network
    connectivity: ClassVar[bool] = True                # its containers reach each other
    command: ClassVar[tuple[str, ...]] = ("sleep", "300")
    network_name: ClassVar[str] = "conformance"
    ipam_driver: ClassVar[str] = "default"             # --ipam-driver of its networks
    ipam_options: ClassVar[dict[str, str]] = {}        # --ipam-opt
    swarm: ClassVar[bool] = False                      # swarm-scoped: a one-node swarm's manager
    lan_subnet: ClassVar[str] = "192.168.199.0/24"     # the swarm node's LAN (swarm only)

    # -- the engine under test --------------------------------------------------------------
    @pytest.fixture
    def conformance_engine(self, request: pytest.FixtureRequest) -> Iterator[Any]:
        """The node the tests act on: `netkit_node`, or with `swarm` a node on a LAN of
        its own that initialised a swarm; removed afterwards, also on failure."""
        if not self.swarm:
            yield request.getfixturevalue("netkit_node")
            return
        from netkit.engine import Engine
        host = request.getfixturevalue("netkit_host")
        root, run = request.getfixturevalue("netkit_state_dirs")
        tag = secrets.token_hex(3)
        lan, name = f"cl{tag}", f"cn{tag}"
        net = ipaddress.ip_network(self.lan_subnet)
        eng = None
        try:
            host.create_lan(lan, str(net), gateway=str(net[1]))
            host.create_node(name, lan=lan, ip=f"{net[10]}/{net.prefixlen}")
            eng = Engine(name, root=root, run=run)
            eng.swarm_init()
            yield eng
        finally:
            if eng is not None:
                eng.close()
            if host.host_store.read().node(name) is not None:
                host.remove_node(name, force=True)
            if host.host_store.read().lan(lan) is not None:
                host.remove_lan(lan)

    # -- helpers ----------------------------------------------------------------------------
    def make_network(self, eng: Any) -> str:
        """The network under test: a new one of the driver, or its predefined one."""
        if self.predefined:
            return self.predefined
        eng.create_network(NetworkSpec(name=self.network_name, driver=self.driver,
                                       subnets=(self.subnet,) if self.subnet else (),
                                       options=dict(self.options), attachable=self.swarm,
                                       ipam_driver=self.ipam_driver,
                                       ipam_options=dict(self.ipam_options)))
        return self.network_name

    def run(self, eng: Any, name: str, network: str) -> Any:
        return eng.run(ContainerSpec(name=name, network=network, command=self.command,
                                     detach=True))[0]

    def driver_call(self, eng: Any, method: str, *args: Any) -> Any:
        """Call the driver's contract method in one action of the node (its DriverContext)."""
        from netkit import drivers
        with eng._actions() as (_tx, ctx):
            return getattr(drivers.get(self.driver), method)(ctx, *args)

    def owned(self, eng: Any, net: Any, in_use: bool) -> set[str]:
        from netkit import drivers
        from netkit.drivers.base import Checkable
        impl = drivers.get(self.driver)
        return impl.owned_links(net, in_use) if isinstance(impl, Checkable) else set()

    def assert_clean(self, eng: Any, settle: float = 5.0) -> None:
        """No drift (`system check`), once teardown still in flight (the kernel deleting
        the veth of a removed namespace) is done: retried for up to `settle` seconds."""
        deadline = time.monotonic() + settle
        while (drift := eng.system_check()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert drift == [], "system check found drift"

    # -- the tests -----------------------------------------------------------------------------
    def test_driver_is_registered(self) -> None:
        from netkit import drivers
        from netkit.drivers.base import Driver
        impl = drivers.get(self.driver)
        assert isinstance(impl, Driver) and impl.name == self.driver

    def test_create(self, conformance_engine: Any) -> None:
        if self.predefined:
            pytest.skip(f"{self.driver}: only the predefined network {self.predefined}")
        eng = conformance_engine
        net = eng.network(self.make_network(eng))
        assert net.driver == self.driver
        assert (net.ipam_driver, net.ipam_options) == (self.ipam_driver, self.ipam_options)
        assert self.owned(eng, net, False) <= node_links(eng), "an owned link is missing"
        self.assert_clean(eng)

    def test_join_and_leave(self, conformance_engine: Any) -> None:
        eng = conformance_engine
        network = self.make_network(eng)
        net = eng.network(network)
        a, b = self.run(eng, "conf-a", network), self.run(eng, "conf-b", network)
        for ctr in (a, b):
            for ep in eng.container(ctr.id).endpoints:
                assert ep.ifname in container_links(eng, ctr.name), f"{ep.ifname} not made"
                assert ep.ipv4 or ep.ipv6 or not net.ipam, f"{ep.ifname} has no address"
        if self.connectivity:
            target = eng.container("conf-b").endpoints[0].ipv4.split("/")[0]
            assert eng.exec("conf-a", ["ping", "-c", "1", "-W", "2", target]) == 0, \
                "conf-a does not reach conf-b"
        self.assert_clean(eng)
        if not self.predefined:                          # a predefined network cannot be left
            ifname = eng.container("conf-a").endpoints[0].ifname
            eng.disconnect(network, "conf-a")
            assert ifname not in container_links(eng, "conf-a"), f"{ifname} left behind"
            self.assert_clean(eng)
        eng.remove_container("conf-a", force=True)
        eng.remove_container("conf-b", force=True)
        self.assert_clean(eng)

    def test_delete(self, conformance_engine: Any) -> None:
        if self.predefined:
            pytest.skip(f"{self.driver}: its predefined network {self.predefined} stays")
        eng = conformance_engine
        links = node_links(eng)
        net = eng.network(self.make_network(eng))
        owned = self.owned(eng, net, False)
        eng.remove_network(net.id)
        assert not owned & node_links(eng), "links of the network are left behind"
        assert node_links(eng) == links
        self.assert_clean(eng)

    def test_delete_and_leave_are_idempotent(self, conformance_engine: Any) -> None:
        eng = conformance_engine
        network = self.make_network(eng)
        net = eng.network(network)
        ctr = self.run(eng, "conf-i", network)
        ctr = eng.container(ctr.id)
        ep = next(e for e in ctr.endpoints if e.network_id == net.id) if ctr.endpoints else None
        eng.stop(ctr.id, timeout=0)
        if ep is not None:
            self.driver_call(eng, "leave", net, ep, ctr)           # its objects are gone
            self.driver_call(eng, "leave", net, ep, ctr)
        eng.remove_container(ctr.id)
        if not self.predefined:
            eng.remove_network(net.id)
            self.driver_call(eng, "delete_network", net)
            self.driver_call(eng, "delete_network", net)
        self.assert_clean(eng)

    def test_check(self, conformance_engine: Any) -> None:
        from netkit import drivers
        from netkit.drivers.base import Checkable
        impl = drivers.get(self.driver)
        if not isinstance(impl, Checkable):
            pytest.skip(f"{self.driver} is not Checkable: it owns no links to check")
        eng = conformance_engine
        net = eng.network(self.make_network(eng))
        assert self.driver_call(eng, "check", net, False) == []
        owned = self.owned(eng, net, False)
        if not owned:
            return
        victim = sorted(owned)[0]
        subprocess.run(["ip", "-n", eng.node.netns, "link", "del", victim], check=True, timeout=30)
        problems = self.driver_call(eng, "check", net, False)
        assert problems and all(isinstance(p, str) for p in problems), \
            f"{victim} deleted behind its back, but check() says nothing"
        assert eng.system_check() != []

    def test_rollback_on_failure(self, conformance_engine: Any) -> None:
        from netkit.kernel.session import FaultPlan
        eng = conformance_engine
        links, nets = node_links(eng), {n.name for n in eng.networks()}
        network = self.predefined
        for step in range(1, MAX_STEPS + 1) if not self.predefined else ():
            eng.faults = FaultPlan(fail_at=step)
            try:
                network = self.make_network(eng)
                break
            except KernelError:
                assert node_links(eng) == links, f"create failed at call {step}: links left"
                assert {n.name for n in eng.networks()} == nets
                self.assert_clean(eng)
            finally:
                eng.faults = None
        assert network, f"network create still fails after {MAX_STEPS} kernel calls"
        links = node_links(eng)
        for step in range(1, MAX_STEPS + 1):
            eng.faults = FaultPlan(fail_at=step)
            try:
                self.run(eng, "conf-r", network)
                break
            except KernelError:
                assert node_links(eng) == links, f"join failed at call {step}: links left"
                assert "conf-r" not in {c.name for c in eng.containers(all=True)}
                self.assert_clean(eng)
            finally:
                eng.faults = None
        else:
            raise AssertionError(f"a container still cannot join after {MAX_STEPS} kernel calls")
        eng.remove_container("conf-r", force=True)
        self.assert_clean(eng)
