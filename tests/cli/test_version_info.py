"""`netkit version` and `netkit info` as Docker prints them, and their --format."""

from __future__ import annotations

import json
import os
import platform

import pytest

from netkit import __version__
from netkit.cli.info import bytes_size, operating_system
from netkit.cli.version import tab_lines
from netkit.model import State
from tests.cli.conftest import ctr
from tests.cli.helpers import ok


def test_version_has_docker_sections_aligned_as_its_tabwriter(nk, fake):
    out = ok(nk("version")).stdout.splitlines()
    assert out[:5] == ["Client: netkit", f" Version:           {__version__}",
                       f" Python version:    {platform.python_implementation()} "
                       f"{platform.python_version()}",
                       f" OS/Arch:           linux/{out[3].split('/')[-1]}",
                       " Context:           default"]
    assert out[5:9] == ["", "Server: netkit Engine", " Engine:", f"  Version:          {__version__}"]
    assert f"  Kernel version:   {os.uname().release}" in out
    assert fake.opened == 0                      # no engine, no store: nothing to open


def test_version_format(nk):
    assert ok(nk("version", "--format", "{{.Client.Version}}")).stdout == f"{__version__}\n"
    assert ok(nk("--node", "h1", "version", "-f", "{{.Client.Context}}")).stdout == "h1\n"
    data = json.loads(ok(nk("version", "--format", "json")).stdout)
    assert data["Server"]["Version"] == __version__
    assert data["Server"]["KernelVersion"] == os.uname().release
    assert data["Server"]["Components"][0]["Name"] == "Engine"
    assert json.loads(ok(nk("version", "-f", "{{json .Client}}")).stdout)["Os"] == "linux"
    r = nk("version", "--format", "{{.Client.Version")
    assert r.exit_code == 64 and r.stderr.startswith("Error: ") and r.stdout == ""


def test_tab_lines_pads_like_docker_tabwriter():
    assert tab_lines([(" Version:", "1"), (" A very long key name here:", "2"), "x", (" K:", "v")]) == [
        " Version:                   1", " A very long key name here: 2", "x",
        " K:                 v"]


def test_info_counts_containers_by_state(nk, fake):
    fake._containers = [ctr("a", "a", state=State.RUNNING, command=("sleep", "9")),
                        ctr("b", "b", state=State.EXITED), ctr("c", "c", state=State.CREATED),
                        ctr("d", "d", state=State.RESTARTING),
                        ctr("e", "e", state=State.RUNNING)]      # no command: created, stopped
    out = ok(nk("info")).stdout.splitlines()
    assert out[:5] == ["Client:", f" Version:           {__version__}",
                       " Context:           default", " Debug Mode:        false", ""]
    server = out[out.index("Server:"):]
    assert server[1:9] == [" Containers: 5", "  Running: 2", "  Paused: 0", "  Stopped: 3",
                           " Networks: 3", f" Server Version: {__version__}", " Plugins:",
                           "  Network: bridge host macvlan none overlay"]
    assert f" Kernel Version: {os.uname().release}" in server
    assert " OSType: linux" in server and f" CPUs: {os.cpu_count()}" in server
    assert " Netkit Root Dir: /var/lib/netkit" in server
    assert out[-1] == "Swarm: inactive"
    assert fake.called("containers") == [((), {"all": True})]


def test_info_format(nk, fake):
    fake._containers = [ctr("a", "a", state=State.RUNNING, command=("sleep", "9"))]
    assert ok(nk("info", "--format", "{{.ContainersRunning}}/{{.Containers}}")).stdout == "1/1\n"
    assert ok(nk("info", "-f", "{{.Swarm.LocalNodeState}}")).stdout == "inactive\n"
    data = json.loads(ok(nk("--node", "h1", "info", "--format", "json")).stdout)
    assert data["Name"] == "h1" and data["ClientInfo"]["Context"] == "h1"
    assert data["ServerVersion"] == __version__ and data["MemTotal"] > 0
    assert nk("info", "--format", "{{if}}").exit_code == 64


def test_bytes_size_and_os_release(tmp_path):
    assert [bytes_size(n) for n in (0, 1023, 1024, 8201687040, 3 * 1024 ** 4)] == \
        ["0B", "1023B", "1KiB", "7.638GiB", "3TiB"]
    release = tmp_path / "os-release"
    release.write_text('NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    assert operating_system(str(release)) == "Debian GNU/Linux 12 (bookworm)"
    assert operating_system(str(tmp_path / "none")) == ""


@pytest.mark.root
def test_info_of_a_real_node(node, cli):
    from netkit.specs import ContainerSpec, NetworkSpec
    node.create_network(NetworkSpec("front"))
    node.run(ContainerSpec(name="web", network="front", detach=True, command=("sleep", "infinity")))
    node.create_container(ContainerSpec(name="idle", command=("sleep", "infinity")))
    fmt = "{{.Containers}} {{.ContainersRunning}} {{.ContainersStopped}} {{.Networks}} {{.Name}}"
    assert cli("info", "--format", fmt, node=node.node_name).stdout == f"2 1 1 4 {node.node_name}\n"
    out = cli("info", node=node.node_name).stdout.splitlines()
    assert out[out.index("Server:") + 1:][:2] == [" Containers: 2", "  Running: 1"]
    assert f" Netkit Root Dir: {node.paths.root}" in out and out[-1] == "Swarm: inactive"
