"""A third-party driver, installed from its own package through the `netkit.drivers`
entry point, is asked everything as a built-in one is.

tests/fixtures/acme-netkit is such a package: `acmebridge` subclasses the
bridge driver under another name. pip installs it into a temporary directory
that only the CLI processes of this test see (PYTHONPATH), as a user's
`pip install acme-netkit` would make it visible to netkit. `system check`
and `system prune` ask the driver which kernel objects are its own and
whether they are healthy, so its live bridge is neither drift nor an orphan,
and a broken one is reported. It passes the driver conformance kit too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from netkit.testing.conformance import DriverConformance
from tests.kernel.helpers import ip, links

pytestmark = pytest.mark.root
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "acme-netkit"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> str:
    """acme-netkit really installed by pip (offline: its build backend is in its tree)."""
    target = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index",
                           "--no-deps", "--no-build-isolation", "--target", str(target),
                           str(FIXTURE)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (target / "acme_netkit-1.0.dist-info" / "entry_points.txt").exists()
    return str(target)


@pytest.fixture
def acme(plugin_path, netkit_dirs, node):
    """`netkit --node N ...` in a process that sees the installed package."""
    path = os.pathsep.join(p for p in (plugin_path, os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, NETKIT_ROOT=netkit_dirs[0], NETKIT_RUN=netkit_dirs[1], PYTHONPATH=path)
    env.pop("NETKIT_NODE", None)

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "netkit", "--node", node.node_name, *args],
                              capture_output=True, text=True, env=env, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc
    yield run
    run("system", "reset", "-f", check=False)     # the plugin's networks need the plugin


def test_a_bridge_subclass_is_checked_and_pruned_as_its_own(acme, node):
    net_id = acme("network", "create", "-d", "acmebridge", "--subnet", "10.77.0.0/24",
                  "acme1").stdout.strip()
    bridge = f"br-{net_id[:12]}"
    assert "acmebridge" in acme("network", "ls").stdout
    acme("run", "-d", "--name", "a1", "--network", "acme1", "sleep", "300")
    acme("run", "-d", "--name", "a2", "--network", "acme1", "sleep", "300")
    assert acme("exec", "a2", "ping", "-c", "1", "-W", "2", "a1").returncode == 0   # DNS too
    assert links(node.node.netns)[bridge]["ifalias"] == "netkit"    # tagged as the built-in

    assert acme("system", "check").stdout == "No drift.\n"
    assert acme("system", "prune", "-f").stdout == ""                 # nothing to remove
    assert bridge in links(node.node.netns)
    assert acme("exec", "a2", "ping", "-c", "1", "-W", "2", "a1").returncode == 0

    ip("link", "set", bridge, "down", netns=node.node.netns)          # broken behind its back
    proc = acme("system", "check", check=False)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [f"network acme1: bridge {bridge} is down"]
    ip("link", "set", bridge, "up", netns=node.node.netns)
    assert acme("system", "check").stdout == "No drift.\n"

    acme("rm", "-f", "a1", "a2")
    ip("link", "del", bridge, netns=node.node.netns)                  # gone behind its back
    proc = acme("system", "check", check=False)
    assert proc.stdout.splitlines() == [f"network acme1: bridge {bridge} is missing"]
    acme("network", "rm", "acme1")                                    # CNI DEL: gone is fine
    assert acme("system", "check").stdout == "No drift.\n"


def test_an_entry_point_that_is_no_driver_is_refused(acme):
    proc = acme("network", "create", "-d", "notadriver", "x", check=False)
    assert proc.returncode != 0
    assert 'plugin "notadriver" is not a network driver' in proc.stderr
    proc = acme("network", "create", "-d", "nosuchdriver", "x", check=False)
    assert 'plugin "nosuchdriver" not found' in proc.stderr


class TestAcmeBridgeConformance(DriverConformance):
    """The driver conformance kit, run as acme-netkit's author would run it."""

    driver = "acmebridge"
    subnet = "10.197.0.0/24"

    @pytest.fixture(autouse=True)
    def installed(self, plugin_path, monkeypatch):
        """acme-netkit visible in this process and in the node agents it starts."""
        monkeypatch.syspath_prepend(plugin_path)
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
            p for p in (plugin_path, os.environ.get("PYTHONPATH")) if p))


class TestAcmeIpamConformance(TestAcmeBridgeConformance):
    """acme-netkit's IPAM plugin `acmeipam` through the kit, on netkit's bridge driver."""

    driver = "bridge"
    ipam_driver = "acmeipam"
    ipam_options = {"offset": "20"}
