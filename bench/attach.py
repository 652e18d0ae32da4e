"""Create + attach N containers on one bridge network, then remove them in bulk.

Runs inside a throwaway simulated node (nothing touches the real host's
namespace) and prints one RESULT line per N in the peers' format
(../shared/bench/peers), so the figures sit beside netavark, CNI, iproute2
and raw pyroute2 measured in the same run.

One netkit "attach" is `Engine.run(ContainerSpec(..., detach=True))` with no
command: a bare sandbox, created and joined to its network in one action
(`Engine.create_container` alone no longer joins networks: like
`docker create`, addresses come at start). `create_container` is timed
separately (peer `netkit-create`).

    python -m bench.attach 50 200 1000           # library
    python -m bench.attach --cli 50              # `netkit run -d` processes
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from bench.common import emit, stats, throwaway_node, workspace


def _timed(fn, items) -> tuple[list[float], float]:
    spans = []
    t0 = time.perf_counter()
    for item in items:
        s = time.perf_counter()
        fn(item)
        spans.append(time.perf_counter() - s)
    return spans, time.perf_counter() - t0


def bench_library(n: int, root: str, run: str) -> list[str]:
    from netkit.engine import Engine
    from netkit.specs import ContainerSpec, NetworkSpec
    with throwaway_node(root, run) as name:
        e = Engine(name, root=root, run=run)
        try:
            e.create_network(NetworkSpec("bench", subnets=("10.96.0.0/16",)))
            names = [f"c{i}" for i in range(n)]
            spans, total = _timed(lambda c: e.run(ContainerSpec(name=c, network="bench", detach=True)),
                                  names)
            assert len({c.endpoints[0].ipv4 for c in e.containers(all=True)}) == n
            assert e.exec_output(names[-1], ["ping", "-c", "1", "-W", "1", "-q", "10.96.0.2"])[0] == 0
            rm_spans, rm_total = _timed(lambda c: e.remove_container(c, force=True), names)
            attach = (f"RESULT peer=netkit-lib N={n} nscreate_ms_per=0 {stats('attach', spans, total, n)} "
                      f"{stats('detach', rm_spans, rm_total, n)}")
            cspans, ctotal = _timed(lambda c: e.create_container(ContainerSpec(name=c, network="bench")),
                                    names)
            crm, crm_total = _timed(lambda c: e.remove_container(c, force=True), names)
            create = (f"RESULT peer=netkit-create N={n} {stats('create', cspans, ctotal, n)} "
                      f"{stats('rm', crm, crm_total, n)}")
            return [attach, create]
        finally:
            e.close()


def bench_cli(n: int, root: str, run: str) -> list[str]:
    with throwaway_node(root, run) as name:
        env = dict(os.environ, NETKIT_ROOT=root, NETKIT_RUN=run, NETKIT_NODE=name)
        exe = [sys.executable, "-m", "netkit"]
        subprocess.run(exe + ["network", "create", "--subnet", "10.97.0.0/16", "bench"], env=env,
                       check=True, capture_output=True)
        spans, total = _timed(lambda i: subprocess.run(
            exe + ["run", "-d", "--name", f"c{i}", "--network", "bench"], env=env, check=True,
            capture_output=True), range(n))
        s = time.perf_counter()
        subprocess.run(exe + ["rm", "-f"] + [f"c{i}" for i in range(n)], env=env, check=True,
                       capture_output=True)
        rm_total = time.perf_counter() - s
        return [f"RESULT peer=netkit-cli N={n} {stats('attach', spans, total, n)} "
                f"detach_total_s={rm_total:.3f} detach_ms_mean={rm_total * 1000 / n:.2f}"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sizes", nargs="*", type=int, default=[50, 200, 1000])
    ap.add_argument("--cli", action="store_true", help="time `netkit run -d` processes instead")
    args = ap.parse_args()
    with workspace() as (root, run):
        for n in args.sizes:
            for line in (bench_cli if args.cli else bench_library)(n, root, run):
                emit(line)


if __name__ == "__main__":
    main()
