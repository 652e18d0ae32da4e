"""netkit as a library (issue 16): one Engine shared by threads, fork(), a closed Engine,
NETKIT_ROOT / NETKIT_RUN, system_check right after removals. Every test runs in a
throwaway simulated node (the `node` fixture)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

import netkit
from netkit import ContainerSpec, NetkitError, NetworkSpec
from netkit.engine import Engine

pytestmark = pytest.mark.root

SLEEP = ("sleep", "infinity")


def test_threads_share_one_engine(node):
    node.create_network(NetworkSpec("app", subnets=("10.93.0.0/24",)))
    errors: list[BaseException] = []
    ips: list[str] = []
    start = threading.Barrier(4)

    def work(i: int) -> None:
        try:
            start.wait()
            for j in range(3):
                name = f"t{i}c{j}"
                ctr, _ = node.run(ContainerSpec(name=name, network="app", detach=True,
                                                command=SLEEP))
                ips.append(ctr.endpoints[0].ipv4_address)
                assert node.container(name).state.value == "running"
                node.networks()
                node.remove_container(name, force=True)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert len(ips) == 12
    assert node.containers(all=True) == []
    assert node.system_check() == []


def test_a_waiting_thread_does_not_hold_up_the_others(node):
    node.create_network(NetworkSpec("app"))
    node.run(ContainerSpec(name="long", network="app", detach=True, command=("sleep", "30")))
    codes: list[int] = []
    waiter = threading.Thread(target=lambda: codes.append(node.wait("long")))
    waiter.start()
    node.run(ContainerSpec(name="other", network="app", detach=True, command=SLEEP))
    node.kill("long")
    waiter.join(timeout=60)
    assert codes == [137]
    node.remove_container("other", force=True)
    node.remove_container("long", force=True)


CHILD = """
import os, sys
from netkit import ContainerSpec, Engine
name, root, run, fd = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
parent = Engine(name, root=root, run=run)
parent.run(ContainerSpec(name="before", network="app", detach=True, command=("sleep", "infinity")))
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    try:
        inherited = parent.container("before").name        # the parent's Engine, in the child
        child = Engine(name, root=root, run=run)
        ctr, _ = child.run(ContainerSpec(name="child", network="app", detach=True,
                                         command=("sleep", "infinity")))
        code, out = child.exec_output("child", ["ip", "-o", "-4", "addr", "show", "eth0"])
        child.remove_container("child", force=True)
        child.close()
        os.write(w, f"ok {inherited} {code} {ctr.endpoints[0].ipv4_address in out}".encode())
        os._exit(0)
    except BaseException as exc:
        os.write(w, f"fail {type(exc).__name__}: {exc}".encode())
        os._exit(1)
os.close(w)
_, status = os.waitpid(pid, 0)
said = os.read(r, 4096).decode()
parent.run(ContainerSpec(name="after", network="app", detach=True, command=("sleep", "infinity")))
names = sorted(c.name for c in parent.containers())
for n in names:
    parent.remove_container(n, force=True)
print(os.waitstatus_to_exitcode(status), said, names)
"""


def test_a_forked_child_works_and_the_parent_goes_on(node, netkit_dirs):
    node.create_network(NetworkSpec("app"))
    node.containers()                          # the parent process's engine has been used
    proc = subprocess.run([sys.executable, "-c", CHILD, node.node_name, *netkit_dirs, "0"],
                          capture_output=True, text=True, timeout=240,
                          env=dict(os.environ, PYTHONPATH=os.getcwd()))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "ok", "before", "0", "True", "['after',", "'before']"], \
        proc.stdout + proc.stderr
    assert node.containers(all=True) == []


def test_a_closed_engine_says_so(host, netkit_dirs):
    name = f"{node_name()}"
    host.create_node(name)
    try:
        engine = Engine(name, root=netkit_dirs[0], run=netkit_dirs[1])
        engine.networks()
        engine.close()
        engine.close()                         # idempotent
        for call in (engine.networks, lambda: engine.create_network(NetworkSpec("x")),
                     lambda: engine.wait("x"), engine.system_check):
            with pytest.raises(NetkitError, match="^this Engine is closed: make a new one$"):
                call()
        with Engine(name, root=netkit_dirs[0], run=netkit_dirs[1]) as again:
            assert {n.name for n in again.networks()} >= {"bridge", "host", "none"}
        with pytest.raises(NetkitError, match="closed"):
            again.containers()
    finally:
        host.remove_node(name, force=True)


def node_name() -> str:
    from tests.conftest import unique
    return unique()


def test_engine_reads_netkit_root_and_run_from_the_environment(node, netkit_dirs, monkeypatch):
    monkeypatch.setenv("NETKIT_ROOT", netkit_dirs[0])
    monkeypatch.setenv("NETKIT_RUN", netkit_dirs[1])
    with Engine(node.node_name) as engine:
        assert (engine.root, engine.run_root) == netkit_dirs
        node.create_network(NetworkSpec("seen"))
        assert "seen" in {n.name for n in engine.networks()}


def test_system_check_right_after_removals_is_clean(node):
    node.create_network(NetworkSpec("app"))
    for i in range(3):
        node.run(ContainerSpec(name=f"c{i}", network="app", detach=True, command=SLEEP))
    for i in range(3):
        node.remove_container(f"c{i}", force=True)
    assert node.system_check() == []
    node.remove_network("app")
    assert node.system_check() == []


def test_public_names():
    for name in ("Engine", "Capture", "WaitTimeout", "ContainerSpec", "NetworkSpec",
                 "EndpointSpec", "NetkitError", "InvalidArgument", "NotFound", "Conflict"):
        assert name in netkit.__all__ and getattr(netkit, name) is not None
    from netkit.capture.session import Capture, WaitTimeout
    assert (netkit.Capture, netkit.WaitTimeout, netkit.Engine) == (Capture, WaitTimeout, Engine)
    missing = [n for n, fn in vars(Engine).items()
               if not n.startswith("_") and callable(fn) and not (fn.__doc__ or "").strip()]
    assert missing == [], f"public Engine methods without a docstring: {missing}"
