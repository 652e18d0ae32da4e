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


# -- a real runtime: Podman 4.3 with its CNI backend, inside the test's node -------------------
PODMAN_ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")


@pytest.fixture
def podman(node, netkit_dirs, tmp_path):
    """podman(*args) -> CompletedProcess: Podman with its CNI backend (network_backend
    "cni", the conflists and a netkit-cni wrapper in the test's directory), runc with
    cgroupfs, every bit of its state under a temporary directory, started in the node's
    netns (nsenter --net) so nothing lands in the host's. Containers and state are removed
    afterwards, also on failure."""
    import tempfile

    import netkit
    from bench import conmon
    if (missing := conmon.available()) is not None:
        pytest.skip(f"needs {missing} (Debian: podman conmon runc busybox-static)")
    tmp = tempfile.mkdtemp(prefix="netkit-cni-podman.")
    confdir, bindir, rootfs = f"{tmp}/net.d", f"{tmp}/bin", f"{tmp}/rootfs"
    for d in (confdir, bindir):
        os.makedirs(d)
    conmon._rootfs(rootfs)                     # busybox's sh and sleep
    for applet in ("ping", "nslookup", "cat", "ip"):
        os.symlink("busybox", f"{rootfs}/bin/{applet}")
    src = os.path.dirname(os.path.dirname(netkit.__file__))
    with open(f"{bindir}/netkit-cni", "w") as f:
        f.write(f"#!/bin/sh\nPYTHONPATH={src} exec {sys.executable} -m netkit.cni\n")
    os.chmod(f"{bindir}/netkit-cni", 0o755)
    with open(f"{tmp}/containers.conf", "w") as f:
        f.write(f'[network]\nnetwork_backend = "cni"\nnetwork_config_dir = "{confdir}"\n'
                f'cni_plugin_dirs = ["{bindir}"]\n'
                # only netkit's resolver: Podman would add the machine's own servers
                '[containers]\ndns_servers = ["127.0.0.11"]\n')

    def conflist(network: str) -> None:
        conf = {"cniVersion": "1.0.0", "name": network, "plugins": [
            {"type": "netkit-cni", "network": network, "node": node.node_name,
             "root": netkit_dirs[0], "run": netkit_dirs[1], "capabilities": {"aliases": True}}]}
        with open(f"{confdir}/{network}.conflist", "w") as f:
            json.dump(conf, f)

    base = ["nsenter", f"--net=/run/netns/{node.node.netns}", "podman", "--root", f"{tmp}/root",
            "--runroot", f"{tmp}/runroot", "--tmpdir", f"{tmp}/tmp", "--storage-driver", "vfs",
            "--cgroup-manager", "cgroupfs", "--events-backend", "none", "--runtime", "runc"]
    env = dict(os.environ, CONTAINERS_CONF=f"{tmp}/containers.conf")

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(base + list(args), env=env, capture_output=True, text=True,
                              timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} -> {proc.returncode}\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def container(name: str, network: str, *cmd: str, detach: bool = False,
                  aliases: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        opts = ["-d"] if detach else []
        for alias in aliases:
            opts += ["--network-alias", alias]
        return run("run", *opts, "--name", name, "--network", network, "--cap-add", "NET_RAW",
                   *PODMAN_ULIMITS, "--rootfs", rootfs, *cmd, check=False)

    run.conflist = conflist            # type: ignore[attr-defined]
    run.container = container          # type: ignore[attr-defined]
    try:
        yield run
    finally:
        run("rm", "-fa", "-t", "0", check=False)
        conmon.remove_state(tmp)

def test_podman_cni_backend(node, podman):
    node.create_network(NetworkSpec("pnet", subnets=("10.72.0.0/24",)))
    node.run(ContainerSpec(name="web", network="pnet", detach=True))       # a netkit container
    podman.conflist("pnet")
    first = podman.container("pa", "pnet", "sleep", "300", detach=True, aliases=("alpha",))
    assert first.returncode == 0, first.stderr
    out = podman.container("pb", "pnet", "sh", "-c",
                           "cat /etc/resolv.conf; ip -4 -o addr show dev eth0; "
                           "nslookup pa 127.0.0.11 && nslookup alpha 127.0.0.11 && "
                           "ping -c 1 -W 3 pa && ping -c 1 -W 3 alpha && "
                           "ping -c 1 -W 3 web && echo ALL-OK")
    assert out.returncode == 0 and "ALL-OK" in out.stdout, out.stdout + out.stderr
    assert out.stdout.startswith("nameserver 127.0.0.11\n")
    assert "10.72.0.3" in out.stdout                  # pa's address, through netkit's DNS
    # netkit sees both (pb exited: podman has run DEL for it) and reaches pa by name
    names = {c.name for c in node.containers()}
    assert "pa" in names and "pb" not in names
    assert ping(node, "web", "pa") and ping(node, "web", "alpha")
    assert node.container("pa").id == podman("inspect", "-f", "{{.Id}}", "pa").stdout.strip()
    podman("rm", "-f", "-t", "0", "pa")
    assert {c.name for c in node.containers()} == {"web"}
    assert node.system_check() == []
