"""The macvlan driver's pure checks: options, VLAN names, passthru sharing (no root)."""

from __future__ import annotations

import pytest

from netkit.drivers.macvlan import MacvlanDriver, check_vid, dummy_name, parent_of, split_vlan
from netkit.errors import Conflict, InvalidArgument
from netkit.model import Network
from netkit.specs import NetworkSpec


def spec(**options: str) -> NetworkSpec:
    return NetworkSpec("mv", driver="macvlan", options=dict(options))


def net(nid: str, **options: str) -> Network:
    return Network(id=nid * 64 if len(nid) == 1 else nid, name=f"n{nid}", driver="macvlan",
                   options=dict(options))


@pytest.mark.parametrize("mode", ["bridge", "private", "vepa", "passthru", ""])
def test_modes_accepted(mode):
    MacvlanDriver().validate(spec(parent="eth0", macvlan_mode=mode))


@pytest.mark.parametrize("mode", ["x", "Bridge", "source", "l2"])
def test_bad_mode_is_docker_message(mode):
    with pytest.raises(InvalidArgument) as exc:
        MacvlanDriver().validate(spec(parent="eth0", macvlan_mode=mode))
    assert str(exc.value) == (f"requested macvlan mode '{mode}' is not valid, "
                              "'bridge' mode is the macvlan driver default")


def test_loopback_parent():
    with pytest.raises(InvalidArgument, match="^loopback interface is not a valid macvlan parent link$"):
        MacvlanDriver().validate(spec(parent="lo"))


def test_mode_is_checked_before_parent():
    """Docker's order (parseNetworkOptions): mode first, then the loopback parent."""
    with pytest.raises(InvalidArgument, match="requested macvlan mode 'x'"):
        MacvlanDriver().validate(spec(parent="lo", macvlan_mode="x"))


def test_unknown_option_refused_like_bridge():
    with pytest.raises(InvalidArgument, match="^unknown option foo for driver macvlan$"):
        MacvlanDriver().validate(spec(parent="eth0", foo="1"))


def test_generic_options_accepted():
    MacvlanDriver().validate(spec(**{"parent": "eth0", "com.docker.network.driver.mtu": "1400",
                                     "com.docker.network.container_iface_prefix": "mv",
                                     "netkit.dns.order": "shuffle"}))
    with pytest.raises(InvalidArgument, match="invalid MTU 10"):
        MacvlanDriver().validate(spec(**{"com.docker.network.driver.mtu": "10"}))


def test_no_parent_forces_internal():
    assert MacvlanDriver.forces_internal(spec())
    assert MacvlanDriver.forces_internal(spec(parent=""))
    assert not MacvlanDriver.forces_internal(spec(parent="eth0"))


def test_driver_capabilities():
    d = MacvlanDriver()
    assert (d.name, d.has_dns, d.allocates_gateway, d.maps_ports) == ("macvlan", True, False, False)


def test_private_parent_name():
    n = net("a")
    assert dummy_name(n.id) == "dm-aaaaaaaaaaaa"
    assert parent_of(n) == "dm-aaaaaaaaaaaa"
    assert parent_of(net("b", parent="eth0")) == "eth0"


@pytest.mark.parametrize("name, want", [("eth0.10", ("eth0", 10)), ("eth0.4094", ("eth0", 4094)),
                                        ("eth0.0", ("eth0", 0)), ("eth0.+7", ("eth0", 7)),
                                        ("eth0.-3", ("eth0", -3))])
def test_split_vlan(name, want):
    assert split_vlan(name) == want


@pytest.mark.parametrize("name", ["eth0.10.20", "a.b.c", "eth0."])
def test_split_vlan_format(name):
    if name == "eth0.":
        with pytest.raises(InvalidArgument, match="^unable to parse a valid vlan id from:  "):
            split_vlan(name)
        return
    with pytest.raises(InvalidArgument) as exc:
        split_vlan(name)
    assert str(exc.value) == ("required interface name format is: name.vlan_id, ex. eth0.10 for "
                              f"vlan 10, instead received {name}")


def test_split_vlan_not_a_number():
    with pytest.raises(InvalidArgument) as exc:
        split_vlan("eth0.ten")
    assert str(exc.value) == "unable to parse a valid vlan id from: ten (ex. eth0.10 for vlan 10)"


@pytest.mark.parametrize("vid", [0, 4095, 5000, -3])
def test_vid_range(vid):
    with pytest.raises(InvalidArgument) as exc:
        check_vid(vid)
    assert str(exc.value) == f"vlan id must be between 1-4094, received: {vid}"


@pytest.mark.parametrize("vid", [1, 10, 4094])
def test_vid_ok(vid):
    check_vid(vid)


def test_passthru_new_network_on_used_parent():
    other = net("a", parent="eth0")
    with pytest.raises(Conflict) as exc:
        MacvlanDriver().check_network(net("b", parent="eth0", macvlan_mode="passthru"), [other])
    assert str(exc.value) == (f"cannot use mode passthru, macvlan network {other.id} is already "
                              "using parent interface eth0")


def test_new_network_on_passthru_parent():
    other = net("a", parent="eth0", macvlan_mode="passthru")
    with pytest.raises(Conflict) as exc:
        MacvlanDriver().check_network(net("b", parent="eth0"), [other])
    assert str(exc.value) == (f"macvlan network {other.id} is already using parent interface eth0 "
                              "in mode passthru")


def test_sharing_allowed_otherwise():
    d = MacvlanDriver()
    d.check_network(net("b", parent="eth0", macvlan_mode="private"),
                    [net("a", parent="eth0"), net("c", parent="eth1", macvlan_mode="passthru"),
                     Network(id="d" * 64, name="br", driver="bridge", options={"parent": "eth0"})])
    # parentless networks each have their own dm- device, passthru or not
    d.check_network(net("b", macvlan_mode="passthru"), [net("a", macvlan_mode="passthru")])
