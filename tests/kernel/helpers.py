"""Helpers for kernel tests: look at a node from outside, as `ip` shows it."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess

from netkit.paths import container_netns_prefix


def ip(*args: str, netns: str | None = None) -> str:
    cmd = ["ip"] + (["-n", netns] if netns else []) + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def ip_json(*args: str, netns: str | None = None) -> list[dict]:
    return json.loads(ip("-j", *args, netns=netns) or "[]")


def links(netns: str | None) -> dict[str, dict]:
    return {l["ifname"]: l for l in ip_json("-d", "link", "show", netns=netns)}


def addrs(netns: str | None, ifname: str) -> list[str]:
    out = []
    for l in ip_json("addr", "show", "dev", ifname, netns=netns):
        out += [f"{a['local']}/{a['prefixlen']}" for a in l.get("addr_info", [])]
    return out


def settle(engine, timeout: float = 10.0) -> None:
    """Wait for veths of deleted namespaces to go (the kernel removes them asynchronously)."""
    import time
    want = {ep.host_ifname for c in engine.containers(all=True) for ep in c.endpoints}
    deadline = time.time() + timeout
    while time.time() < deadline:
        veths = {n for n, l in links(engine.node.netns).items()
                 if l.get("linkinfo", {}).get("info_kind") == "veth" and n.startswith("veth")}
        if veths <= want:
            return
        time.sleep(0.05)


def snapshot(engine) -> dict:
    """Everything an action may change: kernel objects of the node + every store row."""
    settle(engine)
    node_ns = engine.node.netns
    db = engine.store.db
    rows = {t: sorted(map(tuple, db.execute(f"SELECT * FROM {t}").fetchall()))
            for t in ("networks", "pools", "addresses", "containers", "endpoints")}
    prefix = container_netns_prefix(engine.node_name)
    netns = sorted(n for n in os.listdir("/run/netns") if n.startswith(prefix))
    try:
        dirs = sorted(os.listdir(engine.paths.containers_dir))
    except FileNotFoundError:
        dirs = []
    return {"links": sorted(links(node_ns)), "addrs": ip("-o", "addr", netns=node_ns),
            "routes": ip("route", netns=node_ns).replace(" linkdown", ""), "netns": netns, "dirs": dirs, "rows": rows}


def in_ctr(engine, name: str, *cmd: str) -> int:
    return engine.exec(name, list(cmd))


def ping(engine, name: str, target: str) -> bool:
    return engine.exec(name, ["ping", "-c", "1", "-W", "1", "-q", target]) == 0


def count_kernel_calls(engine, action) -> int:
    """How many kernel calls `action` makes (FaultPlan that never fires)."""
    from netkit.kernel.session import FaultPlan
    plan = FaultPlan(fail_at=0)
    engine.faults = plan
    try:
        action()
    finally:
        engine.faults = None
    return plan.calls


@contextlib.contextmanager
def swarm_of_three(host, netkit_dirs, subnet: str, ips: dict[str, str]):
    """A LAN, three nodes a, b, c (a manager; b, c workers) and their engines;
    all removed afterwards, also on failure. Yields (engines, names, lan, cluster id)."""
    from netkit.engine import Engine
    from tests.conftest import unique
    root, run = netkit_dirs
    lan = unique("l")
    names = {k: unique(k) for k in ips}
    engines: dict = {}
    import ipaddress
    try:
        host.create_lan(lan, subnet, gateway=str(ipaddress.ip_network(subnet)[1]))
        for k, addr in ips.items():
            host.create_node(names[k], lan=lan, ip=f"{addr}/24")
            engines[k] = Engine(names[k], root=root, run=run)
        cid = engines["a"].swarm_init()
        engines["b"].swarm_join(names["a"])
        engines["c"].swarm_join(names["a"])
        yield engines, names, lan, cid
    finally:
        for e in engines.values():
            e.close()
        for n in names.values():
            if host.host_store.read().node(n) is not None:
                host.remove_node(n, force=True)
        if host.host_store.read().lan(lan) is not None:
            host.remove_lan(lan)
