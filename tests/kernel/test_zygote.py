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
from netkit.kernel import spawn
from netkit.kernel.errors import ExecFailed
from netkit.kernel.zygote import Zygote
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


def test_a_new_container_resolves_names_from_its_first_instant(node, net):
    """The agent brings the resolver up to date with a new container as it starts it: a
    query made at the command's first instant is answered (no retry). That the init
    execs only after the update is shown at the Zygote level below (the hold test):
    here the update is usually quicker than dig's start-up either way."""
    a = run(node, "web")
    ip = a.endpoints[0].ipv4.split("/")[0]
    for i in range(5):
        name = f"q{i}"
        c = run(node, name, "sh", "-c", f"dig +short +tries=1 +time=2 web {name}")
        mine = c.endpoints[0].ipv4.split("/")[0]
        assert node.wait(name) == 0
        deadline = time.monotonic() + 5
        while not (lines := [e.text.strip() for e in node.logs(name)]) and time.monotonic() < deadline:
            time.sleep(0.05)                            # the agent drains its output
        assert lines == [ip, mine], lines


# -- the Zygote API in this process (its inits are this process's children) ----------------

@pytest.fixture
def zygote():
    z = Zygote("test")
    yield z
    pid = z.pid
    z.close()
    if pid is not None:
        os.waitpid(pid, 0)                              # it exits on EOF: ours to reap


def box(node) -> spawn.Sandbox:
    return spawn.Sandbox(netns=node.node.netns)        # the throwaway node's netns


def test_zygote_inits_are_the_callers_children(node, zygote):
    pid, start = zygote.start_init(box(node), ["sh", "-c", "exit 3"])
    assert start > 0 and zygote.pid is not None and pid != zygote.pid
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 3


def test_the_init_execs_only_after_hold_and_not_at_all_if_it_fails(node, zygote, tmp_path):
    flag, marker = tmp_path / "held", tmp_path / "ran"
    seen = []

    def hold(pid: int) -> None:
        seen.append(os.path.exists(f"/proc/{pid}"))     # made, not yet exec'd
        time.sleep(0.2)
        flag.write_text("x")

    pid, _ = zygote.start_init(box(node), ["sh", "-c", f"test -e {flag}"], hold=hold)
    assert seen == [True]
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0

    def fail(pid: int) -> None:
        seen.append(pid)
        raise RuntimeError("resolver down")

    with pytest.raises(RuntimeError, match="resolver down"):
        zygote.start_init(box(node), ["touch", str(marker)], hold=fail)
    with pytest.raises(ChildProcessError):
        os.waitpid(seen[-1], os.WNOHANG)                # reaped already
    assert not marker.exists()
    with pytest.raises(ExecFailed) as err:
        zygote.start_init(box(node), ["no-such-command"], hold=lambda pid: None)
    assert err.value.exit_code == 127


def test_a_hung_zygote_is_given_up_and_the_caller_forks_the_init(node, zygote, caplog):
    pid, _ = zygote.start_init(box(node), ["true"])
    os.waitpid(pid, 0)
    assert zygote.sock is not None and zygote.pid is not None
    zygote.sock.settimeout(0.5)
    hung = zygote.pid
    os.kill(hung, signal.SIGSTOP)
    try:
        pid, _ = zygote.start_init(box(node), ["sh", "-c", "exit 5"])
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 5
        assert zygote.broken and zygote.sock is None
        assert "forked by the agent itself: the zygote does not answer" in caplog.text
    finally:
        os.kill(hung, signal.SIGKILL)
        os.waitpid(hung, 0)
