"""Create + attach N containers on one bridge network, then remove them in bulk.

Runs inside a throwaway simulated node (nothing touches the real host's
namespace) and prints one RESULT line per N in the peers' format
(../shared/bench/peers), so the figures sit beside netavark, CNI, iproute2
and raw pyroute2 measured in the same run.

    python -m bench.attach 50 200 1000           # library
    python -m bench.attach --cli 50              # `netkit run -d` processes
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time


def stats(label: str, spans: list[float], total: float, n: int) -> str:
    d = sorted(x * 1000 for x in spans)
    rank = lambda p: d[max(0, -(-len(d) * p // 100) - 1)]
    return (f"{label}_total_s={total:.3f} {label}_ms_mean={sum(d) / len(d):.2f} "
            f"{label}_ms_p50={rank(50):.2f} {label}_ms_p99={rank(99):.2f} "
            f"{label}_ms_max={d[-1]:.2f} {label}_eps={n / total:.1f}")


def bench_library(n: int, root: str, run: str) -> str:
    from netkit.engine import Engine
    from netkit.specs import ContainerSpec, NetworkSpec
    name = f"b{secrets.token_hex(3)}"
    host = Engine(root=root, run=run)
    host.create_node(name)
    try:
        e = Engine(name, root=root, run=run)
        e.create_network(NetworkSpec("bench", subnets=("10.96.0.0/16",)))
        spans, ids = [], []
        t0 = time.perf_counter()
        for i in range(n):
            s = time.perf_counter()
            c = e.create_container(ContainerSpec(name=f"c{i}", network="bench"))
            spans.append(time.perf_counter() - s)
            ids.append(c.id)
        total = time.perf_counter() - t0
        assert len({c.endpoints[0].ipv4 for c in e.containers(all=True)}) == n
        assert e.exec(f"c{n - 1}", ["ping", "-c", "1", "-W", "1", "-q", "10.96.0.2"]) == 0
        rm_spans = []
        t1 = time.perf_counter()
        for cid in ids:
            s = time.perf_counter()
            e.remove_container(cid, force=True)
            rm_spans.append(time.perf_counter() - s)
        rm_total = time.perf_counter() - t1
        e.close()
        return (f"RESULT peer=netkit-lib N={n} {stats('attach', spans, total, n)} "
                f"{stats('detach', rm_spans, rm_total, n)}")
    finally:
        host.remove_node(name, force=True)
        host.close()


def bench_cli(n: int, root: str, run: str) -> str:
    from netkit.engine import Engine
    name = f"b{secrets.token_hex(3)}"
    host = Engine(root=root, run=run)
    host.create_node(name)
    env = dict(os.environ, NETKIT_ROOT=root, NETKIT_RUN=run, NETKIT_NODE=name)
    exe = [sys.executable, "-m", "netkit"]
    try:
        subprocess.run(exe + ["network", "create", "--subnet", "10.97.0.0/16", "bench"], env=env,
                       check=True, capture_output=True)
        spans = []
        t0 = time.perf_counter()
        for i in range(n):
            s = time.perf_counter()
            subprocess.run(exe + ["run", "-d", "--name", f"c{i}", "--network", "bench"], env=env,
                           check=True, capture_output=True)
            spans.append(time.perf_counter() - s)
        total = time.perf_counter() - t0
        s = time.perf_counter()
        subprocess.run(exe + ["rm", "-f"] + [f"c{i}" for i in range(n)], env=env, check=True,
                       capture_output=True)
        rm_total = time.perf_counter() - s
        return (f"RESULT peer=netkit-cli N={n} {stats('attach', spans, total, n)} "
                f"detach_total_s={rm_total:.3f} detach_ms_mean={rm_total * 1000 / n:.2f}")
    finally:
        host.remove_node(name, force=True)
        host.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sizes", nargs="*", type=int, default=[50, 200, 1000])
    ap.add_argument("--cli", action="store_true", help="time `netkit run -d` processes instead")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="netkit-bench.")
    # Runtime files live on tmpfs, as /run does on a standard Linux host (on
    # this VM /run is on the root disk, where each file create costs ~0.5 ms).
    run_dir = os.path.join(tmp, "run")
    os.makedirs(run_dir)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1g", "netkit-bench", run_dir], check=True)
    try:
        for n in args.sizes:
            fn = bench_cli if args.cli else bench_library
            line = fn(n, os.path.join(tmp, "root"), run_dir)
            print(line, flush=True)
            if os.environ.get("PB_RESULTS"):
                with open(os.environ["PB_RESULTS"], "a") as f:
                    f.write(line + "\n")
    finally:
        subprocess.run(["umount", run_dir], check=False)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
