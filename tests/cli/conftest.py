"""CLI tests drive click in-process against a fake Engine: no root, no kernel.

The CLI looks the Engine up as ``netkit.engine.Engine`` at call time; the
`fake` fixture swaps that attribute (or, if netkit.engine cannot be
imported, installs a stand-in module) and hands the test the fake's single
instance, which records every call and returns canned model objects.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest
from click.testing import CliRunner

from netkit.model import Container, Lan, Network, Node
from netkit.paths import NodePaths


def net(name: str, id_char: str = "a", driver: str = "bridge", **kw: Any) -> Network:
    return Network(id=id_char * 64, name=name, driver=driver, **kw)


def ctr(name: str, id_char: str = "c", **kw: Any) -> Container:
    return Container(id=id_char * 64, name=name, hostname=(id_char * 12), **kw)


class FakeEngine:
    """Records calls; `results[method]` overrides a return value, `raises[method]` an error
    (a dict of ref -> exception makes only those refs fail)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []
        self.node: str | None = "<unset>"
        self.opened = 0
        self.closed = 0
        self.results: dict[str, Any] = {}
        self.raises: dict[str, Any] = {}
        self._networks = [net("bridge", "1"), net("host", "2", "host"), net("none", "3", "null")]
        self._containers: list[Container] = []
        self.paths = NodePaths("/var/lib/netkit", "/run/netkit")

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((name, args, kwargs))
        err = self.raises.get(name)
        if isinstance(err, dict):
            key = args[0] if args else None
            if isinstance(key, list):                 # inspect_*([ref]): keyed by the ref
                key = key[0] if len(key) == 1 else tuple(key)
            err = err.get(key)
        if err is not None:
            raise err
        return self.results.get(name)

    def called(self, name: str) -> list[tuple[tuple, dict]]:
        return [(a, k) for n, a, k in self.calls if n == name]

    def close(self) -> None:
        self.closed += 1

    @property
    def node_name(self) -> str:
        return self.node if self.node and self.node != "<unset>" else ""

    # networks
    def create_network(self, spec):
        return self._call("create_network", spec) or net(spec.name, "f")

    def networks(self):
        r = self._call("networks")
        return list(self._networks if r is None else r)

    def inspect_networks(self, refs):
        r = self._call("inspect_networks", refs)
        return r if r is not None else [{"Name": ref, "Id": "f" * 64} for ref in refs]

    def remove_network(self, ref):
        return self._call("remove_network", ref) or net(ref)

    def prune_networks(self):
        r = self._call("prune_networks")
        return [] if r is None else r

    def connect(self, network, container, **kw):
        return self._call("connect", network, container, **kw)

    def disconnect(self, network, container, **kw):
        return self._call("disconnect", network, container, **kw)

    # containers
    def run(self, spec):
        r = self._call("run", spec)
        if r is not None:
            return r
        c = ctr(spec.name or "c1", "d", command=spec.command)
        return (c, None) if spec.detach or not spec.command else (c, 0)

    def exec(self, container, command):
        r = self._call("exec", container, command)
        return 0 if r is None else r

    def containers(self, all=False):
        r = self._call("containers", all=all)
        return list(self._containers if r is None else r)

    def inspect_containers(self, refs):
        r = self._call("inspect_containers", refs)
        return r if r is not None else [{"Name": "/" + ref, "Id": "c" * 64} for ref in refs]

    def remove_container(self, ref, *, force=False):
        return self._call("remove_container", ref, force=force) or ctr(ref)

    # lifecycle (signatures as the Engine's; recorded with their defaults filled in)
    def create_container(self, spec):
        return self._call("create_container", spec) or ctr(spec.name or "c1", "d", command=spec.command)

    def start(self, ref, *, attach=False):
        r = self._call("start", ref, attach=attach)
        return r if r is not None else (ctr(ref), 0 if attach else None)

    def stop(self, ref, timeout=None):
        return self._call("stop", ref, timeout=timeout) or ctr(ref)

    def restart(self, ref, timeout=None):
        return self._call("restart", ref, timeout=timeout) or ctr(ref)

    def kill(self, ref, signal="KILL"):
        return self._call("kill", ref, signal=signal) or ctr(ref)

    def wait(self, ref):
        r = self._call("wait", ref)
        return 0 if r is None else r

    def logs(self, ref, *, tail=None):
        return list(self._call("logs", ref, tail=tail) or [])

    def follow_logs(self, ref, *, tail=None):
        return iter(self._call("follow_logs", ref, tail=tail) or [])

    def rename(self, ref, new_name):
        return self._call("rename", ref, new_name) or ctr(new_name)

    # system
    def system_check(self):
        return self._call("system_check") or []

    def system_prune(self):
        return self._call("system_prune") or []

    def system_reset(self):
        return self._call("system_reset") or []

    # nodes and lans
    def create_lan(self, name, subnet, gateway=None):
        return self._call("create_lan", name, subnet, gateway=gateway) or Lan(name, subnet, gateway)

    def lans(self):
        return self._call("lans") or []

    def remove_lan(self, name):
        return self._call("remove_lan", name)

    def create_node(self, name, **kw):
        return self._call("create_node", name, **kw) or Node(name, netns=f"nkn-{name}")

    def nodes(self):
        return self._call("nodes") or []

    def remove_node(self, name, *, force=False):
        return self._call("remove_node", name, force=force)

    def node_exec(self, name, command):
        r = self._call("node_exec", name, command)
        return 0 if r is None else r

    # swarm
    def swarm_roles(self):
        return self._call("swarm_roles") or {}

    def swarm_agents(self):
        return self._call("swarm_agents") or {}

    def swarm_init(self, **kw):
        return self._call("swarm_init", **kw) or "c" * 25

    def swarm_join(self, manager=None, **kw):
        return self._call("swarm_join", *([manager] if manager else []), **kw) or "c" * 25

    def swarm_join_token(self, role="worker", rotate=False):
        return self._call("swarm_join_token", role, **({"rotate": True} if rotate else {})) or \
            f"SWMTKN-1-{'d' * 50}-{role[0] * 25}"

    # swarm nodes
    def node_list(self):
        return self._call("node_list") or []

    def node_inspect(self, refs):
        return self._call("node_inspect", list(refs)) or []

    def node_promote(self, node):
        r = self._call("node_promote", node)
        return True if r is None else r

    def node_demote(self, node):
        r = self._call("node_demote", node)
        return True if r is None else r

    def node_update(self, node, **kw):
        return self._call("node_update", node, **kw) or "n" * 25

    def swarm_advertise(self):
        return self._call("swarm_advertise") or "192.168.1.10:2377"

    def swarm_info(self):
        return self._call("swarm_info") or {"state": "inactive"}

    def swarm_members(self):
        return self._call("swarm_members") or []

    def swarm_nodes(self):
        return self._call("swarm_nodes") or []

    def swarm_leave(self, force=False):
        return self._call("swarm_leave", force=force)


def _engine_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """The real netkit.engine if it imports, else a stand-in registered in sys.modules."""
    try:
        import netkit.engine as module
    except Exception:                       # being written concurrently, or broken
        module = types.ModuleType("netkit.engine")
        monkeypatch.setitem(sys.modules, "netkit.engine", module)
    return module


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    instance = FakeEngine()

    class Engine:
        def __init__(self, *a: Any, **k: Any) -> None:
            raise AssertionError("the CLI must use Engine.from_env")

        @classmethod
        def from_env(cls, node: str | None = None, *, host: bool = False) -> FakeEngine:
            instance.node = None if host else node
            instance.opened += 1
            return instance

    monkeypatch.setattr(_engine_module(monkeypatch), "Engine", Engine, raising=False)
    monkeypatch.delenv("NETKIT_NODE", raising=False)
    monkeypatch.delenv("NETKIT_DEBUG", raising=False)
    return instance


@pytest.fixture
def nk(fake):
    """``nk("network", "ls")`` -> click Result (stdout and stderr kept apart)."""
    from netkit.cli.main import cli
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None):
        return runner.invoke(cli, list(args), input=input, env=env, prog_name="netkit")
    return invoke

