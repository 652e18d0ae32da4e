"""conmon's memory per container, for the runtime benchmark: podman + conmon + runc.

Debian's `podman`, `conmon`, `runc` and `busybox-static` (apt-get install),
all state under a temporary directory (vfs storage, cgroupfs, no events),
N containers `podman run -d --network none --rootfs <busybox> sleep
infinity`, podman started in a simulated node's netns (nsenter --net): the
conmon processes live there and the containers get empty netns of their
own; nothing touches the host's network. What stays resident per
container is one conmon (podman and runc exit); its Pss summed / N is
the figure. Removed afterwards (podman rm -fa), also on failure.

    python -m bench.conmon 200        # alone, in a throwaway node
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

from bench.procmem import pss_kib, processes_named

# this VM denies raising RLIMIT_NOFILE above 20000 (no CAP_SYS_RESOURCE) and podman's
# defaults ask for 1048576: runc fails with EPERM; ask for limits below the host's
ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096")


def available() -> str | None:
    """None if podman, conmon, runc and a static busybox are installed, else what is missing."""
    missing = [p for p in ("podman", "conmon", "runc") if shutil.which(p) is None]
    if not os.path.exists("/bin/busybox"):
        missing.append("busybox-static")
    return ", ".join(missing) or None


def _rootfs(path: str) -> None:
    for d in ("bin", "proc", "dev", "sys", "etc", "tmp"):
        os.makedirs(os.path.join(path, d), exist_ok=True)
    shutil.copy("/bin/busybox", os.path.join(path, "bin", "busybox"))
    for applet in ("sh", "sleep"):
        os.symlink("busybox", os.path.join(path, "bin", applet))


def measure(n: int, netns_path: str) -> dict[str, float]:
    """Run n podman containers from `netns_path`; conmon's Pss and podman run's time."""
    tmp = tempfile.mkdtemp(prefix="netkit-bench-podman.")
    podman = ["nsenter", f"--net={netns_path}", "podman", "--root", f"{tmp}/root",
              "--runroot", f"{tmp}/runroot", "--tmpdir", f"{tmp}/tmp", "--storage-driver", "vfs",
              "--cgroup-manager", "cgroupfs", "--events-backend", "none", "--runtime", "runc"]
    try:
        _rootfs(f"{tmp}/rootfs")
        spans = []
        for i in range(n):
            s = time.perf_counter()
            subprocess.run(podman + ["run", "-d", "--network", "none", *ULIMITS, "--name", f"p{i}",
                                     "--rootfs", f"{tmp}/rootfs", "/bin/sleep", "infinity"],
                           check=True, capture_output=True)
            spans.append(time.perf_counter() - s)
        time.sleep(1.0)
        pids = processes_named("conmon", tmp)
        pss = sum(pss_kib(p) for p in pids)
        return {"N": n, "conmons": len(pids), "pss_mb_total": pss / 1024,
                "pss_mb_per_ctr": pss / 1024 / n, "run_ms_mean": 1000 * sum(spans) / n}
    finally:
        subprocess.run(podman + ["rm", "-fa", "-t", "0"], capture_output=True, check=False)
        remove_state(tmp)


def remove_state(tmp: str) -> None:
    """Remove podman's state directory `tmp` once its containers were removed: conmons
    left behind killed, their cleanup commands waited for, mounts below it released."""
    for pid in processes_named("conmon", tmp):      # whatever podman rm left behind
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    # each conmon runs `podman container cleanup` as its container ends, which writes
    # lock files under tmp: wait for those before removing it
    deadline = time.monotonic() + 15
    while processes_named("", tmp) and time.monotonic() < deadline:
        time.sleep(0.1)
    with open("/proc/self/mountinfo") as f:
        left = [line.split()[4] for line in f if tmp in line.split()[4]]
    for mp in sorted(left, reverse=True):
        subprocess.run(["umount", "-l", mp], check=False)
    for _ in range(50):
        shutil.rmtree(tmp, ignore_errors=True)
        if not os.path.exists(tmp):
            break
        time.sleep(0.1)


def main() -> None:
    from bench.common import emit, throwaway_node, workspace
    from netkit.engine import Engine
    from netkit.kernel.netns import netns_path
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    if (missing := available()) is not None:
        sys.exit(f"missing: {missing} (apt-get install podman conmon runc busybox-static)")
    with workspace() as (root, run), throwaway_node(root, run) as name:
        e = Engine(name, root=root, run=run)
        path = netns_path(e.node.netns or "")
        e.close()
        r = measure(n, path)
        emit("RESULT peer=conmon case=memory " + " ".join(f"{k}={v:.3f}" if isinstance(v, float)
                                                         else f"{k}={v}" for k, v in r.items()))


if __name__ == "__main__":
    main()
