"""Every lab under labs/: `lab up -d && lab test && lab down`, in a throwaway node."""

from __future__ import annotations

import os

import pytest

from tests.labs.conftest import LABS

pytestmark = pytest.mark.root
# labs that make their own nodes and LANs: tests/labs/test_multihost_labs.py runs them
MULTIHOST = ("macvlan-two-hosts", "overlay-three-nodes", "swarm-services")
SHIPPED = sorted(d for d in os.listdir(LABS)
                 if os.path.isfile(os.path.join(LABS, d, "lab.yml")) and d not in MULTIHOST)


def test_the_expected_labs_are_shipped():
    for name in ("user-bridge", "net-alias-round-robin", "compose-web-db", "drivers-tour",
                 "dns-service"):
        assert name in SHIPPED
        assert os.path.isfile(os.path.join(LABS, name, "README.md"))
    for name in MULTIHOST:
        assert os.path.isfile(os.path.join(LABS, name, "lab.yml"))
        assert os.path.isfile(os.path.join(LABS, name, "README.md"))


@pytest.mark.parametrize("name", SHIPPED)
def test_lab_end_to_end(name, node, cli):
    path = os.path.join(LABS, name, "lab.yml")
    cli("lab", "-f", path, "config", "-q")
    try:
        up = cli("lab", "-f", path, "up", "-d", node=node.node_name)
        assert "Started" in up.stderr
        test = cli("lab", "-f", path, "test", node=node.node_name, check=False)
        assert test.returncode == 0, test.stdout + test.stderr
        assert " 0 failed" in test.stdout and "FAILED" not in test.stdout
    finally:
        cli("lab", "-f", path, "down", node=node.node_name)
    assert node.containers(all=True) == []
    assert sorted(n.name for n in node.networks()) == ["bridge", "host", "none"]
    assert cli("lab", "-f", path, "ps", "-a", node=node.node_name).stdout.count("\n") == 1   # header only
