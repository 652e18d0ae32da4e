"""The resolver's typed input (netkit.dns.entries): JSON form, snapshot files, imports."""

from __future__ import annotations

import json
import subprocess
import sys

from netkit.dns import catalog, client, daemon
from netkit.dns.entries import (ORDER_SHUFFLE, ContainerEntries, EndpointEntry, NetworkEntry,
                                SandboxEntry, Snapshot, entries_from_json, entries_to_json)

SB = SandboxEntry("c" * 64, "nkc-web", ("n1", "n2"), (("db", "postgres"),), ("1.1.1.1",),
                  ("192.0.2.53",), False)
EPS = (EndpointEntry("a" * 64, "web", "n1", "10.0.0.2", "fd00::2", ("web", "www"), "r1"),
       EndpointEntry("b" * 64, "db", "n2", "10.0.1.3", None, ("db",)))
SNAP = Snapshot(7, (SB,), {"n1": NetworkEntry("front"), "n2": NetworkEntry("back", ORDER_SHUFFLE)},
                EPS)


def test_json_round_trip_and_the_file_format():
    data = SNAP.to_json()
    assert data == {
        "version": 7,
        "sandboxes": [{"container_id": "c" * 64, "netns": "nkc-web", "networks": ["n1", "n2"],
                       "links": {"db": "postgres"}, "upstreams": ["1.1.1.1"],
                       "host_upstreams": ["192.0.2.53"], "external": False}],
        "networks": {"n1": {"name": "front", "order": "rr"},
                     "n2": {"name": "back", "order": "shuffle"}},
        "endpoints": [{"container_id": "a" * 64, "container_name": "web", "network_id": "n1",
                       "ipv4": "10.0.0.2", "ipv6": "fd00::2", "names": ["web", "www"],
                       "rank": "r1"},
                      {"container_id": "b" * 64, "container_name": "db", "network_id": "n2",
                       "ipv4": "10.0.1.3", "ipv6": None, "names": ["db"], "rank": ""}]}
    assert Snapshot.from_json(json.loads(json.dumps(data))) == SNAP


def test_from_json_takes_missing_keys_as_defaults():
    snap = Snapshot.from_json({"sandboxes": [{"container_id": "c", "netns": "x"}],
                               "networks": {"n": {}},
                               "endpoints": [{"container_id": "a", "container_name": "web",
                                              "network_id": "n", "ipv4": ""}]})
    assert snap == Snapshot(0, (SandboxEntry("c", "x"),), {"n": NetworkEntry("n")},
                            (EndpointEntry("a", "web", "n"),))
    assert snap.sandboxes[0].external                   # no key: may forward to the node's
    assert Snapshot.from_json({}) == Snapshot()


def test_container_entries_round_trip_as_the_remote_command_carries_them():
    containers = {"a" * 64: ContainerEntries(None, EPS[:1]), "c" * 64: ContainerEntries(SB),
                  "e" * 64: ContainerEntries()}
    nets = dict(SNAP.networks)
    data = json.loads(json.dumps(entries_to_json(containers, nets)))
    assert data["containers"]["a" * 64] == {"sandbox": None, "endpoints": [EPS[0].to_json()]}
    assert data["networks"]["n2"] == {"name": "back", "order": "shuffle"}
    assert entries_from_json(data) == (containers, nets)
    assert entries_from_json({}) == ({}, {})


def test_snapshot_file_round_trip(tmp_path):
    run_dir = str(tmp_path)
    assert daemon.load_snapshot(run_dir) == Snapshot()  # none yet: empty, version 0
    daemon.write_snapshot(run_dir, SNAP)
    assert daemon.load_snapshot(run_dir) == SNAP
    assert client._snapshot_version(run_dir) == 7


def test_snapshot_containers_groups_per_container_in_list_order():
    lone = SandboxEntry("d" * 64, "nkc-lone")
    more = EndpointEntry("a" * 64, "web", "n2", "10.0.1.2", None, ("web",))
    snap = Snapshot(1, (SB, lone), SNAP.networks, EPS + (more,))
    assert snap.containers() == {
        "a" * 64: ContainerEntries(None, (EPS[0], more)),
        "b" * 64: ContainerEntries(None, (EPS[1],)),
        "c" * 64: ContainerEntries(SB),
        "d" * 64: ContainerEntries(lone)}
    assert ContainerEntries().empty and not ContainerEntries(lone).empty
    sandbox, endpoints = ContainerEntries(None, EPS)     # still reads as a pair
    assert sandbox is None and endpoints == EPS


def test_entries_compare_by_value_so_unchanged_containers_are_not_rebuilt():
    cat = catalog.Catalog.from_snapshot(SNAP)
    again = Snapshot.from_json(json.loads(json.dumps(SNAP.to_json())))
    assert cat.diff(again.containers()) == {}
    moved = EndpointEntry("b" * 64, "db", "n2", "10.0.1.4", None, ("db",))
    assert cat.diff({**again.containers(), "b" * 64: ContainerEntries(None, (moved,))}) == \
        {"b" * 64: ContainerEntries(None, (moved,))}


def test_resolver_core_imports_nothing_of_engine_agent_swarm_or_drivers():
    code = ("import sys; import netkit.dns.entries, netkit.dns.records, netkit.dns.catalog, netkit.dns.wire, "
            "netkit.dns.server, netkit.dns.upstream; "
            "print(' '.join(m for m in sys.modules if m.startswith(('netkit.engine', "
            "'netkit.agent', 'netkit.swarm', 'netkit.drivers', 'netkit.dnssync'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []
