"""IPAM plugins (`--ipam-driver`, `--ipam-opt`) end to end in a throwaway node: the
built-in `static` one, and `acmeipam`, a third-party plugin installed by pip from
tests/fixtures/acme-netkit through the `netkit.ipam` entry point group."""

from __future__ import annotations

import json

import pytest

from netkit.errors import InvalidArgument, NotFound
from netkit.specs import ContainerSpec, NetworkSpec
from tests.kernel.test_third_party_driver import acme, plugin_path  # noqa: F401  (fixtures)

pytestmark = pytest.mark.root


def _addr(eng, name: str, net: str) -> str:
    ctr = eng.container(name)
    return next(ep.ipv4 for ep in ctr.endpoints if ep.network_name == net)


def test_static_ipam_hands_out_only_addresses_asked_for(node):
    eng = node
    net = eng.create_network(NetworkSpec(name="st", subnets=("10.91.0.0/24",),
                                         ipam_driver="static"))
    assert (net.ipam_driver, net.ipam_options) == ("static", {})
    assert eng.network("st").ipam_driver == "static"                 # persisted
    ipam = eng.inspect_networks(["st"])[0]["IPAM"]
    assert ipam["Driver"] == "static" and ipam["Options"] == {}
    assert ipam["Config"][0]["Subnet"] == "10.91.0.0/24"

    eng.run(ContainerSpec(name="s1", command=("sleep", "300"),
                          network="st", ipv4="10.91.0.50", detach=True))
    assert _addr(eng, "s1", "st") == "10.91.0.50/24"
    with pytest.raises(InvalidArgument, match='ipam driver "static" of network st hands out no '
                                              "IPv4 address: give one with --ip"):
        eng.run(ContainerSpec(name="s2", command=("sleep", "300"), network="st", detach=True))
    assert [c.name for c in eng.containers()] == ["s1"]               # rolled back
    eng.remove_container("s1", force=True)
    eng.run(ContainerSpec(name="s3", command=("sleep", "300"),
                          network="st", ipv4="10.91.0.50", detach=True))   # released
    eng.remove_container("s3", force=True)
    eng.remove_network("st")


def test_default_plugin_and_unknown_plugins(node):
    eng = node
    net = eng.create_network(NetworkSpec(name="d1"))
    assert net.ipam_driver == "default"
    assert eng.inspect_networks(["d1"])[0]["IPAM"]["Driver"] == "default"
    with pytest.raises(NotFound, match='^plugin "nosuchipam" not found$'):
        eng.create_network(NetworkSpec(name="d2", ipam_driver="nosuchipam"))
    with pytest.raises(InvalidArgument, match="ipam driver 'default' has no option 'x'"):
        eng.create_network(NetworkSpec(name="d2", ipam_options={"x": "1"}))
    assert {n.name for n in eng.networks()} == {"bridge", "host", "none", "d1"}
    eng.remove_network("d1")


def test_a_third_party_ipam_plugin_end_to_end(acme):  # noqa: F811
    acme("network", "create", "--ipam-driver", "acmeipam", "--ipam-opt", "offset=20",
         "--subnet", "10.92.0.0/24", "ac")
    acme("run", "-d", "--name", "a1", "--network", "ac", "sleep", "300")
    acme("run", "-d", "--name", "a2", "--network", "ac", "--ip", "10.92.0.5", "sleep", "300")
    acme("run", "-d", "--name", "a3", "--network", "ac", "sleep", "300")
    ips = {n: acme("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                   n).stdout.strip() for n in ("a1", "a2", "a3")}
    assert ips == {"a1": "10.92.0.21", "a2": "10.92.0.5", "a3": "10.92.0.22"}
    assert acme("exec", "a1", "ping", "-c", "1", "-W", "2", "a3").returncode == 0
    ipam = json.loads(acme("network", "inspect", "ac").stdout)[0]["IPAM"]
    assert (ipam["Driver"], ipam["Options"]) == ("acmeipam", {"offset": "20"})
    acme("rm", "-f", "a1")
    acme("run", "-d", "--name", "a4", "--network", "ac", "sleep", "300")
    assert acme("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                "a4").stdout.strip() == "10.92.0.21"                  # released, taken again

    proc = acme("network", "create", "--ipam-driver", "acmeipam", "--ipam-opt", "offset=x", "b",
                check=False)
    assert proc.returncode == 1 and "acmeipam: offset must be a number, not 'x'" in proc.stderr
    proc = acme("network", "create", "--ipam-driver", "notanipam", "b", check=False)
    assert 'plugin "notanipam" is not an IPAM driver' in proc.stderr
    proc = acme("network", "create", "--ipam-driver", "nosuchipam", "b", check=False)
    assert proc.stderr.strip() == 'Error: plugin "nosuchipam" not found'
