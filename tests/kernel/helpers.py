"""Helpers for kernel tests: look at a node from outside, as `ip` shows it."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time

from netkit.kernel.netns import read_sysctl
from netkit.paths import container_netns_prefix
from netkit.testing import probe as probe_tool


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


def processes_with(*words: bytes) -> list[int]:
    """Pids of the processes whose command line holds every one of `words` (substrings)."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                line = f.read().replace(b"\0", b" ")
        except OSError:
            continue
        if all(w in line for w in words):
            out.append(int(pid))
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


HISTORY_TABLES = {"events", "sqlite_sequence"}     # what happened, not what is (netkit/events.py)


def store_rows(store) -> dict[str, list[tuple]]:
    """Every row of every table of a store (all columns), in a stable order; the event log
    is history, not state: an action and its reverse leave it longer."""
    db = store.db
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
              if r[0] not in HISTORY_TABLES]
    return {t: sorted(map(tuple, db.execute(f"SELECT * FROM {t}").fetchall()), key=repr)
            for t in sorted(tables)}


def nft_ruleset(netns: str | None) -> str:
    """`nft list ruleset` inside `netns` (None: the root netns)."""
    cmd = (["nsenter", f"--net=/run/netns/{netns}", "--"] if netns else []) + ["nft", "list", "ruleset"]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def mounts_under(path: str) -> list[tuple[str, str]]:
    """(mount point, fs type) of every mount at or below `path` in our mount namespace
    (stacked mounts count once each); mount ids left out, they change."""
    from netkit.kernel.mntns import mounts
    path = os.path.realpath(path)
    return sorted((m.mountpoint, m.fstype) for m in mounts()
                  if m.mountpoint == path or m.mountpoint.startswith(path + "/"))


def container_mounts(engine) -> list[tuple[str, str]]:
    """Mounts under the node's run dir but the node's own: its UTS namespace file, and the
    template mount namespace with the private binds of the run dir and of the containers'
    namespace files' directory it needs, made once (on the node's first container) and
    kept until the node goes."""
    from netkit.processes import MNT_TEMPLATE
    run = os.path.realpath(engine.paths.run)
    node_own = {run, os.path.join(run, "uts"), os.path.join(run, MNT_TEMPLATE),
                os.path.realpath(engine.paths.ns_dir)}
    return [m for m in mounts_under(run) if m[0] not in node_own]


def netns_state(netns: str | None) -> dict:
    """Links (name, kind, master, admin up), addresses, routes and static neighbour / FDB
    entries of one netns, as `ip` and `bridge` show them."""
    out = [(l["ifname"], l.get("linkinfo", {}).get("info_kind"), l.get("master"),
            "UP" in l.get("flags", []), l.get("address"), l.get("mtu"))
           for l in links(netns).values()]
    bridge = ["bridge"] + (["-n", netns] if netns else [])
    fdb = subprocess.run(bridge + ["fdb", "show"], capture_output=True, text=True).stdout
    return {"links": sorted(out, key=repr),
            "addrs": sorted(" ".join(w for w in line.split()[1:] if w != "tentative")   # DAD: transient
                            for line in ip("-o", "addr", netns=netns).splitlines()),
            "routes": ip("route", netns=netns).replace(" linkdown", ""),
            "routes6": ip("-6", "route", netns=netns).replace(" linkdown", ""),
            "neigh": sorted(ip("neigh", "show", "nud", "permanent", netns=netns).splitlines()),
            "fdb": sorted(line for line in fdb.splitlines() if " dst " in line)}


ETC_FILES = ("hosts", "resolv.conf", "hostname")


def container_files(directory: str) -> dict:
    """A container's run dir: its entries, and the text and inode of its /etc files (the
    inode too: the container's mount namespace binds that very file)."""
    out: dict = {"entries": sorted(os.listdir(directory))}
    for name in ETC_FILES:
        path = os.path.join(directory, name)
        try:
            with open(path) as f:
                out[name] = (f.read(), os.fstat(f.fileno()).st_ino)
        except FileNotFoundError:
            out[name] = None
    return out


NODE_SYSCTLS = ("ipv4/ip_forward", "ipv4/conf/all/route_localnet",   # set by the firewall sync
                "ipv6/conf/all/forwarding")


def snapshot(engine) -> dict:
    """Everything an action may change on a node: the kernel objects of the node's netns
    and of each container's, the node's nftables ruleset, mounts under the node's run dir,
    every row of the node's store and of the real host's (nodes, LANs), and each
    container's run dir with its /etc files."""
    settle(engine)
    node_ns = engine.node.netns
    prefix = container_netns_prefix(engine.node_name)
    netns = sorted(n for n in os.listdir("/run/netns") if n.startswith(prefix))
    try:
        dirs = sorted(os.listdir(engine.paths.containers_dir))
    except FileNotFoundError:
        dirs = []
    applied = {}
    for name in ("firewall.nft", "firewall.nft.list"):
        try:
            with open(os.path.join(engine.paths.run, name)) as f:
                applied[name] = f.read()
        except FileNotFoundError:
            applied[name] = None
    sysctls = {k: read_sysctl(node_ns, k) for k in NODE_SYSCTLS}
    return {"node": netns_state(node_ns), "nft": nft_ruleset(node_ns), "applied": applied,
            "sysctls": sysctls,
            "netns": netns, "containers": {n: netns_state(n) for n in netns},
            "mounts": container_mounts(engine), "dirs": dirs,
            "files": {d: container_files(os.path.join(engine.paths.containers_dir, d)) for d in dirs},
            "rows": store_rows(engine.store),
            "host_rows": store_rows(engine.host_store) if engine.host_store is not engine.store else None}


