"""netkit.events without a node: times, filters, Docker's line and JSON; the store's
triggers record an event only when the transaction commits."""

from __future__ import annotations

import pytest

from netkit.errors import InvalidArgument
from netkit.events import Event, matches, parse_filters, parse_time
from netkit.model import Network
from netkit.store import Store

NOW = 1_780_000_000 * 10**9


def test_parse_time_reads_docker_s_forms():
    assert parse_time(None) is None
    assert parse_time("1780000000") == NOW
    assert parse_time("1780000000.5") == NOW + 500_000_000
    assert parse_time("1780000000.000000001") == NOW + 1
    assert parse_time("10m", now_ns=NOW) == NOW - 600 * 10**9
    assert parse_time("1h30m", now_ns=NOW) == NOW - 5400 * 10**9
    assert parse_time("1.5s", now_ns=NOW) == NOW - 1_500_000_000
    assert parse_time("2026-05-28T20:26:40Z") == NOW
    assert parse_time("2026-05-28T20:26:40") == NOW                    # UTC without a zone
    assert parse_time(1780000000.25) == NOW + 250_000_000
    with pytest.raises(InvalidArgument, match='^failed to parse value as time or duration: "x"$'):
        parse_time("x")


def test_filters_and_matching():
    f = parse_filters(["type=network", "event=connect", "event=disconnect", "network=front"])
    assert f == {"type": ["network"], "event": ["connect", "disconnect"], "network": ["front"]}
    assert parse_filters({"container": "web"}) == {"container": ["web"]}
    ev = Event("network", "connect", "ab" * 32, {"name": "frontend", "container": "c" * 64})
    assert matches(ev, f)
    assert matches(ev, {"network": ["abab"]})                          # an id prefix
    assert not matches(ev, {"type": ["container"]})
    assert not matches(ev, {"event": ["create"]})
    assert not matches(ev, {"network": ["back"]})
    with pytest.raises(InvalidArgument, match="^invalid filter 'label'$"):
        parse_filters(["label=a"])
    with pytest.raises(InvalidArgument, match="expected name=value"):
        parse_filters(["type"])


def test_line_and_json_are_docker_s():
    ev = Event("network", "connect", "n" * 64, {"type": "bridge", "name": "net", "container": "c"},
               NOW + 123)
    assert ev.line() == (f"2026-05-28T20:26:40.000000123Z network connect {'n' * 64} "
                         "(container=c, name=net, type=bridge)")
    assert ev.to_json() == {"Type": "network", "Action": "connect",
                            "Actor": {"ID": "n" * 64, "Attributes": dict(ev.attributes)},
                            "scope": "local", "time": 1_780_000_000, "timeNano": NOW + 123}
    assert Event("container", "stop", "c" * 64, time_nano=NOW).line().endswith(f"stop {'c' * 64}")


def test_events_are_written_by_the_committing_transaction_only(tmp_path):
    store = Store(str(tmp_path / "n.db"))
    net = Network(id="a" * 64, name="n1", driver="bridge")
    with pytest.raises(RuntimeError):
        with store.transaction() as tx:
            tx.insert_network(net)
            raise RuntimeError("rolled back")
    assert store.read().events_after(0) == []
    with store.transaction() as tx:
        tx.insert_network(net)
    with store.transaction() as tx:
        tx.delete_network(net.id)
    rows = store.read().events_after(0)
    assert [(r[2], r[3], r[4], r[5]) for r in rows] == [
        ("network", "create", net.id, {"name": "n1", "type": "bridge"}),
        ("network", "destroy", net.id, {"name": "n1", "type": "bridge"})]
    assert store.read().last_event_seq() == rows[-1][0]
    assert store.read().events_after(rows[0][0]) == rows[1:]
    store.close()
