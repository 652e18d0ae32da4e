"""The node runtime at scale: N detached containers on one throwaway simulated node.

    python -m bench.runtime [N ...] [--cli 300] [--cli-python PYTHON ...] [--sample 50]
                            [--exec-reps 30] [--conmon 200] [--old 20] [--peers]

Default N: 200 1000. One node, one bridge network (10.96.0.0/16, embedded
DNS); everything is removed at the end, also on Ctrl-C or SIGTERM.

1. ramp: `Engine.run(ContainerSpec(name=cI, network="bench", command=("sleep",
   "infinity"), detach=True))` for I < max(N), each timed; the last `--sample`
   containers run `sh -c 'sleep S; exit K'` instead, K known. At N = 10 and
   at each N: the Pss of netkit's processes on the node (the agent, the
   resolver, any other; /proc/PID/smaps_rollup), /proc/meminfo, and
   `Engine.exec_output(ctr, ["true"])` timed `--exec-reps` times.
2. exit codes: `Engine.wait` of each sample container gives K, and so does
   its inspect (State.ExitCode) afterwards.
3. `Engine.remove_container(force=True)` of every container, timed (the
   running ones first: the figure; then the exited sample).
4. `Engine.create_container` x max(N), timed (a created container: sandbox
   only), then removed.
5. `netkit run -d --network bench sleep infinity` as a new process, `--cli`
   times (with each `--cli-python`); then one `netkit rm -f` of them all.
6. conmon beside it (bench/conmon.py: podman + conmon + runc, `--conmon` N
   containers from the same node's netns), and the old per-container Python
   shim for reference (`--old` N: a forked copy of a Python process that
   imported the CLI and the engine, as `netkit run -d` left before the agent).
7. `--peers`: then `bash bench/compare.sh N...` (iproute2, pyroute2, CNI,
   netavark, then bench.attach: create + attach, remove) in the same run.

Prints `RESULT key=value` lines (also appended to $PB_RESULTS) and a
Markdown summary with the targets of ISSUE 10.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from bench.common import emit, percentile, throwaway_node, workspace
from bench.procmem import KERNEL_FIELDS, meminfo, netkit_processes, pss_kib

SLEEP = ("sleep", "infinity")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_SLEEP = 20                    # s: the sample ends after the last measurement at max(N)
EXEC_N = 10                          # exec is also timed here, for "flat from N = 10"


def _editable(python: str) -> bool:
    """Does `python`'s environment hold an editable install of netkit (an import hook
    that costs each process ~10 ms of start-up)?"""
    out = subprocess.run([python, "-c", "import sys; print(*sys.path, sep=chr(10))"],
                         capture_output=True, text=True, env={"PATH": os.environ.get("PATH", "")})
    return any(os.path.isdir(p) and any(f.startswith("__editable__") for f in os.listdir(p))
               for p in out.stdout.split("\n") if p.endswith("site-packages"))


def load() -> str:
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def ms(values: list[float]) -> list[float]:
    return [v * 1000 for v in values]


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def sample_code(i: int) -> int:
    return 1 + (i * 37) % 250


class RuntimeBench:
    def __init__(self, args: argparse.Namespace, root: str, run: str, node: str) -> None:
        from netkit.engine import Engine
        from netkit.kernel.netns import netns_path
        self.args, self.root, self.run, self.node = args, root, run, node
        self.e = Engine(node, root=root, run=run)
        self.netns = netns_path(self.e.node.netns or "")
        self.marker = os.path.dirname(run)              # the workspace: in the agent's argv
        self.figures: list[tuple[str, int, float, str, bool | None]] = []

    def figure(self, what: str, n: int, value: float, target: str, ok: bool | None) -> None:
        self.figures.append((what, n, value, target, ok))

    # -- measurements at a checkpoint ------------------------------------------------------
    def netkit_pss(self) -> tuple[int, dict[int, str]]:
        procs = netkit_processes(self.marker, self.netns, sys.executable)
        return sum(pss_kib(p) for p in procs), procs

    def time_exec(self, names: list[str]) -> list[float]:
        spans = []
        for name in names[:2]:
            self.e.exec_output(name, ["true"])           # warm
        for i in range(self.args.exec_reps):
            s = time.perf_counter()
            code, _ = self.e.exec_output(names[i % len(names)], ["true"])
            spans.append(time.perf_counter() - s)
            assert code == 0
        return spans

    def checkpoint(self, n: int, base: dict[str, int], exec_on: list[str]) -> None:
        time.sleep(1.0)                                  # the agent's log lines, RCU frees
        pss, procs = self.netkit_pss()
        mem = meminfo()
        grown = {k: (mem[k] - base[k]) / 1024 / n for k in KERNEL_FIELDS}
        avail = (base["MemAvailable"] - mem["MemAvailable"]) / 1024 / n
        running = sum(1 for c in self.e.containers() if c.state.value == "running")
        spans = ms(self.time_exec(exec_on))
        emit(f"RESULT peer=netkit case=node N={n} running={running} netkit_procs={len(procs)} "
             f"pss_mb_total={pss / 1024:.2f} pss_mb_per_ctr={pss / 1024 / n:.3f} "
             f"memavail_mb_per_ctr={avail:.3f} "
             + " ".join(f"{k.lower()}_mb_per_ctr={v:.3f}" for k, v in grown.items())
             + f" exec_ms_mean={mean(spans):.2f} exec_ms_p50={percentile(spans, 50):.2f} "
             f"exec_ms_p99={percentile(spans, 99):.2f} load1={load()}")
        for pid, cmd in sorted(procs.items()):
            print(f"#   pss {pss_kib(pid) / 1024:7.2f} MB  pid {pid}  {cmd[:110]}", flush=True)
        self.exec_means[n] = mean(spans)
        if n in self.args.sizes:
            self.figure("userspace Pss per container (netkit's processes / N)", n,
                        pss / 1024 / n, "<= 0.5 MB", pss / 1024 / n <= 0.5)
        if n == max(self.args.sizes):
            self.figure("MemAvailable drop per container", n, avail, "<= 1.5 MB", avail <= 1.5)

    # -- 1. ramp ---------------------------------------------------------------------------
    def ramp(self) -> list[str]:
        from netkit.specs import ContainerSpec
        top = max(self.args.sizes)
        points = sorted({EXEC_N, *self.args.sizes})
        first_sample = top - self.args.sample
        self.exec_means: dict[int, float] = {}
        base = meminfo()
        names, spans = [], []
        t0 = time.perf_counter()
        for i in range(top):
            name = f"c{i}"
            cmd = SLEEP if i < first_sample else \
                ("sh", "-c", f"sleep {SAMPLE_SLEEP}; exit {sample_code(i)}")
            s = time.perf_counter()
            ctr, code = self.e.run(ContainerSpec(name=name, network="bench", command=cmd, detach=True))
            spans.append(time.perf_counter() - s)
            assert code is None and ctr.pid
            names.append(name)
            if i + 1 in points:
                self.checkpoint(i + 1, base, [names[0], names[min(i, first_sample - 1)]])
        total = time.perf_counter() - t0
        d = ms(spans)
        for n in self.args.sizes:
            part = d[:n]
            ratio = mean(part[-100:]) / mean(part[:100])
            emit(f"RESULT peer=netkit case=run N={n} run_ms_mean={mean(part):.2f} "
                 f"run_ms_p50={percentile(part, 50):.2f} run_ms_p90={percentile(part, 90):.2f} "
                 f"run_ms_p99={percentile(part, 99):.2f} run_ms_max={max(part):.2f} "
                 f"run_last100_first100={ratio:.3f} run_total_s={total if n == top else 0:.2f}")
            self.figure("Engine.run(detach) p50 ms", n, percentile(part, 50), "<= 10 ms",
                        percentile(part, 50) <= 10)
            self.figure("Engine.run(detach) mean last 100 / first 100", n, ratio, "<= 1.3",
                        ratio <= 1.3)
        flat = self.exec_means[top] / self.exec_means[EXEC_N]
        emit(f"RESULT peer=netkit case=exec " + " ".join(
            f"exec_ms_mean_N{n}={v:.2f}" for n, v in sorted(self.exec_means.items()))
             + f" exec_ratio_top_N{EXEC_N}={flat:.3f}")
        for n, v in sorted(self.exec_means.items()):
            self.figure("exec `true` mean ms", n, v, "flat", None)
        self.figure(f"exec mean at N={top} / at N={EXEC_N}", top, flat, "<= 1.3 (flat)", flat <= 1.3)
        return names

    # -- 2. exit codes ---------------------------------------------------------------------
    def exit_codes(self, names: list[str]) -> None:
        top = len(names)
        sample = range(top - self.args.sample, top)
        s = time.perf_counter()
        waited = {i: self.e.wait(names[i]) for i in sample}
        inspected = {i: self.e.container(names[i]).exit_code for i in sample}
        good = sum(1 for i in sample if waited[i] == inspected[i] == sample_code(i))
        emit(f"RESULT peer=netkit case=exit_codes N={top} sample={len(sample)} correct={good} "
             f"wait_s={time.perf_counter() - s:.2f}")
        self.figure(f"exit codes reported (wait + inspect), sample of {len(sample)}", top, good,
                    f"{len(sample)}/{len(sample)}", good == len(sample))

    # -- 3. rm -f --------------------------------------------------------------------------
    def remove(self, names: list[str]) -> None:
        top = len(names)
        live = names[:top - self.args.sample]
        spans = []
        for name in live + names[len(live):]:
            s = time.perf_counter()
            self.e.remove_container(name, force=True)
            spans.append(time.perf_counter() - s)
        d = ms(spans)
        run_d = d[:len(live)]
        ratio = mean(run_d[:100]) / mean(run_d[-100:])
        emit(f"RESULT peer=netkit case=rm N={top} running={len(live)} rm_ms_mean={mean(run_d):.2f} "
             f"rm_ms_p50={percentile(run_d, 50):.2f} rm_ms_p99={percentile(run_d, 99):.2f} "
             f"rm_ms_max={max(run_d):.2f} rm_first100_last100={ratio:.3f} "
             f"rm_exited_ms_mean={mean(d[len(live):]) if len(d) > len(live) else 0:.2f}")
        self.figure("rm -f of a running detached container, mean ms", top, mean(run_d), "<= 5 ms",
                    mean(run_d) <= 5)
        self.figure("rm -f mean, first 100 (N high) / last 100 (N low)", top, ratio, "<= 1.3 (flat)",
                    ratio <= 1.3)
        time.sleep(1.0)

    # -- 4. create_container ---------------------------------------------------------------
    def create(self) -> None:
        from netkit.specs import ContainerSpec
        top = max(self.args.sizes)
        spans = []
        for i in range(top):
            s = time.perf_counter()
            self.e.create_container(ContainerSpec(name=f"k{i}", network="bench", command=SLEEP))
            spans.append(time.perf_counter() - s)
        d = ms(spans)
        s = time.perf_counter()
        for i in range(top):
            self.e.remove_container(f"k{i}", force=True)
        rm = (time.perf_counter() - s) * 1000 / top
        emit(f"RESULT peer=netkit case=create N={top} create_ms_mean={mean(d):.2f} "
             f"create_ms_p50={percentile(d, 50):.2f} create_ms_p99={percentile(d, 99):.2f} "
             f"create_last100_first100={mean(d[-100:]) / mean(d[:100]):.3f} rm_created_ms_mean={rm:.2f}")
        self.figure("Engine.create_container mean ms", top, mean(d), "<= 6 ms", mean(d) <= 6)

    # -- 5. CLI ----------------------------------------------------------------------------
    def cli(self, python: str) -> None:
        n = self.args.cli
        env = dict(os.environ, NETKIT_ROOT=self.root, NETKIT_RUN=self.run, NETKIT_NODE=self.node,
                   PYTHONPATH=os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p))
        exe = [python, "-m", "netkit"]
        spans = []
        for i in range(n):
            s = time.perf_counter()
            subprocess.run(exe + ["run", "-d", "--name", f"x{i}", "--network", "bench", *SLEEP],
                           env=env, check=True, capture_output=True)
            spans.append(time.perf_counter() - s)
        s = time.perf_counter()
        subprocess.run(exe + ["rm", "-f"] + [f"x{i}" for i in range(n)], env=env, check=True,
                       capture_output=True)
        rm = time.perf_counter() - s
        d = ms(spans)
        k = min(25, n)
        ratio = mean(d[-k:]) / mean(d[:k])
        setup = "editable" if _editable(python) else "regular"
        emit(f"RESULT peer=netkit-cli case=run N={n} python={python} setup={setup} "
             f"cli_ms_mean={mean(d):.1f} cli_ms_p50={percentile(d, 50):.1f} "
             f"cli_ms_p99={percentile(d, 99):.1f} cli_last25_first25={ratio:.3f} "
             f"cli_rm_all_s={rm:.2f} load1={load()}")
        self.figure(f"`netkit run -d` (new process, {setup} install) mean ms", n, mean(d),
                    "<= 120 ms", mean(d) <= 120)
        self.figure(f"`netkit run -d` ({setup} install) last 25 / first 25", n, ratio, "<= 1.2",
                    ratio <= 1.2)

    # -- 6. conmon and the old shim --------------------------------------------------------
    def conmon(self) -> None:
        from bench import conmon
        missing = conmon.available()
        if missing is not None:
            emit(f"RESULT peer=conmon case=memory skipped=missing:{missing.replace(' ', '')}")
            return
        r = conmon.measure(self.args.conmon, self.netns)
        emit("RESULT peer=conmon case=memory " + " ".join(
            f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))
        self.figure("conmon Pss per container (podman + runc, reference)", self.args.conmon,
                    r["pss_mb_per_ctr"], "peer", None)

    def old_shim(self) -> None:
        """The old model, approximately: each `run -d` left a fork of its own Python process."""
        from netkit.kernel import spawn
        n = self.args.old
        d = os.path.join(self.run, "old-shim")
        os.makedirs(d, exist_ok=True)
        code = ("import sys, netkit.cli.main; from netkit.engine import Engine; from netkit.kernel import spawn\n"
                "e = Engine(sys.argv[1], root=sys.argv[2], run=sys.argv[3]); e.containers(all=True)\n"
                "print(spawn.spawn_detached(spawn.Sandbox(netns=e.node.netns), ['sleep', 'infinity'], "
                "log_path=sys.argv[4] + '.log', exit_path=sys.argv[4] + '.exit'))\n")
        kids = []
        try:
            for i in range(n):
                out = subprocess.run([sys.executable, "-c", code, self.node, self.root, self.run,
                                      os.path.join(d, str(i))], check=True, capture_output=True, text=True)
                kids.append(int(out.stdout.split()[-1]))
            time.sleep(0.5)
            shims = [int(open(f"/proc/{k}/stat").read().rsplit(")", 1)[1].split()[1]) for k in kids]
            pss = sum(pss_kib(p) for p in shims) / 1024
            emit(f"RESULT peer=netkit-old-shim case=memory N={n} pss_mb_per_ctr={pss / n:.2f}")
            self.figure("old model: forked Python shim Pss per container (reference)", n, pss / n,
                        "was 17.4 MB", None)
        finally:
            for k in kids:
                spawn.kill(k)

    def summary(self) -> None:
        print(f"\n### Node runtime (load1 at the end: {load()})\n")
        print("| figure | N | value | target | |")
        print("|---|---|---|---|---|")
        for what, n, value, target, ok in self.figures:
            mark = "" if ok is None else ("pass" if ok else "**FAIL**")
            print(f"| {what} | {n} | {value:.3f} | {target} | {mark} |")


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.runtime")
    ap.add_argument("sizes", nargs="*", type=int, default=[200, 1000])
    ap.add_argument("--cli", type=int, default=300, help="`netkit run -d` processes (0: skip)")
    ap.add_argument("--cli-python", action="append", metavar="PYTHON",
                    help="interpreter for the CLI runs (repeatable; default: this one). The "
                         "checkout is put first on its PYTHONPATH: an interpreter of a venv where "
                         "netkit was pip-installed (not editable) times the code of this checkout "
                         "without the editable install's import hook")
    ap.add_argument("--sample", type=int, default=50, help="containers that exit with a known code")
    ap.add_argument("--exec-reps", type=int, default=30)
    ap.add_argument("--conmon", type=int, default=200, help="podman containers (0: skip)")
    ap.add_argument("--old", type=int, default=20, help="old-style shims for reference (0: skip)")
    ap.add_argument("--peers", action="store_true", help="then bench/compare.sh (attach/detach)")
    args = ap.parse_args()
    args.sizes = sorted(set(args.sizes))
    if max(args.sizes) < max(EXEC_N, 100) + args.sample:
        ap.error(f"the largest N must be at least {max(EXEC_N, 100) + args.sample}")
    import compileall
    import netkit
    # as an installed package is: byte-compiled (this machine sets PYTHONDONTWRITEBYTECODE,
    # and a CLI that recompiles ~35 modules per run pays ~40 ms for it)
    compileall.compile_dir(os.path.dirname(netkit.__file__), quiet=1)
    emit(f"RESULT bench=runtime start={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} "
         f"load1={load()} sizes={','.join(map(str, args.sizes))} python={sys.version.split()[0]} "
         f"kernel={os.uname().release}")
    with workspace() as (root, run), throwaway_node(root, run, prefix="rt") as node:
        from netkit.specs import NetworkSpec
        b = RuntimeBench(args, root, run, node)
        try:
            b.e.create_network(NetworkSpec("bench", subnets=("10.96.0.0/16",)))
            names = b.ramp()
            b.exit_codes(names)
            b.remove(names)
            b.create()
            for python in (args.cli_python or [sys.executable]) if args.cli else ():
                b.cli(python)
            if args.conmon:
                b.conmon()
            if args.old:
                b.old_shim()
        finally:
            b.e.close()
            b.summary()
    if args.peers:                  # after ours, so that the runtime's figures get the quiet machine
        subprocess.run(["bash", os.path.join(os.path.dirname(__file__), "compare.sh"),
                        *map(str, args.sizes)], check=True)


if __name__ == "__main__":
    main()
