"""The gateway's failover (store/etcd_gateway.py) without an etcd: endpoint rotation, and
a call that reaches no endpoint failing with one line within its timeout (loopback ports
that nothing listens on: connection refused)."""

from __future__ import annotations

import itertools
import socket
import time

import pytest

from netkit.errors import ClusterUnavailable
from netkit.store.etcd_gateway import Gateway


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]          # closed again: connecting is refused


def test_rotation_starts_at_the_current_endpoint_and_goes_round():
    gw = Gateway(["http://a:1", "http://b:1", "http://c:1"], None, 5.0, "etcd://a:1,b:1,c:1")
    gw.current = 1
    order = [i for i, _ in itertools.islice(gw._rotation(time.monotonic() + 5), 7)]
    assert order == [1, 2, 0, 1, 2, 0, 1]


def test_no_endpoint_answers_within_the_timeout():
    ports = [closed_port(), closed_port()]
    url = "etcd://" + ",".join(f"127.0.0.1:{p}" for p in ports)
    gw = Gateway([f"http://127.0.0.1:{p}" for p in ports], None, 1.0, url)
    t0 = time.monotonic()
    with pytest.raises(ClusterUnavailable) as exc:
        gw.post("kv/range", {"key": "Zm9v"})
    assert time.monotonic() - t0 < 1.5
    assert str(exc.value) == (f"the swarm's cluster store {url} does not have a leader: make sure "
                              "more than half of its members are online (connection refused)")
    assert gw.calls >= 4                   # both endpoints, more than once
    with pytest.raises(ClusterUnavailable):
        gw.watch("foo", 1, 0.5)
