"""The CLI as a user types it, in new processes, on a throwaway node."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.kernel.helpers import settle

pytestmark = pytest.mark.root


def test_user_flow(node, cli):
    n = node.node_name
    net_id = cli("network", "create", "--subnet", "10.70.0.0/24", "--label", "k=v", "web", node=n).stdout.strip()
    assert len(net_id) == 64
    ls = cli("network", "ls", node=n).stdout.splitlines()
    assert ls[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert [l.split()[1] for l in ls[1:]] == ["bridge", "host", "none", "web"]
    cid = cli("run", "-d", "--name", "a1", "--network", "web", "--network-alias", "api", "sleep", "60",
              node=n).stdout.strip()
    assert len(cid) == 64
    cli("run", "-d", "--name", "a2", "--network", "web", node=n)
    assert cli("exec", "a2", "ping", "-c", "1", "-W", "1", "10.70.0.2", node=n).returncode == 0
    # exit code and output pass through; the command is verbatim (no -- needed)
    p = cli("run", "--rm", "--network", "web", "sh", "-c", "echo hi; exit 5", node=n, check=False)
    assert p.returncode == 5 and p.stdout == "hi\n"
    info = json.loads(cli("network", "inspect", "web", node=n).stdout)[0]
    assert info["Id"] == net_id and info["Labels"] == {"k": "v"}
    assert {v["Name"] for v in info["Containers"].values()} == {"a1", "a2"}
    ins = json.loads(cli("inspect", "a1", node=n).stdout)[0]
    assert ins["NetworkSettings"]["Networks"]["web"]["IPAddress"] == "10.70.0.2"
    assert ins["NetworkSettings"]["Networks"]["web"]["Aliases"] == ["api"]
    ps = cli("ps", node=n).stdout
    assert "a1" in ps and "a2" in ps
    cli("network", "create", "other", node=n)
    cli("network", "connect", "--alias", "x", "other", "a1", node=n)
    assert "eth1" in cli("exec", "a1", "ip", "-o", "link", node=n).stdout
    cli("network", "disconnect", "other", "a1", node=n)
    cli("rm", "-f", "a1", "a2", node=n)
    cli("network", "rm", "web", "other", node=n)
    assert cli("system", "check", node=n).returncode == 0


def test_lifecycle_flow(node, cli):
    """create / start / logs / kill / wait / stop / restart / rename / rm, and Docker's exit codes."""
    n = node.node_name
    cli("network", "create", "--subnet", "10.71.0.0/24", "web", node=n)
    cid = cli("create", "--name", "job", "--network", "web", "--network-alias", "api",
              "sh", "-c", "trap 'echo bye; exit 3' TERM; echo hello; echo oops >&2; "
              "while :; do sleep 0.05; done", node=n).stdout.strip()
    assert len(cid) == 64
    ps = cli("ps", "-a", node=n).stdout.splitlines()
    assert ps[1].split()[1] == "job" and "Created" in ps[1]
    assert cli("inspect", "job", "-f", "{{.State.Status}} {{.NetworkSettings.Networks.web.IPAddress}}|",
               node=n).stdout == "created |\n"
    assert cli("start", "job", node=n).stdout == "job\n"
    deadline = time.monotonic() + 5
    while "hello" not in cli("logs", "job", node=n).stdout and time.monotonic() < deadline:
        time.sleep(0.05)
    logs = cli("logs", "job", node=n)
    assert logs.stdout == "hello\n" and logs.stderr == "oops\n"
    stamped = cli("logs", "-t", "--tail", "1", "job", node=n)
    assert stamped.stdout.endswith("Z hello\n") or stamped.stderr.endswith("Z oops\n")
    assert cli("inspect", "job", "-f", "{{.NetworkSettings.Networks.web.IPAddress}}",
               node=n).stdout.strip() == "10.71.0.2"
    assert "Up " in cli("ps", node=n).stdout
    assert cli("kill", "-s", "TERM", "job", node=n).stdout == "job\n"
    assert cli("wait", "job", node=n).stdout == "3\n"
    assert "Exited (3)" in cli("ps", "-a", node=n).stdout
    assert "bye" in cli("logs", "job", node=n).stdout
    p = cli("kill", "job", node=n, check=False)
    assert p.returncode == 1 and "is not running" in p.stderr
    cli("restart", "-t", "1", "job", node=n)
    assert cli("inspect", "job", "-f", "{{.State.Status}}", node=n).stdout == "running\n"
    cli("rename", "job", "job2", node=n)
    assert cli("stop", "-t", "1", "job2", node=n).stdout == "job2\n"
    assert cli("inspect", "job2", "-f", "{{.State.Status}} {{.State.ExitCode}}", node=n).stdout == "exited 3\n"
    # Docker's codes: 127 not found, 126 not executable, 125 netkit's own failure
    assert cli("run", "--rm", "--network", "web", "nosuchcmd", node=n, check=False).returncode == 127
    assert cli("run", "--rm", "--network", "web", "/etc", node=n, check=False).returncode == 126
    assert cli("run", "--rm", "--network", "nonet", "true", node=n, check=False).returncode == 125
    cli("rm", "job2", node=n)
    assert cli("ps", "-a", "-q", node=n).stdout == ""
    assert cli("system", "check", node=n).stdout == "No drift.\n"


