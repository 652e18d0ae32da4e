"""What the benchmarks share: a throwaway workspace, throwaway nodes, figures, RESULT lines.

Every benchmark runs inside simulated nodes made for it (nothing touches
the real host's namespace) under a temporary state root, with the
runtime files on a tmpfs of their own, as /run is on a standard Linux
host (on this VM /run is on the root disk, where each file create costs
~0.5 ms). All of it is removed at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from contextlib import contextmanager
from typing import Iterator


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of `values` (not empty)."""
    d = sorted(values)
    return d[max(0, -(-int(len(d) * p) // 100) - 1)]


def stats(label: str, spans: list[float], total: float, n: int) -> str:
    """The peers' per-endpoint figures (ms) of `spans` (seconds) as RESULT fields."""
    d = [x * 1000 for x in spans]
    return (f"{label}_total_s={total:.3f} {label}_ms_mean={sum(d) / len(d):.2f} "
            f"{label}_ms_p50={percentile(d, 50):.2f} {label}_ms_p99={percentile(d, 99):.2f} "
            f"{label}_ms_max={max(d):.2f} {label}_eps={n / total:.1f}")


def emit(line: str) -> None:
    """Print a RESULT line, and append it to $PB_RESULTS (the peers' results file) if set."""
    print(line, flush=True)
    if os.environ.get("PB_RESULTS"):
        with open(os.environ["PB_RESULTS"], "a") as f:
            f.write(line + "\n")


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def workspace(prefix: str = "netkit-bench.") -> Iterator[tuple[str, str]]:
    """(state root, run root): a temporary directory and a tmpfs, removed afterwards.

    SIGTERM and SIGHUP become KeyboardInterrupt meanwhile, so the caller's
    `finally` blocks (and this one) run on them as on Ctrl-C.
    """
    old = {s: signal.signal(s, _interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    tmp = tempfile.mkdtemp(prefix=prefix)
    run_dir = os.path.join(tmp, "run")
    os.makedirs(run_dir)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2g,mode=0700", "netkit-bench", run_dir], check=True)
    try:
        yield os.path.join(tmp, "root"), run_dir
    finally:
        subprocess.run(["umount", "-l", run_dir], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
        for s, handler in old.items():
            signal.signal(s, handler)


@contextmanager
def throwaway_node(root: str, run: str, prefix: str = "b") -> Iterator[str]:
    """A new simulated node's name; the node and all in it are removed afterwards."""
    from netkit.engine import Engine
    name = f"{prefix}{secrets.token_hex(3)}"
    host = Engine(root=root, run=run)
    host.create_node(name)
    try:
        yield name
    finally:
        try:
            host.remove_node(name, force=True)
        finally:
            host.close()


def remove_lab(host, engines, nodes, lan: str, tmp: str) -> None:
    """Tear down a bench's simulated nodes and LAN (what exists of them), then its roots."""
    import shutil
    for e in engines:
        e.close()
    for n in nodes:
        if any(x.name == n for x in host.nodes()):
            host.remove_node(n, force=True)
    if any(x.name == lan for x in host.lans()):
        host.remove_lan(lan)
    host.close()
    shutil.rmtree(tmp, ignore_errors=True)


def swarm_lab(host, engines: dict, lan: str, subnet: str, ips: dict[str, str],
              names: dict[str, str]) -> None:
    """LAN `lan` (`subnet`, router .1) and one node per key of `ips` (named `names[key]`,
    at ips[key]/24), each node's engine put in `engines` as soon as it exists (so a
    failure half-way leaves remove_lab what to remove); the first node inits a swarm
    (SQLite store), the others join it."""
    import ipaddress
    from netkit.engine import Engine
    host.create_lan(lan, subnet, gateway=str(ipaddress.ip_network(subnet)[1]))
    for k, ip in ips.items():
        host.create_node(names[k], lan=lan, ip=f"{ip}/24")
        engines[k] = Engine(names[k], root=host.root, run=host.run_root)
    first, *others = ips
    engines[first].swarm_init()
    for k in others:
        engines[k].swarm_join(names[first])
