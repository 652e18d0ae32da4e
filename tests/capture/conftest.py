"""Fixtures of the capture tests: a small world with known traffic, and pytester.

`world` (one per test module): a LAN (192.168.78.0/24, router .1) with two
simulated nodes, A (.10) and B (.20); on A a user network `app` with
web1..web3 (alias `web`), `client` and `peer`. Every namespace is ours and
removed at the end, also on failure; traffic only ever goes between them.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from typing import Any

import pytest

from netkit.specs import ContainerSpec, NetworkSpec
from tests.conftest import unique

SLEEP = ("sleep", "infinity")
A_IP, B_IP, LAN_GW = "192.168.78.10", "192.168.78.20", "192.168.78.1"


def pytest_configure(config: pytest.Config) -> None:
    # `pytest_plugins = ["pytester"]` here would break `pytest tests` (pytest refuses
    # pytest_plugins outside the top-level conftest): register it like that instead.
    if not config.pluginmanager.has_plugin("pytester"):
        config.pluginmanager.import_plugin("pytester")


@dataclass
class World:
    host: Any                 # the real host's engine (nodes, LANs)
    engine: Any               # node A's engine
    lan: str
    a: str
    b: str
    web_ips: set[str]
    ips: dict[str, str]       # container name -> its address on app

    def netns(self, container: str) -> str:
        return self.engine.container(container).netns

    def dig(self, container: str, name: str) -> str:
        code, out = self.engine.exec_output(container, ["dig", "+short", "+tries=1", "+time=2", name])
        assert code == 0, out
        return out

    def ping(self, container: str, ip: str, count: int = 1, *extra: str) -> int:
        cmd = ["ping", "-c", str(count), "-i", "0.2", "-W", "1", "-q", *extra, ip]
        return self.engine.exec_output(container, cmd)[0]


@pytest.fixture(scope="module")
def world(host, netkit_dirs):
    from netkit.engine import Engine
    lan, a, b = unique("l"), unique("a"), unique("b")
    engine = None
    try:
        host.create_lan(lan, "192.168.78.0/24", gateway=LAN_GW)
        host.create_node(a, lan=lan, ip=f"{A_IP}/24")
        host.create_node(b, lan=lan, ip=f"{B_IP}/24")
        engine = Engine(a, root=netkit_dirs[0], run=netkit_dirs[1])
        engine.create_network(NetworkSpec("app", subnets=("10.91.0.0/24",)))
        ips = {}
        for name in ("web1", "web2", "web3", "client", "peer"):
            aliases = ("web",) if name.startswith("web") else ()
            ctr, _ = engine.run(ContainerSpec(name=name, network="app", aliases=aliases,
                                              detach=True, command=SLEEP))
            ips[name] = ctr.endpoints[0].ipv4_address
        yield World(host, engine, lan, a, b, {ips[f"web{i}"] for i in (1, 2, 3)}, ips)
    finally:
        if engine is not None:
            engine.close()
        for node in (a, b):
            if any(n.name == node for n in host.nodes()):
                host.remove_node(node, force=True)
        if any(x.name == lan for x in host.lans()):
            host.remove_lan(lan)


def promiscuity(netns: str, ifname: str) -> int:
    """How many holders keep `ifname` promiscuous (packet sockets do not show in its flags)."""
    out = subprocess.run(["ip", "-n", netns, "-d", "-o", "link", "show", ifname],
                         capture_output=True, text=True, check=True).stdout
    return int(re.search(r"promiscuity (\d+)", out).group(1))
