"""EtcdClusterTx, the in-memory view of one etcd transaction: buffered writes, read-your-
writes, key order (the contract against SQLite runs on a real etcd: tests/kernel)."""

from __future__ import annotations

import pytest

from netkit.errors import InternalError
from netkit.store.cluster import Member
from netkit.store.etcd_tx import EtcdClusterTx


def test_writes_are_buffered_as_one_op_per_key():
    tx = EtcdClusterTx({"meta/version": "3",
                        "members/a": '{"joined":"","role":"worker","vtep":"x"}'})
    tx.add_member(Member("b", "manager", "y", "t"))
    tx.remove_member("a")
    tx.remove_member("b")
    tx.add_member(Member("b", "worker", "z", "t"))
    tx.remove_member("nobody")
    assert tx.ops == {"members/b": '{"joined":"t","role":"worker","vtep":"z"}', "members/a": None}
    assert [m.node for m in tx.members()] == ["b"]


def test_addresses_walk_in_key_order_from_the_hint():
    data = {"networks/n": "{}"} | {f"addresses/n/4/{k:08x}": "o" for k in (9, 2, 0x10, 5)}
    data["addresses/n/6/00000001"] = "o"
    data["addresses/n2/4/00000003"] = "o"
    tx = EtcdClusterTx(data)
    assert list(tx.taken_from("n", 4, "00000005")) == ["00000005", "00000009", "00000010"]
    walk = tx.taken_from("n", 4, "")
    assert next(walk) == "00000002"
    tx.hold_address("n", 4, "00000003", "me")      # a write while walking: the walk goes on
    assert list(walk) == ["00000005", "00000009", "00000010"]
    assert list(tx.taken_from("n", 4, "")) == ["00000002", "00000003", "00000005", "00000009",
                                               "00000010"]


def test_a_read_view_refuses_writes():
    view = EtcdClusterTx({}, writable=False)
    with pytest.raises(InternalError, match="read-only"):
        view.set_meta("k", "v")
    assert view.ops == {} and view.meta("k") is None
