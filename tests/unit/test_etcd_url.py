"""parse_store_url: the `--cluster-store etcd://HOST:PORT[,HOST:PORT...]` syntax."""

from __future__ import annotations

import pytest

from netkit.errors import InvalidArgument
from netkit.store.etcd import parse_store_url


def test_endpoints_in_order():
    assert parse_store_url("etcd://10.0.0.5:2379,10.0.0.6:2379") == \
        ["http://10.0.0.5:2379", "http://10.0.0.6:2379"]
    assert parse_store_url("etcd://etcd-a:12379") == ["http://etcd-a:12379"]
    assert parse_store_url("etcd://[fd00::5]:2379") == ["http://[fd00::5]:2379"]


@pytest.mark.parametrize("url", [
    "", "sqlite", "http://10.0.0.5:2379", "etcd://", "etcd://10.0.0.5", "etcd://10.0.0.5:",
    "etcd://10.0.0.5:0", "etcd://10.0.0.5:65536", "etcd://10.0.0.5:23x9", "etcd://:2379",
    "etcd://10.0.0.5:2379,", "etcd://fd00::5:2379", "etcd://[]:2379", "etcd://a/b:2379",
    "etcd://u@h:2379"])
def test_anything_else_is_refused_in_one_line(url):
    with pytest.raises(InvalidArgument) as exc:
        parse_store_url(url)
    assert str(exc.value) == f"invalid cluster store {url!r}: use etcd://HOST:PORT[,HOST:PORT...]"
