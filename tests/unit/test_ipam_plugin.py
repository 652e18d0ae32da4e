"""The IPAM plugin registry: built-ins by table and by entry point, unknown names refused."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from netkit.errors import InvalidArgument, NotFound
from netkit.ipam import plugin
from netkit.ipam.builtin import DefaultIpam, StaticIpam

ROOT = Path(__file__).resolve().parents[2]


def test_builtins_are_found_and_are_plugins():
    assert isinstance(plugin.get("default"), DefaultIpam)
    assert isinstance(plugin.get(""), DefaultIpam)                  # no --ipam-driver
    assert type(plugin.get("static")) is StaticIpam
    assert all(isinstance(plugin.get(n), plugin.IpamPlugin) for n in ("default", "static"))


def test_the_fallback_table_is_what_pyproject_registers():
    with open(ROOT / "pyproject.toml", "rb") as f:
        eps = tomllib.load(f)["project"]["entry-points"][plugin.GROUP]
    assert eps == plugin._BUILTIN


def test_unknown_plugin_is_docker_s_message():
    with pytest.raises(NotFound, match='^plugin "nosuch" not found$'):
        plugin.get("nosuch")


def test_pools_of_a_request():
    cfgs = plugin.get("static").pools(plugin.PoolRequest(subnets=("10.3.0.0/24",)))
    assert [(c.subnet, c.gateway) for c in cfgs] == [("10.3.0.0/24", "10.3.0.1")]
    cfgs = plugin.get("default").pools(plugin.PoolRequest(subnets=("10.3.0.0/24",),
                                                          skip_gateway=True))
    assert cfgs[0].gateway is None
    with pytest.raises(InvalidArgument, match="has no option 'k'"):
        plugin.get("default").validate_options({"k": "v"})