def host_snapshot(host, run_root: str, *names: str) -> dict:
    """What node and LAN actions change on the real host: its store's rows, the namespaces
    of the nodes and LANs `names` and the links of each, mounts and directories of nodes
    under the run root. (Other namespaces are left out: other test runs share the machine.)"""
    from netkit.paths import lan_netns, node_netns
    nodes_dir = os.path.join(run_root, "nodes")
    mine = {f(n) for n in names for f in (node_netns, lan_netns)}
    netns = sorted(n for n in os.listdir("/run/netns") if n in mine)
    return {"rows": store_rows(host.host_store), "netns": netns,
            "state": {n: netns_state(n) for n in netns}, "mounts": mounts_under(run_root),
            "dirs": sorted(os.listdir(nodes_dir)) if os.path.isdir(nodes_dir) else []}


def eventually(check, timeout: float, what: str, step: float = 0.05):
    """check()'s first true value; fails with `what` when none came within `timeout` s."""
    import time
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out ({timeout} s) waiting for {what}"
        time.sleep(step)
    return found


def settled(store, quiet: float = 1.0, timeout: float = 20.0) -> None:
    """Until cluster store `store`'s version stood still for `quiet` s (runners, lb, mesh done)."""
    deadline = time.monotonic() + timeout
    version, since = store.version(), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, "the cluster did not settle"
        time.sleep(0.05)
        if (now := store.version()) != version:
            version, since = now, time.monotonic()


def wait_converged(engines, timeout: float = 5) -> None:
    """Until the agent of each engine's node has applied its cluster's current version."""
    import time
    from netkit.agent.cluster_sync import converged
    engines = list(engines)
    deadline = time.monotonic() + timeout
    while late := [e.node_name for e in engines if not converged(e)]:
        assert time.monotonic() < deadline, f"agents of {late} did not converge in {timeout} s"
        time.sleep(0.01)


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
    """A LAN, three nodes a, b, c (a manager; b, c workers: the first of `ips` inits, the
    others join) and their engines; all removed afterwards, also on failure. Yields
    (engines, names, lan, cluster id)."""
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
        first, *others = list(ips)
        cid = engines[first].swarm_init()
        for k in others:
            engines[k].swarm_join(names[first])
        yield engines, names, lan, cid
    finally:
        for e in engines.values():
            e.close()
        for n in names.values():
            if host.host_store.read().node(n) is not None:
                host.remove_node(n, force=True)
        if host.host_store.read().lan(lan) is not None:
            host.remove_lan(lan)


# -- real traffic (netkit.testing.probe) -----------------------------------------------
PROBE = [sys.executable, probe_tool.__file__]   # this checkout's probe, whatever containers import


def probe(engine, ctr: str, proto: str, ip: str, port: int) -> str | None:
    """Container `ctr` connects to ip:port: the source address the server saw, None if not."""
    code, out = engine.exec_output(ctr, [*PROBE, "probe", proto, ip, str(port), "--timeout", "0.7"])
    return out.strip() if code == 0 else None


def probe_node(host, node: str, proto: str, ip: str, port: int) -> str | None:
    """The same from simulated node `node` itself (`host`: the real host's engine)."""
    out: list[bytes] = []
    code = host.node_exec(node, [*PROBE, "probe", proto, ip, str(port), "--timeout", "0.7"], capture=out)
    return b"".join(out).decode().strip() if code == 0 else None


@contextlib.contextmanager
def lan_pair(base: str, subnet: str, gateway: str, a_ip: str, b_ip: str):
    """Nodes A and B (state under `base`) on a new LAN `subnet` with router `gateway`:
    yields {"host", "a", "b" (their engines), "A", "B" (their names)}; all removed
    afterwards, also on failure, whatever of them exists."""
    from netkit.engine import Engine
    from tests.conftest import unique
    root, run = os.path.join(base, "root"), os.path.join(base, "run")
    host = Engine(root=root, run=run)
    lan, a, b = unique("l"), unique("a"), unique("b")
    engines = []
    try:
        host.create_lan(lan, subnet, gateway=gateway)
        host.create_node(a, lan=lan, ip=a_ip)
        host.create_node(b, lan=lan, ip=b_ip)
        engines += [Engine(a, root=root, run=run), Engine(b, root=root, run=run)]
        yield {"host": host, "a": engines[0], "b": engines[1], "A": a, "B": b}
    finally:
        for e in engines:
            e.close()
        for n in (a, b):
            if any(x.name == n for x in host.nodes()):
                host.remove_node(n, force=True)
        if any(x.name == lan for x in host.lans()):
            host.remove_lan(lan)
        host.close()
