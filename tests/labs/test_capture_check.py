"""The `capture` check kind (netkit.capture.check): parsing, errors with file and line,
and the lab file forms of swarm and per-node networks (pure)."""

from __future__ import annotations

import pytest
from textwrap import dedent

from netkit.capture.check import CaptureCheck
from netkit.labs import plan
from netkit.labs.project import load_project
from netkit.labs.source import LabFileError

HEAD = ("name: t\nservices:\n  web: {}\n  client: {}\n"
        "x-netkit:\n  lans: {lan1: {name: l1, subnet: 10.9.0.0/24}}\n  checks:\n")


def lab_with(write, checks_yaml: str):
    return load_project(write("lab.yml", HEAD + checks_yaml))


def test_capture_is_the_registered_kind(write):
    p = lab_with(write, "    - capture: {on: 'lan:lan1', filter: udp, expect: {only: udp port 4789},\n"
                        "                while: {reach: {from: web, to: client, ping: true}}}\n"
                        "    - capture: {on: client, filter: udp port 53, expect: {dns_answer: {name: web, count: 3}},\n"
                        "                while: [{exec: {in: client, command: x}}, {exec: {in: web, command: y}}]}\n"
                        "    - capture: {on: 'node:n1', expect: {none: true}, duration: 500ms}\n"
                        "    - capture: {on: 'network:default', expect: {seen: 2}}\n")
    a, b, c, d = p.checks
    assert all(isinstance(x, CaptureCheck) for x in p.checks)
    assert a.describe() == "capture udp on lan:lan1: expect only udp port 4789"
    assert [w.kind for w in a.body["while"]] == ["reach"]
    assert b.describe() == "capture udp port 53 on client: expect DNS answers for web"
    assert [w.kind for w in b.body["while"]] == ["exec", "exec"]
    assert c.body["duration"] == 0.5 and c.within() == 0.0 and a.within() == 3.0
    assert d.describe() == "capture on network:default: expect at least 2 packets"
    assert a.to_dict()["capture"]["while"] == {"reach": {"from": "web", "to": "client", "ping": True}}


@pytest.mark.parametrize("item, message", [
    ("{on: web}", 'x-netkit.checks[0].capture: missing key "expect"'),
    ("{on: web, expect: {}}", "x-netkit.checks[0].capture.expect: give exactly one of only, none, seen, dns_answer"),
    ("{on: web, expect: {none: true, seen: 1}}",
     "x-netkit.checks[0].capture.expect: give exactly one of only, none, seen, dns_answer"),
    ("{on: web, expect: {onyl: udp}}", 'x-netkit.checks[0].capture.expect.onyl: unknown key (did you mean "only"?)'),
    ("{on: webb, expect: {none: true}}",
     'x-netkit.checks[0].capture.on: no service or container "webb" in this lab (services: web, client)'),
    ("{on: 'lan:nope', expect: {none: true}}", 'x-netkit.checks[0].capture.on: no LAN "nope" in this lab (lans: lan1)'),
    ("{on: web, expect: {none: true}, while: {reach: {from: nobody, to: x, ping: true}}}",
     'x-netkit.checks[0].capture.while.reach.from: no service or container "nobody" in this lab'),
    ("{on: web, expect: {none: true}, while: {ping: {}}}",
     'x-netkit.checks[0].capture.while.ping: unknown check kind "ping"'),
    ("{on: web, filter: 'udp prot 53', expect: {none: true}}",
     "x-netkit.checks[0].capture.filter: invalid capture filter: udp prot 53"),
    ("{on: web, expect: {only: 'tcp port x'}}",
     "x-netkit.checks[0].capture.expect.only: invalid capture filter: tcp port x"),
])
def test_capture_errors_name_file_line_and_key(write, item, message):
    with pytest.raises(LabFileError) as e:
        lab_with(write, f"    - capture: {item}\n")
    assert "lab.yml:" in str(e.value) and message in str(e.value), str(e.value)


