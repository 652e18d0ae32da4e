"""Drivers declare what they can do; nothing outside netkit/drivers/ asks by name.

Each capability is declared on `netkit.drivers.base.Driver` with its default
and overridden by the drivers that differ; `Checkable` is the optional
interface `system check|prune` use. The scan below fails if a module outside
netkit/drivers/ compares a driver name to a string or probes a driver with
getattr/hasattr instead of asking it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import netkit
from netkit import drivers
from netkit.drivers.base import Checkable, Driver
from netkit.drivers.bridge import BridgeDriver
from netkit.errors import Conflict
from netkit.model import Network, Scope
from netkit.specs import NetworkSpec

PACKAGE = Path(netkit.__file__).parent
CAPABILITIES = {"scope", "has_dns", "allocates_gateway", "maps_ports", "onlink_subnets",
                "one_subnet_per_family", "network_mode", "forces_internal", "check_network",
                "release_network", "node_bridge", "owned_links", "check"}


def _is_driver_name(node: ast.AST) -> bool:
    """`x.driver` or a variable called `driver` (a network's / spec's driver name)."""
    return (isinstance(node, ast.Attribute) and node.attr == "driver") or \
        (isinstance(node, ast.Name) and node.id == "driver")


def _is_literal(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    return isinstance(node, (ast.Tuple, ast.List, ast.Set)) and all(map(_is_literal, node.elts))


def name_questions(source: str, where: str) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(source, where)):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(map(_is_driver_name, sides)) and any(map(_is_literal, sides)):
                out.append(f"{where}:{node.lineno}: compares a driver name to a string")
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("getattr", "hasattr"):
            if len(node.args) > 1 and "driver" in ast.unparse(node.args[0]) and \
                    isinstance(node.args[1], ast.Constant) and node.args[1].value in CAPABILITIES:
                out.append(f"{where}:{node.lineno}: probes a driver for {node.args[1].value}")
    return out


def test_nothing_outside_drivers_asks_a_driver_by_name():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if PACKAGE / "drivers" not in path.parents:
            found += name_questions(path.read_text(), str(path.relative_to(PACKAGE.parent)))
    assert found == []


def test_the_scan_sees_each_kind_of_question():
    src = ('if net.driver == "bridge": pass\n'
           'if spec.driver in ("host", "null"): pass\n'
           'if getattr(driver, "maps_ports", True): pass\n'
           'if hasattr(drivers.get(n), "check_network"): pass\n'
           'scope = getattr(net, "scope", "local")\n'
           'if net.driver == other.driver or net.name == "bridge": pass\n')   # fine: scope, these
    assert [line.split(": ", 1)[1] for line in name_questions(src, "probe.py")] == [
        "compares a driver name to a string", "compares a driver name to a string",
        "probes a driver for maps_ports", "probes a driver for check_network"]


@pytest.mark.parametrize("name, declared", [
    ("bridge", (Scope.LOCAL, True, True, True, False, True, None, True)),
    ("macvlan", (Scope.LOCAL, True, False, False, True, False, None, True)),
    ("overlay", (Scope.SWARM, True, True, False, False, False, None, True)),
    ("host", (Scope.LOCAL, False, False, True, False, False, "host", False)),
    ("null", (Scope.LOCAL, False, False, True, False, False, "none", False)),
])
def test_builtin_drivers_declare_their_capabilities(name, declared):
    d = drivers.get(name)
    assert isinstance(d, Driver)
    assert (d.scope, d.has_dns, d.allocates_gateway, d.maps_ports, d.onlink_subnets,
            d.one_subnet_per_family, d.network_mode, isinstance(d, Checkable)) == declared


def test_defaults_of_the_base():
    class Minimal(Driver):
        name = "minimal"

        def validate(self, spec): pass
        def create_network(self, ctx, net): pass
        def delete_network(self, ctx, net): pass
        def join(self, ctx, net, ep, ctr): raise AssertionError
        def leave(self, ctx, net, ep, ctr): pass

    d, net = Minimal(), Network(id="a" * 64, name="m", driver="minimal")
    assert (d.scope, d.has_dns, d.allocates_gateway, d.maps_ports, d.onlink_subnets,
            d.one_subnet_per_family, d.network_mode) == (Scope.LOCAL, True, True, True, False,
                                                         False, None)
    assert d.forces_internal(NetworkSpec("m")) is False and d.node_bridge(net) is None
    assert d.check_network(net, [net]) is None and d.release_network(None, net, [net]) is None
    assert not isinstance(d, Checkable)
    with pytest.raises(TypeError):
        type("Incomplete", (Driver,), {"name": "x"})()         # the contract is abstract


def test_bridge_names_conflict_across_bridge_networks_only():
    d = drivers.get("bridge")
    mine = Network(id="b" * 64, name="n2", driver="bridge",
                   options={"com.docker.network.bridge.name": "br-x"})
    same = Network(id="c" * 64, name="n1", driver="bridge",
                   options={"com.docker.network.bridge.name": "br-x"})
    lan = Network(id="d" * 64, name="m1", driver="macvlan", options={"parent": "br-x"})
    d.check_network(mine, [lan, mine])
    with pytest.raises(Conflict, match="networks have same bridge name"):
        d.check_network(mine, [lan, same])

    class Renamed(BridgeDriver):                 # a subclass asks the same questions
        name = "renamed"
    with pytest.raises(Conflict, match="networks have same bridge name"):
        Renamed().check_network(Network(**{**_fields(mine), "driver": "renamed"}), [same])
    assert Renamed().owned_links(mine, False) == {"br-x"} and Renamed().node_bridge(mine) == "br-x"


def _fields(obj) -> dict:
    return {name: getattr(obj, name) for name in obj.__slots__}
