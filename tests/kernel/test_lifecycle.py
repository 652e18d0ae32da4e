"""Docker's container lifecycle through the node agent, against the kernel.

create / start / stop / restart / kill / wait / logs / rename, restart policies
with back-off, --rm, the agent and the resolver killed and healing, and what a
container is made of (pid namespace, its own mount namespace, no resident
process of its own).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from netkit.agent import client as agent_client
from netkit.errors import Conflict, InvalidArgument, NetkitError
from netkit.model import State
from netkit.specs import ContainerSpec, NetworkSpec
from tests.kernel.helpers import processes_with

pytestmark = pytest.mark.root

TRAP = "trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.05; done"


@pytest.fixture
def net(node):
    return node.create_network(NetworkSpec("n1", subnets=("10.61.0.0/24",)))


def until(fn, timeout: float = 10.0, step: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def resolve(node, ctr: str, name: str) -> list[str]:
    code, text = node.exec_output(ctr, ["dig", "+short", "+tries=1", "+time=1", name])
    return text.split() if code == 0 else []


def sh(node, name: str, script: str, **kw) -> "object":
    c, _ = node.run(ContainerSpec(name=name, network="n1", command=("sh", "-c", script),
                                  detach=True, **kw))
    return c


def trapped(node, name: str) -> None:
    """Until the script's `echo ready` (after its traps): the init is pid 1 of its pid
    namespace, so a signal it has no handler for yet is dropped, as in Docker."""
    assert until(lambda: [e.text for e in node.logs(name)][:1] == ["ready\n"], 5)


def test_create_then_start_allocates_at_start(node, net):
    c = node.create_container(ContainerSpec(name="c1", network="n1", aliases=("web",),
                                            command=("sleep", "infinity")))
    assert c.state is State.CREATED and c.endpoints == ()
    info = node.inspect_containers(["c1"])[0]
    assert info["State"]["Status"] == "created" and info["State"]["Pid"] == 0
    assert info["NetworkSettings"]["Networks"]["n1"]["IPAddress"] == ""
    assert info["NetworkSettings"]["Networks"]["n1"]["Aliases"] == ["web"]
    assert [x.state for x in node.containers(all=True)] == [State.CREATED]
    assert node.containers() == []
    with pytest.raises(Conflict, match="is not running"):
        node.exec("c1", ["true"])
    started, code = node.start("c1")
    assert code is None
    assert started.state is State.RUNNING and started.endpoints[0].ipv4 == "10.61.0.2/24"
    info = node.inspect_containers(["c1"])[0]
    assert info["State"]["Running"] and info["State"]["Pid"] > 0
    assert info["State"]["StartedAt"] > "2000" and info["State"]["FinishedAt"].startswith("0001")
    node.run(ContainerSpec(name="client", network="n1", command=("sleep", "infinity"), detach=True))
    assert resolve(node, "client", "web") == ["10.61.0.2"]


def test_a_sandbox_without_a_command_is_created_with_its_networks_joined(node, net):
    """No process: Docker's Created everywhere (ps, inspect, info, events), while its
    networks stay joined (its name resolves, it can be exec'd into) until it stops."""
    from netkit.cli.render import container_row, match_container
    t0 = time.time()
    box, code = node.run(ContainerSpec(name="box", network="n1", detach=True))
    assert code is None and box.state is State.RUNNING and box.status is State.CREATED
    info = node.inspect_containers(["box"])[0]["State"]
    assert (info["Status"], info["Running"], info["Pid"]) == ("created", False, 0)
    row = container_row(node.container("box"))
    assert (row["Status"], row["State"]) == ("Created", "created")
    assert match_container(node.container("box"), {"status": ["created"]})
    assert not match_container(node.container("box"), {"status": ["running"]})
    assert [c.name for c in node.containers()] == ["box"]       # listed while its networks are joined
    node.run(ContainerSpec(name="peer", network="n1", command=("sleep", "infinity"), detach=True))
    assert resolve(node, "peer", "box") == [box.endpoints[0].ipv4.split("/")[0]]
    assert node.exec("box", ["ping", "-c1", "-W2", "peer"]) == 0
    node.stop("box")
    assert node.container("box").status is State.EXITED and not node.container("box").endpoints
    node.remove_container("box")
    got = [e.action for e in node.events(t0, time.time(), ["container=box"])]
    assert got == ["create", "destroy"]                          # no start, stop or die


def test_stop_leaves_networks_and_start_rejoins(node, net):
    c = sh(node, "c1", TRAP, aliases=("api",), ipv4="10.61.0.50")
    dyn = sh(node, "c2", TRAP, aliases=("dyn",))
    client = sh(node, "client", "sleep infinity")
    assert resolve(node, "client", "api") == ["10.61.0.50"]
    stopped = node.stop("c1", timeout=5)
    assert stopped.state is State.EXITED and stopped.exit_code == 0 and stopped.endpoints == ()
    assert resolve(node, "client", "api") == [] and resolve(node, "client", "c1") == []
    info = node.inspect_containers(["c1"])[0]
    assert info["State"]["Status"] == "exited" and info["State"]["FinishedAt"] > "2000"
    assert info["NetworkSettings"]["Networks"]["n1"]["IPAMConfig"]["IPv4Address"] == "10.61.0.50"
    # a dynamic address goes back to the pool: the next container gets it
    dyn_ip = dyn.endpoints[0].ipv4
    node.stop("c2", timeout=5)
    again = sh(node, "c3", "sleep infinity")
    assert again.endpoints[0].ipv4 == dyn_ip
    # start: the same networks, aliases and static address
    restarted, _ = node.start("c1")
    assert restarted.endpoints[0].ipv4 == "10.61.0.50/24"
    assert until(lambda: resolve(node, "client", "api") == ["10.61.0.50"], 3)
    assert client.state is State.RUNNING


def test_stop_escalates_to_sigkill_after_the_timeout(node, net):
    sh(node, "stubborn", "trap '' TERM; while :; do sleep 0.05; done")
    t0 = time.monotonic()
    c = node.stop("stubborn", timeout=1)
    assert 0.9 < time.monotonic() - t0 < 5
    assert c.exit_code == 137


def test_stop_timeout_minus_one_waits_as_long_as_it_takes(node, net):
    c = sh(node, "slow", "trap 'sleep 1.5; exit 9' TERM; echo ready; while :; do sleep 0.05; done")
    assert until(lambda: [e.text for e in node.logs("slow")] == ["ready\n"], 5)
    t0 = time.monotonic()
    assert node.stop("slow", timeout=-1).exit_code == 9       # not SIGKILLed at once
    assert time.monotonic() - t0 >= 1.4


def test_stop_signal_option(node, net):
    sh(node, "c1", "trap 'exit 7' USR1; trap '' TERM; echo ready; while :; do sleep 0.05; done",
       stop_signal="SIGUSR1")
    trapped(node, "c1")
    assert node.stop("c1", timeout=5).exit_code == 7
    assert node.inspect_containers(["c1"])[0]["Config"]["StopSignal"] == "SIGUSR1"


def test_kill_wait_and_restart(node, net):
    sh(node, "c1", "trap 'echo usr1; exit 5' USR1; echo ready; while :; do sleep 0.05; done")
    trapped(node, "c1")
    node.kill("c1", "USR1")
    assert node.wait("c1") == 5
    assert node.container("c1").state is State.EXITED
    assert node.wait("c1") == 5                        # already exited: at once
    with pytest.raises(Conflict, match="is not running"):
        node.kill("c1", "KILL")
    with pytest.raises(InvalidArgument, match="Invalid signal"):
        node.kill("c1", "NOPE")
    first = node.inspect_containers(["c1"])[0]["State"]["StartedAt"]
    node.restart("c1", timeout=1)
    c = node.container("c1")
    assert c.state is State.RUNNING and node.inspect_containers(["c1"])[0]["State"]["StartedAt"] > first


def test_restart_policy_on_failure_with_limit(node, net):
    sh(node, "c1", "echo run; exit 3", restart="on-failure:2")
    c = until(lambda: (x := node.container("c1")).state is State.EXITED and x.restart_count == 2 and x, 15)
    assert c and c.exit_code == 3
    time.sleep(1.0)                                    # no third restart
    c = node.container("c1")
    assert c.restart_count == 2 and c.state is State.EXITED
    assert [e.text for e in node.logs("c1")] == ["run\n"] * 3
    info = node.inspect_containers(["c1"])[0]
    assert info["RestartCount"] == 2
    assert info["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}


def test_restart_policy_on_failure_does_not_restart_success(node, net):
    sh(node, "c1", "exit 0", restart="on-failure")
    c = until(lambda: (x := node.container("c1")).state is State.EXITED and x, 5)
    time.sleep(0.5)
    assert node.container("c1").restart_count == 0 and c.exit_code == 0


def test_restart_always_backs_off(node, net):
    sh(node, "c1", "date +%s.%N", restart="always")
    assert until(lambda: node.container("c1").restart_count >= 4, 15)
    node.stop("c1", timeout=1)
    times = [float(e.text) for e in node.logs("c1")][:5]
    gaps = [b - a for a, b in zip(times, times[1:])]
    # 100 ms, 200 ms, 400 ms, 800 ms (+ start cost); each at least the back-off, doubling
    for gap, want in zip(gaps, (0.1, 0.2, 0.4, 0.8)):
        assert want <= gap < want + 0.5, gaps
    count = node.container("c1").restart_count
    time.sleep(0.5)
    assert node.container("c1").restart_count == count    # stop ends the policy
    assert node.container("c1").state is State.EXITED


def test_restart_unless_stopped_and_status_text(node, net):
    sh(node, "c1", "sleep 0.2; exit 1", restart="unless-stopped")
    assert until(lambda: node.container("c1").restart_count >= 1, 5)
    assert until(lambda: node.container("c1").state is State.RESTARTING, 5, 0.005)
    from netkit.cli.render import container_status
    assert until(lambda: container_status(node.container("c1")).startswith(("Restarting (1)", "Up ")), 3)
    node.stop("c1", timeout=1)
    assert node.container("c1").state is State.EXITED
    assert container_status(node.container("c1")).startswith("Exited (")


def test_auto_remove_detached(node, net):
    sh(node, "c1", "sleep 0.2", auto_remove=True)
    assert until(lambda: not any(c.name == "c1" for c in node.containers(all=True)), 5)


def test_logs_streams_tail_and_rotation(node, net):
    sh(node, "c1", "echo out1; echo err1 >&2; echo out2; sleep infinity")
    assert until(lambda: len(node.logs("c1")) == 3, 5)
    entries = node.logs("c1")
    assert [(e.stream, e.text) for e in entries] == [("stdout", "out1\n"), ("stderr", "err1\n"),
                                                     ("stdout", "out2\n")] or \
        sorted((e.stream, e.text) for e in entries) == [("stderr", "err1\n"), ("stdout", "out1\n"),
                                                        ("stdout", "out2\n")]
    assert [e.text for e in node.logs("c1", tail=1)] in (["out2\n"], ["err1\n"])
    sh(node, "big", "i=0; while [ $i -lt 400 ]; do echo line-$i; i=$((i+1)); done; sleep infinity",
       log_opts={"max-size": "4k", "max-file": "2"})
    assert until(lambda: any(e.text == "line-399\n" for e in node.logs("big")), 5)
    d = node.container_dir(node.container("big").id)
    sizes = [os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.startswith("log.json")]
    assert len(sizes) == 2 and all(s <= 4096 for s in sizes)


def test_rename(node, net):
    sh(node, "old", "sleep infinity")
    sh(node, "client", "sleep infinity")
    ip_ = node.container("old").endpoints[0].ipv4_address
    node.rename("old", "new")
    assert until(lambda: resolve(node, "client", "new") == [ip_], 3)
    assert resolve(node, "client", "old") == []
    with pytest.raises(NetkitError, match="already in use"):
        node.rename("new", "client")


def test_exec_joins_the_pid_namespace(node, net):
    sh(node, "c1", "sleep infinity")
    code, out = node.exec_output("c1", ["cat", "/proc/1/cmdline"])
    assert code == 0 and out.split("\0")[0] == "sh"
    code, out = node.exec_output("c1", ["sh", "-c", "ls /proc | grep -c '^[0-9]'"])
    assert code == 0 and int(out) <= 6                 # sh, sleep, sh, ls, grep: not the host's


def test_rm_spares_a_process_that_entered_from_outside(node, net):
    c = sh(node, "c1", "sleep infinity")
    intruder = subprocess.Popen(["ip", "netns", "exec", c.netns, "sleep", "30"])
    try:
        time.sleep(0.2)
        node.remove_container("c1", force=True)
        assert intruder.poll() is None
    finally:
        intruder.kill()
        intruder.wait()


def _node_processes(node) -> list[int]:
    """netkit's own processes on the node (agent, its zygote, resolver): by cmdline."""
    return processes_with(b"netkit.", node.paths.run.encode())


def test_no_resident_process_per_container(node, net):
    sh(node, "c0", "sleep infinity")
    base = _node_processes(node)
    for i in range(1, 8):
        sh(node, f"c{i}", "sleep infinity")
    assert _node_processes(node) == base
    assert len(base) <= 3                              # the agent, its zygote, the resolver


def test_mount_table_of_a_container_stays_the_same(node, net):
    c = sh(node, "c1", "sleep infinity")
    pid = node.container("c1").pid

    def mounts() -> set[str]:
        # (mount point, root, fs type, source); the ids say nothing. A mount can
        # only leave the set: the kernel detaches a copy from the template whose mount
        # point another process removes on the host (e.g. a concurrent test's run dir).
        with open(f"/proc/{pid}/mountinfo") as f:
            return {" ".join(line.split()[4:5] + line.split()[3:4] + line.split(" - ")[1].split()[:2])
                    for line in f}

    before = mounts()
    for i in range(6):
        sh(node, f"x{i}", "sleep infinity")
    assert mounts() <= before              # nothing of the other containers shows here
    for i in range(6):
        node.remove_container(f"x{i}", force=True)
    assert mounts() <= before
    assert {"/etc/hosts", "/etc/resolv.conf", "/etc/hostname", "/proc"} <= \
        {m.split()[0] for m in mounts()}
    assert c.state is State.RUNNING


def test_agent_killed_containers_keep_running_and_it_heals(node, net):
    sh(node, "c1", "sleep infinity")
    sh(node, "short", "sleep 1; exit 4")
    sh(node, "client", "sleep infinity")
    status = node.agent_status()
    assert status["running"]
    os.kill(status["pid"], signal.SIGKILL)
    until(lambda: agent_client.pid(node.paths.run) is None, 5)
    pid = node.container("c1").pid
    time.sleep(1.5)                                    # 'short' ends while no agent runs
    assert os.path.exists(f"/proc/{pid}")
    # the next command restarts the agent; names resolve within a second of it
    t0 = time.monotonic()
    cs = {c.name: c for c in node.containers(all=True)}
    assert node.agent_status()["running"]
    assert cs["c1"].state is State.RUNNING and cs["c1"].pid == pid
    assert cs["short"].state is State.EXITED and cs["short"].exit_code == 255
    assert "unknown" in cs["short"].error
    assert until(lambda: resolve(node, "client", "c1") != [], 1.0)
    assert time.monotonic() - t0 < 3
    # the adopted container is still supervised: stop works and records the exit
    c = node.stop("c1", timeout=1)
    assert c.state is State.EXITED


def test_resolver_killed_is_back_within_a_second(node, net):
    sh(node, "c1", "sleep infinity")
    sh(node, "client", "sleep infinity")
    assert resolve(node, "client", "c1")
    pid = node.dns_status()["pid"]
    os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    assert until(lambda: resolve(node, "client", "c1") != [], 3, 0.05)
    assert time.monotonic() - t0 < 1.5
    new = node.dns_status()
    assert new["running"] and new["pid"] != pid
