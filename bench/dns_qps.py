"""DNS throughput and latency of netkit's resolver, measured as the peers are.

    python -m bench.dns_qps [--seconds 10] [--rate 2000] [--records 100,10000]

Same method as /work/shared/bench/peers/dns_qps.sh (path "lo"): dnsperf runs
inside the sandbox netns against 127.0.0.11:53, which the netns's nftables
table redirects to the ports the resolver daemon listens on (docs/dns.md;
in snapshot mode: it serves a generated snapshot.json, no store).
Per record count and mix: a max-rate run (1 thread, 1 socket, 100
outstanding) gives qps and server CPU us/query (utime+stime of the daemon
from /proc/PID/stat over the run); a fixed-rate run (-Q RATE -v) gives the
latency avg/p50/p99. mix=hit asks only existing names; mix=nx50 half of them
unknown (no upstream anywhere: they get SERVFAIL). Everything lives in a
throwaway netns and temp dir, removed on exit; nothing is forwarded.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from netkit.dns import daemon  # noqa: E402
from netkit.dns.entries import EndpointEntry, NetworkEntry, SandboxEntry, Snapshot  # noqa: E402
from netkit.kernel import netns  # noqa: E402


def snapshot(ns: str, n: int) -> Snapshot:
    eps = []
    for i in range(1, n + 1):
        ip = f"10.{90 + i // 65536}.{i // 256 % 256}.{i % 256}"
        eps.append(EndpointEntry(f"{i:064x}", f"c{i}", "net1", ip, None, (f"c{i}", f"{i:012x}")))
    return Snapshot(1, (SandboxEntry("f" * 64, ns, ("net1",), external=False),),
                    {"net1": NetworkEntry("benchnet", "rr")}, tuple(eps))


def rss_kib(pid: int) -> int:
    """The resolver's resident memory (VmRSS) after serving the runs."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def run_case(ns: str, pid: int, qfile: str, seconds: int, rate: int, label: str) -> str:
    base = ["ip", "netns", "exec", ns, "dnsperf", "-s", "127.0.0.11", "-d", qfile,
            "-l", str(seconds), "-T", "1", "-c", "1"]
    c0 = cpu_ticks(pid)
    out = subprocess.run(base + ["-q", "100"], capture_output=True, text=True).stdout
    c1 = cpu_ticks(pid)
    done = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))
    lost = int(re.search(r"Queries lost:\s+(\d+)", out).group(1))
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
    avg = float(re.search(r"Average Latency \(s\):\s+([\d.]+)", out).group(1)) * 1000
    hz = os.sysconf("SC_CLK_TCK")
    cpu_us = (c1 - c0) / hz * 1e6 / max(done, 1)
    out = subprocess.run(base + ["-Q", str(rate), "-v"], capture_output=True, text=True).stdout
    lats = sorted(float(line.split()[-1]) * 1000 for line in out.splitlines()
                  if line.startswith(">") and re.fullmatch(r"[\d.]+", line.split()[-1]))
    pct = (lambda p: lats[min(len(lats) - 1, max(0, -(-len(lats) * p // 100) - 1))]) \
        if lats else (lambda p: float("nan"))
    mean = sum(lats) / len(lats) if lats else float("nan")
    return (f"RESULT peer=dns-netkit {label} dur_s={seconds} qps={qps:.0f} avg_ms={avg:.3f} "
            f"lost={lost} srv_cpu_us_per_q={cpu_us:.2f} lat_rate={rate} lat_n={len(lats)} "
            f"lat_avg_ms={mean:.3f} lat_p50_ms={pct(50):.3f} lat_p99_ms={pct(99):.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--records", default="100,10000")
    parser.add_argument("--mixes", default="hit,nx50")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 1
    ns = f"nkb-dns-{secrets.token_hex(3)}"
    run_dir = tempfile.mkdtemp(prefix="nkb-dns.")
    netns.create_netns(ns)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        for n in (int(x) for x in args.records.split(",")):
            daemon.write_snapshot(run_dir, snapshot(ns, n))
            t0 = time.monotonic()
            pid = daemon.ensure_running(run_dir, None)
            print(f"# {n} records: daemon pid {pid} ready in {time.monotonic() - t0:.2f} s",
                  file=sys.stderr)
            names = [f"c{i}" for i in range(1, n + 1)]
            for mix in args.mixes.split(","):
                qfile = os.path.join(run_dir, f"{mix}.txt")
                with open(qfile, "w") as f:
                    for i, name in enumerate(names):
                        f.write(f"{name} A\n")
                        if mix == "nx50":
                            f.write(f"nx{i} A\n")
                print(run_case(ns, pid, qfile, args.seconds, args.rate,
                               f"path=lo records={n} mix={mix}"), flush=True)
            print(f"RESULT peer=dns-netkit records={n} rss_kib={rss_kib(pid)}", flush=True)
            daemon.stop(run_dir)
    finally:
        daemon.stop(run_dir)
        netns.delete_netns(ns)
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
