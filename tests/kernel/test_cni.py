"""`netkit-cni` as a runtime calls it: CNI_* environment variables, the network
configuration on stdin, a result or the spec's error object on stdout.

The sandboxes are namespaces the test makes (`ip netns add`, as a runtime would), each with
a process of its own; the networks are in the test's throwaway node.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from netkit.specs import ContainerSpec, NetworkSpec
from tests.conftest import unique
from tests.kernel.helpers import addrs, ip, links, ping
from tests.kernel.test_attach_netns import caller_netns, in_ns, lookup   # noqa: F401 (fixture)

pytestmark = pytest.mark.root


@pytest.fixture
def cni(node, netkit_dirs):
    """Run the plugin in a new process: cni(command, netns=..., cid=..., **config)."""
    def call(command: str, *, netns: str = "", cid: str = "", ifname: str = "eth0",
             args: str = "", stdin: str | None = None, env: dict | None = None,
             **config) -> tuple[int, dict | None]:
        conf = {"cniVersion": "1.0.0", "name": "n1", "type": "netkit-cni",
                "node": node.node_name, "root": netkit_dirs[0], "run": netkit_dirs[1], **config}
        full = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
        full.update(CNI_COMMAND=command, CNI_CONTAINERID=cid, CNI_NETNS=netns,
                    CNI_IFNAME=ifname, CNI_ARGS=args, CNI_PATH="/nonexistent")
        full.update(env or {})
        proc = subprocess.run([sys.executable, "-m", "netkit.cni"], env=full, text=True,
                              capture_output=True, timeout=60,
                              input=json.dumps(conf) if stdin is None else stdin)
        out = json.loads(proc.stdout) if proc.stdout.strip() else None
        assert proc.returncode == (1 if out and "code" in out else 0), (proc.stdout, proc.stderr)
        return proc.returncode, out
    return call


@pytest.fixture
def n1(node):
    net = node.create_network(NetworkSpec("n1", subnets=("10.71.0.0/24",)))
    node.run(ContainerSpec(name="web", network="n1", detach=True))
    return net


def test_add_check_del(node, n1, cni, caller_netns):
    name, proc = caller_netns
    path = f"/run/netns/{name}"
    rc, res = cni("ADD", netns=path, cid="ctr1", args="IgnoreUnknown=1;K8S_POD_NAME=pod1",
                  runtimeConfig={"aliases": {"n1": ["api"]}})
    assert rc == 0 and res["cniVersion"] == "1.0.0"
    host_if, inner = res["interfaces"]
    assert inner["name"] == "eth0" and inner["sandbox"] == path
    assert inner["mac"] == links(name)["eth0"]["address"]
    assert host_if["name"] in links(node.node.netns)
    assert res["ips"] == [{"address": "10.71.0.3/24", "interface": 1, "gateway": "10.71.0.1"}]
    assert res["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.71.0.1"}]
    assert res["dns"] == {"nameservers": ["127.0.0.11"], "options": ["ndots:0"]}
    assert "10.71.0.3/24" in addrs(name, "eth0")
    assert "default via 10.71.0.1 dev eth0" in ip("route", netns=name)
    # its names in the embedded DNS, both ways
    assert ping(node, "web", "pod1") and ping(node, "web", "api")
    assert "10.71.0.2" in lookup(name, "web")
    assert in_ns(name, "ping", "-c", "1", "-W", "2", "10.71.0.2").returncode == 0
    # CHECK with the ADD result; a prevResult that disagrees; an unknown container
    assert cni("CHECK", netns=path, cid="ctr1", prevResult=res) == (0, None)
    bad = dict(res, ips=[dict(res["ips"][0], address="10.71.0.9/24")])
    rc, err = cni("CHECK", netns=path, cid="ctr1", prevResult=bad)
    assert rc == 1 and err["code"] == 103 and "10.71.0.9/24" in err["msg"]
    assert cni("CHECK", netns=path, cid="other", prevResult=res)[1]["code"] == 3
    assert cni("CHECK", netns=path, cid="ctr1")[1]["code"] == 7          # no prevResult
    # ADD again: refused; DEL: the interface goes, the process and the namespace stay
    assert cni("ADD", netns=path, cid="ctr1")[1]["code"] == 102
    assert cni("DEL", netns=path, cid="ctr1", prevResult=res) == (0, None)
    assert "eth0" not in links(name) and proc.poll() is None and os.path.exists(path)
    assert not ping(node, "web", "pod1")
    # CHECK after DEL fails; DEL is idempotent, also without CNI_NETNS
    assert cni("CHECK", netns=path, cid="ctr1", prevResult=res)[1]["code"] == 3
    assert cni("DEL", netns=path, cid="ctr1") == (0, None)
    assert cni("DEL", cid="ctr1") == (0, None)
    assert cni("DEL", cid="ctr1", network="no-such-network") == (0, None)
    assert node.system_check() == []


def test_errors_are_spec_objects(node, n1, cni, caller_netns):
    name, _ = caller_netns
    path = f"/run/netns/{name}"
    assert cni("VERSION", cniVersion="1.1.0") == (0, {"cniVersion": "1.1.0",
                                                      "supportedVersions": ["1.0.0", "1.1.0"]})
    assert cni("ADD", netns=path, cid="c", cniVersion="0.4.0")[1]["code"] == 1
    assert cni("ADD", netns=path, cid="c", stdin="{not json")[1]["code"] == 6
    assert cni("ADD", netns=path, cid="c", name="")[1]["code"] == 7
    assert cni("ADD", netns=path)[1]["code"] == 4                            # no CNI_CONTAINERID
    assert cni("ADD", netns="/run/netns/no-such-netns", cid="c")[1]["code"] == 4
    assert cni("BOGUS")[1]["code"] == 4
    rc, err = cni("ADD", netns=path, cid="c", network="no-such-network")
    assert err == {"cniVersion": "1.0.0", "code": 7, "msg": "network no-such-network not found"}
    assert cni("ADD", netns=path, cid="c", node="no-such-node")[1]["code"] == 7
    assert cni("ADD", netns=path, cid="c", ifname="bad/name")[1]["code"] == 7
    assert cni("ADD", netns=path, cid="c", args="IP=10.99.0.5")[1]["code"] == 7
    # the node's own namespace is never the caller's to give
    assert cni("ADD", netns=f"/run/netns/{node.node.netns}", cid="c")[1]["code"] == 4
    assert "eth0" not in links(name)
    # STATUS and GC are 1.1 commands
    assert cni("STATUS", cniVersion="1.1.0") == (0, None)
    assert cni("STATUS", cniVersion="1.1.0", network="gone")[1]["code"] == 50
    assert cni("STATUS")[1]["code"] == 1
    assert node.system_check() == []


def test_gc_keeps_only_valid_attachments(node, n1, cni):
    made = []
    try:
        for cid in ("keep", "stale"):
            name = unique("cni-")
            subprocess.run(["ip", "netns", "add", name], check=True)
            made.append(name)
            rc, res = cni("ADD", cniVersion="1.1.0", netns=f"/run/netns/{name}", cid=cid,
                          args=f"K8S_POD_NAME={cid}")
            assert rc == 0 and res["cniVersion"] == "1.1.0"
        valid = [{"containerID": "keep", "ifname": "eth0"}]
        assert cni("GC", cniVersion="1.1.0", **{"cni.dev/valid-attachments": valid}) == (0, None)
        assert "eth0" in links(made[0]) and "eth0" not in links(made[1])
        assert ping(node, "web", "keep") and not ping(node, "web", "stale")
        assert cni("DEL", cid="keep", cniVersion="1.1.0") == (0, None)
        assert "eth0" not in links(made[0])
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], check=False)
    assert node.system_check() == []
