"""Container inits are cloned by the node agent's zygote (netkit/kernel/zygote.py).

The init of each start is the agent's own child (CLONE_PARENT), pid 1 of
its PID namespace, made from a small process that holds none of the
agent's per-container fds; a zygote that died is replaced at the next start,
and exec errors still come back with Docker's codes and words.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from netkit.agent import client as agent_client
from netkit.errors import NetkitError
from netkit.specs import ContainerSpec, NetworkSpec
from tests.kernel.helpers import processes_with

pytestmark = pytest.mark.root


@pytest.fixture
def net(node):
    return node.create_network(NetworkSpec("zn", subnets=("10.62.0.0/24",)))


def run(node, name: str, *command: str):
    c, _ = node.run(ContainerSpec(name=name, network="zn", command=command or ("sleep", "infinity"),
                                  detach=True))
    return c


def status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def zygotes(node) -> list[int]:
    """The node's zygote processes (by their argv: module and the node's run dir)."""
    return processes_with(b"netkit.kernel.zygote", node.paths.run.encode() + b" ")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_inits_are_the_agents_children_and_pid_1(node, net):
    agent = node.agent_status()["pid"]
    ctrs = [run(node, f"c{i}") for i in range(3)]
    [zygote] = zygotes(node)
    assert int(status(zygote)["PPid"]) == agent
    for c in ctrs:
        st = status(node.container(c.name).pid)
        assert int(st["PPid"]) == agent                 # cloned with CLONE_PARENT
        assert st["NSpid"].split()[-1] == "1"           # pid 1 of its own PID namespace
        assert os.readlink(f"/proc/{c.pid}/ns/pid") != os.readlink(f"/proc/{zygote}/ns/pid")
    # the zygote holds none of the containers' fds (the agent holds their log FIFOs)
    held = fd_count(zygote)
    for i in range(3, 8):
        run(node, f"c{i}")
    assert fd_count(zygote) == held <= 6
    assert fd_count(agent) > held
    # the agent reaps what the zygote cloned: exit codes are known
    run(node, "quick", "sh", "-c", "exit 7")
    assert node.wait("quick") == 7
    assert node.container("quick").exit_code == 7


def test_exec_errors_keep_dockers_codes_and_words(node, net):
    with pytest.raises(NetkitError) as err:
        run(node, "nope", "no-such-command")
    assert err.value.exit_code == 127
    assert 'exec: "no-such-command": executable file not found in $PATH' in str(err.value)
    with pytest.raises(NetkitError) as err:
        run(node, "dir", "/etc")
    assert err.value.exit_code == 126 and "permission denied" in str(err.value)
    assert run(node, "fine").pid


def test_a_killed_zygote_is_replaced_at_the_next_start(node, net):
    run(node, "c0")
    [old] = zygotes(node)
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{old}") and time.monotonic() < deadline:
        time.sleep(0.02)                                # reaped by the agent
    c = run(node, "c1")
    assert node.exec_output("c1", ["true"])[0] == 0
    [new] = zygotes(node)
    assert new != old and int(status(c.pid)["PPid"]) == node.agent_status()["pid"]

def test_the_zygote_ends_with_its_agent(node, net):
    run(node, "c0")
    [zygote] = zygotes(node)
    agent_client.stop(node.paths.run)                   # SIGTERM: containers keep running
    deadline = time.monotonic() + 5
    while zygotes(node) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert zygotes(node) == []
    assert os.path.exists(f"/proc/{node.container('c0').pid}")
    assert run(node, "c1").pid                          # a new agent, a new zygote
    assert len(zygotes(node)) == 1