@pytest.mark.parametrize("args,msg,code", [
    (("network", "create", "--subnet", "foo", "x"), "Error: invalid subnet: invalid CIDR address: foo", 1),
    (("network", "rm", "nosuch"), "Error: network nosuch not found", 1),
    (("run", "--network", "container:ghost", "true"), "Error: No such container: ghost", 125),   # as docker run
    (("network", "create", "-d", "nosuch", "x"), 'Error: plugin "nosuch" not found', 1),
])
def test_errors_are_one_line(node, cli, args, msg, code):
    p = cli(*args, node=node.node_name, check=False)
    assert p.returncode == code
    assert p.stderr.strip().splitlines() == [msg]


def test_concurrent_runs_get_distinct_addresses(node, cli):
    n = node.node_name
    cli("network", "create", "--subnet", "10.71.0.0/24", "par", node=n)
    with ThreadPoolExecutor(20) as pool:
        procs = list(pool.map(lambda i: cli("run", "-d", "--name", f"p{i}", "--network", "par", node=n,
                                             check=False), range(20)))
    assert [p.returncode for p in procs] == [0] * 20, [p.stderr for p in procs if p.returncode]
    ips = {c.endpoints[0].ipv4 for c in node.containers(all=True)}
    assert len(ips) == 20 and ips == {f"10.71.0.{i}/24" for i in range(2, 22)}


@pytest.mark.parametrize("hang_at", [2, 3, 5])
def test_kill9_mid_run_then_prune(node, netkit_dirs, hang_at):
    n = node.node_name
    node.create_network(__import__("netkit.specs", fromlist=["x"]).NetworkSpec("k9"))
    env = dict(os.environ, NETKIT_ROOT=netkit_dirs[0], NETKIT_RUN=netkit_dirs[1],
               NETKIT_TEST_FAULT=f"hang:{hang_at}")
    proc = subprocess.Popen([sys.executable, "-m", "netkit", "--node", n, "run", "-d", "--name", "kk",
                             "--network", "k9"], env=env)
    prefix = f"nkc-{n}-"
    deadline = time.time() + 20
    while time.time() < deadline and not any(x.startswith(prefix) for x in os.listdir("/run/netns")):
        time.sleep(0.02)
    time.sleep(0.3)                                  # now blocked at kernel call `hang_at`
    assert proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert node.containers(all=True) == []           # the transaction never committed
    drift = node.system_check()
    assert any(d.startswith("orphan netns") for d in drift)
    node.system_prune()
    settle(node)
    assert node.system_check() == []
    assert not any(x.startswith(prefix) for x in os.listdir("/run/netns"))
    node.run(__import__("netkit.specs", fromlist=["x"]).ContainerSpec(name="kk", network="k9", detach=True))


def test_dns_status_and_logs(node, cli):
    n = node.node_name
    assert cli("dns", "status", node=n).stdout.strip() == "resolver: not running"
    cli("network", "create", "dnsnet", node=n)
    cli("run", "-d", "--name", "d1", "--network", "dnsnet", node=n)
    st = cli("dns", "status", node=n).stdout
    assert "resolver: running (pid" in st and "containers served: 1" in st
    assert "start" in cli("dns", "logs", node=n).stdout
    cli("rm", "-f", "d1", node=n)
    assert cli("dns", "status", node=n).stdout.strip() == "resolver: not running"


def test_node_ls_shows_the_agent_of_every_node(node, cli):
    """AGENT: each node's own agent, swarm member or not; a killed one shows `stopped`
    until the next command that needs it starts another."""
    from netkit.agent import client as agent_client
    n = node.node_name

    def agent_column() -> str:
        row = next(line for line in cli("node", "ls").stdout.splitlines() if line.startswith(n + " "))
        return row[row.index("running"):].strip() if "running" in row else row.split()[-1]

    pid = agent_client.pid(node.paths.run)
    assert pid is not None and agent_column() == f"running (pid {pid})"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while agent_client.pid(node.paths.run) is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert agent_column() == "stopped"
    cli("run", "-d", "--name", "a1", "--network", "none", "sleep", "600", node=n)
    new = agent_client.pid(node.paths.run)
    assert new not in (None, pid) and agent_column() == f"running (pid {new})"