NODES = """
x-netkit:
  lans: {lan: {subnet: 192.168.0.0/24}}
  nodes:
    a: {name: "${A:-host-a}", lan: lan, ip: 192.168.0.50/24}
    b: {lan: lan, ip: 192.168.0.51/24}
"""


def test_per_node_networks(write):
    p = load_project(write("lab.yml", dedent("""
        name: t
        services:
          c1: {networks: [mv], x-netkit: {node: a}}
          c2: {networks: [mv], x-netkit: {node: b}}
        networks:
          mv:
            driver: macvlan
            driver_opts: {parent: eth0}
            ipam: {config: [{subnet: 192.168.0.0/24, gateway: 192.168.0.1}]}
            x-netkit:
              nodes:
                a: {ipam: {config: [{ip_range: 192.168.0.64/28}]}}
                b: {ipam: {config: [{ip_range: 192.168.0.128/28}]}, driver_opts: {macvlan_mode: private}}
        """) + NODES))
    net = p.networks["mv"]
    assert set(net.per_node) == {"host-a", "b"}
    assert plan.network_nodes(p, None)["mv"] == ["host-a", "b"]
    sa, sb = plan.network_spec(p, net, "host-a"), plan.network_spec(p, net, "b")
    assert (sa.subnets, sa.ip_ranges, sa.gateways) == (("192.168.0.0/24",), ("192.168.0.64/28",), ("192.168.0.1",))
    assert sb.ip_ranges == ("192.168.0.128/28",)
    assert sa.options == {"parent": "eth0"} and sb.options == {"parent": "eth0", "macvlan_mode": "private"}
    assert plan.network_spec(p, net).ip_ranges == ()
    assert plan.config_hash(p, p.services["c1"]) != plan.config_hash(p, p.services["c2"])
    assert p.to_dict()["networks"]["mv"]["x-netkit"]["nodes"]["b"]["ipam"]["config"][0]["ip_range"] == \
        "192.168.0.128/28"


def test_swarm_and_overlay_placement(write):
    p = load_project(write("lab.yml", dedent("""
        name: t
        services:
          x: {networks: [ov], x-netkit: {node: b}}
          y: {networks: [ov, local], x-netkit: {node: b}}
        networks:
          ov: {driver: overlay, attachable: true}
          local: {}
        """) + NODES + "  swarm: {manager: a, workers: [b]}\n"))
    assert p.swarm == {"manager": "host-a", "workers": ["b"]}
    placement = plan.network_nodes(p, None)
    assert placement["ov"] == ["host-a"] and placement["local"] == ["b"]
    assert p.warnings == []


@pytest.mark.parametrize("swarm, message", [
    ("{workers: [b]}", 'x-netkit.swarm: missing key "manager"'),
    ("{manager: a, workers: [a]}", "x-netkit.swarm.workers[0]: node host-a is listed twice in the swarm"),
    ("{manager: a, wokers: [b]}", 'x-netkit.swarm.wokers: unknown key (did you mean "workers"?)'),
    ("{manager: Bad_Name}", 'x-netkit.swarm.manager: invalid node name "Bad_Name"'),
])
def test_swarm_errors(write, swarm, message):
    with pytest.raises(LabFileError) as e:
        load_project(write("lab.yml", "name: t\nservices: {x: {}}\n" + NODES.lstrip("\n") + f"  swarm: {swarm}\n"))
    assert message in str(e.value), str(e.value)


def test_shipped_multihost_labs_load(monkeypatch):
    from tests.labs.conftest import LABS
    import os
    mv = load_project(os.path.join(LABS, "macvlan-two-hosts", "lab.yml"))
    assert plan.network_nodes(mv, None)["my_macvlan"] == ["node01", "node02"]
    ov = load_project(os.path.join(LABS, "overlay-three-nodes", "lab.yml"))
    assert ov.swarm == {"manager": "node1", "workers": ["node2", "node3"]}
    assert any(c.kind == "capture" for c in ov.checks) and any(c.kind == "resolve" for c in ov.checks)
