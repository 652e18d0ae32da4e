"""`netkit completion SHELL` and the names it completes, through click's own protocol.

The kernel tests run the completion the way a shell's script does (a new
process with ``_NETKIT_COMPLETE``, ``COMP_WORDS`` and ``COMP_CWORD``) against a real
store in a throwaway node, and check that completing changed nothing on disk.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.cli.helpers import ok

SLEEP = ("sleep", "infinity")


@pytest.mark.parametrize("shell, marker", [("bash", "complete -o nosort -F _netkit_completion netkit"),
                                           ("zsh", "#compdef netkit"),
                                           ("fish", "complete --no-files --command netkit")])
def test_completion_prints_the_script_of_each_shell(nk, fake, shell, marker):
    out = ok(nk("completion", shell)).stdout
    assert marker in out and f"_NETKIT_COMPLETE={shell}_complete" in out
    assert fake.opened == 0                              # no engine for a script


def test_completion_refuses_an_unknown_shell(nk):
    r = nk("completion", "tcsh")
    assert r.exit_code == 2 and "'tcsh' is not one of 'bash', 'zsh', 'fish'" in r.stderr


def test_commands_and_options_complete_without_a_store(tmp_path):
    env = dict(os.environ, NETKIT_ROOT=str(tmp_path / "root"), NETKIT_RUN=str(tmp_path / "run"))
    assert complete(env, "netkit", "net") == ["network"]
    assert complete(env, "netkit", "network", "conn") == ["connect"]
    assert {"--network", "--publish", "--detach"} <= set(complete(env, "netkit", "run", "--"))
    assert complete(env, "netkit", "network", "rm", "") == ["bridge", "host", "none"]
    assert complete(env, "netkit", "rm", "") == []
    assert not os.path.exists(tmp_path / "root") and not os.path.exists(tmp_path / "run")


def complete(env: dict[str, str], *words: str, shell: str = "bash") -> list[str]:
    """What netkit offers for the last of `words` (the word being typed), as bash asks."""
    # fish passes the word being typed itself in COMP_CWORD; bash and zsh its index
    cword = words[-1] if shell == "fish" else str(len(words) - 1)
    env = dict(env, _NETKIT_COMPLETE=f"{shell}_complete", COMP_WORDS=" ".join(words),
               COMP_CWORD=cword)
    proc = subprocess.run([sys.executable, "-m", "netkit"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    if shell != "bash":
        return proc.stdout.splitlines()
    return [line.split(",", 1)[1] for line in proc.stdout.splitlines() if line]


def bash_complete(env: dict[str, str], tmp_path, *words: str) -> list[str]:
    """COMPREPLY of `netkit completion bash`'s function, run by bash on COMP_WORDS as bash
    splits them (`words`; the last one is the word under the cursor)."""
    wrapper = tmp_path / "netkit"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m netkit "$@"\n')
    wrapper.chmod(0o755)
    script = subprocess.run([str(wrapper), "completion", "bash"], env=env, capture_output=True,
                            text=True, check=True).stdout
    quoted = " ".join(f"'{w}'" for w in ("netkit", *words))
    test = (f"{script}\nCOMP_WORDS=({quoted}); COMP_CWORD={len(words)}\n"
            "_netkit_completion netkit; printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    proc = subprocess.run(["bash", "-c", test], env=dict(env, PATH=f"{tmp_path}:{env['PATH']}"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return [line for line in proc.stdout.splitlines() if line]


def _state(root: str, run: str) -> set[tuple[str, float]]:
    """The state files with their mtimes (a SQLite -shm by name only: WAL readers write
    their marks there), and the runtime files by name (the resolver touches its own)."""
    def files(top: str) -> list[str]:
        return [os.path.join(d, f) for d, _, names in os.walk(top) for f in names]
    return {(p, 0 if p.endswith("-shm") else os.stat(p).st_mtime) for p in files(root)} | \
        {(p, 0) for p in files(run)}


@pytest.mark.root
def test_names_come_from_the_store_of_the_node(node, host, netkit_dirs, lan, tmp_path):
    from netkit.specs import ContainerSpec, NetworkSpec
    from tests.conftest import unique
    node.create_network(NetworkSpec("front", subnets=("10.93.0.0/24",)))
    node.create_network(NetworkSpec("back"))
    node.run(ContainerSpec(name="web", network="front", detach=True, command=SLEEP))
    node.create_container(ContainerSpec(name="idle", network="back", command=SLEEP))
    other = unique("o")
    host.create_node(other, lan=lan.name, ip="192.168.77.30/24")
    try:
        env = dict(os.environ, NETKIT_ROOT=netkit_dirs[0], NETKIT_RUN=netkit_dirs[1])
        env.pop("NETKIT_NODE", None)
        n = node.node_name
        before, netns = _state(*netkit_dirs), _netns(n)
        started = time.monotonic()
        assert complete(env, "netkit", "--node", n, "network", "connect", "") == \
            ["back", "bridge", "front", "host", "none"]
        took = time.monotonic() - started
        assert complete(env, "netkit", "--node", n, "network", "connect", "front", "") == ["idle", "web"]
        assert complete(env, "netkit", "--node", n, "network", "inspect", "b") == ["back", "bridge"]
        assert complete(env, "netkit", "--node", n, "exec", "") == ["web"]       # running only
        assert complete(env, "netkit", "--node", n, "start", "") == ["idle"]     # stopped only
        assert complete(env, "netkit", "--node", n, "rm", "") == ["idle", "web"]
        assert complete(env, "netkit", "--node", n, "run", "--network", "f") == ["front"]
        # NETKIT_NODE as --node; the real host (no node) has none of these
        assert complete(dict(env, NETKIT_NODE=n), "netkit", "inspect", "i") == ["idle"]
        assert complete(env, "netkit", "rm", "") == []
        # nodes and LANs: the real host's registry, whatever the node
        assert complete(env, "netkit", "--node", "") == sorted([n, other])
        assert complete(env, "netkit", "--node", n, "node", "rm", other[:3]) == [other]
        assert complete(env, "netkit", "lan", "rm", "") == [lan.name]
        assert complete(env, "netkit", "node", "create", "--lan", "") == [lan.name]
        # capture's TARGET: a container or network:/node:/lan: NAME
        assert complete(env, "netkit", "--node", n, "capture", "") == \
            ["idle", "web", "network:", "node:", "lan:"]
        assert complete(env, "netkit", "--node", n, "capture", "network:f") == ["network:front"]
        assert complete(env, "netkit", "--node", n, "capture", f"node:{other}") == [f"node:{other}"]
        # zsh and fish get the same names in their own format
        assert complete(env, "netkit", "--node", n, "exec", "", shell="zsh") == ["plain", "web", "_"]
        assert complete(env, "netkit", "--node", n, "exec", "w", shell="fish") == ["plain,web"]
        # bash itself, through the script: NAME:VALUE split at ':' by bash is glued back
        assert bash_complete(env, tmp_path, "--node", n, "capture", "network", ":", "f") == ["front"]
        assert bash_complete(env, tmp_path, "--node", n, "capture", "network", ":", "") == \
            ["back", "bridge", "front", "host", "none"]
        assert bash_complete(env, tmp_path, "--node", n, "network", "connect", "fr") == ["front"]
        # reading names wrote nothing, started no agent and made no namespace
        assert _state(*netkit_dirs) == before and _netns(n) == netns
        assert took < 5, took
    finally:
        host.remove_node(other, force=True)


def _netns(node: str) -> list[str]:
    """The namespaces of `node` (other tests may run at the same time on this machine)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return sorted(line for line in out.splitlines() if node in line)
